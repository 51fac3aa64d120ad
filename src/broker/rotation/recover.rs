//! Resolving credentials whose last refresh has no known outcome.
//!
//! - **Fence.** The record says REFRESHING but its lease is free: the replica doing it stopped
//!   (killed, or paused past its lease). The attempt is taken over in the same atomic write
//!   that flags the credential INDETERMINATE with `probe_at = now + reconcile_after` — the
//!   moment from which no send of the old holder can still be in flight (the timing
//!   assumption, `rotation`'s point 3).
//! - **Probe.** At `probe_at` the old access token is tried on the provider's probe path. A
//!   provider whose refresh revokes the previous token at once answers: alive → the refresh
//!   never happened → reopen and refresh normally; rejected while the token was still within
//!   its lifetime → it happened and its answer was lost → REAUTH_REQUIRED. A rejection after
//!   the token's expiry proves nothing: "outcome unknown", REAUTH_REQUIRED, never a claim that
//!   the refresh happened. The refresh token is not sent in any of these cases.

use super::{Rotation, Transition, attempt_id, held_token};
use crate::broker::{BrokerError, BrokerResult};
use crate::domain::{CredentialState, Reason, Secret, Vault};
use crate::providers::Probe;
use crate::store::{Attempt, StoredCredential};
use crate::telemetry::metrics;
use time::OffsetDateTime;

impl Rotation<'_> {
    /// The holder vanished mid-refresh: take its attempt over and flag the credential.
    pub(super) async fn fence(&self, record: &StoredCredential, vault: &Vault, refresh_token: &Secret) -> BrokerError {
        let probe_at = OffsetDateTime::now_utc() + self.timing.reconcile_after;
        let meta = self.meta(&Transition::Fence, Some(probe_at));
        let attempt = attempt_id(refresh_token);
        let attempt = Attempt { id: &attempt, owner: self.owner, horizon: self.timing.journal_horizon };
        match self.records.fence(self.id, record.version, attempt, &meta, vault).await {
            Ok(Some(_)) => Transition::Fence.log(self.id),
            Ok(None) => tracing::info!(credential = %self.id, "the record moved on while fencing; re-read next time"),
            Err(e) => tracing::warn!(credential = %self.id, error = %e, "could not fence a vanished refresh"),
        }
        BrokerError::NotServable { state: CredentialState::Indeterminate, detail: Reason::HolderVanished.to_string() }
    }

    /// INDETERMINATE and `probe_at` has come: probe with the old access token. `Ok`: the
    /// refresh never happened and the attempt is reopened (ACTIVE, safe to refresh).
    pub async fn probe(&self, record: &StoredCredential, vault: Vault) -> BrokerResult<(StoredCredential, Vault)> {
        let refresh_token = held_token(&vault)?;
        let started = std::time::Instant::now();
        let probed = self.probe_with(record, vault, &refresh_token).await;
        metrics::renewal(&self.id.provider, "probe", probed.is_ok(), started.elapsed());
        probed
    }

    async fn probe_with(
        &self,
        record: &StoredCredential,
        vault: Vault,
        refresh_token: &Secret,
    ) -> BrokerResult<(StoredCredential, Vault)> {
        let Some(session) = vault.session.clone() else {
            return Err(self
                .apply(record.version, &Transition::Reauthorize(Reason::NothingToProbe), &vault, None)
                .await);
        };
        let sent_at = OffsetDateTime::now_utc();
        match self.provider.probe(self.http, &session.token).await {
            Ok(Probe::Alive) => self.reopen_after_probe(record, vault, refresh_token).await,
            // Only a token that should still have been alive proves the refresh happened.
            Ok(Probe::Rejected { status }) if sent_at + self.timing.clock_skew < session.expires_at => {
                tracing::warn!(credential = %self.id, status, "probe: the old access token is revoked within its lifetime");
                Err(self.apply(record.version, &Transition::Reauthorize(Reason::AnswerLost), &vault, None).await)
            }
            Ok(Probe::Rejected { status }) => {
                tracing::warn!(credential = %self.id, status, "probe: the old access token had expired; the outcome stays unknown");
                let unknown = Reason::ExpiredBeforeProbe { expired_at: session.expires_at };
                Err(self.apply(record.version, &Transition::Reauthorize(unknown), &vault, None).await)
            }
            Err(source) => {
                tracing::warn!(credential = %self.id, error = %source, "probe failed; still indeterminate, probed again later");
                self.probe_later(record, &vault).await;
                Err(BrokerError::Upstream { provider: self.id.provider.clone(), source })
            }
        }
    }

    async fn reopen_after_probe(
        &self,
        record: &StoredCredential,
        vault: Vault,
        refresh_token: &Secret,
    ) -> BrokerResult<(StoredCredential, Vault)> {
        let meta = self.meta(&Transition::ProbeAlive, None);
        let attempt = attempt_id(refresh_token);
        match self.records.reopen(self.id, record.version, &attempt, &meta, &vault).await? {
            Some(reopened) => {
                Transition::ProbeAlive.log(self.id);
                Ok((reopened, vault))
            }
            None => Err(BrokerError::Conflict(self.id.clone())),
        }
    }

    /// A probe that got no answer is retried a lease TTL later (by whoever comes first).
    async fn probe_later(&self, record: &StoredCredential, vault: &Vault) {
        let later = OffsetDateTime::now_utc() + self.timing.lease_ttl;
        let meta = crate::broker::records::Meta { probe_at: Some(later), ..self.meta_of(record) };
        if let Err(e) = self.records.write(self.id, record.version, &meta, vault).await {
            tracing::warn!(credential = %self.id, error = %e, "could not postpone the probe");
        }
    }

    /// The record's own metadata, as a write would keep it.
    fn meta_of(&self, record: &StoredCredential) -> crate::broker::records::Meta {
        crate::broker::records::Meta {
            state: record.state,
            reason: record.reason.clone(),
            probe_at: record.probe_at,
            forced_at: record.forced_at,
        }
    }
}

//! # Rotating a single-use refresh token
//!
//! **The invariant: a refresh token is sent at most once** — unless it provably never reached
//! the provider, and then it is still *redeemed* at most once — **and the newest refresh token
//! is never lost silently**: the credential holds it, or it is INDETERMINATE or
//! REAUTH_REQUIRED and a warning with an `alert` field was logged.
//!
//! Everything that sends a refresh token, or decides what an attempt meant, is in this module:
//! [`Rotation::run`] (reserve → check → send → commit or classify), [`Rotation::fence`] and
//! [`Rotation::probe`] (`recover.rs`). docs/refresh-safety.md has the full argument.
//!
//! ## Why it holds (proof sketch)
//! 1. **Journal before send.** A token is sent only by the task that RESERVEd it: one Lua
//!    script checks the record's version and that the token's hash is not in the credential's
//!    journal, adds it, and marks the record REFRESHING. A second reservation of the same token
//!    finds the hash and sends nothing. The entry stays while the token is the current or
//!    previous one, then `refresh.journal_horizon` (≥ the token's lifetime upstream: config
//!    validation), after which the token is dead upstream whatever is sent.
//!    "Recorded" means durable: on a single AOF-always Redis, acknowledged; with replicas,
//!    acknowledged by `store.journal_replicas` of them (`WAIT`) — a reservation they do not
//!    acknowledge is reopened and never sent, since a failover could forget it.
//! 2. **Ownership checked right before sending.** The reserving task sends only if the
//!    journal still names it as the attempt's owner. Another replica takes the attempt over
//!    (FENCE, in the same write that flags the record) only when the record says REFRESHING
//!    and the holder's lease has lapsed; from then on the holder's check fails.
//! 3. **The one timing assumption.** No lease or check can stop a process that pauses between
//!    its last check and its send (Kleppmann 2016), and the provider checks no fencing token.
//!    So: *no replica pauses longer than `reconcile_after − request_timeout` between its
//!    ownership check and the send* (config keeps that ≥ 2 × `lease_ttl`, the pauses the lease
//!    itself tolerates). A fencer probes only `reconcile_after` after the fence: by then any
//!    send of the token has been made and has finished (`request_timeout`).
//! 4. **An attempt is removed (REOPEN) only with proof the token was not redeemed:** the
//!    request never left (connect error), the provider refused before touching the token (429,
//!    `invalid_client`), or — after (3) — the old access token still works, which a refresh
//!    (revoking it at once) would have prevented. A token reopened is sent again, redeemed once.
//! 5. **Never lost.** A 200 commits by compare-and-swap, waiting out a Redis restart; if the
//!    record moved on but still holds the redeemed token (a fence, a probe), the new tokens are
//!    stored over it (LATE COMMIT). Every other outcome flags the credential with an alert and
//!    is never retried blindly (the HTTP client has retries off, `providers::http`).
//!
//! ## Transitions ([`Transition`])
//! | from | transition | to | when |
//! |---|---|---|---|
//! | ACTIVE | `reserve` | REFRESHING | the planned renewal is due, a caller needs it, or a forced renewal |
//! | REFRESHING | `commit` | ACTIVE | 200: the new tokens are stored (written again over ACTIVE while too few replicas acknowledged it, `store.journal_replicas`) |
//! | REFRESHING, INDETERMINATE, REAUTH_REQUIRED | `late_commit` | ACTIVE | 200 after a fence/probe; the record still holds the redeemed token |
//! | REFRESHING | `reopen` | ACTIVE | provably not processed: connect error, 429, `invalid_client`; or never sent, its RESERVE not replicated in time |
//! | ACTIVE, REFRESHING | `unknown_outcome` | INDETERMINATE | sent, no usable answer (timeout, reset, 5xx, unreadable 200); or the journal already has the token |
//! | REFRESHING | `fence` | INDETERMINATE | the holder's lease lapsed mid-refresh |
//! | INDETERMINATE | `probe_alive` | ACTIVE | at `probe_at`: the old access token works → never redeemed |
//! | ACTIVE, REFRESHING, INDETERMINATE | `reauthorize` / `probe_reauthorize` | REAUTH_REQUIRED | token or login refused; probe rejected the old token within its lifetime (answer lost), or it expired first (outcome unknown), or nothing to probe with |

mod recover;
mod transition;

pub use transition::Transition;

use super::chaos::Chaos;
use super::plan::Coordination;
use super::records::{Meta, Records};
use super::{BrokerError, BrokerResult, budget};
use crate::domain::{CredentialId, CredentialState, Reason, Secret, SecretMaterial, Vault};
use crate::providers::Provider;
use crate::providers::http::{HttpClient, TokenSet, UpstreamError};
use crate::providers::passolution::RefreshFailure;
use crate::store::budget::TokenBudget;
use crate::store::{Attempt, Reservation, StoreError, StoredCredential};
use sha2::{Digest, Sha256};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a successful refresh waits for the store to come back before giving up on
/// storing its tokens (a Redis restart takes seconds).
pub const COMMIT_PATIENCE: Duration = Duration::from_secs(30);

/// One rotation of one credential, by one lease holder: everything the rotation path needs,
/// and nothing else.
pub struct Rotation<'a> {
    pub records: &'a Records,
    pub http: &'a HttpClient,
    pub provider: &'a Provider,
    pub id: &'a CredentialId,
    /// This lease holder's nonce: the journal's owner of what it reserves or fences.
    pub owner: &'a str,
    pub coordination: &'a Coordination,
    pub chaos: &'a Chaos,
    pub budget: Option<&'a TokenBudget>,
    /// Written with every record: when a renewal was last forced (now, for a forced one).
    pub forced_at: Option<OffsetDateTime>,
}

impl Rotation<'_> {
    /// Redeems `refresh_token` (the one `vault` holds), at most once. Returns the committed
    /// record and vault; an error says what the credential's state now is.
    #[tracing::instrument(name = "rotation", skip_all, fields(credential = %self.id, attempt))]
    pub async fn run(
        &self,
        record: &StoredCredential,
        vault: Vault,
        refresh_token: &Secret,
    ) -> BrokerResult<(StoredCredential, Vault)> {
        let attempt = attempt_id(refresh_token);
        tracing::Span::current().record("attempt", attempt.as_str());
        // A budget slot first: waiting for one must not hold the credential in REFRESHING.
        budget::spend(self.budget, &self.id.provider).await?;
        let version = self.reserve(record, &vault, &attempt).await?;
        self.chaos.point("after_reserve", self.id).await;
        self.check_owner(&attempt).await?;
        self.chaos.point("sending", self.id).await;
        let sent_at = OffsetDateTime::now_utc();
        // Sent exactly once: the HTTP client never retries.
        match self.provider.redeem(self.http, refresh_token).await {
            Ok(tokens) => {
                self.chaos.point("before_commit", self.id).await;
                self.commit(version, &attempt, self.rotated(vault, tokens)).await
            }
            Err(error) => {
                budget::note_rate_limit(self.budget, &self.id.provider, &error).await;
                Err(self.failed(version, &vault, &attempt, &error, sent_at).await)
            }
        }
    }

    /// RESERVE: journalled with the version check, or nothing is sent.
    async fn reserve(&self, record: &StoredCredential, vault: &Vault, attempt: &str) -> BrokerResult<u64> {
        let meta = self.meta(&Transition::Reserve, None);
        let reservation = if self.chaos.journal_off() {
            // The negative control: a version check only, no journal.
            let written = self.records.write(self.id, record.version, &meta, vault).await?;
            written.map_or(Reservation::VersionChanged, |r| Reservation::Reserved { version: r.version })
        } else {
            let attempt = Attempt { id: attempt, owner: self.owner, horizon: self.coordination.journal_horizon };
            self.records.reserve(self.id, record.version, attempt, &meta, vault).await?
        };
        match reservation {
            Reservation::Reserved { version } => {
                Transition::Reserve.log(self.id);
                Ok(version)
            }
            Reservation::VersionChanged => Err(BrokerError::Conflict(self.id.clone())),
            Reservation::NotReplicated { version } => Err(self.unreplicated(version, vault, attempt).await),
            Reservation::AlreadyAttempted => {
                let flag = Transition::Unknown(Reason::AlreadySent);
                let probe_at = OffsetDateTime::now_utc() + self.coordination.reconcile_after;
                Err(self.apply(record.version, &flag, vault, Some(probe_at)).await)
            }
        }
    }

    /// Right before sending: is the attempt still ours? A replica that found us gone has
    /// taken it over (FENCE) while we were paused; from that moment on we must never send.
    async fn check_owner(&self, attempt: &str) -> BrokerResult<()> {
        if self.chaos.journal_off()
            || self.records.attempt_owner(self.id, attempt).await?.as_deref() == Some(self.owner)
        {
            return Ok(());
        }
        tracing::warn!(credential = %self.id, "the refresh was taken over by another replica; not sending");
        Err(BrokerError::NotServable {
            state: CredentialState::Indeterminate,
            detail: Reason::HolderVanished.to_string(),
        })
    }

    /// A reservation that too few replicas acknowledged (`store.journal_replicas`): a
    /// failover could forget it and let another replica send the same token, so it is never
    /// acted on. The token has not left: the attempt is reopened (a reopen that fails leaves a
    /// REFRESHING record that the usual fence and probe resolve), and the caller retries later.
    async fn unreplicated(&self, version: u64, vault: &Vault, attempt: &str) -> BrokerError {
        tracing::warn!(credential = %self.id, "refresh reservation not replicated in time; not sending");
        not_replicated(self.id);
        let meta = self.meta(&Transition::Reopen, None);
        if let Err(e) = self.records.reopen(self.id, version, attempt, &meta, vault).await {
            tracing::warn!(credential = %self.id, error = %e, "could not reopen the unreplicated reservation");
        }
        BrokerError::Store(StoreError::NotReplicated)
    }

    /// COMMIT: we now hold the only valid refresh token, so this must not be lost. Redis
    /// being briefly away is waited out. A record that moved on is still ours to update if it
    /// holds the very token we redeemed (LATE COMMIT) — or the one we got, when our commit
    /// landed but its answer was lost or too few replicas acknowledged it: then it is written
    /// again until replicas have it (a failover in between may have undone it; the new
    /// primary's record then holds the redeemed token, and the same rule applies).
    async fn commit(&self, version: u64, attempt: &str, vault: Vault) -> BrokerResult<(StoredCredential, Vault)> {
        let deadline = tokio::time::Instant::now() + COMMIT_PATIENCE;
        let renewed = refresh_token(&vault).map(attempt_id);
        let (mut expected, mut transition) = (version, Transition::Commit);
        let mut backoff = Duration::from_millis(100);
        loop {
            let retry = match self.records.write(self.id, expected, &self.meta(&transition, None), &vault).await {
                Ok(Some(record)) => {
                    transition.log(self.id);
                    self.chaos.point("after_commit", self.id).await;
                    return Ok((record, vault));
                }
                // Written over at once (no back-off: nothing is down), but within the same
                // patience, so writers racing us cannot keep this loop going.
                Ok(None) => match self.ours_at(attempt, renewed.as_deref()).await {
                    Ok(next) if tokio::time::Instant::now() < deadline => {
                        (expected, transition) = next;
                        continue;
                    }
                    Ok(_) => {
                        tracing::error!(credential = %self.id, alert = "refresh_token_unsaved", "the credential kept changing during its commit; the renewed tokens were dropped");
                        return Err(BrokerError::Conflict(self.id.clone()));
                    }
                    Err(BrokerError::Store(e)) => e,
                    Err(e) => return Err(e),
                },
                Err(BrokerError::Store(e)) => e,
                Err(e) => return Err(e),
            };
            if tokio::time::Instant::now() >= deadline {
                tracing::error!(credential = %self.id, alert = "refresh_token_unsaved", error = %retry, "renewed tokens could not be stored");
                return Err(BrokerError::Store(retry));
            }
            if matches!(retry, StoreError::NotReplicated) {
                not_replicated(self.id);
            }
            tracing::warn!(credential = %self.id, error = %retry, "store unavailable or not replicating while committing a refresh; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// The version to write our tokens over, and as what: a LATE COMMIT if the record still
    /// holds the refresh token we redeemed, the COMMIT again if it already holds the one we
    /// got (made durable once more). Otherwise the credential was replaced meanwhile (a
    /// PutCredential) and our tokens are dropped, loudly.
    async fn ours_at(&self, attempt: &str, renewed: Option<&str>) -> BrokerResult<(u64, Transition)> {
        let (current, stored) = self.records.read(self.id).await?;
        let held = refresh_token(&stored).map(attempt_id);
        if held.as_deref() == Some(attempt) {
            return Ok((current.version, Transition::LateCommit));
        }
        if held.is_some() && held.as_deref() == renewed {
            return Ok((current.version, Transition::Commit));
        }
        tracing::error!(credential = %self.id, alert = "refresh_token_unsaved", "the credential was replaced during its refresh; the renewed tokens were dropped");
        Err(BrokerError::Conflict(self.id.clone()))
    }

    /// What a failed refresh means for the credential (the classification is the provider's).
    async fn failed(
        &self,
        version: u64,
        vault: &Vault,
        attempt: &str,
        error: &UpstreamError,
        sent_at: OffsetDateTime,
    ) -> BrokerError {
        match self.provider.classify_refresh_failure(error) {
            RefreshFailure::NotProcessed { reason, .. } => {
                let meta = self.meta(&Transition::Reopen, None);
                match self.records.reopen(self.id, version, attempt, &meta, vault).await {
                    Ok(Some(_)) => {
                        tracing::info!(credential = %self.id, transition = "reopen", %reason, "refresh not processed upstream; attempt reopened")
                    }
                    Ok(None) => tracing::info!(credential = %self.id, "the record moved on; nothing to reopen"),
                    Err(e) => tracing::warn!(credential = %self.id, error = %e, "could not reopen the refresh attempt"),
                }
                BrokerError::Upstream { provider: self.id.provider.clone(), source: error.clone() }
            }
            RefreshFailure::Rejected { reason } => {
                let refused = Transition::Reauthorize(Reason::RefreshRefused { reason });
                self.apply(version, &refused, vault, None).await
            }
            RefreshFailure::Unknown { reason } => {
                let unknown = Transition::Unknown(Reason::NoAnswer { cause: reason });
                self.apply(version, &unknown, vault, Some(self.probe_after(error, sent_at))).await
            }
        }
    }

    /// When the old access token may be probed after our own send failed: at once if the
    /// provider answered (it is done with the request); otherwise once the request can no
    /// longer be in flight.
    fn probe_after(&self, error: &UpstreamError, sent_at: OffsetDateTime) -> OffsetDateTime {
        let answered = matches!(error, UpstreamError::Refused { .. } | UpstreamError::Unparsable { .. });
        let now = OffsetDateTime::now_utc();
        if answered { now } else { now.max(sent_at + self.coordination.request_timeout) }
    }

    /// Writes `transition` over version `expected` and returns the error a caller gets.
    async fn apply(
        &self,
        expected: u64,
        transition: &Transition,
        vault: &Vault,
        probe_at: Option<OffsetDateTime>,
    ) -> BrokerError {
        settle(self.records, self.id, expected, transition, self.meta(transition, probe_at), vault).await
    }

    fn meta(&self, transition: &Transition, probe_at: Option<OffsetDateTime>) -> Meta {
        Meta { state: transition.to(), reason: transition.reason(), probe_at, forced_at: self.forced_at }
    }

    /// The vault after a successful rotation. A reply without a refresh token keeps the old
    /// one (RFC 6749 §6).
    fn rotated(&self, vault: Vault, tokens: TokenSet) -> Vault {
        let old = refresh_token(&vault).cloned();
        let material = SecretMaterial::OAuthTokens {
            refresh_token: tokens.refresh_token.or(old),
            access_token: None,
            access_expires_at: None,
        };
        let session = self.coordination.session(tokens.access_token, tokens.expires_at, tokens.issued_at, true);
        Vault { material, session: Some(session) }
    }
}

/// Records a transition that leaves the credential unservable (flagged, re-authorization
/// needed), logs it, and returns the error the caller gets. A record that moved on meanwhile
/// keeps what its writer put there.
pub(super) async fn settle(
    records: &Records,
    id: &CredentialId,
    expected: u64,
    transition: &Transition,
    meta: Meta,
    vault: &Vault,
) -> BrokerError {
    match records.write(id, expected, &meta, vault).await {
        Ok(Some(_)) => transition.log(id),
        Ok(None) => tracing::info!(credential = %id, "the record moved on; {} not recorded", transition.name()),
        Err(e) => tracing::error!(credential = %id, error = %e, "could not record {}", transition.name()),
    }
    BrokerError::NotServable { state: transition.to(), detail: meta.reason.map(|r| r.to_string()).unwrap_or_default() }
}

fn refresh_token(vault: &Vault) -> Option<&Secret> {
    match &vault.material {
        SecretMaterial::OAuthTokens { refresh_token, .. } => refresh_token.as_ref(),
        _ => None,
    }
}

/// The journal's name for a refresh token: a SHA-256 prefix, so the token itself never
/// reaches the store or a log.
pub fn attempt_id(refresh_token: &Secret) -> String {
    let digest = Sha256::digest(refresh_token.expose().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts a journal write too few replicas acknowledged (the alert `CredbrokerJournalNotReplicated`).
fn not_replicated(id: &CredentialId) {
    let metrics = crate::telemetry::metrics::instruments();
    metrics.journal_not_replicated.add(1, &[crate::telemetry::metrics::provider(&id.provider)]);
}

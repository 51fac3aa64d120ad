//! Resolving credentials whose last refresh has no known outcome.
//!
//! - A record says REFRESHING but its lease is free: the replica doing it stopped (killed, or
//!   paused past the lease). This replica fences it — takes over the journal's attempt in the
//!   same atomic step that marks the credential INDETERMINATE — so the old holder's pre-send
//!   check fails from then on.
//! - INDETERMINATE, quiet for `reconcile_after`: Passolution revokes the old access token on
//!   every refresh, so probing the API with it tells what happened. Alive → the refresh never
//!   happened → reopen the attempt and refresh normally. 401 → it happened and its answer was
//!   lost → REAUTH_REQUIRED. No access token to probe with → REAUTH_REQUIRED.

use super::renew::attempt_id;
use super::{Broker, BrokerError};
use crate::domain::{CredentialId, CredentialState, SecretMaterial, Vault};
use crate::providers::{Provider, ProviderSettings, passolution};
use crate::store::{CredentialStore, StoredCredential};
use time::OffsetDateTime;

impl Broker {
    /// The holder vanished mid-refresh: fence it and flag the credential.
    pub(super) async fn fence_vanished(
        &self,
        id: &CredentialId,
        record: &StoredCredential,
        vault: &Vault,
        owner: &str,
    ) -> BrokerError {
        let detail =
            "the replica refreshing this credential stopped before recording the outcome; it will be probed".to_owned();
        let flagged = StoredCredential {
            state: CredentialState::Indeterminate,
            detail: detail.clone(),
            updated_at: OffsetDateTime::now_utc(),
            ..record.clone()
        };
        let Some(refresh_token) = refresh_token(vault) else {
            return self
                .settle(id, record, CredentialState::ReauthRequired, "no refresh token to recover with".into())
                .await;
        };
        match self.store.fence_refresh(id, record.version, &attempt_id(refresh_token), owner, &flagged).await {
            Ok(Some(version)) => {
                tracing::warn!(credential = %id, alert = "indeterminate", "refresh holder vanished; credential fenced and flagged");
                self.feed.publish(id, version).await;
            }
            Ok(None) => tracing::info!(credential = %id, "the record moved on while fencing; re-read next time"),
            Err(e) => tracing::warn!(credential = %id, error = %e, "could not fence a vanished refresh"),
        }
        BrokerError::NotServable { id: id.clone(), state: CredentialState::Indeterminate, detail }
    }

    /// Whether an INDETERMINATE record has been quiet long enough to probe.
    pub(super) fn quiet(&self, record: &StoredCredential) -> bool {
        let quiet_for = OffsetDateTime::now_utc() - record.updated_at;
        quiet_for >= self.coordination.reconcile_after
    }

    /// Probes with the old access token. `Ok(record)`: reopened (ACTIVE again, safe to
    /// refresh); `Err`: settled or still unknown.
    pub(super) async fn reconcile(
        &self,
        provider: &Provider,
        id: &CredentialId,
        record: &StoredCredential,
        vault: &Vault,
    ) -> Result<StoredCredential, BrokerError> {
        let (ProviderSettings::Passolution(settings), Some(refresh_token)) = (&provider.settings, refresh_token(vault))
        else {
            return Err(self.settle(id, record, CredentialState::ReauthRequired, "cannot be probed".into()).await);
        };
        let Some(session) = &vault.session else {
            let detail = "refresh outcome unknown and no access token to probe with: re-authorize".into();
            return Err(self.settle(id, record, CredentialState::ReauthRequired, detail).await);
        };
        match passolution::probe(&self.http, settings, &session.token).await {
            Ok(true) => {
                let reopened = StoredCredential {
                    state: CredentialState::Active,
                    detail: String::new(),
                    updated_at: OffsetDateTime::now_utc(),
                    ..record.clone()
                };
                match self.store.reopen_refresh(id, record.version, &attempt_id(refresh_token), &reopened).await? {
                    Some(version) => {
                        tracing::info!(credential = %id, "probe: the old access token works, so the refresh never happened; reopened");
                        self.feed.publish(id, version).await;
                        Ok(StoredCredential { version, ..reopened })
                    }
                    None => Err(BrokerError::Conflict(id.clone())),
                }
            }
            Ok(false) => {
                tracing::warn!(credential = %id, alert = "reauth_required", "probe: the refresh happened but its answer was lost");
                let detail = "the refresh was processed upstream but its answer was lost: re-authorize".into();
                Err(self.settle(id, record, CredentialState::ReauthRequired, detail).await)
            }
            Err(source) => {
                tracing::warn!(credential = %id, error = %source, "probe failed; still indeterminate");
                Err(BrokerError::Upstream { provider: id.provider.clone(), source })
            }
        }
    }
}

fn refresh_token(vault: &Vault) -> Option<&crate::domain::Secret> {
    match &vault.material {
        SecretMaterial::OAuthTokens { refresh_token, .. } => refresh_token.as_ref(),
        _ => None,
    }
}

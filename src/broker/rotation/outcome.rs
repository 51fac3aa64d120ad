//! What a sent refresh token's answer becomes: a 200 is committed and never lost; a failure
//! reopens the attempt only with proof that the token was not redeemed, and otherwise flags
//! the credential (the classification is the provider's).

use super::permit::Sent;
use super::{Rotation, Transition, attempt_id, not_replicated, refresh_token};
use crate::broker::{BrokerError, BrokerResult};
use crate::domain::{Reason, SecretMaterial, Vault};
use crate::providers::http::{TokenSet, UpstreamError};
use crate::providers::passolution::RefreshFailure;
use crate::store::{StoreError, StoredCredential};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a successful refresh waits for the store to come back before giving up on
/// storing its tokens (a Redis restart takes seconds).
pub const COMMIT_PATIENCE: Duration = Duration::from_secs(30);

impl Rotation<'_> {
    /// COMMIT: we now hold the only valid refresh token, so this must not be lost. Redis
    /// being briefly away is waited out. A record that moved on is still ours to update if it
    /// holds the very token we redeemed (LATE COMMIT) — or the one we got, when our commit
    /// landed but its answer was lost or too few replicas acknowledged it: then it is written
    /// again until replicas have it (a failover in between may have undone it; the new
    /// primary's record then holds the redeemed token, and the same rule applies).
    pub(super) async fn commit(&self, sent: &Sent, vault: Vault) -> BrokerResult<(StoredCredential, Vault)> {
        let deadline = tokio::time::Instant::now() + COMMIT_PATIENCE;
        let renewed = refresh_token(&vault).map(attempt_id);
        let (mut expected, mut transition) = (sent.version, Transition::Commit);
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
                Ok(None) => match self.recommit_target(&sent.attempt, renewed.as_deref()).await {
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
    async fn recommit_target(&self, attempt: &str, renewed: Option<&str>) -> BrokerResult<(u64, Transition)> {
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
    pub(super) async fn failed(&self, sent: &Sent, vault: &Vault, error: &UpstreamError) -> BrokerError {
        match self.provider.classify_refresh_failure(error) {
            RefreshFailure::NotProcessed { reason, .. } => {
                let meta = self.meta(&Transition::Reopen, None);
                match self.records.reopen(self.id, sent.version, &sent.attempt, &meta, vault).await {
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
                self.apply(sent.version, &refused, vault, None).await
            }
            RefreshFailure::Unknown { reason } => {
                let unknown = Transition::Unknown(Reason::NoAnswer { cause: reason });
                self.apply(sent.version, &unknown, vault, Some(self.probe_after(error, sent.at))).await
            }
        }
    }

    /// When the old access token may be probed after our own send failed: at once if the
    /// provider answered (it is done with the request); otherwise once the request can no
    /// longer be in flight.
    fn probe_after(&self, error: &UpstreamError, sent_at: OffsetDateTime) -> OffsetDateTime {
        let answered = matches!(error, UpstreamError::Refused { .. } | UpstreamError::Unparsable { .. });
        let now = OffsetDateTime::now_utc();
        if answered { now } else { now.max(sent_at + self.timing.request_timeout) }
    }

    /// The vault after a successful rotation. A reply without a refresh token keeps the old
    /// one (RFC 6749 §6).
    pub(super) fn rotated(&self, vault: Vault, tokens: TokenSet) -> Vault {
        let old = refresh_token(&vault).cloned();
        let material = SecretMaterial::OAuthTokens {
            refresh_token: tokens.refresh_token.or(old),
            access_token: None,
            access_expires_at: None,
        };
        let session = self.timing.session(tokens.access_token, tokens.expires_at, tokens.issued_at, true);
        Vault { material, session: Some(session) }
    }
}

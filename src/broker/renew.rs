//! Renewing a credential's session upstream.
//!
//! Two kinds, with different safety needs:
//! - **Logins** (PASS pashouder, JouwOmgeving): idempotent — logging in twice costs a call,
//!   nothing more. Single flight keeps it to one call per expiry.
//! - **Rotating refresh tokens** (Passolution): every refresh token is single-use and a
//!   refresh revokes the previous tokens at once. Sending one twice, or losing the new one,
//!   breaks the credential. So, before sending, the attempt is written once and forever to
//!   the store's journal (`reserve_refresh`); a token whose attempt exists is never sent
//!   again. Outcomes that are provably "not processed" reopen the attempt; refusals need
//!   re-authorization; everything else is INDETERMINATE — flagged, never resent.
//!   (`../shared/REFRESH-SAFETY.md` has the reasoning.)
//!
//! Across replicas: the caller holds the credential's lease (`lease.rs`), but a lease can be
//! outlived by a paused holder, so right before sending the holder checks that the journal's
//! attempt is still its own (a recovering replica takes it over, `recover.rs`).

use super::{Broker, BrokerError, BrokerResult};
use crate::domain::{CredentialId, CredentialState, Secret, SecretMaterial, Session, Vault};
use crate::providers::http::{TokenSet, UpstreamError};
use crate::providers::passolution::{self, RefreshFailure};
use crate::providers::{Provider, ProviderSettings, jouwomgeving, pass};
use crate::store::{CredentialStore, Reservation, StoredCredential};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// How long a successful refresh waits for the store to come back before giving up on
/// storing its tokens (a Redis restart takes seconds).
const COMMIT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

impl Broker {
    /// Obtains a new session and stores it; returns the stored record and vault.
    pub(super) async fn renew(
        &self,
        provider: &Provider,
        id: &CredentialId,
        record: StoredCredential,
        vault: Vault,
        owner: &str,
    ) -> BrokerResult<(StoredCredential, Vault)> {
        match (&provider.settings, &vault.material) {
            (ProviderSettings::Passolution(_), SecretMaterial::OAuthTokens { refresh_token: Some(rt), .. }) => {
                let rt = rt.clone();
                self.rotate(provider, id, record, vault, &rt, owner).await
            }
            _ => self.login(provider, id, record, vault).await,
        }
    }

    #[tracing::instrument(name = "renew.login", skip_all, fields(credential = %id, provider.kind = provider.kind()))]
    async fn login(
        &self,
        provider: &Provider,
        id: &CredentialId,
        record: StoredCredential,
        vault: Vault,
    ) -> BrokerResult<(StoredCredential, Vault)> {
        match self.obtain_login(provider, &vault).await {
            Ok(tokens) => {
                let vault = Vault { session: Some(session(tokens.access_token, tokens.expires_at)), ..vault };
                self.commit(id, record.version, vault).await
            }
            // The provider refused the login itself: the stored username/password are wrong or
            // the account is disabled. Retrying will not help; an operator must act.
            Err(UpstreamError::Refused { status: 400 | 401 | 403, reason, .. }) => {
                let detail = format!("{} refused the login: {reason}", provider.kind());
                Err(self.settle(id, &record, CredentialState::ReauthRequired, detail).await)
            }
            Err(source) => Err(BrokerError::Upstream { provider: id.provider.clone(), source }),
        }
    }

    /// A new session from a stored username and password (PASS extends the current one first).
    pub(super) async fn obtain_login(&self, provider: &Provider, vault: &Vault) -> Result<TokenSet, UpstreamError> {
        let SecretMaterial::UsernamePassword { username, password } = &vault.material else {
            return Err(UpstreamError::Unparsable { status: 0, detail: "not a login credential".into() });
        };
        match &provider.settings {
            ProviderSettings::Pass(s) => pass_session(self, s, username, password, vault.session.as_ref()).await,
            ProviderSettings::JouwOmgeving(s) => jouwomgeving::obtain(&self.http, s, username, password).await,
            _ => Err(UpstreamError::Unparsable { status: 0, detail: "not a login provider".into() }),
        }
    }

    #[tracing::instrument(name = "renew.rotate", skip_all, fields(credential = %id, attempt))]
    async fn rotate(
        &self,
        provider: &Provider,
        id: &CredentialId,
        record: StoredCredential,
        vault: Vault,
        refresh_token: &Secret,
        owner: &str,
    ) -> BrokerResult<(StoredCredential, Vault)> {
        let ProviderSettings::Passolution(settings) = &provider.settings else {
            unreachable!("only Passolution rotates")
        };
        let attempt = attempt_id(refresh_token);
        tracing::Span::current().record("attempt", attempt.as_str());
        let refreshing = StoredCredential {
            state: CredentialState::Refreshing,
            detail: "a refresh was sent; awaiting the provider's answer".into(),
            updated_at: OffsetDateTime::now_utc(),
            ..record.clone()
        };
        // A budget slot first: waiting for one must not hold the credential in REFRESHING.
        self.spend_token_budget(&id.provider).await?;
        // RESERVE: written before sending, checked against the version we read.
        let version = match self.reserve(id, record.version, &attempt, owner, &refreshing).await? {
            Reservation::Reserved { version } => version,
            Reservation::VersionChanged => return self.reread_after_race(id).await,
            Reservation::AlreadyAttempted => {
                let detail = "this refresh token was already sent once; it is not sent again (outcome unknown)";
                tracing::warn!(credential = %id, alert = "indeterminate", "refusing to resend a refresh token");
                return Err(self.settle(id, &record, CredentialState::Indeterminate, detail.into()).await);
            }
        };
        self.chaos.point("after_reserve", id).await;
        // FENCE: a replica that found us gone may have taken the attempt over while we were
        // paused; from that moment on we must never send.
        if self.coordination.journal && self.store.attempt_owner(id, &attempt).await?.as_deref() != Some(owner) {
            tracing::warn!(credential = %id, "the refresh was taken over by another replica; not sending");
            let detail = "the refresh was taken over by another replica".to_owned();
            return Err(BrokerError::NotServable { id: id.clone(), state: CredentialState::Indeterminate, detail });
        }
        self.chaos.point("sending", id).await;
        // Sent exactly once: the HTTP client never retries.
        match passolution::refresh(&self.http, settings, refresh_token).await {
            Ok(tokens) => self.commit_rotation(id, version, &attempt, rotated(vault, tokens)).await,
            Err(error) => {
                self.note_rate_limit(&id.provider, &error).await;
                Err(self.failed_rotation(id, version, &record, &attempt, &error).await)
            }
        }
    }

    async fn reserve(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        owner: &str,
        refreshing: &StoredCredential,
    ) -> BrokerResult<Reservation> {
        if self.coordination.journal {
            return Ok(self.store.reserve_refresh(id, expected, attempt, owner, refreshing).await?);
        }
        // The negative control of the chaos suite: a version check only, no journal.
        Ok(match self.store.compare_and_swap(id, expected, refreshing).await? {
            Some(version) => Reservation::Reserved { version },
            None => Reservation::VersionChanged,
        })
    }

    /// COMMIT after a successful refresh: we now hold the only valid refresh token, so this
    /// must not be lost. Redis being briefly away is waited out; a record that moved on is
    /// still ours to update if it holds the very token we redeemed.
    async fn commit_rotation(
        &self,
        id: &CredentialId,
        version: u64,
        attempt: &str,
        vault: Vault,
    ) -> BrokerResult<(StoredCredential, Vault)> {
        let deadline = tokio::time::Instant::now() + COMMIT_PATIENCE;
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            match self.commit(id, version, vault.clone()).await {
                Err(BrokerError::Conflict(_)) => return self.late_commit(id, attempt, vault).await,
                Err(BrokerError::Store(e)) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(credential = %id, error = %e, "store unavailable while committing a refresh; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(credential = %id, alert = "refresh_token_unsaved", error = %e, "renewed tokens could not be stored");
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    /// The record changed under us (another replica flagged it while we were paused). If it
    /// still holds the refresh token we redeemed, our tokens are the newest: store them.
    async fn late_commit(
        &self,
        id: &CredentialId,
        attempt: &str,
        vault: Vault,
    ) -> BrokerResult<(StoredCredential, Vault)> {
        let current = self.store.get(id).await?.ok_or_else(|| BrokerError::CredentialNotFound(id.clone()))?;
        let stored: Vault = self.open(id, &current)?;
        let same_token = matches!(&stored.material, SecretMaterial::OAuthTokens { refresh_token: Some(rt), .. } if attempt_id(rt) == attempt);
        if !same_token {
            tracing::error!(credential = %id, alert = "refresh_token_unsaved", "the credential was replaced during its refresh; the renewed tokens were dropped");
            return Err(BrokerError::Conflict(id.clone()));
        }
        tracing::warn!(credential = %id, state = %current.state, "storing the renewed tokens over a record that moved on");
        self.commit(id, current.version, vault).await
    }

    /// Decides what a failed refresh means for the credential (REFRESH-SAFETY.md's table).
    async fn failed_rotation(
        &self,
        id: &CredentialId,
        version: u64,
        before: &StoredCredential,
        attempt: &str,
        error: &UpstreamError,
    ) -> BrokerError {
        let reserved = StoredCredential { version, ..before.clone() };
        match passolution::classify_refresh_error(error) {
            RefreshFailure::NotProcessed { reason, .. } => {
                let reopened = StoredCredential { updated_at: OffsetDateTime::now_utc(), ..before.clone() };
                match self.store.reopen_refresh(id, version, attempt, &reopened).await {
                    Ok(Some(v)) => {
                        tracing::info!(credential = %id, %reason, "refresh not processed upstream; attempt reopened");
                        self.feed.publish(id, v).await;
                    }
                    Ok(None) => tracing::info!(credential = %id, "the record moved on; nothing to reopen"),
                    Err(e) => tracing::warn!(credential = %id, error = %e, "could not reopen the refresh attempt"),
                }
                BrokerError::Upstream { provider: id.provider.clone(), source: error.clone() }
            }
            RefreshFailure::Rejected { reason } => {
                tracing::warn!(credential = %id, %reason, alert = "reauth_required", "refresh token refused: re-authorization required");
                self.settle(
                    id,
                    &reserved,
                    CredentialState::ReauthRequired,
                    format!("the provider refused the refresh token: {reason}"),
                )
                .await
            }
            RefreshFailure::Unknown { reason } => {
                tracing::warn!(credential = %id, %reason, alert = "indeterminate", "refresh outcome unknown: not resent");
                let detail = format!("refresh sent but its outcome is unknown ({reason}); not resent");
                self.settle(id, &reserved, CredentialState::Indeterminate, detail).await
            }
        }
    }

    /// COMMIT: the new session (and refresh token) replace the old, if nobody wrote meanwhile.
    async fn commit(&self, id: &CredentialId, expected: u64, vault: Vault) -> BrokerResult<(StoredCredential, Vault)> {
        let mut record = StoredCredential {
            version: 0,
            state: CredentialState::Active,
            detail: String::new(),
            access_expires_at: vault.expires_at(),
            updated_at: OffsetDateTime::now_utc(),
            sealed: self.seal(id, &vault),
        };
        match self.store.compare_and_swap(id, expected, &record).await? {
            Some(version) => {
                record.version = version;
                self.feed.publish(id, version).await;
                Ok((record, vault))
            }
            None => Err(BrokerError::Conflict(id.clone())),
        }
    }

    /// Moves a credential to a state that needs attention and returns the error to report.
    pub(super) async fn settle(
        &self,
        id: &CredentialId,
        record: &StoredCredential,
        state: CredentialState,
        detail: String,
    ) -> BrokerError {
        let settled =
            StoredCredential { state, detail: detail.clone(), updated_at: OffsetDateTime::now_utc(), ..record.clone() };
        if let Err(e) = self.store.compare_and_swap(id, record.version, &settled).await {
            tracing::error!(credential = %id, error = %e, ?state, "could not record the credential's state");
        }
        BrokerError::NotServable { id: id.clone(), state, detail }
    }

    /// Someone else changed the record between our read and our reservation: serve what they
    /// left if it is usable, else say so.
    async fn reread_after_race(&self, id: &CredentialId) -> BrokerResult<(StoredCredential, Vault)> {
        let record = self.store.get(id).await?.ok_or_else(|| BrokerError::CredentialNotFound(id.clone()))?;
        let vault = self.open(id, &record)?;
        let fresh = vault.session.as_ref().is_some_and(|s| s.valid_until(OffsetDateTime::now_utc()));
        if record.state == CredentialState::Active && fresh {
            return Ok((record, vault));
        }
        Err(BrokerError::NotServable {
            id: id.clone(),
            state: record.state,
            detail: "renewed concurrently; retry".into(),
        })
    }
}

/// PASS: extend the current token with `/token/v1/refresh`; if it is refused (expired,
/// logged out), log in again.
async fn pass_session(
    broker: &Broker,
    settings: &crate::providers::pass::PassSettings,
    username: &str,
    password: &Secret,
    current: Option<&Session>,
) -> Result<TokenSet, UpstreamError> {
    if let Some(session) = current.filter(|s| s.valid_until(OffsetDateTime::now_utc())) {
        match pass::refresh(&broker.http, settings, &session.token).await {
            Ok(tokens) => return Ok(tokens),
            Err(UpstreamError::Refused { status: 401 | 406, .. }) => {}
            Err(other) => return Err(other),
        }
    }
    pass::login(&broker.http, settings, username, password).await
}

pub(super) fn session(token: Secret, expires_at: OffsetDateTime) -> Session {
    Session { token, expires_at, obtained_at: OffsetDateTime::now_utc() }
}

/// The vault after a successful rotation. A reply without a refresh token keeps the old one
/// (RFC 6749 §6).
fn rotated(vault: Vault, tokens: TokenSet) -> Vault {
    let SecretMaterial::OAuthTokens { refresh_token: old, .. } = vault.material else {
        unreachable!("rotation needs OAuth tokens")
    };
    let refresh_token = tokens.refresh_token.or(old);
    let material = SecretMaterial::OAuthTokens { refresh_token, access_token: None, access_expires_at: None };
    Vault { material, session: Some(session(tokens.access_token, tokens.expires_at)) }
}

/// The journal's name for a refresh token: a SHA-256 prefix, so the token itself never
/// reaches the store or a log.
pub(super) fn attempt_id(refresh_token: &Secret) -> String {
    let digest = Sha256::digest(refresh_token.expose().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

//! The journal's permit to send a refresh token, and the one function that sends one.
//!
//! RESERVE (one atomic journal write: the record's version is still the one read and the
//! token's hash is not yet in the credential's journal) is the only thing that makes a
//! [`SendPermit`]. The permit is not `Clone` or `Copy` (asserted below: the build fails
//! otherwise), its fields are private to this file and the type is visible only inside
//! `rotation`. [`Rotation::send`] — the only code in the crate that composes a refresh grant —
//! takes it by value. So a token goes out only after its reservation, at most once per
//! reservation; and "who may send a refresh token?" is answered by reading this file.

use super::{Rotation, Transition, not_replicated};
use crate::broker::{BrokerError, BrokerResult};
use crate::domain::{CredentialState, Reason, Secret, Vault};
use crate::providers::http::{TokenSet, UpstreamError};
use crate::store::{Attempt, Reservation, StoreError, StoredCredential};
use time::OffsetDateTime;

/// This task reserved `refresh_token` in the journal, as the record's version `version`.
#[must_use = "a reserved token is sent with `send`, or its reservation is resolved by fence and probe"]
pub(super) struct SendPermit {
    version: u64,
    attempt: String,
    refresh_token: Secret,
}

static_assertions::assert_not_impl_any!(SendPermit: Clone, Copy);

/// What remains of a permit once its token was sent: the version and attempt its outcome is
/// written against, and when it left.
pub(super) struct Sent {
    pub version: u64,
    pub attempt: String,
    pub at: OffsetDateTime,
}

impl Rotation<'_> {
    /// RESERVE: journalled with the version check, or nothing is sent.
    pub(super) async fn reserve(
        &self,
        record: &StoredCredential,
        vault: &Vault,
        attempt: String,
        refresh_token: Secret,
    ) -> BrokerResult<SendPermit> {
        let meta = self.meta(&Transition::Reserve, None);
        let reservation = if self.chaos.journal_off() {
            // The negative control: a version check only, no journal.
            let written = self.records.write(self.id, record.version, &meta, vault).await?;
            written.map_or(Reservation::VersionChanged, |r| Reservation::Reserved { version: r.version })
        } else {
            let journal = Attempt { id: &attempt, owner: self.owner, horizon: self.timing.journal_horizon };
            self.records.reserve(self.id, record.version, journal, &meta, vault).await?
        };
        match reservation {
            Reservation::Reserved { version } => {
                Transition::Reserve.log(self.id);
                Ok(SendPermit { version, attempt, refresh_token })
            }
            Reservation::VersionChanged => Err(BrokerError::Conflict(self.id.clone())),
            Reservation::NotReplicated { version } => Err(self.unreplicated(version, vault, &attempt).await),
            Reservation::AlreadyAttempted => {
                let flag = Transition::Unknown(Reason::AlreadySent);
                let probe_at = OffsetDateTime::now_utc() + self.timing.reconcile_after;
                Err(self.apply(record.version, &flag, vault, Some(probe_at)).await)
            }
        }
    }

    /// Sends the reserved refresh token: exactly one request (the HTTP client never retries),
    /// and only while the journal still names this task the attempt's owner. Consumes the
    /// permit; what is left says what the answer is to be written against.
    #[tracing::instrument(name = "rotation.send", skip_all, fields(otel.kind = "client"))]
    pub(super) async fn send(&self, permit: SendPermit) -> BrokerResult<(Sent, Result<TokenSet, UpstreamError>)> {
        let SendPermit { version, attempt, refresh_token } = permit;
        self.check_owner(&attempt).await?;
        self.chaos.point("sending", self.id).await;
        let at = OffsetDateTime::now_utc();
        // RFC 6749 §6; the provider adds its client authentication and reads the reply.
        let grant = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose())];
        let answer = self.provider.token_grant(self.http, &grant, &[&refresh_token]).await;
        if let Err(error) = &answer {
            tracing::warn!(%error, "the refresh request failed");
        }
        Ok((Sent { version, attempt, at }, answer))
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
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The compiler keeps permits inside `rotation` only while the type stays private: visible
    /// to `rotation`, fields private to this file. Fails if that is loosened, if the permit is
    /// named anywhere else, or if a refresh grant is composed outside `rotation`.
    #[test]
    fn only_rotation_makes_permits_and_sends_refresh_tokens() {
        let this = include_str!("permit.rs");
        let declared = this.lines().skip_while(|l| !l.contains("struct SendPermit {"));
        let declared: Vec<&str> = declared.take_while(|l| *l != "}").collect();
        assert!(declared[0].starts_with("pub(super) struct SendPermit {"), "{}", declared[0]);
        assert!(declared[1..].iter().all(|field| !field.trim_start().starts_with("pub")), "{declared:?}");
        let grant = ["\"grant_type\", ", "\"refresh_token\""].concat();
        for file in sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            let outside = !file.to_string_lossy().contains("src/broker/rotation/");
            assert!(!(outside && text.contains("SendPermit")), "a send permit named in {}", file.display());
            assert!(!(outside && text.contains(&grant)), "a refresh grant composed in {}", file.display());
        }
    }

    /// Every `.rs` file under `dir`, test files left out (they may send what they like).
    fn sources(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() && name != "tests" {
                files.extend(sources(&path));
            } else if name.ends_with(".rs") && !name.ends_with("tests.rs") && name != "test_support.rs" {
                files.push(path);
            }
        }
        files
    }
}

//! # Rotating a single-use refresh token
//!
//! **The invariant: a refresh token is sent at most once** — unless it provably never reached
//! the provider, and then it is still *redeemed* at most once — **and the newest refresh token
//! is never lost silently**: the credential holds it, or it is INDETERMINATE or
//! REAUTH_REQUIRED and a warning with an `alert` field was logged.
//!
//! Everything that sends a refresh token, or decides what an attempt meant, is in this module,
//! and the compiler keeps it here:
//! - `permit.rs`: RESERVE returns a `SendPermit` — not `Clone`, fields private, visible only
//!   inside `rotation` — and the one function that sends a refresh token, `send`, takes it by
//!   value. No provider has a refresh function: the refresh grant is composed in `send` only.
//! - `mod.rs`: [`Rotation::renew`] — a REFRESHING record means its holder vanished (fence);
//!   otherwise reserve → check → send → commit or classify.
//! - `outcome.rs`: committing a 200, and what a failed send means.
//! - `recover.rs`: fence and probe. `transition.rs`: the table below, as a type.
//!
//! docs/refresh-safety.md has the full argument.
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
//! 3. **The two timing assumptions.** No lease or check can stop a process that pauses between
//!    its last check and its send (Kleppmann 2016), and the provider checks no fencing token.
//!    So: *no replica pauses longer than `reconcile_after − request_timeout` between its
//!    ownership check and the send* (config keeps that ≥ 2 × `lease_ttl`, the pauses the lease
//!    itself tolerates), and *a provider does not process a request after the client's timeout
//!    has passed*. A fencer probes only `reconcile_after` after the fence: by then any send of
//!    the token has been made, and processed or never will be (`request_timeout`).
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

mod outcome;
mod permit;
mod recover;
mod transition;

pub use outcome::COMMIT_PATIENCE;
pub use transition::Transition;

use super::chaos::Chaos;
use super::plan::Timing;
use super::records::{Meta, Records};
use super::{BrokerError, BrokerResult, budget};
use crate::domain::{CredentialId, CredentialState, Secret, SecretMaterial, Vault};
use crate::providers::Provider;
use crate::providers::http::HttpClient;
use crate::store::StoredCredential;
use crate::store::budget::TokenBudget;
use crate::telemetry::metrics;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// One rotation of one credential, by one lease holder: everything the rotation path needs,
/// and nothing else.
pub struct Rotation<'a> {
    pub records: &'a Records,
    pub http: &'a HttpClient,
    pub provider: &'a Provider,
    pub id: &'a CredentialId,
    /// This lease holder's nonce: the journal's owner of what it reserves or fences.
    pub owner: &'a str,
    pub timing: &'a Timing,
    pub chaos: &'a Chaos,
    pub budget: Option<&'a TokenBudget>,
    /// Written with every record: when a renewal was last forced (now, for a forced one).
    pub forced_at: Option<OffsetDateTime>,
}

impl Rotation<'_> {
    /// Renews a credential whose vault holds a single-use refresh token, under the lease.
    /// Returns the committed record and vault; an error says what the credential's state now is.
    pub async fn renew(&self, record: &StoredCredential, vault: Vault) -> BrokerResult<(StoredCredential, Vault)> {
        let refresh_token = held_token(&vault)?;
        // Read under the lease: a REFRESHING record's holder lost its lease mid-refresh, so it
        // vanished (or is paused). Its attempt is taken over, never sent again from here. The
        // negative control behaves like a lease-only design: the holder is simply superseded
        // (and, when it wakes up, sends its token again).
        if record.state == CredentialState::Refreshing && !self.chaos.journal_off() {
            return Err(self.fence(record, &vault, &refresh_token).await);
        }
        let started = std::time::Instant::now();
        let result = self.run(record, vault, refresh_token).await;
        metrics::renewal(&self.id.provider, "rotation", result.is_ok(), started.elapsed());
        result
    }

    /// Redeems `refresh_token` (the one `vault` holds), at most once.
    #[tracing::instrument(name = "rotation", skip_all, fields(credential = %self.id, attempt))]
    async fn run(
        &self,
        record: &StoredCredential,
        vault: Vault,
        refresh_token: Secret,
    ) -> BrokerResult<(StoredCredential, Vault)> {
        let attempt = attempt_id(&refresh_token);
        tracing::Span::current().record("attempt", attempt.as_str());
        // A budget slot first: waiting for one must not hold the credential in REFRESHING.
        budget::spend(self.budget, &self.id.provider).await?;
        let permit = self.reserve(record, &vault, attempt, refresh_token).await?;
        self.chaos.point("after_reserve", self.id).await;
        let (sent, answer) = self.send(permit).await?;
        match answer {
            Ok(tokens) => {
                self.chaos.point("before_commit", self.id).await;
                self.commit(&sent, self.rotated(vault, tokens)).await
            }
            Err(error) => {
                budget::note_rate_limit(self.budget, &self.id.provider, &error).await;
                Err(self.failed(&sent, &vault, &error).await)
            }
        }
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

/// The refresh token a rotation or a probe is about: the one the vault holds.
fn held_token(vault: &Vault) -> BrokerResult<Secret> {
    refresh_token(vault).cloned().ok_or(BrokerError::NoSession)
}

/// The journal's name for a refresh token: a SHA-256 prefix, so the token itself never
/// reaches the store or a log.
fn attempt_id(refresh_token: &Secret) -> String {
    let digest = Sha256::digest(refresh_token.expose().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts a journal write too few replicas acknowledged (the alert `CredbrokerJournalNotReplicated`).
fn not_replicated(id: &CredentialId) {
    metrics::instruments().journal_not_replicated.add(1, &[metrics::provider(&id.provider)]);
}

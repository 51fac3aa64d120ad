//! What to do with a credential — serve, renew, wait, probe or refuse — decided from its
//! record alone, at a given time. Pure: no I/O, unit-tested in `plan/tests.rs`. The callers
//! (`mod.rs`, `renew.rs`, the scheduler) only carry the decision out.
//!
//! **Validity that holds.** For providers whose refresh revokes the previous token, every
//! token has one planned renewal `R`, fixed when it was obtained (jittered) and sealed with it,
//! so all replicas agree. A header is promised until `min(expiry, R − clock_skew)`, and nothing
//! renews such a credential before `R` except a forced renewal (a caller's report of the
//! current header, a proxied 401). So no header is revoked by the broker within the validity it
//! promised. A request whose `min_validity` reaches past the promise waits for `R` (bounded) and
//! gets the new header; one that no fresh token could satisfy is refused before anything is
//! redeemed. Providers whose old tokens stay valid (logins) are renewed whenever needed.

use super::BrokerError;
use crate::domain::{CredentialState, Session, Vault};
use crate::providers::{Authorization, Provider, ProviderError, Renewal};
use crate::store::StoredCredential;
use std::time::Duration;
use time::OffsetDateTime;

/// The timing policy of renewals, from configuration: the lease, when a token is renewed, how
/// long callers wait, when an unknown outcome may be probed. One value for the whole broker
/// (the per-credential state is in the record and, in the store, its journal and lease).
#[derive(Debug, Clone)]
pub struct Timing {
    /// The fleet-wide renewal lease; renewed every third of itself while the work runs.
    pub lease_ttl: Duration,
    /// After a fence, how long until the old access token may be probed (see `rotation`).
    pub reconcile_after: Duration,
    /// The upstream request timeout: how long a sent refresh may still be in flight.
    pub request_timeout: Duration,
    /// Renew at this share of a token's lifetime, ± `jitter_ratio`.
    pub ahead_ratio: f64,
    pub jitter_ratio: f64,
    pub clock_skew: Duration,
    pub max_wait: Duration,
    pub journal_horizon: Duration,
    pub rejected_interval: Duration,
    pub rejected_min_age: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(10),
            reconcile_after: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            ahead_ratio: 0.75,
            jitter_ratio: 0.05,
            clock_skew: Duration::from_secs(2),
            max_wait: Duration::from_secs(10),
            journal_horizon: Duration::from_secs(400 * 24 * 3600),
            rejected_interval: Duration::from_secs(30),
            rejected_min_age: Duration::from_secs(2),
        }
    }
}

impl Timing {
    /// A session for a token issued at `issued_at`, with its planned renewal fixed now.
    pub fn session(
        &self,
        token: crate::domain::Secret,
        expires_at: OffsetDateTime,
        issued_at: OffsetDateTime,
        lifetime_known: bool,
    ) -> Session {
        let lifetime = (expires_at - issued_at).max(time::Duration::ZERO);
        let jitter = (rand::random::<f64>() * 2.0 - 1.0) * self.jitter_ratio;
        let renew_at = issued_at + lifetime * (self.ahead_ratio + jitter);
        Session { token, expires_at, obtained_at: issued_at, renew_at: Some(renew_at), lifetime_known }
    }

    /// When `session` is renewed: as sealed with it, or — for records written before it was —
    /// at the ratio without jitter, which every replica computes alike.
    pub fn renew_at(&self, session: &Session) -> OffsetDateTime {
        let lifetime = (session.expires_at - session.obtained_at).max(time::Duration::ZERO);
        session.renew_at.unwrap_or(session.obtained_at + lifetime * self.ahead_ratio)
    }

    /// `authorization` with the end the broker promises: for providers whose refresh revokes
    /// the previous token, no later than the planned renewal (minus the clock skew).
    pub fn promise(&self, provider: &Provider, vault: &Vault, mut authorization: Authorization) -> Authorization {
        if let (true, Some(session)) = (provider.refresh_revokes_previous(), &vault.session) {
            let renewal = self.renew_at(session) - self.clock_skew;
            authorization.expires_at = authorization.expires_at.map(|expiry| expiry.min(renewal));
        }
        authorization
    }

    /// The longest `min_validity` a freshly obtained token can satisfy, when the lifetime of
    /// this credential's tokens is known. Pessimistic by the jitter, so a refusal is certain.
    pub fn fresh_window(&self, provider: &Provider, vault: &Vault) -> Option<time::Duration> {
        let lifetime = vault.session.as_ref()?.lifetime()?;
        if !provider.refresh_revokes_previous() {
            return Some(lifetime);
        }
        Some((lifetime * (self.ahead_ratio - self.jitter_ratio) - self.clock_skew).max(time::Duration::ZERO))
    }

    /// When an INDETERMINATE record may be probed (records before `probe_at` existed: after
    /// the quiet period).
    pub fn probe_at(&self, record: &StoredCredential) -> OffsetDateTime {
        record.probe_at.unwrap_or(record.updated_at + self.reconcile_after)
    }
}

/// What is asked of the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// A caller wants headers valid until `until`.
    Serve { until: OffsetDateTime },
    /// The scheduler woke up: renew or probe if that is due, nothing else.
    Due,
    /// A caller reported the current header as rejected (limits already checked): renew now.
    Forced,
}

#[derive(Debug)]
pub enum Decision {
    Serve(Authorization),
    /// Renew now, under the lease (REFRESHING: fence a vanished holder first).
    Renew,
    /// Probe the old access token of an INDETERMINATE credential, under the lease.
    Probe,
    /// Nothing to do before this time: the planned renewal, or a probe.
    WaitUntil(OffsetDateTime),
    Refuse(BrokerError),
}

pub fn decide(
    provider: &Provider,
    record: &StoredCredential,
    vault: &Vault,
    ask: Ask,
    c: &Timing,
    now: OffsetDateTime,
) -> Decision {
    match record.state {
        CredentialState::Active => active(provider, vault, ask, c, now),
        CredentialState::Refreshing => Decision::Renew,
        CredentialState::Indeterminate => match c.probe_at(record) {
            at if at <= now => Decision::Probe,
            at if ask == Ask::Due => Decision::WaitUntil(at),
            _ => Decision::Refuse(not_servable(record)),
        },
        CredentialState::ReauthRequired | CredentialState::Revoked => Decision::Refuse(not_servable(record)),
    }
}

fn active(provider: &Provider, vault: &Vault, ask: Ask, c: &Timing, now: OffsetDateTime) -> Decision {
    let header = provider.headers(vault).map(|a| c.promise(provider, vault, a));
    let renewal = provider.renewal(vault);
    let planned = vault.session.as_ref().map(|s| c.renew_at(s));
    match ask {
        Ask::Forced if renewal != Renewal::Static => Decision::Renew,
        Ask::Due if renewal != Renewal::Static && planned.is_none_or(|at| at <= now) => Decision::Renew,
        Ask::Due => Decision::WaitUntil(planned.unwrap_or(now)),
        Ask::Forced => header.map_or(Decision::Refuse(BrokerError::NoSession), Decision::Serve),
        Ask::Serve { until } => serve(provider, vault, header, renewal, planned, until, c, now),
    }
}

#[allow(clippy::too_many_arguments)]
fn serve(
    provider: &Provider,
    vault: &Vault,
    header: Option<Authorization>,
    renewal: Renewal<'_>,
    planned: Option<OffsetDateTime>,
    until: OffsetDateTime,
    c: &Timing,
    now: OffsetDateTime,
) -> Decision {
    if let Some(header) = header.filter(|h| h.expires_at.is_none_or(|end| end >= until)) {
        return Decision::Serve(header);
    }
    if renewal == Renewal::Static {
        return Decision::Refuse(ProviderError::AccessTokenTooShort.into());
    }
    if let Some(longest) = c.fresh_window(provider, vault).filter(|window| until - now > *window) {
        return Decision::Refuse(BrokerError::MinValidityTooLong { longest });
    }
    match planned.filter(|at| provider.refresh_revokes_previous() && now < *at) {
        Some(at) => Decision::WaitUntil(at),
        None => Decision::Renew,
    }
}

fn not_servable(record: &StoredCredential) -> BrokerError {
    BrokerError::NotServable { state: record.state, detail: record.detail() }
}

#[cfg(test)]
mod tests;

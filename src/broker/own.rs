//! The providers' own tokens: a provider instance's credential for the empty subject (PASS's
//! API key; a Passolution client-credentials token). Obtaining one is idempotent, so it is
//! cached here, never stored, and renewed on a caller's report at most once per
//! `refresh.rejected_interval` on this replica.
//!
//! [`OwnTokens`] owns only that per-replica limit; the headers live in the serving part's
//! cache and single flights, which it is handed.

use super::cache::{AuthCache, CacheKey, Served};
use super::flight::Flights;
use super::renew::Renewer;
use super::{BrokerError, BrokerResult};
use crate::domain::ProviderName;
use crate::providers::{OwnCredential, Provider, bearer};
use crate::telemetry::metrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use time::OffsetDateTime;

#[derive(Default)]
pub struct OwnTokens {
    /// When each provider's own token was last renewed on a caller's report (not stored:
    /// limited per replica).
    forced: Mutex<HashMap<ProviderName, Instant>>,
}

impl OwnTokens {
    /// The provider instance's own headers, valid until `until`, in their single flight.
    pub async fn get(
        &self,
        (cache, flights): (&AuthCache, &Flights),
        renewer: &Renewer,
        provider: &Provider,
        key: &CacheKey,
        until: OffsetDateTime,
    ) -> BrokerResult<Arc<Served>> {
        let _flight = flights.enter(key).await;
        if let Some(served) = cache.get(key).filter(|s| s.valid_until(until) && cache.fresh(s)) {
            return Ok(served);
        }
        let served = Arc::new(obtain(renewer, provider, until).await?);
        cache.insert(key.clone(), served.clone());
        Ok(served)
    }

    /// A caller reported the own token rejected: renewed when the report is about the cached
    /// one, at most once per interval on this replica. Returns whether the header changed.
    pub async fn report(
        &self,
        (cache, flights): (&AuthCache, &Flights),
        renewer: &Renewer,
        provider: &Provider,
        fingerprint: &str,
    ) -> BrokerResult<bool> {
        let key = (provider.name.clone(), None);
        let _flight = flights.enter(&key).await;
        let current = cache.get(&key);
        if current.as_ref().is_none_or(|s| s.fingerprint != fingerprint || !s.renewable)
            || !self.may_renew(provider, renewer.timing().rejected_interval)
        {
            return Ok(false);
        }
        cache.invalidate(&key);
        let served = obtain(renewer, provider, OffsetDateTime::now_utc()).await?;
        let renewed = served.fingerprint != fingerprint;
        cache.insert(key, Arc::new(served));
        Ok(renewed)
    }

    fn may_renew(&self, provider: &Provider, interval: std::time::Duration) -> bool {
        let mut last = self.forced.lock().expect("own-renewal map poisoned");
        let now = Instant::now();
        if last.get(&provider.name).is_some_and(|at| now.duration_since(*at) < interval) {
            return false;
        }
        last.insert(provider.name.clone(), now);
        true
    }
}

/// Obtains the instance's own headers: from configuration, or a client-credentials token
/// (idempotent to obtain: a slot of the provider's budget, no journal).
async fn obtain(renewer: &Renewer, provider: &Provider, until: OffsetDateTime) -> BrokerResult<Served> {
    let (authorization, renewable) = match provider.own_credential()? {
        OwnCredential::Static(headers) => (headers, false),
        OwnCredential::Obtained => {
            let started = std::time::Instant::now();
            let call = provider.obtain_own_token(renewer.http());
            let tokens = renewer.budgets().budgeted(&provider.name, call).await;
            metrics::renewal(&provider.name, "client_credentials", tokens.is_ok(), started.elapsed());
            let tokens = tokens?;
            (bearer(&tokens.access_token, tokens.expires_at), true)
        }
    };
    if let Some(promised_until) = authorization.expires_at.filter(|end| *end < until) {
        return Err(BrokerError::LifetimeTooShort { promised_until });
    }
    Ok(renewer.served(authorization, 0, renewable, false))
}

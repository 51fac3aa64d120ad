//! The fleet-wide budget of token requests (`store::budget`): every request to a rate-limited
//! token URL spends one slot first, and a 429 holds the whole fleet back for its Retry-After.

use super::{BrokerError, BrokerResult};
use crate::domain::ProviderName;
use crate::providers::Registry;
use crate::providers::http::UpstreamError;
use crate::store::AnyStore;
use crate::store::budget::{BudgetBackend, TokenBudget};
use std::collections::HashMap;
use std::time::Duration;

/// How long a token request may queue for a slot before the caller is told to retry.
const MAX_QUEUE: Duration = Duration::from_secs(20);
/// Back-off when a 429 carries no Retry-After (Laravel's window is a minute).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One budget per provider instance with a rate-limited token URL.
pub struct Budgets {
    by_provider: HashMap<ProviderName, TokenBudget>,
}

impl Budgets {
    pub fn new(registry: &Registry, store: &AnyStore) -> Self {
        let by_provider = registry
            .iter()
            .filter_map(|provider| {
                let per_minute = provider.token_budget_per_minute()?;
                let backend = match store {
                    AnyStore::Redis(redis) => BudgetBackend::Redis(redis.clone()),
                    AnyStore::Memory(_) => BudgetBackend::Memory,
                };
                Some((provider.name.clone(), TokenBudget::new(backend, &provider.name, per_minute)))
            })
            .collect();
        Self { by_provider }
    }

    pub fn get(&self, provider: &ProviderName) -> Option<&TokenBudget> {
        self.by_provider.get(provider)
    }

    /// A one-off token request (no journal between slot and send): spend a slot, send, and
    /// let a 429 hold the fleet back.
    pub async fn budgeted<T>(
        &self,
        provider: &ProviderName,
        call: impl std::future::Future<Output = Result<T, UpstreamError>>,
    ) -> BrokerResult<T> {
        spend(self.get(provider), provider).await?;
        let result = call.await;
        if let Err(e) = &result {
            note_rate_limit(self.get(provider), provider, e).await;
        }
        result.map_err(|source| BrokerError::Upstream { provider: provider.clone(), source })
    }
}

/// Waits for a slot in the provider's budget (spread over time, not dropped).
pub async fn spend(budget: Option<&TokenBudget>, provider: &ProviderName) -> BrokerResult<()> {
    let Some(budget) = budget else { return Ok(()) };
    budget.acquire(MAX_QUEUE).await.map_err(|source| BrokerError::Budget { provider: provider.clone(), source })
}

/// After a token request: a 429 means nobody in the fleet sends before its Retry-After.
pub async fn note_rate_limit(budget: Option<&TokenBudget>, provider: &ProviderName, error: &UpstreamError) {
    if let UpstreamError::Refused { status: 429, .. } = error {
        crate::telemetry::metrics::instruments().rate_limited.add(1, &[crate::telemetry::metrics::provider(provider)]);
    }
    if let (UpstreamError::Refused { status: 429, retry_after, .. }, Some(budget)) = (error, budget) {
        let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
        tracing::warn!(provider = %provider, retry_after_s = wait.as_secs(), "token endpoint rate-limited us; the fleet backs off");
        budget.back_off(wait).await;
    }
}

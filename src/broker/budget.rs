//! The fleet-wide budget of token requests (`store::budget`): every request to a Passolution
//! token URL spends one slot first, and a 429 holds the whole fleet back for its Retry-After.

use super::{Broker, BrokerError, BrokerResult};
use crate::domain::ProviderName;
use crate::providers::http::UpstreamError;
use crate::providers::{ProviderSettings, Registry};
use crate::store::AnyStore;
use crate::store::budget::{BudgetBackend, TokenBudget};
use std::collections::HashMap;
use std::time::Duration;

/// How long a token request may queue for a slot before the caller is told to retry.
const MAX_QUEUE: Duration = Duration::from_secs(20);
/// Back-off when a 429 carries no Retry-After (Laravel's window is a minute).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One budget per provider instance with a rate-limited token URL.
pub fn budgets(registry: &Registry, store: &AnyStore) -> HashMap<ProviderName, TokenBudget> {
    registry
        .iter()
        .filter_map(|provider| match &provider.settings {
            ProviderSettings::Passolution(s) => {
                let backend = match store {
                    AnyStore::Redis(redis) => BudgetBackend::Redis(redis.clone()),
                    AnyStore::Memory(_) => BudgetBackend::Memory,
                };
                Some((provider.name.clone(), TokenBudget::new(backend, &provider.name, s.token_budget_per_minute)))
            }
            _ => None,
        })
        .collect()
}

impl Broker {
    /// Waits for a slot in the provider's budget (spread over time, not dropped).
    pub(super) async fn spend_token_budget(&self, provider: &ProviderName) -> BrokerResult<()> {
        let Some(budget) = self.budgets.get(provider) else { return Ok(()) };
        budget.acquire(MAX_QUEUE).await.map_err(|source| BrokerError::Budget { provider: provider.clone(), source })
    }

    /// A one-off token request (no journal between slot and send): spend a slot, send, and
    /// let a 429 hold the fleet back.
    pub(super) async fn budgeted<T>(
        &self,
        provider: &ProviderName,
        call: impl std::future::Future<Output = Result<T, UpstreamError>>,
    ) -> BrokerResult<T> {
        self.spend_token_budget(provider).await?;
        let result = call.await;
        if let Err(e) = &result {
            self.note_rate_limit(provider, e).await;
        }
        result.map_err(|source| BrokerError::Upstream { provider: provider.clone(), source })
    }

    /// After a token request: a 429 means nobody in the fleet sends before its Retry-After.
    pub(super) async fn note_rate_limit(&self, provider: &ProviderName, error: &UpstreamError) {
        if let (UpstreamError::Refused { status: 429, retry_after, .. }, Some(budget)) =
            (error, self.budgets.get(provider))
        {
            let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
            tracing::warn!(provider = %provider, retry_after_s = wait.as_secs(), "token endpoint rate-limited us; the fleet backs off");
            budget.back_off(wait).await;
        }
    }
}

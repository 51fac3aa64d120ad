//! Wiring the parts from settings: the store and its change feed, the broker, the gate. Each
//! background task a part needs is handed to startup's [`Tasks`], never spawned here.

use super::tasks::Tasks;
use crate::broker::chaos::Chaos;
use crate::broker::scheduler::{self, Scheduler};
use crate::broker::{AuthCache, Broker, BrokerParts, Timing};
use crate::config::{EncryptionSettings, Settings, StoreSettings};
use crate::crypto::Keyring;
use crate::grpc;
use crate::providers::Registry;
use crate::providers::http::HttpClient;
use crate::security::Gate;
use crate::security::audit::AuditLog;
use crate::store::{AnyStore, ChangeFeed, MemoryStore, RedisStore};
use std::sync::Arc;

/// The broker over the configured store, with its tasks running: the change feed's relay
/// (Redis), the cache's coherence, the scheduler.
pub(super) async fn broker(settings: &Settings, tasks: &Tasks) -> anyhow::Result<Arc<Broker>> {
    let (scheduler, plans) = Scheduler::new();
    let store = store(&settings.store)?;
    let feed = match &store {
        AnyStore::Memory(_) => ChangeFeed::memory(),
        AnyStore::Redis(redis) => {
            redis.check_access().await?;
            tasks.spawn("redis durability check", warn_about_durability(redis.clone()));
            let (feed, relay) = ChangeFeed::redis(redis.clone());
            tasks.spawn("change feed", relay);
            feed
        }
    };
    let upstream = &settings.upstream;
    let broker = Arc::new(Broker::new(BrokerParts {
        registry: Registry::new(settings.providers.clone()),
        store,
        feed,
        timing: timing(settings),
        chaos: Chaos::from_env(),
        keyring: keyring(settings.encryption.clone()),
        cache: AuthCache::new(settings.cache.max_entries, settings.cache.ttl),
        http: HttpClient::new(upstream.connect_timeout, upstream.request_timeout),
        scheduler,
    }));
    tasks.spawn("cache coherence", broker.coherence());
    // The scheduler holds only a weak reference to the broker.
    tasks.spawn("scheduler", scheduler::run(Arc::downgrade(&broker), plans));
    Ok(broker)
}

/// The trust boundary's gate, with its tasks: the audit writer, idle rate-limit entries
/// swept, a JWKS URL kept fresh.
pub(super) fn gate(
    settings: &crate::security::SecuritySettings,
    replica: &str,
    tasks: &Tasks,
) -> anyhow::Result<Arc<Gate>> {
    let audit = match &settings.audit {
        None => None,
        Some(audit) => {
            let (log, writer) =
                AuditLog::open(audit).map_err(|e| anyhow::anyhow!("audit.path: cannot open the audit log: {e}"))?;
            tasks.spawn_finishing("audit writer", |stop| writer.run(stop));
            Some(log)
        }
    };
    let gate = Arc::new(Gate::new(settings, audit, replica, grpc::status::security_code));
    tasks.spawn("rate limit sweep", crate::security::gate::sweep(Arc::downgrade(&gate)));
    if let Some(jwks) = gate.jwks() {
        tasks.spawn("jwks refresh", jwks.keep_fresh());
    }
    Ok(gate)
}

/// How renewals are timed and coordinated, from `[store]`, `[upstream]` and `[refresh]`.
fn timing(settings: &Settings) -> Timing {
    let (store, upstream, refresh) = (&settings.store, &settings.upstream, &settings.refresh);
    Timing {
        lease_ttl: store.lease_ttl,
        reconcile_after: store.reconcile_after,
        request_timeout: upstream.request_timeout,
        ahead_ratio: upstream.refresh_ahead,
        jitter_ratio: upstream.refresh_jitter,
        clock_skew: refresh.clock_skew,
        max_wait: refresh.max_wait,
        journal_horizon: refresh.journal_horizon,
        rejected_interval: refresh.rejected_interval,
        rejected_min_age: refresh.rejected_min_age,
    }
}

fn store(settings: &StoreSettings) -> anyhow::Result<AnyStore> {
    if !settings.uses_redis() {
        tracing::info!("store: in memory (one replica only; nothing survives a restart)");
        return Ok(AnyStore::Memory(MemoryStore::new()));
    }
    let config = settings.redis();
    match &config.sentinel {
        Some(s) => tracing::info!(master = %s.master_name, sentinels = ?s.addresses, "store: redis via sentinel"),
        None => {
            tracing::info!(url = %crate::store::target::redact(&config.url), cluster = config.cluster, "store: redis")
        }
    }
    Ok(AnyStore::Redis(RedisStore::new(config)?))
}

/// Start-up check, off the start-up path: Redis may well be down right now.
async fn warn_about_durability(redis: RedisStore) {
    match redis.durability_warnings().await {
        Ok(problems) if problems.is_empty() => tracing::info!("redis durability: appendonly, fsync always, noeviction"),
        Ok(problems) => {
            for problem in problems {
                tracing::warn!(%problem, "redis could lose or evict acknowledged writes");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not check redis durability settings (unreachable?)"),
    }
}

fn keyring(settings: EncryptionSettings) -> Keyring {
    match settings {
        EncryptionSettings::Keys(keyring) => keyring,
        EncryptionSettings::Ephemeral => {
            tracing::warn!(
                "encryption: no key configured, using an ephemeral key; stored credentials die with this process"
            );
            Keyring::ephemeral()
        }
    }
}

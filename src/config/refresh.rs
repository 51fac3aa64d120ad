//! `[refresh]`: the timing of renewals and the limits around them — and the checks across
//! sections that the refresh-safety argument (`broker::rotation`, docs/refresh-safety.md)
//! relies on, so a configuration that would void it never starts.

use super::{RefreshSettings, StoreSettings, UpstreamSettings};
use crate::providers::Provider;
use serde::Deserialize;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRefresh {
    #[serde(with = "humantime_serde")]
    clock_skew: Duration,
    #[serde(with = "humantime_serde")]
    max_wait: Duration,
    #[serde(with = "humantime_serde")]
    journal_horizon: Duration,
    #[serde(with = "humantime_serde")]
    rejected_interval: Duration,
    #[serde(with = "humantime_serde")]
    rejected_min_age: Duration,
}

impl Default for RawRefresh {
    fn default() -> Self {
        Self {
            clock_skew: Duration::from_secs(2),
            max_wait: Duration::from_secs(10),
            journal_horizon: 400 * DAY,
            rejected_interval: Duration::from_secs(30),
            rejected_min_age: Duration::from_secs(2),
        }
    }
}

/// Checks `[refresh]` and what it depends on in `[store]`, `[upstream]` and the providers.
/// `store`/`upstream` are `None` when their own section was already refused.
pub(super) fn validate(
    raw: RawRefresh,
    store: Option<&StoreSettings>,
    upstream: Option<&UpstreamSettings>,
    providers: &[Provider],
    errors: &mut Vec<String>,
) -> Option<RefreshSettings> {
    let before = errors.len();
    if let (Some(store), Some(upstream)) = (store, upstream) {
        pause_tolerance(store, upstream, errors);
    }
    for provider in providers {
        let Some(lifetime) = provider.refresh_token_lifetime() else { continue };
        if raw.journal_horizon < lifetime {
            errors.push(format!(
                "refresh.journal_horizon: {} is shorter than provider {}'s refresh_token_lifetime ({}): a sent \
                 refresh token's journal record must outlive the token, or a rolled-back record could send it again",
                show(raw.journal_horizon),
                provider.name,
                show(lifetime),
            ));
        }
    }
    if raw.clock_skew > Duration::from_secs(60) {
        errors.push("refresh.clock_skew: at most 60s (replicas' clocks must be synchronized)".into());
    }
    (errors.len() == before).then_some(RefreshSettings {
        clock_skew: raw.clock_skew,
        max_wait: raw.max_wait,
        journal_horizon: raw.journal_horizon,
        rejected_interval: raw.rejected_interval,
        rejected_min_age: raw.rejected_min_age,
    })
}

/// After a vanished holder is fenced, its credential is probed `reconcile_after` later. A
/// holder that passed its pre-send check just before the fence may still send — after a pause
/// no lease can prevent — and its request may be in flight for `request_timeout`. The probe is
/// sound if no such pause outlasts `reconcile_after − request_timeout`; that tolerance must at
/// least cover the pauses the lease itself tolerates (a holder is fenced only after its lease,
/// renewed every third of its TTL, lapsed): hence ≥ 2 × `lease_ttl`.
fn pause_tolerance(store: &StoreSettings, upstream: &UpstreamSettings, errors: &mut Vec<String>) {
    let needed = 2 * store.lease_ttl + upstream.request_timeout;
    if store.reconcile_after < needed {
        errors.push(format!(
            "store.reconcile_after: must be at least 2 × store.lease_ttl + upstream.request_timeout ({}): a \
             replica paused between its last check and its send must be provably done before the probe runs",
            show(needed)
        ));
    }
}

/// `400d`, `70s`, `1.5s`: durations as they are written in the configuration.
fn show(d: Duration) -> String {
    if d >= DAY && d.as_secs() % DAY.as_secs() == 0 {
        return format!("{}d", d.as_secs() / DAY.as_secs());
    }
    format!("{}s", d.as_secs_f64())
}

//! Fault-injection points for the chaos suite (`tests/api/chaos/`): at a named step of a
//! renewal, log `chaos point` and optionally pause, so a test driver can SIGSTOP or kill this
//! process exactly there. Off unless `CREDBROKER_CHAOS_PAUSE` is set (test-only; it changes
//! nothing else). Format: `after_lease=1500,after_reserve=1500,sending=0` (milliseconds).

use crate::domain::CredentialId;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Chaos {
    pauses: Option<HashMap<String, Duration>>,
}

impl Chaos {
    /// Reads `CREDBROKER_CHAOS_PAUSE`.
    pub fn from_env() -> Self {
        let Ok(spec) = std::env::var("CREDBROKER_CHAOS_PAUSE") else { return Self::default() };
        let pauses = spec
            .split(',')
            .filter_map(|item| {
                let (point, ms) = item.split_once('=')?;
                Some((point.trim().to_owned(), Duration::from_millis(ms.trim().parse().ok()?)))
            })
            .collect();
        tracing::warn!(%spec, "chaos points enabled (test-only)");
        Self { pauses: Some(pauses) }
    }

    pub async fn point(&self, point: &str, id: &CredentialId) {
        let Some(pauses) = &self.pauses else { return };
        tracing::warn!(chaos_point = point, credential = %id, "chaos point");
        if let Some(pause) = pauses.get(point) {
            tokio::time::sleep(*pause).await;
        }
    }
}

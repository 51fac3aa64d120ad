//! Test-only hooks of the chaos suite (`tests/api/chaos/`), compiled only with the `chaos`
//! cargo feature — never into a release binary (`scripts/test` enables the feature for the
//! test build; without it every hook is an empty inline function).
//!
//! - Fault-injection points: at a named step of a renewal, log `chaos point` and optionally
//!   pause, so a test driver can SIGSTOP or kill the process exactly there.
//!   `CREDBROKER_CHAOS_PAUSE=after_lease=1500,after_reserve=1500,sending=0` (milliseconds);
//!   `before_commit` comes after the provider answered, before its tokens are stored.
//! - The negative control: `CREDBROKER_UNSAFE_DISABLE_REFRESH_JOURNAL=1` turns the design into
//!   a lease-only one (no journal, no pre-send check, a holder whose lease expired is simply
//!   superseded), which the suite must catch sending a refresh token twice.

use crate::domain::CredentialId;

#[derive(Debug, Clone, Default)]
pub struct Chaos {
    #[cfg(feature = "chaos")]
    pauses: Option<std::collections::HashMap<String, std::time::Duration>>,
    #[cfg(feature = "chaos")]
    journal_off: bool,
}

impl Chaos {
    /// Reads the chaos variables (chaos builds only; otherwise: no hooks).
    pub fn from_env() -> Self {
        #[cfg(feature = "chaos")]
        {
            let journal_off = std::env::var_os("CREDBROKER_UNSAFE_DISABLE_REFRESH_JOURNAL").is_some();
            let pauses = std::env::var("CREDBROKER_CHAOS_PAUSE").ok().map(|spec| {
                tracing::warn!(%spec, "chaos points enabled (test-only)");
                parse(&spec)
            });
            Self { pauses, journal_off }
        }
        #[cfg(not(feature = "chaos"))]
        Self::default()
    }

    /// Whether the refresh journal is switched off (the suite's negative control).
    #[inline]
    pub fn journal_off(&self) -> bool {
        #[cfg(feature = "chaos")]
        return self.journal_off;
        #[cfg(not(feature = "chaos"))]
        false
    }

    #[inline]
    pub async fn point(&self, point: &str, id: &CredentialId) {
        #[cfg(feature = "chaos")]
        if let Some(pauses) = &self.pauses {
            tracing::warn!(chaos_point = point, credential = %id, "chaos point");
            if let Some(pause) = pauses.get(point) {
                tokio::time::sleep(*pause).await;
            }
        }
        #[cfg(not(feature = "chaos"))]
        let _ = (point, id);
    }
}

#[cfg(feature = "chaos")]
fn parse(spec: &str) -> std::collections::HashMap<String, std::time::Duration> {
    spec.split(',')
        .filter_map(|item| {
            let (point, ms) = item.split_once('=')?;
            Some((point.trim().to_owned(), std::time::Duration::from_millis(ms.trim().parse().ok()?)))
        })
        .collect()
}

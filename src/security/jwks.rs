//! The keys bearer JWTs are verified with: a JWKS file read at start-up, or a JWKS URL
//! fetched at start-up, again every `jwks_refresh`, and early when a token names a key id the
//! current set lacks (the issuer rotated its keys) — at most once per [`MIN_REFETCH`], so a
//! caller sending made-up key ids cannot make the broker hammer the issuer.
//!
//! The set sits in an `ArcSwap`: verification loads it without a lock; a fetch that fails
//! keeps the previous set (a warning), so an issuer outage does not lock every caller out.

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The shortest time between two fetches.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);

/// Where the keys come from (validated configuration).
#[derive(Clone)]
pub enum JwksSource {
    File(JwkSet),
    Url { url: url::Url, refresh: Duration },
}

pub struct Jwks {
    source: JwksSource,
    current: ArcSwap<JwkSet>,
    wanted: Notify,
}

impl Jwks {
    pub fn new(source: JwksSource) -> Arc<Self> {
        let keys = match &source {
            JwksSource::File(keys) => keys.clone(),
            JwksSource::Url { .. } => JwkSet { keys: Vec::new() },
        };
        Arc::new(Self { source, current: ArcSwap::from_pointee(keys), wanted: Notify::new() })
    }

    pub fn current(&self) -> Arc<JwkSet> {
        self.current.load_full()
    }

    /// A token named a key id the set lacks: fetch again soon (URL sources only).
    pub fn unknown_key_id(&self) {
        self.wanted.notify_one();
    }

    /// Keeps a URL source fresh while the set is in use; returns at once for a file.
    pub async fn keep_fresh(self: Arc<Self>) {
        let JwksSource::Url { url, refresh } = self.source.clone() else { return };
        let weak = Arc::downgrade(&self);
        drop(self);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .expect("static client settings are valid");
        loop {
            let Some(jwks) = weak.upgrade() else { return };
            match fetch(&http, &url).await {
                Ok(keys) => {
                    tracing::debug!(keys = keys.keys.len(), "auth.jwt: JWKS fetched");
                    jwks.current.store(Arc::new(keys));
                }
                Err(e) => tracing::warn!(%url, error = %e, "auth.jwt: cannot fetch the JWKS; keeping the keys it had"),
            }
            tokio::time::sleep(MIN_REFETCH).await;
            // Until the next refresh, or earlier when a token names an unknown key id.
            let _ = tokio::time::timeout(refresh.saturating_sub(MIN_REFETCH), jwks.wanted.notified()).await;
        }
    }
}

async fn fetch(http: &reqwest::Client, url: &url::Url) -> Result<JwkSet, String> {
    let response = http.get(url.clone()).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    response.json::<JwkSet>().await.map_err(|e| format!("not a JWKS: {e}"))
}

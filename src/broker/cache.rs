//! The in-process cache of ready-to-serve headers: a warm `GetAuthorization` is answered from
//! here with no store round trip.
//!
//! quick_cache is a concurrent, bounded cache (sharded, S3-FIFO eviction): a lookup takes one
//! shard's read lock, so the warm path scales with cores. It keeps each entry inline in its
//! shard's slab — about 30 bytes of bookkeeping per entry, where moka, used before, made five
//! allocations of about 260 bytes together (the memory goal: 100 000 credentials in ≤ 100 MB). Entries
//! are *fresh* for a time-to-live (a bound on staleness should a change announcement be lost);
//! a stale entry is re-read from the store, but still served — while its headers are valid —
//! when the store is unreachable.

use crate::domain::{ProviderName, Secret, Subject};
use crate::providers::Authorization;
use compact_str::CompactString;
use quick_cache::sync::Cache;
use reqwest::header::{HeaderName, HeaderValue};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;

/// `(provider, subject)`; `None` is the provider instance's own credential.
pub type CacheKey = (ProviderName, Option<Subject>);

/// Headers as handed out, shared by every caller that gets them.
///
/// Laid out for 100 000 cached credentials (≤ 100 MB in all): boxed slices, the HTTP form boxed
/// (built only for proxied credentials) and an inline fingerprint keep it, with its `Arc`,
/// within 128 bytes, one allocator size class below where it was.
#[derive(Debug)]
pub struct Served {
    pub headers: Box<[(&'static str, Secret)]>,
    /// The same headers ready for an HTTP request: built by the first proxied call with them
    /// rather than by every one (a clone shares the bytes), and only for credentials that are
    /// proxied (memory). `Err(name)`: that header's value is not a valid HTTP header value.
    pub http: OnceLock<Box<Result<Vec<(HeaderName, HeaderValue)>, &'static str>>>,
    /// The end of the validity promised to callers (`plan::Timing::promise`).
    pub expires_at: Option<OffsetDateTime>,
    /// 16 characters: inline, no allocation of its own.
    pub fingerprint: CompactString,
    /// The store version these headers came from (0 for the provider's own credential).
    pub version: u64,
    /// When they were obtained from the store or provider.
    pub cached_at: std::time::Instant,
    /// Whether a rejection of these headers is worth a renewal (the provider says; a PASS
    /// AppBearer 401 is not about the credential, static credentials cannot be renewed).
    pub renewable: bool,
    /// Whether a successful call with them extends the session (PASS's sliding expiry).
    pub slides: bool,
}

impl Served {
    /// `authorization` as handed out, fingerprinted `fingerprint`, obtained now.
    pub fn new(fingerprint: String, authorization: Authorization, version: u64, renewable: bool, slides: bool) -> Self {
        Self {
            fingerprint: CompactString::new(fingerprint),
            http: OnceLock::new(),
            headers: authorization.headers.into_boxed_slice(),
            expires_at: authorization.expires_at,
            version,
            cached_at: std::time::Instant::now(),
            renewable,
            slides,
        }
    }

    /// `headers` as HTTP header values, marked sensitive (`Debug` hides them); `Err(name)`
    /// if one is not a valid header value.
    pub fn http_headers(&self) -> Result<&[(HeaderName, HeaderValue)], &'static str> {
        let header = |(name, value): &(&'static str, Secret)| {
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| *name)?;
            value.set_sensitive(true);
            Ok((HeaderName::from_static(name), value))
        };
        let built = self.http.get_or_init(|| Box::new(self.headers.iter().map(header).collect()));
        built.as_deref().map_err(|name| *name)
    }

    /// Whether these headers stay valid until `until`.
    pub fn valid_until(&self, until: OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|expires| expires >= until)
    }
}

#[derive(Clone)]
pub struct AuthCache {
    entries: Arc<Cache<CacheKey, Arc<Served>>>,
    fresh_for: Duration,
}

impl AuthCache {
    pub fn new(max_entries: u64, fresh_for: Duration) -> Self {
        let entries = usize::try_from(max_entries).unwrap_or(usize::MAX);
        Self { entries: Arc::new(Cache::new(entries)), fresh_for }
    }

    /// Whether `served` may be answered without consulting the store.
    pub fn fresh(&self, served: &Served) -> bool {
        served.cached_at.elapsed() < self.fresh_for
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<Served>> {
        self.entries.get(key)
    }

    pub fn insert(&self, key: CacheKey, served: Arc<Served>) {
        self.entries.insert(key, served);
    }

    pub fn invalidate(&self, key: &CacheKey) {
        self.entries.remove(key);
    }

    pub fn invalidate_all(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Served;
    use std::sync::Arc;

    /// An `Arc<Served>` is one allocation per cached credential: within mimalloc's 128-byte
    /// size class (the next is 160), which is what its layout is for.
    #[test]
    fn a_shared_served_fits_in_128_bytes() {
        assert!(size_of::<Served>() + 2 * size_of::<usize>() <= 128, "{}", size_of::<Served>());
        assert_eq!(size_of::<Arc<Served>>(), size_of::<usize>());
    }
}

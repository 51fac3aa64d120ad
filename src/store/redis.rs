//! The Redis store: shared by every replica.
//!
//! Layout (prefix `credbroker`, provider `bro`, subject `alice`):
//! - `credbroker:{bro:alice}:cred` — hash: `version` (integer, only grows, survives deletion
//!   as a tombstone), `data` (JSON of [`StoredCredential`]: metadata plus the sealed secret),
//!   and the journal's head: `attempt` (the current attempt: hash of the refresh token last
//!   reserved), `owner` (who sends it), `previous` (the attempt before it).
//! - `credbroker:{bro:alice}:journal` — sorted set, the refresh journal: one member per
//!   refresh token ever sent (its hash); score = when the entry may go (ms since the epoch),
//!   `+inf` for the current and previous attempt. Expired entries are dropped by the next
//!   reservation. (Journals written before it was bounded used one `…:attempt:<hash>` key
//!   per token: still honoured, never written.)
//! - `credbroker:{bro:alice}:lease` — which replica is renewing the credential now (owner
//!   nonce, PX, renewed while the work runs, released by compare-and-delete).
//! - `credbroker:changes` — pub/sub channel: `version\nprovider\nsubject` after every write.
//! - `credbroker:{bro}:index` — sorted set of the provider's subjects, for paged listings.
//!
//! The `{provider:subject}` hash tag puts every key of one credential on one Redis Cluster
//! slot, so the multi-key scripts of the refresh journal stay atomic. Subjects are escaped in
//! key names (`%`, `{`, `}`, `:`) so no subject can forge another credential's key or tag.
//!
//! Writes are Lua scripts: a version check and the write happen atomically on the server.

mod access;
mod replication;
mod scripts;

pub use access::AccessRefused;

/// Script arguments, each as the bytes Redis receives.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {{
        let mut args: Vec<Vec<u8>> = Vec::new();
        $(args.extend(redis::ToRedisArgs::to_redis_args(&$arg));)*
        args
    }};
}

use super::connection::{Conn, Connector, Topology};
use super::target::{RedisAccess, SentinelSettings};
use super::{Attempt, CredentialStore, JournalEntry, Listed, Reservation, StoreError, StoreResult, StoredCredential};
use crate::domain::{CredentialId, ProviderName, Subject};
use redis::AsyncCommands;
use scripts::*;
use std::sync::Arc;
use std::time::Duration;

/// How to reach Redis.
#[derive(Debug, Clone, Default)]
pub struct RedisStoreConfig {
    /// Unused with `sentinel`.
    pub url: String,
    /// `url` names one node of a Redis Cluster; the others are discovered.
    pub cluster: bool,
    /// Ask these sentinels for the master instead of connecting to `url`.
    pub sentinel: Option<SentinelSettings>,
    /// TLS and the ACL user.
    pub access: RedisAccess,
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// Journal writes return only once this many replicas acknowledged them (`WAIT`).
    pub journal_replicas: u32,
    /// How long a journal write waits for those acknowledgements.
    pub journal_wait_timeout: Duration,
}

/// Cheap to clone: everything is shared.
#[derive(Clone)]
pub struct RedisStore {
    config: Arc<RedisStoreConfig>,
    links: Arc<Links>,
}

/// How the store reaches Redis.
struct Links {
    /// For pub/sub, which a cluster broadcasts to every node: one node is enough. `None`
    /// with Sentinel: the connector names the master at each subscription.
    client: Option<redis::Client>,
    connector: Connector,
    /// With `journal_replicas`: a connection of its own for writes that `WAIT`, since WAIT
    /// blocks the connection it is sent on and reads must not queue behind it.
    durable: Option<Connector>,
}

impl RedisStore {
    /// Checks the URL; does not connect.
    pub fn new(config: RedisStoreConfig) -> Result<Self, redis::RedisError> {
        // rediss:// needs a process-wide crypto provider when several are linked in (tests
        // link ring too); aws-lc is the one the rest of the broker uses. Installing twice is
        // harmless.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let topology = match (&config.sentinel, config.cluster) {
            (Some(sentinel), _) => Topology::Sentinel(sentinel),
            (None, true) => Topology::Cluster(&config.url),
            (None, false) => Topology::Single(&config.url),
        };
        let client = match &config.sentinel {
            Some(_) => None,
            None => Some(config.access.client(&config.url)?),
        };
        let (connect, response) = (config.connect_timeout, config.response_timeout);
        let connector = Connector::new(topology, &config.access, connect, response)?;
        let durable = (config.journal_replicas > 0)
            .then(|| Connector::new(topology, &config.access, connect, response + config.journal_wait_timeout))
            .transpose()?;
        Ok(Self { config: Arc::new(config), links: Arc::new(Links { client, connector, durable }) })
    }

    /// A connection, established on first use.
    pub(crate) async fn connection(&self) -> StoreResult<Conn> {
        self.links.connector.connect(self.config.connect_timeout, self.config.response_timeout).await
    }

    /// One round trip (PING): whether Redis answers now — the readiness check at start-up.
    pub async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(unavailable)?;
        Ok(())
    }

    /// What in this Redis's configuration could lose or evict acknowledged writes — which, for
    /// a journal of single-use refresh tokens, means a token sent twice or lost. Empty when
    /// all is well; one entry when the configuration cannot be read (managed Redis often
    /// disables CONFIG).
    pub async fn durability_warnings(&self) -> StoreResult<Vec<String>> {
        let conn = self.connection().await?;
        let get = |name: &'static str| {
            let mut conn = conn.clone();
            async move {
                let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query_async(&mut conn).await.ok()?;
                pair.get(1).cloned()
            }
        };
        let (appendonly, fsync, policy) =
            (get("appendonly").await, get("appendfsync").await, get("maxmemory-policy").await);
        let (Some(appendonly), Some(fsync), Some(policy)) = (appendonly, fsync, policy) else {
            return Ok(vec!["cannot read the Redis configuration (CONFIG GET refused): check appendonly, appendfsync and maxmemory-policy by hand".into()]);
        };
        Ok(durability_problems(&appendonly, &fsync, &policy))
    }

    fn cred_key(&self, id: &CredentialId) -> String {
        format!("{}:{{{}:{}}}:cred", self.config.key_prefix, id.provider, escape(id.subject.as_str()))
    }

    /// A journal entry as written before the journal was bounded: honoured, never written.
    fn legacy_attempt_key(&self, id: &CredentialId, attempt: &str) -> String {
        format!("{}:{{{}:{}}}:attempt:{attempt}", self.config.key_prefix, id.provider, escape(id.subject.as_str()))
    }

    fn journal_key(&self, id: &CredentialId) -> String {
        format!("{}:{{{}:{}}}:journal", self.config.key_prefix, id.provider, escape(id.subject.as_str()))
    }

    fn lease_key(&self, id: &CredentialId) -> String {
        format!("{}:{{{}:{}}}:lease", self.config.key_prefix, id.provider, escape(id.subject.as_str()))
    }

    /// The pub/sub channel on which writers announce changed credentials.
    pub(crate) fn changes_channel(&self) -> String {
        format!("{}:changes", self.config.key_prefix)
    }

    /// A client for pub/sub (which opens its own connection): the current master's.
    pub(crate) async fn pubsub_client(&self) -> redis::RedisResult<redis::Client> {
        match &self.links.client {
            Some(client) => Ok(client.clone()),
            None => self.links.connector.master_client().await.expect("no client only with Sentinel"),
        }
    }

    /// The prefix of every key this store writes; the token budget keeps its key under it too.
    pub(crate) fn key_prefix(&self) -> &str {
        &self.config.key_prefix
    }

    fn index_key(&self, provider: &ProviderName) -> String {
        format!("{}:{{{}}}:index", self.config.key_prefix, provider)
    }

    async fn read(&self, key: &str) -> StoreResult<Option<StoredCredential>> {
        let mut conn = self.connection().await?;
        let (version, data): (Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(key)
            .arg("version")
            .arg("data")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let (Some(version), Some(data)) = (version, data) else { return Ok(None) };
        let record: StoredCredential = serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(e.into()))?;
        Ok(Some(StoredCredential { version, ..record }))
    }
}

fn durability_problems(appendonly: &str, fsync: &str, policy: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if appendonly != "yes" {
        problems.push("appendonly is not yes: a Redis restart loses every write since the last snapshot (refresh journal included)".into());
    } else if fsync == "everysec" {
        problems.push(
            "appendfsync is everysec: a crash can lose up to ~1 s of acknowledged writes (see deploy/redis.conf)"
                .into(),
        );
    } else if fsync != "always" {
        problems.push(format!(
            "appendfsync is {fsync}: the OS decides when writes reach disk; a crash can lose acknowledged writes"
        ));
    }
    if policy != "noeviction" {
        problems.push(format!(
            "maxmemory-policy is {policy}: under memory pressure Redis may evict credentials or journal records"
        ));
    }
    problems
}

/// Escapes the characters that structure key names, so a subject can never produce another
/// credential's key or break out of its hash tag.
fn escape(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for c in subject.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn encode(record: &StoredCredential) -> String {
    serde_json::to_string(record).expect("a stored credential serializes")
}

impl CredentialStore for RedisStore {
    #[tracing::instrument(name = "store.get", skip_all, fields(store = "redis", credential = %id), err(level = "warn"))]
    async fn get(&self, id: &CredentialId) -> StoreResult<Option<StoredCredential>> {
        self.read(&self.cred_key(id)).await
    }

    #[tracing::instrument(name = "store.version", skip_all, fields(store = "redis", credential = %id), err(level = "warn"))]
    async fn version(&self, id: &CredentialId) -> StoreResult<u64> {
        let mut conn = self.connection().await?;
        let version: Option<u64> = conn.hget(self.cred_key(id), "version").await.map_err(unavailable)?;
        Ok(version.unwrap_or(0))
    }

    #[tracing::instrument(name = "store.put", skip_all, fields(store = "redis", credential = %id, expected), err(level = "warn"))]
    async fn put(&self, id: &CredentialId, expected: u64, record: &StoredCredential) -> StoreResult<Option<u64>> {
        let mut conn = self.connection().await?;
        // Index first: a crash between the two leaves an index entry without a record,
        // which listings skip, rather than a record that listings never show.
        let _: () = conn.zadd(self.index_key(&id.provider), id.subject.as_str(), 0).await.map_err(unavailable)?;
        self.write_replicated(&PUT, &[self.cred_key(id)], args!(expected, encode(record))).await
    }

    #[tracing::instrument(name = "store.compare_and_swap", skip_all, fields(store = "redis", credential = %id, expected), err(level = "warn"))]
    async fn compare_and_swap(
        &self,
        id: &CredentialId,
        expected: u64,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        self.write_replicated(&COMPARE_AND_SWAP, &[self.cred_key(id)], args!(expected, encode(record))).await
    }

    #[tracing::instrument(name = "store.reserve_refresh", skip_all, fields(store = "redis", credential = %id, expected), err(level = "warn"))]
    async fn reserve_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: Attempt<'_>,
        record: &StoredCredential,
    ) -> StoreResult<Reservation> {
        let keys = [self.cred_key(id), self.journal_key(id), self.legacy_attempt_key(id, attempt.id)];
        let args = args!(expected, encode(record), attempt.id, attempt.owner, attempt.horizon.as_millis() as u64);
        let written = Box::pin(self.write_script::<i64>(&RESERVE_REFRESH, &keys, args)).await?;
        Ok(match written.reply {
            0 => Reservation::VersionChanged,
            -1 => Reservation::AlreadyAttempted,
            version if !written.replicated => Reservation::NotReplicated { version: version as u64 },
            version => Reservation::Reserved { version: version as u64 },
        })
    }

    #[tracing::instrument(name = "store.attempt_owner", skip_all, fields(store = "redis", credential = %id), err(level = "warn"))]
    async fn attempt_owner(&self, id: &CredentialId, attempt: &str) -> StoreResult<Option<String>> {
        let mut conn = self.connection().await?;
        ATTEMPT_OWNER
            .key(self.cred_key(id))
            .key(self.legacy_attempt_key(id, attempt))
            .arg(attempt)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    #[tracing::instrument(name = "store.fence_refresh", skip_all, fields(store = "redis", credential = %id), err(level = "warn"))]
    async fn fence_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: Attempt<'_>,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        let keys = [self.cred_key(id), self.journal_key(id)];
        let args = args!(expected, encode(record), attempt.id, attempt.owner, attempt.horizon.as_millis() as u64);
        self.write_replicated(&FENCE_REFRESH, &keys, args).await
    }

    #[tracing::instrument(name = "store.acquire_lease", skip_all, fields(store = "redis", credential = %id), err(level = "warn"))]
    async fn acquire_lease(&self, id: &CredentialId, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let mut conn = self.connection().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(self.lease_key(id))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    async fn renew_lease(&self, id: &CredentialId, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let mut conn = self.connection().await?;
        let renewed: i64 = RENEW_LEASE
            .key(self.lease_key(id))
            .arg(owner)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(renewed == 1)
    }

    #[tracing::instrument(name = "store.release_lease", skip_all, fields(store = "redis", credential = %id), err(level = "warn"))]
    async fn release_lease(&self, id: &CredentialId, owner: &str) -> StoreResult<()> {
        let mut conn = self.connection().await?;
        let _: i64 =
            RELEASE_LEASE.key(self.lease_key(id)).arg(owner).invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok(())
    }

    #[tracing::instrument(name = "store.reopen_refresh", skip_all, fields(store = "redis", credential = %id, expected), err(level = "warn"))]
    async fn reopen_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        let keys = [self.cred_key(id), self.journal_key(id), self.legacy_attempt_key(id, attempt)];
        self.write_replicated(&REOPEN_REFRESH, &keys, args!(expected, encode(record), attempt)).await
    }

    #[tracing::instrument(name = "store.journal", skip_all, fields(store = "redis", credential = %id), err(level = "warn"))]
    async fn journal(&self, id: &CredentialId) -> StoreResult<Vec<JournalEntry>> {
        let mut conn = self.connection().await?;
        let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.map_err(unavailable)?;
        let now_ms = seconds * 1000 + micros / 1000;
        let entries: Vec<(String, f64)> =
            conn.zrange_withscores(self.journal_key(id), 0, -1).await.map_err(unavailable)?;
        Ok(entries
            .into_iter()
            .filter(|(_, score)| *score > now_ms as f64)
            .map(|(attempt, score)| JournalEntry {
                attempt,
                expires_in: score.is_finite().then(|| Duration::from_millis(score as u64 - now_ms)),
            })
            .collect())
    }

    #[tracing::instrument(name = "store.delete", skip_all, fields(store = "redis", credential = %id), err(level = "warn"))]
    async fn delete(&self, id: &CredentialId) -> StoreResult<bool> {
        let mut conn = self.connection().await?;
        let existed: bool = DELETE.key(self.cred_key(id)).invoke_async(&mut conn).await.map_err(unavailable)?;
        let _: () = conn.zrem(self.index_key(&id.provider), id.subject.as_str()).await.map_err(unavailable)?;
        // A put racing this delete may have re-created the record after the ZREM above
        // removed its index entry: put the entry back so listings still show it.
        if self.read(&self.cred_key(id)).await?.is_some() {
            let _: () = conn.zadd(self.index_key(&id.provider), id.subject.as_str(), 0).await.map_err(unavailable)?;
        }
        Ok(existed)
    }

    #[tracing::instrument(name = "store.list", skip_all, fields(store = "redis", provider = %provider), err(level = "warn"))]
    async fn list(&self, provider: &ProviderName, after: Option<&Subject>, limit: usize) -> StoreResult<Vec<Listed>> {
        let mut conn = self.connection().await?;
        let mut out = Vec::with_capacity(limit);
        let mut cursor = after.map(|s| format!("({s}")).unwrap_or_else(|| "-".to_owned());
        // Index entries without a record (see `put`) are skipped, so keep reading until the
        // page is full or the index is exhausted.
        while out.len() < limit {
            let want = limit - out.len();
            let subjects: Vec<String> = conn
                .zrangebylex_limit(self.index_key(provider), &cursor, "+", 0, want as isize)
                .await
                .map_err(unavailable)?;
            for raw in &subjects {
                let Some(subject) = Subject::stored(raw) else { continue };
                let id = CredentialId::new(provider.clone(), subject.clone());
                if let Some(credential) = self.read(&self.cred_key(&id)).await? {
                    out.push(Listed { subject, credential });
                }
            }
            match subjects.last() {
                Some(last) if subjects.len() == want => cursor = format!("({last}"),
                _ => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn durability_settings_are_judged() {
        assert!(super::durability_problems("yes", "always", "noeviction").is_empty());
        assert_eq!(super::durability_problems("no", "everysec", "allkeys-lru").len(), 2);
        assert!(super::durability_problems("yes", "everysec", "noeviction")[0].contains("everysec"));
    }

    #[test]
    fn escaping_keeps_subjects_inside_their_tag() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("a}:cred{x%"), "a%7D%3Acred%7Bx%25");
        assert_ne!(escape("%7D"), escape("}"));
    }
}

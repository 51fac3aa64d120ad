//! Connect sessions in Redis, shared by every replica.
//!
//! Layout (prefix `credbroker`); every key carries the hash tag `{connect}`, so the scripts
//! that touch several keys stay on one Redis Cluster slot (sessions are opened at a human's
//! pace: one slot carries them easily):
//! - `credbroker:{connect}:session:<id>` — hash: `data` (JSON [`SessionRecord`]), `outcome`
//!   (JSON [`SessionOutcome`], absent while pending); expires `keep` after opening.
//! - `credbroker:{connect}:token:<sha256>` — the session id; expires with the session.
//! - `credbroker:{connect}:state:<sha256>` — hash: `binding` (hash of the browser-binding
//!   secret), `data` (JSON [`StateRecord`], the verifier sealed); expires with the session.
//! - `credbroker:{connect}:open:<sha256 of the caller>` — sorted set of the caller's open
//!   sessions, scored by expiry (ms of Redis time).
//!
//! Each write is one Lua script (or `GETDEL`): checks and writes happen atomically on the server.

use super::{Opening, SessionOutcome, SessionRecord, SessionStore, StateRecord, StoredSession, Taken};
use crate::store::{RedisStore, StoreError, StoreResult};
use redis::{Script, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

// Prunes the caller's expired entries, refuses past the cap, then writes session, token and
// count together. KEYS: session, token, open; ARGV: data, id, cap, ttl ms, keep ms.
static OPEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local t = redis.call('TIME')
          local now = t[1] * 1000 + math.floor(t[2] / 1000)
          redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
          if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 0 end
          redis.call('HSET', KEYS[1], 'data', ARGV[1])
          redis.call('PEXPIRE', KEYS[1], ARGV[5])
          redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
          redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[2])
          redis.call('PEXPIRE', KEYS[3], ARGV[4])
          return 1",
    )
});

// Deletes the state only when its binding matches: 0 unknown, 1 foreign, else the data.
// KEYS: state; ARGV: binding.
static TAKE_STATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local binding = redis.call('HGET', KEYS[1], 'binding')
          if not binding then return 0 end
          if binding ~= ARGV[1] then return 1 end
          local data = redis.call('HGET', KEYS[1], 'data')
          redis.call('DEL', KEYS[1])
          return data",
    )
});

// The first outcome wins (HSETNX); the session stops counting as open.
// KEYS: session, open; ARGV: outcome, id.
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HEXISTS', KEYS[1], 'data') == 0 then return 0 end
          if redis.call('HSETNX', KEYS[1], 'outcome', ARGV[1]) == 0 then return 0 end
          redis.call('ZREM', KEYS[2], ARGV[2])
          return 1",
    )
});

/// The sessions beside a [`RedisStore`]'s credentials (same Redis, same key prefix).
#[derive(Clone)]
pub struct RedisSessions {
    store: RedisStore,
}

impl RedisSessions {
    pub fn new(store: RedisStore) -> Self {
        Self { store }
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{{connect}}:{kind}:{name}", self.store.key_prefix())
    }

    /// Callers' identities are free text (SPIFFE IDs, JWT subjects): hashed into the key.
    fn open_key(&self, caller: &str) -> String {
        let digest = Sha256::digest(caller.as_bytes());
        self.key("open", &digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    async fn run<T: redis::FromRedisValue>(&self, invocation: &redis::ScriptInvocation<'_>) -> StoreResult<T> {
        let mut conn = self.store.connection().await?;
        invocation.invoke_async(&mut conn).await.map_err(unavailable)
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(Box::new(e))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl SessionStore for RedisSessions {
    #[tracing::instrument(name = "store.open_session", skip_all, fields(store = "redis"), err(level = "warn"))]
    async fn open(&self, opening: Opening<'_>) -> StoreResult<bool> {
        let record = opening.record;
        let data = serde_json::to_string(record).expect("a session record serializes");
        let mut invocation = OPEN.prepare_invoke();
        invocation.key(self.key("session", &record.id)).key(self.key("token", opening.token));
        invocation.key(self.open_key(&record.caller)).arg(data).arg(&record.id).arg(opening.cap);
        invocation.arg(millis(opening.ttl)).arg(millis(opening.keep));
        Ok(self.run::<i64>(&invocation).await? == 1)
    }

    #[tracing::instrument(name = "store.session", skip_all, fields(store = "redis"), err(level = "warn"))]
    async fn session(&self, id: &str) -> StoreResult<Option<StoredSession>> {
        let mut conn = self.store.connection().await?;
        let fields: HashMap<String, String> =
            redis::cmd("HGETALL").arg(self.key("session", id)).query_async(&mut conn).await.map_err(unavailable)?;
        let Some(data) = fields.get("data") else { return Ok(None) };
        let record = serde_json::from_str(data).map_err(corrupt)?;
        let outcome = fields.get("outcome").map(|o| serde_json::from_str(o)).transpose().map_err(corrupt)?;
        Ok(Some(StoredSession { record, outcome }))
    }

    #[tracing::instrument(name = "store.redeem_token", skip_all, fields(store = "redis"), err(level = "warn"))]
    async fn redeem_token(&self, token: &str) -> StoreResult<Option<String>> {
        let mut conn = self.store.connection().await?;
        redis::cmd("GETDEL").arg(self.key("token", token)).query_async(&mut conn).await.map_err(unavailable)
    }

    #[tracing::instrument(name = "store.put_state", skip_all, fields(store = "redis"), err(level = "warn"))]
    async fn put_state(&self, state: &str, binding: &str, record: &StateRecord, ttl: Duration) -> StoreResult<()> {
        let data = serde_json::to_string(record).expect("a state record serializes");
        let key = self.key("state", state);
        let mut conn = self.store.connection().await?;
        let mut pipe = redis::pipe();
        pipe.atomic().hset_multiple(&key, &[("binding", binding), ("data", &data)]).pexpire(&key, millis(ttl) as i64);
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    #[tracing::instrument(name = "store.take_state", skip_all, fields(store = "redis"), err(level = "warn"))]
    async fn take_state(&self, state: &str, binding: &str) -> StoreResult<Taken> {
        let mut invocation = TAKE_STATE.prepare_invoke();
        invocation.key(self.key("state", state)).arg(binding);
        match self.run::<Value>(&invocation).await? {
            Value::Int(0) => Ok(Taken::Unknown),
            Value::Int(_) => Ok(Taken::Foreign),
            value => {
                let data: String = redis::from_redis_value(value).map_err(|e| StoreError::Corrupt(Box::new(e)))?;
                Ok(Taken::Taken(serde_json::from_str(&data).map_err(corrupt)?))
            }
        }
    }

    #[tracing::instrument(name = "store.finish_session", skip_all, fields(store = "redis"), err(level = "warn"))]
    async fn finish(&self, record: &SessionRecord, outcome: &SessionOutcome) -> StoreResult<bool> {
        let data = serde_json::to_string(outcome).expect("an outcome serializes");
        let mut invocation = FINISH.prepare_invoke();
        invocation.key(self.key("session", &record.id)).key(self.open_key(&record.caller));
        invocation.arg(data).arg(&record.id);
        Ok(self.run::<i64>(&invocation).await? == 1)
    }
}

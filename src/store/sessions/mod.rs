//! Connect sessions in the store (docs/connect.md): the session a caller started, the
//! single-use token of its `/connect/{token}` URL, and the one-time `state` of the provider
//! redirect. Kept in the store, not in a replica, so the callback may land on any replica.
//!
//! The store never sees a secret in the clear: tokens and states are keyed by their SHA-256,
//! the browser-binding secret is held as its hash, and the PKCE verifier arrives sealed
//! (`crypto::Keyring::seal_transient`).
//!
//! Two operations carry the flow's safety and are atomic in both implementations:
//! - [`SessionStore::take_state`]: a state is redeemed at most once (exactly one replica gets
//!   it), and only by the browser holding the binding secret — a request without it neither
//!   redeems the state nor burns it.
//! - [`SessionStore::finish`]: a session ends once; a second outcome is refused.
//!
//! Opening a session also enforces the per-caller cap on open sessions in the same step.

mod memory;
mod redis;

pub use self::memory::MemorySessions;
pub use self::redis::RedisSessions;

use super::{AnyStore, StoreResult};
use crate::domain::{ConnectFailure, SessionStatus};
use std::future::Future;
use std::time::Duration;
use time::OffsetDateTime;

/// A session as started: who asked, for which credential, and where the browser goes back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub provider: String,
    pub subject: String,
    /// The starting caller's identity; empty when the broker authenticates nobody.
    pub caller: String,
    pub return_url: String,
    pub scopes: Vec<String>,
    pub reconnect: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionOutcome {
    pub status: SessionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ConnectFailure>,
    /// The credential version written (CONNECTED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_version: Option<u64>,
}

/// A session and its outcome, once it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub record: SessionRecord,
    pub outcome: Option<SessionOutcome>,
}

/// What the callback needs from the redirect it answers: the session, the instance the
/// state was issued for, and the PKCE verifier, sealed (`None`: the instance has PKCE off).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateRecord {
    pub session_id: String,
    pub provider: String,
    pub sealed_verifier: Option<String>,
}

/// A session to open, with its token and the limits that apply.
#[derive(Debug, Clone, Copy)]
pub struct Opening<'a> {
    pub record: &'a SessionRecord,
    /// SHA-256 of the `/connect/{token}` token.
    pub token: &'a str,
    /// At most this many open (pending, unexpired) sessions per caller.
    pub cap: u32,
    /// Until the session expires: how long the token (and the caller's count) lasts.
    pub ttl: Duration,
    /// How long the session record is kept: its TTL plus the time to read the final status.
    pub keep: Duration,
}

/// What [`SessionStore::take_state`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Redeemed (and gone): the caller is the one that may act on it.
    Taken(StateRecord),
    /// No such state: never issued, expired, or already redeemed.
    Unknown,
    /// The state exists but the binding does not match: left as it was.
    Foreign,
}

/// The session operations of the consent flow. Every implementation must pass the same
/// conformance suite (`tests/api/store_conformance/sessions.rs`).
pub trait SessionStore: Send + Sync + 'static {
    /// Stores the session and its token, unless the caller already has `cap` open sessions;
    /// returns whether it was opened.
    fn open(&self, opening: Opening<'_>) -> impl Future<Output = StoreResult<bool>> + Send;
    /// A session with its outcome; `None` once purged (or never opened).
    fn session(&self, id: &str) -> impl Future<Output = StoreResult<Option<StoredSession>>> + Send;
    /// Redeems a `/connect/{token}` token (its hash): the session id, the first time only.
    fn redeem_token(&self, token: &str) -> impl Future<Output = StoreResult<Option<String>>> + Send;
    /// Stores a state (its hash) bound to a browser (the binding secret's hash), for `ttl`.
    fn put_state(
        &self,
        state: &str,
        binding: &str,
        record: &StateRecord,
        ttl: Duration,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Atomically: if the state exists and its binding is `binding`, deletes and returns it.
    fn take_state(&self, state: &str, binding: &str) -> impl Future<Output = StoreResult<Taken>> + Send;
    /// Records the outcome of a session that has none yet (and stops counting it as open for
    /// its caller); returns whether this call ended it.
    fn finish(
        &self,
        record: &SessionRecord,
        outcome: &SessionOutcome,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// The sessions of the store chosen by configuration: memory (one process) or Redis.
#[derive(Clone)]
pub enum AnySessions {
    Memory(MemorySessions),
    Redis(RedisSessions),
}

impl AnySessions {
    /// Sessions beside `store`'s credentials: in the same Redis, or in this process.
    pub fn beside(store: &AnyStore) -> Self {
        match store {
            AnyStore::Memory(_) => Self::Memory(MemorySessions::new()),
            AnyStore::Redis(redis) => Self::Redis(RedisSessions::new(redis.clone())),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $sessions:ident => $call:expr) => {
        match $self {
            AnySessions::Memory($sessions) => $call.await,
            AnySessions::Redis($sessions) => $call.await,
        }
    };
}

impl SessionStore for AnySessions {
    async fn open(&self, opening: Opening<'_>) -> StoreResult<bool> {
        dispatch!(self, s => s.open(opening))
    }
    async fn session(&self, id: &str) -> StoreResult<Option<StoredSession>> {
        dispatch!(self, s => s.session(id))
    }
    async fn redeem_token(&self, token: &str) -> StoreResult<Option<String>> {
        dispatch!(self, s => s.redeem_token(token))
    }
    async fn put_state(&self, state: &str, binding: &str, record: &StateRecord, ttl: Duration) -> StoreResult<()> {
        dispatch!(self, s => s.put_state(state, binding, record, ttl))
    }
    async fn take_state(&self, state: &str, binding: &str) -> StoreResult<Taken> {
        dispatch!(self, s => s.take_state(state, binding))
    }
    async fn finish(&self, record: &SessionRecord, outcome: &SessionOutcome) -> StoreResult<bool> {
        dispatch!(self, s => s.finish(record, outcome))
    }
}

//! Connect sessions in memory: the embedded default, one process.
//!
//! One std `Mutex` around every map, not tokio's: each operation is a few map operations
//! with no `.await` inside, and holding the one lock is what makes `take_state` (check the
//! binding, then delete) and `finish` (check there is no outcome, then set it) atomic, as
//! their Lua scripts are in Redis. Expired entries are dropped as they are met, and all of
//! them whenever a session opens, so memory stays bounded by what is live.

use super::{Opening, SessionOutcome, SessionRecord, SessionStore, StateRecord, StoredSession, Taken};
use crate::store::StoreResult;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A value and when it goes.
struct Expiring<T> {
    value: T,
    until: Instant,
}

impl<T> Expiring<T> {
    fn new(value: T, ttl: Duration) -> Self {
        Self { value, until: Instant::now() + ttl }
    }

    fn live(&self, now: Instant) -> bool {
        self.until > now
    }
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Expiring<StoredSession>>,
    tokens: HashMap<String, Expiring<String>>,
    /// By state hash: the binding hash and the record.
    states: HashMap<String, Expiring<(String, StateRecord)>>,
    /// Per caller, the open sessions: (until, session id).
    open: HashMap<String, BTreeSet<(Instant, String)>>,
}

impl Inner {
    fn prune(&mut self, now: Instant) {
        self.sessions.retain(|_, s| s.live(now));
        self.tokens.retain(|_, t| t.live(now));
        self.states.retain(|_, s| s.live(now));
        for open in self.open.values_mut() {
            open.retain(|(until, _)| *until > now);
        }
        self.open.retain(|_, open| !open.is_empty());
    }
}

#[derive(Clone, Default)]
pub struct MemorySessions {
    inner: Arc<Mutex<Inner>>,
}

impl MemorySessions {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent before it could panic.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SessionStore for MemorySessions {
    async fn open(&self, opening: Opening<'_>) -> StoreResult<bool> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.prune(now);
        let record = opening.record;
        let open = inner.open.entry(record.caller.clone()).or_default();
        if open.len() >= opening.cap as usize {
            return Ok(false);
        }
        open.insert((now + opening.ttl, record.id.clone()));
        let session = StoredSession { record: record.clone(), outcome: None };
        inner.sessions.insert(record.id.clone(), Expiring::new(session, opening.keep));
        inner.tokens.insert(opening.token.to_owned(), Expiring::new(record.id.clone(), opening.ttl));
        Ok(true)
    }

    async fn session(&self, id: &str) -> StoreResult<Option<StoredSession>> {
        let now = Instant::now();
        Ok(self.lock().sessions.get(id).filter(|s| s.live(now)).map(|s| s.value.clone()))
    }

    async fn redeem_token(&self, token: &str) -> StoreResult<Option<String>> {
        let now = Instant::now();
        Ok(self.lock().tokens.remove(token).filter(|t| t.live(now)).map(|t| t.value))
    }

    async fn put_state(&self, state: &str, binding: &str, record: &StateRecord, ttl: Duration) -> StoreResult<()> {
        let entry = Expiring::new((binding.to_owned(), record.clone()), ttl);
        self.lock().states.insert(state.to_owned(), entry);
        Ok(())
    }

    async fn take_state(&self, state: &str, binding: &str) -> StoreResult<Taken> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(entry) = inner.states.get(state).filter(|s| s.live(now)) else { return Ok(Taken::Unknown) };
        if entry.value.0 != binding {
            return Ok(Taken::Foreign);
        }
        let (_, record) = inner.states.remove(state).expect("found above, under the same lock").value;
        Ok(Taken::Taken(record))
    }

    async fn finish(&self, record: &SessionRecord, outcome: &SessionOutcome) -> StoreResult<bool> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get_mut(&record.id).filter(|s| s.live(now)) else { return Ok(false) };
        if session.value.outcome.is_some() {
            return Ok(false);
        }
        session.value.outcome = Some(*outcome);
        if let Some(open) = inner.open.get_mut(&record.caller) {
            open.retain(|(_, id)| *id != record.id);
        }
        Ok(true)
    }
}

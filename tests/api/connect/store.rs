//! The session-store contract of the consent flow, run against both implementations
//! directly (no HTTP, no gRPC): the per-caller cap, single-use tokens, states redeemed once
//! and only with their binding, one outcome per session.

use crate::harness::{TestRedis, eventually, random_prefix, redis_store};
use credbroker::domain::{ConnectFailure, SessionStatus};
use credbroker::store::sessions::{
    MemorySessions, Opening, RedisSessions, SessionOutcome, SessionRecord, SessionStore, StateRecord, Taken,
};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

const TTL: Duration = Duration::from_secs(600);

fn record(id: &str, caller: &str) -> SessionRecord {
    let now = OffsetDateTime::now_utc();
    SessionRecord {
        id: id.into(),
        provider: "passolution".into(),
        subject: "anna".into(),
        caller: caller.into(),
        return_url: "https://app.example/done".into(),
        scopes: vec!["read".into()],
        reconnect: false,
        created_at: now,
        expires_at: now + TTL,
    }
}

fn opening<'a>(record: &'a SessionRecord, token: &'a str, cap: u32) -> Opening<'a> {
    Opening { record, token, cap, ttl: TTL, keep: TTL * 2 }
}

fn state(session: &str) -> StateRecord {
    StateRecord { session_id: session.into(), provider: "passolution".into(), sealed_verifier: Some("t1:k:x".into()) }
}

const CONNECTED: SessionOutcome =
    SessionOutcome { status: SessionStatus::Connected, failure: None, credential_version: Some(3) };

pub async fn sessions_contract(store: impl SessionStore) {
    let s1 = record("s1", "svc-a");
    assert!(store.open(opening(&s1, "tok1", 2)).await.unwrap());
    let read = store.session("s1").await.unwrap().expect("opened");
    assert_eq!((read.record, read.outcome), (s1.clone(), None));
    assert_eq!(store.session("nope").await.unwrap(), None);

    // Tokens: single use.
    assert_eq!(store.redeem_token("tok1").await.unwrap().as_deref(), Some("s1"));
    assert_eq!(store.redeem_token("tok1").await.unwrap(), None, "a token redeems once");
    assert_eq!(store.redeem_token("never").await.unwrap(), None);

    // The cap counts open sessions per caller; another caller has its own count.
    assert!(store.open(opening(&record("s2", "svc-a"), "tok2", 2)).await.unwrap());
    assert!(!store.open(opening(&record("s3", "svc-a"), "tok3", 2)).await.unwrap(), "over the cap");
    assert_eq!(store.session("s3").await.unwrap(), None, "a refused session stores nothing");
    assert_eq!(store.redeem_token("tok3").await.unwrap(), None);
    assert!(store.open(opening(&record("s4", "svc-b"), "tok4", 2)).await.unwrap());

    // One outcome per session; a finished session no longer counts.
    assert!(store.finish(&s1, &CONNECTED).await.unwrap());
    let denied = SessionOutcome {
        status: SessionStatus::Denied,
        failure: Some(ConnectFailure::AccessDenied),
        credential_version: None,
    };
    assert!(!store.finish(&s1, &denied).await.unwrap(), "the first outcome stays");
    assert_eq!(store.session("s1").await.unwrap().unwrap().outcome, Some(CONNECTED));
    assert!(!store.finish(&record("ghost", "svc-a"), &CONNECTED).await.unwrap(), "no session, no outcome");
    assert!(store.open(opening(&record("s5", "svc-a"), "tok5", 2)).await.unwrap(), "s1 ended: room again");

    // States: redeemed once, only with the binding; a foreign binding burns nothing.
    store.put_state("st1", "bind1", &state("s2"), TTL).await.unwrap();
    assert_eq!(store.take_state("st1", "other").await.unwrap(), Taken::Foreign);
    assert_eq!(store.take_state("st1", "").await.unwrap(), Taken::Foreign);
    assert_eq!(store.take_state("st1", "bind1").await.unwrap(), Taken::Taken(state("s2")));
    assert_eq!(store.take_state("st1", "bind1").await.unwrap(), Taken::Unknown, "replayed");
    assert_eq!(store.take_state("never", "bind1").await.unwrap(), Taken::Unknown);
}

/// Tokens and states expire with their TTL.
pub async fn sessions_expire(store: impl SessionStore) {
    let short = Duration::from_millis(300);
    let s = record("short", "svc");
    assert!(store.open(Opening { record: &s, token: "tok", cap: 1, ttl: short, keep: short }).await.unwrap());
    store.put_state("st", "b", &state("short"), short).await.unwrap();
    eventually("the token, state and session expire", Duration::from_secs(10), || async {
        store.redeem_token("tok").await.unwrap().is_none()
            && store.session("short").await.unwrap().is_none()
            && store.take_state("st", "b").await.unwrap() == Taken::Unknown
    })
    .await;
    // Expired sessions no longer count against the cap.
    assert!(store.open(opening(&record("next", "svc"), "tok2", 1)).await.unwrap());
}

/// Many replicas race for one state: exactly one redeems it.
pub async fn one_state_one_redeemer(store: impl SessionStore + Clone) {
    store.put_state("race", "bind", &state("s"), TTL).await.unwrap();
    let store = Arc::new(store);
    let racers = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.take_state("race", "bind").await.unwrap() })
    });
    let results = futures::future::join_all(racers).await;
    let won = results.into_iter().filter(|r| matches!(r.as_ref().unwrap(), Taken::Taken(_))).count();
    assert_eq!(won, 1);
}

#[tokio::test]
async fn memory_sessions_keep_the_contract() {
    sessions_contract(MemorySessions::new()).await;
    sessions_expire(MemorySessions::new()).await;
    one_state_one_redeemer(MemorySessions::new()).await;
}

#[tokio::test]
async fn redis_sessions_keep_the_contract() {
    let redis = TestRedis::start().await;
    let sessions = || RedisSessions::new(redis_store(&redis.url, &random_prefix()));
    sessions_contract(sessions()).await;
    sessions_expire(sessions()).await;
    one_state_one_redeemer(sessions()).await;
}

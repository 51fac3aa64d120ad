//! Size limits (RESOURCE_EXHAUSTED, both directions), the global byte budget, timeouts
//! (DEADLINE_EXCEEDED, clamped to the configured maximum) and transport failures (UNAVAILABLE).

use super::support::{KIB, ProxyBroker, millis, request, small_limits};
use crate::harness::{Broker, eventually};
use credbroker::proxy::ProxySettings;
use std::time::{Duration, Instant};
use tonic::Code;

/// Long enough for a call to get its turn on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn bodies_past_the_limits_are_resource_exhausted() {
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.seed_bro().await;
    let mut at_limit = request("bro", "org-1", "POST", "data/sink");
    at_limit.body = vec![1; 64 * KIB].into();
    assert_eq!(app.call(at_limit).await.unwrap().status, 200);
    let mut over = request("bro", "org-1", "POST", "data/sink");
    over.body = vec![1; 64 * KIB + 1].into();
    let error = app.call(over).await.unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "{error:?}");
    assert_eq!(app.data_requests().len(), 1, "the oversized request was not sent");

    let fits = app.call(request("bro", "org-1", "GET", &format!("data/blob?size={}", 64 * KIB))).await.unwrap();
    assert_eq!(fits.body, fake_upstream::blob(64 * KIB));
    // Refused from the declared length, and from counting when there is none.
    for path in [format!("data/blob?size={}", 64 * KIB + 1), format!("data/blob?size={}&chunked", 300 * KIB)] {
        let error = app.call(request("bro", "org-1", "GET", &path)).await.unwrap_err();
        assert_eq!(error.code(), Code::ResourceExhausted, "{path}: {error:?}");
    }
}

#[tokio::test]
async fn timeouts_are_deadline_exceeded_and_clamped_to_the_maximum() {
    let settings = ProxySettings {
        default_timeout: Duration::from_millis(700),
        max_timeout: Duration::from_millis(400),
        ..small_limits()
    };
    let app = Broker::new().fake().proxy(settings).start().await;
    app.seed_bro().await;
    let mut quick = request("bro", "org-1", "GET", "data/slow?ms=50");
    quick.timeout = millis(300);
    assert_eq!(app.call(quick).await.unwrap().status, 200);
    for (asked, limit) in [(Some(150), 150), (Some(60_000), 400), (None, 400)] {
        let mut slow = request("bro", "org-1", "GET", "data/slow?ms=3000");
        slow.timeout = asked.and_then(millis);
        let started = Instant::now();
        let error = app.call(slow).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(error.code(), Code::DeadlineExceeded, "{asked:?}: {error:?}");
        // `None` gets the default (700 ms), clamped to the maximum too.
        assert!(
            took >= Duration::from_millis(limit) && took < Duration::from_millis(limit + 1500),
            "{asked:?}: {took:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_upstream_is_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{closed}/api/v2/");
    let app = Broker::new()
        .fake()
        .proxy(small_limits())
        .envs(&[("CREDBROKER__PROVIDERS__BRO__API_BASE_URL", &base)])
        .start()
        .await;
    app.seed_bro().await;
    let error = app.call(request("bro", "org-1", "GET", "data/echo")).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert!(!error.message().contains(&closed.to_string()), "no address in the message: {}", error.message());
}

#[tokio::test]
async fn the_global_byte_budget_refuses_calls_that_would_hold_too_much() {
    // Room for one 60 KiB body, not two.
    let app = Broker::new()
        .fake()
        .proxy(ProxySettings { max_in_flight_bytes: 100 * KIB as u64, ..small_limits() })
        .start()
        .await;
    app.seed_bro().await;
    let with_body = |path: &str| {
        let mut call = request("bro", "org-1", "GET", path);
        call.body = vec![3; 60 * KIB].into();
        call.timeout = millis(30_000);
        call
    };
    // Whichever call holds its bytes first makes the other one refused: the slow one retries.
    let holding = || async {
        match app.call(with_body("data/slow?ms=4000")).await {
            Err(e) if e.code() == Code::ResourceExhausted => Err(e),
            other => Ok(other),
        }
    };
    let holding = eventually("the slow call holds its bytes", PATIENCE, holding);
    // Served while the slow call's body is not held yet: call again.
    let refused = || async { app.call(with_body("data/echo")).await.err() };
    let refused = eventually("a call is refused while the other holds its bytes", PATIENCE, refused);
    let (held, refused) = futures::future::join(holding, refused).await;
    assert_eq!(held.unwrap().status, 200, "the call holding the bytes is served");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let message = refused.message();
    assert!(message.contains(&format!("proxy.max_in_flight_bytes = {}", 100 * KIB)), "{message}");
    // Its bytes came back with it.
    assert_eq!(app.call(with_body("data/echo")).await.unwrap().status, 200);
}

//! Refreshes refused before the refresh token was touched — rate-limited (429) or the token
//! endpoint unreachable: the attempt is reopened, never left open or flagged, and the token is
//! sent again once it can be.

use crate::harness::{Broker, eventually, issue_tokens};
use credbroker::grpc::pb::CredentialState;
use fake_upstream::Operation;
use std::time::Duration;
use tonic::Code;

/// 429 is answered before the token is touched: the attempt is reopened, the fleet backs off
/// for Retry-After (the next request queues until then), and the refresh then goes through
/// with the same token, redeemed once.
#[tokio::test]
async fn rate_limited_refresh_reopens_and_backs_off() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().knobs().update(|c| c.passolution_rate_window = Duration::from_secs(2));
    let (_, refresh, tokens) = issue_tokens(app.fake(), Duration::from_secs(1));
    // Before the credential is stored: the 1 s token is due at once (see above).
    app.fake().knobs().set_passolution_rate_limit(0);
    app.put("passolution", "u", tokens).await.unwrap();
    let error = app.get("passolution", "u").await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert_eq!(app.status("passolution", "u").await.unwrap().state(), CredentialState::Active, "reopened");
    app.fake().knobs().set_passolution_rate_limit(300);
    // The next refresh queues for the fleet's budget until Retry-After has passed, then goes.
    assert!(app.get("passolution", "u").await.is_ok());
    let grants = app.fake().ledger().find(|e| e.operation == Operation::RefreshTokenGrant);
    let (limited, issued) = (&grants[0], grants.last().unwrap());
    assert!(matches!(limited.outcome, fake_upstream::Outcome::Refused { status: 429, .. }), "{grants:?}");
    let gap = issued.at.duration_since(limited.at).unwrap();
    assert!(gap >= Duration::from_millis(900), "sent {gap:?} after the 429, before its Retry-After");
    assert_eq!(app.fake().ledger().redemptions_of(&refresh), 1);
    assert!(app.fake().ledger().violations().is_empty());
}

#[tokio::test]
async fn unreachable_token_url_reopens_the_attempt() {
    // A port held for the test's length but never listening: connecting is refused, and no
    // other test's server can take it meanwhile (a port merely found free could be, and an
    // answer from it would make the attempt indeterminate, not reopened).
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = format!("http://{}/oauth/token", held.local_addr().unwrap());
    let app = Broker::new()
        .fake()
        .quick_renewals()
        .env("CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL", &closed)
        .start()
        .await;
    let (_, _, tokens) = issue_tokens(app.fake(), Duration::from_secs(1));
    app.put("passolution", "u", tokens).await.unwrap();
    assert_eq!(app.get("passolution", "u").await.unwrap_err().code(), Code::Unavailable);
    // Reopened: safe to retry. The token is due, so another attempt (a caller's or the
    // refresh-ahead's) may be under way at any moment — REFRESHING while it runs — but each
    // one ends reopened, never INDETERMINATE or REAUTH_REQUIRED, and none stays open.
    let settled = || async {
        let state = app.status("passolution", "u").await.unwrap().state();
        assert!(matches!(state, CredentialState::Active | CredentialState::Refreshing), "{state:?}");
        if state == CredentialState::Active { Ok(()) } else { Err(state) }
    };
    eventually("no attempt stays open", Duration::from_secs(20), settled).await;
    drop(held);
}

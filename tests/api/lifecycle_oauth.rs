//! Passolution: code exchange, rotation through the write-once journal, every failure answer,
//! herds and ReportRejected — on both stores.

use crate::both_stores;
use crate::harness::{
    Broker, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, StoreKind, TestBroker, bro_code, bro_token, eventually,
    issue_tokens, only_header, secs,
};
use base64::Engine;
use credbroker::grpc::pb::{self, CredentialState, put_credential_request::Secret as PutSecret};
use fake_upstream::{FailureMode, Operation, Provider, RefreshErrorStyle, Times};
use sha2::Digest;
use std::time::Duration;
use tonic::Code;

fn refresh_grants(fake: &fake_upstream::FakeUpstream) -> usize {
    fake.ledger().count(|e| e.operation == Operation::RefreshTokenGrant)
}

async fn passolution_rotation_redeems_each_refresh_token_once(store: StoreKind) {
    let app = Broker::on(store).fake().quick_renewals().start().await;
    let (old_access, old_refresh, tokens) = issue_tokens(app.fake(), Duration::from_secs(3));
    app.put("passolution", "u", tokens).await.unwrap();
    // Valid for 1 s more: the imported access token is served as it is.
    let first = app.get_valid_for("passolution", "u", secs(1)).await.unwrap();
    assert_eq!(only_header(&first).1, format!("Bearer {old_access}"));
    assert_eq!(refresh_grants(app.fake()), 0);
    // 30 s cannot be met: refreshed once at its planned renewal (the request waits for it),
    // with the old refresh token, which is then dead.
    let second = app.get("passolution", "u").await.unwrap();
    assert_ne!(only_header(&second).1, only_header(&first).1);
    assert_eq!(app.fake().ledger().redemptions_of(&old_refresh), 1);
    assert!(app.fake().ledger().violations().is_empty(), "{:?}", app.fake().ledger().violations());
    let status = app.status("passolution", "u").await.unwrap();
    assert_eq!((status.state(), status.version), (CredentialState::Active, 3), "put, reserve, commit");
    // The new refresh token works in turn (a forced renewal through ReportRejected).
    app.report("passolution", "u", &second.token_fingerprint).await.unwrap();
    let third = app.get("passolution", "u").await.unwrap();
    assert_ne!(third.token_fingerprint, second.token_fingerprint);
    assert_eq!(refresh_grants(app.fake()), 2);
    assert!(app.fake().ledger().violations().is_empty());
}

both_stores!(passolution_rotation_redeems_each_refresh_token_once);

#[tokio::test]
async fn passolution_authorization_code_is_exchanged_with_pkce() {
    let app = Broker::new().fake().quick_renewals().start().await;
    let verifier = "a-very-long-pkce-code-verifier-0123456789-abcdefghijklmnop";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier));
    let code = app.fake().issue_passolution_code(CLIENT_ID, Some(&challenge));
    let put = |code: &str, verifier: &str| {
        PutSecret::AuthorizationCode(pb::AuthorizationCode {
            code: code.into(),
            redirect_uri: REDIRECT_URI.into(),
            code_verifier: verifier.into(),
        })
    };
    let wrong = app.put("passolution", "u", put(&code, "not-the-verifier-0123456789-0123456789-xx")).await.unwrap_err();
    assert_eq!(wrong.code(), Code::FailedPrecondition, "{wrong:?}");
    assert_eq!(app.status("passolution", "u").await.unwrap_err().code(), Code::NotFound, "nothing stored");
    let code = app.fake().issue_passolution_code(CLIENT_ID, Some(&challenge));
    let status = app.put("passolution", "u", put(&code, verifier)).await.unwrap();
    assert!(status.access_expires_at.is_some());
    let response = app.get("passolution", "u").await.unwrap();
    assert!(only_header(&response).1.starts_with("Bearer "));
    assert_eq!(app.fake().ledger().count(|e| e.operation == Operation::AuthorizationCodeGrant), 2);
}

#[tokio::test]
async fn passolution_replayed_refresh_token_needs_reauthorization_in_both_server_styles() {
    for style in [RefreshErrorStyle::Newer, RefreshErrorStyle::Older] {
        let app = Broker::new().fake().quick_renewals().start().await;
        app.fake().knobs().set_passolution_error_style(style);
        let (_, refresh, tokens) = issue_tokens(app.fake(), Duration::from_secs(1));
        // Someone else — another client of the same OAuth app — redeems it first.
        let token_url = format!("{}oauth/token", app.fake().url(Provider::Passolution));
        let grant = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ];
        let redeemed = reqwest::Client::new().post(token_url).form(&grant).send().await.unwrap();
        assert!(redeemed.status().is_success(), "{redeemed:?}");
        app.put("passolution", "u", tokens).await.unwrap();
        let error = app.get("passolution", "u").await.unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition, "{style:?}: {error:?}");
        let status = app.status("passolution", "u").await.unwrap();
        assert_eq!(status.state(), CredentialState::ReauthRequired, "{style:?}");
        assert!(status.detail.contains("revoked"), "{style:?}: {}", status.detail);
        assert!(!status.detail.contains(&refresh));
    }
}

/// Polls the credential's status until it reaches `state` (generous deadline), calling for
/// it in between: a caller may be the one that probes.
async fn await_state(app: &TestBroker, provider: &str, subject: &str, state: CredentialState) -> pb::CredentialStatus {
    let reached = || async {
        let status = app.status(provider, subject).await.unwrap();
        if status.state() == state {
            return Ok(status);
        }
        let _ = app.get(provider, subject).await;
        Err(status)
    };
    eventually(&format!("the credential reaches {state:?}"), Duration::from_secs(20), reached).await
}

/// Tokens that live 20 s are renewed at ~10 % of that (`REFRESH_AHEAD`): the refresh happens
/// within about two seconds, and the old access token is still alive when it is probed.
const PROBED: (&str, &str) = ("CREDBROKER__UPSTREAM__REFRESH_AHEAD", "0.1");

/// The provider commits the refresh, then the reply is lost: the broker cannot know the
/// outcome, so it flags the credential and never sends that refresh token again. The probe
/// then finds the old access token revoked within its lifetime: the refresh happened, its
/// answer was lost — re-authorization needed, and said so.
async fn lost_reply(store: StoreKind, mode: FailureMode) {
    let app = Broker::on(store).fake().quick_renewals().envs(&[PROBED]).start().await;
    let (_, refresh, tokens) = issue_tokens(app.fake(), Duration::from_secs(20));
    app.put("passolution", "u", tokens).await.unwrap();
    app.fake().knobs().fail_only(Provider::Passolution, Operation::RefreshTokenGrant, mode.clone(), Times::Next(1));
    // UNAVAILABLE while the outcome is unknown — or already FAILED_PRECONDITION when the
    // scheduler made the refresh and a caller's retry ran the probe.
    let error = app.get("passolution", "u").await.unwrap_err();
    assert!(matches!(error.code(), Code::Unavailable | Code::FailedPrecondition), "{error:?}");
    let settled = await_state(&app, "passolution", "u", CredentialState::ReauthRequired).await;
    assert!(settled.detail.contains("answer was lost"), "{}", settled.detail);
    assert_eq!(app.get("passolution", "u").await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(app.fake().ledger().attempts_with(&refresh), 1, "sent exactly once");
    assert!(app.fake().ledger().violations().is_empty());
}

async fn passolution_commit_then_drop_is_probed_never_resent(store: StoreKind) {
    lost_reply(store, FailureMode::CommitThenDrop).await;
}

both_stores!(passolution_commit_then_drop_is_probed_never_resent);

#[tokio::test]
async fn passolution_commit_then_hang_is_probed_never_resent() {
    lost_reply(StoreKind::Memory, FailureMode::CommitThenHang).await;
}

/// A 5xx or a hang the provider never processed: INDETERMINATE, never resent blindly; the
/// probe finds the old access token alive, so the refresh never happened: reopened and sent
/// again — the token is redeemed once.
#[tokio::test]
async fn passolution_unprocessed_5xx_and_hang_are_probed_alive_and_refreshed() {
    for mode in [FailureMode::Status(503), FailureMode::Hang] {
        let app = Broker::new().fake().quick_renewals().envs(&[PROBED]).start().await;
        let (_, refresh, tokens) = issue_tokens(app.fake(), Duration::from_secs(20));
        app.put("passolution", "u", tokens).await.unwrap();
        app.fake().knobs().fail_only(Provider::Passolution, Operation::RefreshTokenGrant, mode.clone(), Times::Next(1));
        // UNAVAILABLE while unknown (or, when the scheduler met the failure, already served).
        if let Err(error) = app.get("passolution", "u").await {
            assert_eq!(error.code(), Code::Unavailable, "{mode:?}");
        }
        let served = || async { app.get("passolution", "u").await };
        eventually(&format!("{mode:?}: served again"), Duration::from_secs(20), served).await;
        assert_eq!(app.status("passolution", "u").await.unwrap().state(), CredentialState::Active);
        assert_eq!(app.fake().ledger().attempts_with(&refresh), 2, "{mode:?}: sent again only after the probe");
        assert_eq!(app.fake().ledger().redemptions_of(&refresh), 1, "{mode:?}");
        assert!(app.fake().ledger().violations().is_empty());
    }
}

/// A provider that answers a dead token with 403: with `rejected_statuses` naming it, the
/// probe reads the 403 as "revoked" (the refresh happened, its answer was lost); without, a
/// 403 proves nothing and the credential stays INDETERMINATE — never resent, never claimed.
#[tokio::test]
async fn passolution_the_probe_reads_the_configured_rejection_statuses() {
    for (configured, settled) in [("401,403", CredentialState::ReauthRequired), ("401", CredentialState::Indeterminate)]
    {
        let app = Broker::new()
            .fake()
            .quick_renewals()
            .envs(&[PROBED, ("CREDBROKER__PROVIDERS__PASSOLUTION__REJECTED_STATUSES", configured)])
            .start()
            .await;
        app.fake().knobs().update(|c| c.passolution_unauthenticated_status = 403);
        let (_, refresh, tokens) = issue_tokens(app.fake(), Duration::from_secs(20));
        app.put("passolution", "u", tokens).await.unwrap();
        let drop = FailureMode::CommitThenDrop;
        app.fake().knobs().fail_only(Provider::Passolution, Operation::RefreshTokenGrant, drop, Times::Next(1));
        assert!(app.get("passolution", "u").await.is_err());
        // Until a probe has been made (the fake sees it on the probe path).
        let probed = || async {
            let probed = app.fake().traffic().requests().iter().any(|r| r.uri.contains("infosystem/passolution"));
            if !probed {
                let _ = app.get("passolution", "u").await;
            }
            probed
        };
        eventually(&format!("{configured}: a probe is made"), Duration::from_secs(20), probed).await;
        let status = if settled == CredentialState::ReauthRequired {
            await_state(&app, "passolution", "u", settled).await
        } else {
            app.status("passolution", "u").await.unwrap()
        };
        assert_eq!(status.state(), settled, "{configured}: {status:?}");
        assert_eq!(app.fake().ledger().attempts_with(&refresh), 1, "{configured}: never resent");
    }
}

/// The probe knows what it knows: when the old access token expired before it could be
/// probed, a rejection proves nothing. The credential needs re-authorization, and its reason
/// says the outcome is unknown — not that the refresh happened (here it did not).
#[tokio::test]
async fn passolution_a_probe_after_expiry_says_outcome_unknown() {
    let app = Broker::new().fake().quick_renewals().start().await;
    let (_, refresh, tokens) = issue_tokens(app.fake(), Duration::from_secs(1));
    // Never processed; the request times out after 2 s, when the 1 s token has expired. Set
    // before the credential is stored: a token this short is due at once, and the broker may
    // refresh it ahead of any caller.
    app.fake().knobs().fail_only(
        Provider::Passolution,
        Operation::RefreshTokenGrant,
        FailureMode::Hang,
        Times::Next(1),
    );
    app.put("passolution", "u", tokens).await.unwrap();
    let error = app.get("passolution", "u").await.unwrap_err();
    assert!(matches!(error.code(), Code::Unavailable | Code::FailedPrecondition), "{error:?}");
    let settled = await_state(&app, "passolution", "u", CredentialState::ReauthRequired).await;
    assert!(settled.detail.starts_with("outcome unknown"), "{}", settled.detail);
    assert!(!settled.detail.contains("was processed"), "{}", settled.detail);
    assert_eq!(app.fake().ledger().redemptions_of(&refresh), 0, "the refresh token is alive and was never redeemed");
    assert_eq!(app.fake().ledger().attempts_with(&refresh), 1, "and never resent");
}

/// 429 is answered before the token is touched: the attempt is reopened, the fleet backs off
/// for Retry-After (the next request queues until then), and the refresh then goes through
/// with the same token, redeemed once.
#[tokio::test]
async fn passolution_rate_limited_refresh_reopens_and_backs_off() {
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
async fn passolution_unreachable_token_url_reopens_the_attempt() {
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

async fn a_herd_on_an_expired_token_causes_one_refresh(store: StoreKind) {
    let app = Broker::on(store).fake().quick_renewals().start().await;
    app.fake().knobs().set_latency(Provider::Passolution, Duration::from_millis(100));
    let (_, refresh, tokens) = issue_tokens(app.fake(), Duration::from_secs(1));
    app.put("passolution", "herd", tokens).await.unwrap();
    let answers = app.herd("passolution", "herd", 500).await;
    assert_eq!(answers.len(), 1, "all 500 callers got the same new header");
    assert_eq!(refresh_grants(app.fake()), 1, "exactly one upstream refresh");
    assert_eq!(app.fake().ledger().redemptions_of(&refresh), 1);
}

both_stores!(a_herd_on_an_expired_token_causes_one_refresh);

#[tokio::test]
async fn many_reports_of_one_header_cause_one_refresh_and_old_reports_none() {
    let app = Broker::new().fake().quick_renewals().start().await;
    let (_, _, tokens) = issue_tokens(app.fake(), Duration::from_secs(3600));
    app.put("passolution", "u", tokens).await.unwrap();
    let first = app.get("passolution", "u").await.unwrap();
    let reports: Vec<_> = (0..20)
        .map(|_| {
            let (clients, fp) = ((*app).clone(), first.token_fingerprint.clone());
            tokio::spawn(async move { clients.report("passolution", "u", &fp).await })
        })
        .collect();
    for r in reports {
        r.await.unwrap().unwrap();
    }
    assert_eq!(refresh_grants(app.fake()), 1);
    let second = app.get("passolution", "u").await.unwrap();
    assert_ne!(second.token_fingerprint, first.token_fingerprint);
    app.report("passolution", "u", &first.token_fingerprint).await.unwrap();
    assert_eq!(refresh_grants(app.fake()), 1, "a report for an older header changes nothing");
    // Static credentials cannot be renewed: a report is accepted and changes nothing.
    app.put("bro", "org", bro_token("u|1", &bro_code("c"))).await.unwrap();
    let bro = app.get("bro", "org").await.unwrap();
    app.report("bro", "org", &bro.token_fingerprint).await.unwrap();
    assert_eq!(app.get("bro", "org").await.unwrap(), bro);
    let bad = app.report("passolution", "u", "").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn passolution_empty_subject_is_a_client_credentials_token() {
    let app = Broker::new().fake().quick_renewals().start().await;
    let response = app.get("passolution", "").await.unwrap();
    assert!(only_header(&response).1.starts_with("Bearer "));
    assert_eq!(app.get("passolution", "").await.unwrap(), response, "cached");
    assert_eq!(app.fake().ledger().count(|e| e.operation == Operation::ClientCredentialsGrant), 1);
}

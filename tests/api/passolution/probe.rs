//! A refresh whose outcome the broker cannot know (the reply was lost, the provider hung or
//! answered 5xx): the credential is flagged, the refresh token never resent blindly, and the
//! probe decides — revoked within its lifetime means the refresh happened (re-authorize),
//! alive means it did not (reopen and send again), and after expiry it knows nothing.

use super::{PROBED, await_state};
use crate::both_stores;
use crate::harness::{Broker, StoreKind, eventually, issue_tokens};
use credbroker::grpc::pb::CredentialState;
use fake_upstream::{FailureMode, Operation, Provider, Times};
use std::time::Duration;
use tonic::Code;

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

async fn commit_then_drop_is_probed_never_resent(store: StoreKind) {
    lost_reply(store, FailureMode::CommitThenDrop).await;
}

both_stores!(commit_then_drop_is_probed_never_resent);

#[tokio::test]
async fn commit_then_hang_is_probed_never_resent() {
    lost_reply(StoreKind::Memory, FailureMode::CommitThenHang).await;
}

/// A 5xx or a hang the provider never processed: INDETERMINATE, never resent blindly; the
/// probe finds the old access token alive, so the refresh never happened: reopened and sent
/// again — the token is redeemed once.
#[tokio::test]
async fn unprocessed_5xx_and_hang_are_probed_alive_and_refreshed() {
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
async fn the_probe_reads_the_configured_rejection_statuses() {
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
async fn a_probe_after_expiry_says_outcome_unknown() {
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

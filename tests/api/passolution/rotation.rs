//! Obtaining Passolution tokens (an authorization code with PKCE, client credentials for the
//! empty subject) and rotating them through the write-once journal; a refresh token someone
//! else redeemed first.

use super::refresh_grants;
use crate::both_stores;
use crate::harness::{Broker, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, StoreKind, issue_tokens, only_header, secs};
use base64::Engine;
use credbroker::grpc::pb::{self, CredentialState, put_credential_request::Secret as PutSecret};
use fake_upstream::{Operation, Provider, RefreshErrorStyle};
use sha2::Digest;
use std::time::Duration;
use tonic::Code;

async fn each_refresh_token_is_redeemed_once(store: StoreKind) {
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

both_stores!(each_refresh_token_is_redeemed_once);

#[tokio::test]
async fn authorization_code_is_exchanged_with_pkce() {
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
async fn empty_subject_is_a_client_credentials_token() {
    let app = Broker::new().fake().quick_renewals().start().await;
    let response = app.get("passolution", "").await.unwrap();
    assert!(only_header(&response).1.starts_with("Bearer "));
    assert_eq!(app.get("passolution", "").await.unwrap(), response, "cached");
    assert_eq!(app.fake().ledger().count(|e| e.operation == Operation::ClientCredentialsGrant), 1);
}

#[tokio::test]
async fn replayed_refresh_token_needs_reauthorization_in_both_server_styles() {
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

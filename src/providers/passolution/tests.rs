//! The Passolution token client against the fake Passport server: grants, rotation, and how
//! every way a refresh can fail is classified.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fake_upstream::{FailureMode, FakeUpstream, Operation, Provider, RefreshErrorStyle, Times};
use sha2::{Digest, Sha256};

use super::*;
use crate::providers::http::test_support::{
    assert_expires_in, client, closed_port_url, fake, impatient_client, refresh, url,
};

const CLIENT: &str = "broker-app";
const CLIENT_SECRET: &str = "client-secret-Zq8vR2";
const REDIRECT: &str = "https://broker.example/callback";
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

async fn setup() -> (FakeUpstream, PassolutionSettings) {
    let fake = fake().await;
    fake.add_passolution_client(CLIENT, CLIENT_SECRET, REDIRECT);
    let base = fake.url(Provider::Passolution);
    let settings = PassolutionSettings {
        api_base_url: url(&format!("{base}api/v2/")),
        token_url: url(&format!("{base}oauth/token")),
        client_id: CLIENT.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        token_budget_per_minute: 240,
        probe_path: PROBE_PATH.into(),
        refresh_token_lifetime: YEAR,
    };
    (fake, settings)
}

/// Refreshes `refresh_token` and classifies the failure it must be.
async fn failed_refresh(http: &HttpClient, s: &PassolutionSettings, refresh_token: &str) -> RefreshFailure {
    let err = refresh(http, s, &Secret::new(refresh_token)).await.expect_err("the refresh fails");
    classify_refresh_error(&err)
}

#[tokio::test]
async fn a_code_is_exchanged_with_its_pkce_verifier() {
    let (fake, s) = setup().await;
    let verifier = Secret::new("x".repeat(20) + "-verifier-with-enough-entropy-0123456789");
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose().as_bytes()));
    let code = Secret::new(fake.issue_passolution_code(CLIENT, Some(&challenge)));
    let http = client();
    let wrong = Secret::new("y".repeat(43));
    let err = exchange_code(&http, &s, &code, REDIRECT, Some(&wrong)).await.unwrap_err();
    assert!(matches!(&err, UpstreamError::Refused { status: 400, reason, .. } if reason.starts_with("invalid_grant")));
    let tokens = exchange_code(&http, &s, &code, REDIRECT, Some(&verifier)).await.unwrap();
    assert!(tokens.refresh_token.is_some());
    assert_expires_in(tokens.expires_at, YEAR, Duration::from_secs(5));
    assert!(probe(&http, &s, &tokens.access_token, &[401]).await.unwrap() == Probe::Alive);
    let err = exchange_code(&http, &s, &code, REDIRECT, Some(&verifier)).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Refused { status: 400, .. }), "a code is single-use: {err:?}");
}

#[tokio::test]
async fn a_refresh_rotates_both_tokens_once() {
    let (fake, s) = setup().await;
    let (access, refresh_token) = fake.issue_passolution_tokens(CLIENT);
    let (access, refresh_token) = (Secret::new(access), Secret::new(refresh_token));
    let http = client();
    assert!(probe(&http, &s, &access, &[401]).await.unwrap() == Probe::Alive, "alive before the refresh");
    let tokens = refresh(&http, &s, &refresh_token).await.unwrap();
    let new_refresh = tokens.refresh_token.clone().expect("a rotated refresh token");
    assert_ne!(new_refresh, refresh_token);
    assert_ne!(tokens.access_token, access);
    assert_eq!(fake.ledger().redemptions_of(refresh_token.expose()), 1);
    assert!(
        matches!(probe(&http, &s, &access, &[401]).await.unwrap(), Probe::Rejected { status: 401 }),
        "the old access token is revoked at once"
    );
    assert!(probe(&http, &s, &tokens.access_token, &[401]).await.unwrap() == Probe::Alive);
}

#[tokio::test]
async fn a_replayed_refresh_token_is_rejected_in_both_error_styles() {
    let (fake, s) = setup().await;
    let http = client();
    for style in [RefreshErrorStyle::Newer, RefreshErrorStyle::Older] {
        fake.knobs().set_passolution_error_style(style);
        let (_, old) = fake.issue_passolution_tokens(CLIENT);
        refresh(&http, &s, &Secret::new(old.clone())).await.unwrap();
        let failure = failed_refresh(&http, &s, &old).await;
        assert!(
            matches!(&failure, RefreshFailure::Rejected { reason } if reason.contains("Token has been revoked")),
            "{style:?}: {failure:?}"
        );
        assert_eq!(fake.ledger().redemptions_of(&old), 1);
    }
}

#[tokio::test]
async fn rate_limiting_is_not_processed_and_says_when_to_come_back() {
    let (fake, s) = setup().await;
    fake.knobs().set_passolution_rate_limit(0);
    let (_, refresh_token) = fake.issue_passolution_tokens(CLIENT);
    let failure = failed_refresh(&client(), &s, &refresh_token).await;
    let RefreshFailure::NotProcessed { retry_after: Some(wait), .. } = failure else {
        panic!("a 429 is not processed and has a Retry-After: {failure:?}");
    };
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60), "{wait:?}");
    assert_eq!(fake.ledger().redemptions_of(&refresh_token), 0);
}

#[tokio::test]
async fn a_wrong_client_secret_is_not_processed_and_flags_configuration() {
    let (fake, mut s) = setup().await;
    s.client_secret = Secret::new("not-the-secret");
    let (_, refresh_token) = fake.issue_passolution_tokens(CLIENT);
    let failure = failed_refresh(&client(), &s, &refresh_token).await;
    assert!(
        matches!(&failure, RefreshFailure::NotProcessed { retry_after: None, reason } if reason.contains("configuration")),
        "{failure:?}"
    );
    assert_eq!(fake.ledger().redemptions_of(&refresh_token), 0);
}

#[tokio::test]
async fn a_reply_lost_after_the_commit_is_unknown_and_the_probe_resolves_it() {
    let (fake, s) = setup().await;
    let (access, refresh_token) = fake.issue_passolution_tokens(CLIENT);
    let refresh_grant = Operation::RefreshTokenGrant;
    fake.knobs().fail_only(Provider::Passolution, refresh_grant, FailureMode::CommitThenDrop, Times::Next(1));
    let http = client();
    let failure = failed_refresh(&http, &s, &refresh_token).await;
    assert!(matches!(failure, RefreshFailure::Unknown { .. }), "{failure:?}");
    assert_eq!(fake.ledger().redemptions_of(&refresh_token), 1, "the provider did redeem it");
    assert!(
        matches!(probe(&http, &s, &Secret::new(access), &[401]).await.unwrap(), Probe::Rejected { status: 401 }),
        "the old access token died: it happened"
    );
}

#[tokio::test]
async fn a_request_dropped_before_processing_is_unknown_too_and_the_probe_says_so() {
    let (fake, s) = setup().await;
    let (access, refresh_token) = fake.issue_passolution_tokens(CLIENT);
    fake.knobs().fail(Provider::Passolution, FailureMode::DropBeforeProcessing, Times::Next(1));
    let http = client();
    let failure = failed_refresh(&http, &s, &refresh_token).await;
    assert!(matches!(failure, RefreshFailure::Unknown { .. }), "{failure:?}");
    assert_eq!(fake.ledger().attempts_with(&refresh_token), 1, "sent once, never resent");
    assert!(
        probe(&http, &s, &Secret::new(access), &[401]).await.unwrap() == Probe::Alive,
        "the old access token lives: it did not happen"
    );
}

#[tokio::test]
async fn a_hanging_token_endpoint_is_unknown() {
    let (fake, s) = setup().await;
    let (_, refresh_token) = fake.issue_passolution_tokens(CLIENT);
    fake.knobs().fail(Provider::Passolution, FailureMode::Hang, Times::UntilReset);
    let failure = failed_refresh(&impatient_client(Duration::from_millis(300)), &s, &refresh_token).await;
    assert!(matches!(failure, RefreshFailure::Unknown { .. }), "{failure:?}");
}

#[tokio::test]
async fn a_server_error_is_unknown() {
    let (fake, s) = setup().await;
    let (_, refresh_token) = fake.issue_passolution_tokens(CLIENT);
    fake.knobs().fail(Provider::Passolution, FailureMode::Status(503), Times::Next(1));
    let failure = failed_refresh(&client(), &s, &refresh_token).await;
    assert!(matches!(failure, RefreshFailure::Unknown { .. }), "{failure:?}");
}

#[tokio::test]
async fn a_closed_port_is_not_processed() {
    let (_fake, mut s) = setup().await;
    s.token_url = closed_port_url().join("oauth/token").unwrap();
    let failure = failed_refresh(&client(), &s, "def50200-some-refresh-token").await;
    assert!(matches!(failure, RefreshFailure::NotProcessed { retry_after: None, .. }), "{failure:?}");
}

#[tokio::test]
async fn client_credentials_come_without_a_refresh_token() {
    let (_fake, s) = setup().await;
    let http = client();
    let tokens = client_credentials(&http, &s).await.unwrap();
    assert!(tokens.refresh_token.is_none());
    assert_expires_in(tokens.expires_at, YEAR, Duration::from_secs(5));
    assert!(probe(&http, &s, &tokens.access_token, &[401]).await.unwrap() == Probe::Alive);
}

#[tokio::test]
async fn a_probe_failure_other_than_401_is_an_error() {
    let (_fake, mut s) = setup().await;
    s.api_base_url = closed_port_url();
    let err = probe(&client(), &s, &Secret::new("eyJ-access"), &[401]).await.unwrap_err();
    assert!(matches!(err, UpstreamError::NotSent { .. }), "{err:?}");
}

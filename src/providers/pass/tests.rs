//! The PASS token client against the fake PASS.

use std::time::{Duration, SystemTime};

use fake_upstream::{FakeUpstream, Provider};

use super::*;
use crate::providers::http::test_support::{assert_expires_in, client, fake, url};

const PASSWORD: &str = "Geheim-wachtwoord-1";

async fn setup() -> (FakeUpstream, PassSettings) {
    let fake = fake().await;
    fake.add_pass_user("anna", PASSWORD, true);
    fake.add_pass_user("bert", PASSWORD, false);
    let settings =
        PassSettings { api_base_url: url(&fake.url(Provider::Pass)), api_key: Secret::new(fake.pass_api_key()) };
    (fake, settings)
}

fn fake_expiry(fake: &FakeUpstream, token: &Secret) -> OffsetDateTime {
    let at: SystemTime = fake.pass_token_expiry(token.expose()).expect("the fake knows the token");
    OffsetDateTime::from(at)
}

/// PASS dates carry milliseconds.
fn assert_same_millis(a: OffsetDateTime, b: OffsetDateTime) {
    assert!((a - b).abs() < time::Duration::milliseconds(1), "{a} vs {b}");
}

#[tokio::test]
async fn login_returns_the_token_and_its_expiry() {
    let (fake, s) = setup().await;
    let tokens = login(&client(), &s, "anna", &Secret::new(PASSWORD)).await.unwrap();
    assert!(!tokens.access_token.is_empty());
    assert!(tokens.refresh_token.is_none());
    assert_same_millis(tokens.expires_at, fake_expiry(&fake, &tokens.access_token));
    assert_expires_in(tokens.expires_at, Duration::from_secs(7 * 24 * 3600), Duration::from_secs(5));
}

#[tokio::test]
async fn login_refusals_keep_pass_reasons() {
    let (_fake, s) = setup().await;
    let http = client();
    for (user, password, expected) in [
        ("anna", "wrong", "Authentication failed"),
        ("bert", PASSWORD, "User not active"),
        ("carl", "x", "User not found"),
    ] {
        let err = login(&http, &s, user, &Secret::new(password)).await.unwrap_err();
        assert!(
            matches!(&err, UpstreamError::Refused { status: 401, reason, .. } if reason == expected),
            "{user}: {err:?}"
        );
    }
}

#[tokio::test]
async fn refresh_keeps_the_token_and_extends_its_expiry() {
    let (fake, s) = setup().await;
    let http = client();
    fake.knobs().set_pass_max_lifetime(Duration::from_secs(60));
    let first = login(&http, &s, "anna", &Secret::new(PASSWORD)).await.unwrap();
    fake.knobs().set_pass_max_lifetime(Duration::from_secs(3600));
    let refreshed = refresh(&http, &s, &first.access_token).await.unwrap();
    assert_eq!(refreshed.access_token, first.access_token);
    assert!(refreshed.expires_at > first.expires_at + time::Duration::seconds(3000));
    assert_same_millis(refreshed.expires_at, fake_expiry(&fake, &refreshed.access_token));
}

#[tokio::test]
async fn logout_expires_the_token() {
    let (_fake, s) = setup().await;
    let http = client();
    let tokens = login(&http, &s, "anna", &Secret::new(PASSWORD)).await.unwrap();
    logout(&http, &s, &tokens.access_token).await.unwrap();
    let err = refresh(&http, &s, &tokens.access_token).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Refused { status: 401, .. }), "{err:?}");
}

#[tokio::test]
async fn a_wrong_api_key_is_refused() {
    let (_fake, mut s) = setup().await;
    s.api_key = Secret::new("not-the-key");
    let err = login(&client(), &s, "anna", &Secret::new(PASSWORD)).await.unwrap_err();
    assert!(matches!(&err, UpstreamError::Refused { status: 401, reason, .. } if reason == "API key not authorized"));
}

#[test]
fn dates_are_parsed_leniently() {
    let utc = |text| parse_date(text).map(|d| (d.unix_timestamp(), d.millisecond()));
    assert_eq!(utc("2019-09-25T13:40:45.904Z"), Some((1_569_418_845, 904)));
    assert_eq!(utc("2019-09-25T15:40:45.904+02:00"), Some((1_569_418_845, 904)));
    assert_eq!(utc("2019-09-25T13:40:45.9040000"), Some((1_569_418_845, 904)));
    assert_eq!(utc("2019-09-25T13:40:45"), Some((1_569_418_845, 0)));
    assert_eq!(utc("25-09-2019"), None);
}

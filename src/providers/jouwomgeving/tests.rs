//! The JouwOmgeving token client against the fake DRF-JWT server.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fake_upstream::{FakeUpstream, Provider};

use super::*;
use crate::providers::http::test_support::{assert_expires_in, client, fake, url};

async fn setup() -> (FakeUpstream, JouwOmgevingSettings) {
    let fake = fake().await;
    fake.add_jouwomgeving_user("app-user", "Sterk-wachtwoord-9");
    let settings = JouwOmgevingSettings {
        api_base_url: url(&format!("{}api/", fake.url(Provider::JouwOmgeving))),
        token_path: "api-token-auth/".into(),
        refresh_path: Some("api-token-refresh/".into()),
    };
    (fake, settings)
}

#[tokio::test]
async fn obtain_reads_the_expiry_from_the_jwt() {
    let (fake, s) = setup().await;
    fake.knobs().set_jouwomgeving_jwt_lifetime(Duration::from_secs(120));
    let tokens = obtain(&client(), &s, "app-user", &Secret::new("Sterk-wachtwoord-9")).await.unwrap();
    assert_eq!(tokens.access_token.expose().split('.').count(), 3, "a JWT");
    assert!(tokens.refresh_token.is_none());
    assert_expires_in(tokens.expires_at, Duration::from_secs(120), Duration::from_secs(3));
}

#[tokio::test]
async fn bad_credentials_are_refused_with_drf_reason() {
    let (_fake, s) = setup().await;
    let err = obtain(&client(), &s, "app-user", &Secret::new("wrong")).await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Refused { status: 400, reason, .. }
            if reason == "Unable to log in with provided credentials."),
        "{err:?}"
    );
}

#[test]
fn exp_is_read_without_a_key_and_required() {
    let jwt = |claims: &str| {
        let part = |json: &str| URL_SAFE_NO_PAD.encode(json);
        Secret::new(format!("{}.{}.c2lnbmF0dXJl", part(r#"{"alg":"HS256","typ":"JWT"}"#), part(claims)))
    };
    let at = |secs| OffsetDateTime::from_unix_timestamp(secs).ok();
    assert_eq!(jwt_expiry(&jwt(r#"{"username":"u","exp":1700000000}"#)), at(1_700_000_000));
    assert_eq!(jwt_expiry(&jwt(r#"{"exp":1700000000.75}"#)), at(1_700_000_000));
    assert_eq!(jwt_expiry(&jwt(r#"{"username":"u"}"#)), None);
    assert_eq!(jwt_expiry(&jwt(r#"{"exp":"soon"}"#)), None);
    assert_eq!(jwt_expiry(&Secret::new("not-a-jwt")), None);
}

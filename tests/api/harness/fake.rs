//! The fake upstream (an in-process HTTP server faking the four providers, with a ledger of
//! every redemption) with the tests' Passolution client registered, the settings that point a
//! broker's providers at it, and credentials made with it.

use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use fake_upstream::{FakeConfig, FakeUpstream, Provider};
use std::time::Duration;

pub const CLIENT_ID: &str = "demo-client";
pub const CLIENT_SECRET: &str = "demo-client-secret";
pub const REDIRECT_URI: &str = "http://127.0.0.1:8081/callback";

/// The fake upstream with the tests' Passolution client registered.
pub async fn start_fake() -> FakeUpstream {
    let fake = FakeUpstream::start(FakeConfig::default()).await.expect("fake upstream starts");
    fake.add_passolution_client(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI);
    fake
}

/// `CREDBROKER__…` settings pointing every provider instance of the embedded default at `fake`.
pub(super) fn every_provider(fake: &FakeUpstream) -> Vec<(String, String)> {
    let mut env = passolution(&fake.url(Provider::Passolution));
    env.extend([
        ("CREDBROKER__PROVIDERS__PASS__API_BASE_URL".to_owned(), fake.url(Provider::Pass)),
        ("CREDBROKER__PROVIDERS__BRO__API_BASE_URL".to_owned(), format!("{}api/v2/", fake.url(Provider::Bro))),
        (
            "CREDBROKER__PROVIDERS__JOUWOMGEVING_DEMO__API_BASE_URL".to_owned(),
            format!("{}api/", fake.url(Provider::JouwOmgeving)),
        ),
    ]);
    env
}

/// Settings pointing the Passolution instance (API and token endpoint) at `base`, the fake's
/// Passolution root (or somewhere else on purpose).
pub(super) fn passolution(base: &str) -> Vec<(String, String)> {
    vec![
        ("CREDBROKER__PROVIDERS__PASSOLUTION__API_BASE_URL".to_owned(), format!("{base}api/v2/")),
        ("CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL".to_owned(), format!("{base}oauth/token")),
    ]
}

pub fn login(username: &str, password: &str) -> PutSecret {
    PutSecret::UsernamePassword(pb::UsernamePassword { username: username.into(), password: password.into() })
}

/// Tokens issued by the fake with an access lifetime of `lifetime`, imported as-is:
/// (access token, refresh token, the secret to put).
pub fn issue_tokens(fake: &FakeUpstream, lifetime: Duration) -> (String, String, PutSecret) {
    issue_aged_tokens(fake, lifetime, Duration::ZERO)
}

/// Like [`issue_tokens`], issued `age` ago: `lifetime - age` is left, and the broker plans
/// the renewal from the JWT's `iat`, so it comes `age` sooner.
pub fn issue_aged_tokens(fake: &FakeUpstream, lifetime: Duration, age: Duration) -> (String, String, PutSecret) {
    let before = fake.knobs().config().passolution_access_lifetime;
    fake.knobs().set_passolution_access_lifetime(lifetime);
    let (access, refresh) = fake.issue_passolution_tokens_aged(CLIENT_ID, age);
    fake.knobs().set_passolution_access_lifetime(before);
    let at = time::OffsetDateTime::now_utc() + lifetime - age;
    let tokens = pb::OAuthTokens {
        refresh_token: refresh.clone(),
        access_token: access.clone(),
        access_expires_at: Some(prost_types::Timestamp { seconds: at.unix_timestamp(), nanos: 0 }),
    };
    (access, refresh, PutSecret::OauthTokens(tokens))
}

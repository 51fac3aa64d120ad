//! Apps wired to an in-process fake upstream: every example provider instance of the
//! embedded default points at it.

use crate::helpers::{StoreKind, TestApp, spawn_app_with};
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use fake_upstream::{FakeConfig, FakeUpstream, Provider};
use std::time::Duration;

pub const CLIENT_ID: &str = "demo-client";
pub const CLIENT_SECRET: &str = "demo-client-secret";
pub const REDIRECT_URI: &str = "http://127.0.0.1:8081/callback";

pub struct Setup {
    pub app: TestApp,
    pub fake: FakeUpstream,
}

/// The fake upstream with the tests' Passolution client registered.
pub async fn fake_with_client() -> FakeUpstream {
    let fake = FakeUpstream::start(FakeConfig::default()).await.expect("fake upstream starts");
    fake.add_passolution_client(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI);
    fake
}

pub async fn spawn_with_fake(store: StoreKind) -> Setup {
    spawn_with_fake_and(store, &[]).await
}

pub async fn spawn_with_fake_and(store: StoreKind, extra: &[(&str, &str)]) -> Setup {
    let fake = fake_with_client().await;
    let pass = fake.url(Provider::Pass);
    let bro = fake.url(Provider::Bro);
    let passolution_api = format!("{}api/v2/", fake.url(Provider::Passolution));
    let token_url = format!("{}oauth/token", fake.url(Provider::Passolution));
    let jo = format!("{}api/", fake.url(Provider::JouwOmgeving));
    let mut env = vec![
        ("CREDBROKER__PROVIDERS__PASS__API_BASE_URL", pass.as_str()),
        ("CREDBROKER__PROVIDERS__BRO__API_BASE_URL", bro.as_str()),
        ("CREDBROKER__PROVIDERS__PASSOLUTION__API_BASE_URL", passolution_api.as_str()),
        ("CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL", token_url.as_str()),
        ("CREDBROKER__PROVIDERS__JOUWOMGEVING_DEMO__API_BASE_URL", jo.as_str()),
        ("CREDBROKER__UPSTREAM__REQUEST_TIMEOUT", "2s"),
        // One machine, one clock; and the lifecycle tests force renewals on purpose (the
        // limits have tests of their own).
        ("CREDBROKER__REFRESH__CLOCK_SKEW", "100ms"),
        ("CREDBROKER__REFRESH__REJECTED_MIN_AGE", "0s"),
        ("CREDBROKER__REFRESH__REJECTED_INTERVAL", "0s"),
    ];
    env.extend_from_slice(extra);
    let app = spawn_app_with(store, &env).await;
    Setup { app, fake }
}

pub fn login(username: &str, password: &str) -> PutSecret {
    PutSecret::UsernamePassword(pb::UsernamePassword { username: username.into(), password: password.into() })
}

/// Tokens issued by the fake with an access lifetime of `lifetime`, imported as-is.
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

pub fn secs(s: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: s, nanos: 0 })
}

//! Helpers shared by the provider client tests, which run against `fake-upstream` over HTTP.

use std::time::Duration;

use fake_upstream::{FakeConfig, FakeUpstream};
use time::OffsetDateTime;
use url::Url;

use super::HttpClient;

pub(crate) async fn fake() -> FakeUpstream {
    FakeUpstream::start(FakeConfig::default()).await.expect("the fake starts on a free port")
}

pub(crate) fn client() -> HttpClient {
    HttpClient::new(Duration::from_secs(2), Duration::from_secs(5))
}

/// A client that gives up on a reply after `request_timeout`.
pub(crate) fn impatient_client(request_timeout: Duration) -> HttpClient {
    HttpClient::new(Duration::from_secs(2), request_timeout)
}

pub(crate) fn url(text: &str) -> Url {
    Url::parse(text).expect("a valid test URL")
}

/// `http://127.0.0.1:PORT/` where nothing listens: the port was bound and released.
pub(crate) fn closed_port_url() -> Url {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("a bound address").port();
    drop(listener);
    url(&format!("http://127.0.0.1:{port}/"))
}

/// Asserts `at` is within `tolerance` of `now + lifetime`.
pub(crate) fn assert_expires_in(at: OffsetDateTime, lifetime: Duration, tolerance: Duration) {
    let expected = OffsetDateTime::now_utc() + lifetime;
    let off = (at - expected).abs();
    assert!(off <= tolerance, "expires at {at}, expected about {expected} (off by {off})");
}

/// A refresh grant sent straight to Passolution's token endpoint, as `broker::rotation` sends
/// it (without the journal: these tests are about the HTTP exchange and its classification).
pub(crate) async fn refresh(
    http: &HttpClient,
    s: &crate::providers::passolution::PassolutionSettings,
    refresh_token: &crate::domain::Secret,
) -> Result<super::TokenSet, super::UpstreamError> {
    let grant = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose())];
    crate::providers::passolution::token_request(http, s, &grant, &[refresh_token]).await
}

//! The one HTTP client every upstream token call goes through, and what can go wrong on the way.
//!
//! Every call is sent **exactly once**. reqwest 0.13 retries "protocol NACKs" by default
//! (HTTP/2 `GOAWAY(NO_ERROR)` and `REFUSED_STREAM`); we switch that off with
//! `retry::never()`, because a Passolution refresh token must never be presented twice by a
//! layer the broker cannot see. What remains below us is hyper-util's resend of a request
//! that was never written to a pooled connection found closed at checkout: that request
//! provably did not reach the provider, so it cannot redeem anything twice.
//!
//! Errors say *who* failed ([`UpstreamError`]) and never carry a value we sent or received:
//! the provider's reason is taken from known fields of its body only, every text kept is
//! scrubbed — before it is cut to length — of the secrets the request carried, their partial
//! echoes and anything token-shaped (`scrub`), and URLs lose their query string.

mod reason;
mod scrub;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::domain::Secret;

/// Tokens obtained from a provider. `Debug` shows no token: [`Secret`] redacts itself.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: Secret,
    pub expires_at: OffsetDateTime,
    /// When the token's lifetime started: `expires_at - issued_at` is its lifetime. Taken
    /// before the request was sent where the reply gives a relative lifetime, so it errs early.
    pub issued_at: OffsetDateTime,
    /// `None` when the reply carried none: the caller keeps the one it had (RFC 6749 §6).
    pub refresh_token: Option<Secret>,
}

/// What went wrong talking to a provider, by who failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The provider answered with a non-success status. `reason` is the provider's reason
    /// in words, from known fields of its body, at most ~200 characters; for OAuth errors it
    /// reads `{error} ({hint}): {error_description}`. Never contains a value we sent.
    #[error("the provider refused with status {status}: {reason}")]
    Refused { status: u16, reason: String, retry_after: Option<Duration> },
    /// The request provably never reached the provider (bad request, DNS failure, connection
    /// refused, connect timeout): safe to retry, even for single-use tokens.
    #[error("the request never reached the provider: {detail}")]
    NotSent { detail: String },
    /// Sent, or possibly sent, but no complete answer: timeout after connecting, connection
    /// reset, incomplete message. The outcome upstream is UNKNOWN.
    #[error("no complete answer from the provider, the outcome is unknown: {detail}")]
    NoAnswer { detail: String },
    /// 2xx, but the body could not be read as expected.
    #[error("the provider answered {status} with a reply that could not be read: {detail}")]
    Unparsable { status: u16, detail: String },
}

/// What every upstream request says it is (token calls and ProxyCall's, `proxy::client`).
pub const USER_AGENT: &str = concat!("credbroker/", env!("CARGO_PKG_VERSION"));

/// One shared client for every token call (ProxyCall: one per thread, see `fresh`): pooling,
/// HTTP/2 where the server offers it (ALPN), connect and request timeouts, no redirects, no
/// retries, `Accept: application/json` and `user-agent: credbroker/<version>`.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl HttpClient {
    /// `request_timeout` covers the whole exchange, reply body included. Keep
    /// `connect_timeout` below it: only a connect timeout proves the request was not sent.
    pub fn new(connect_timeout: Duration, request_timeout: Duration) -> Self {
        Self { client: Self::build(connect_timeout, request_timeout), connect_timeout, request_timeout }
    }

    /// The connect timeout: ProxyCall's clients use it too (`proxy::client`).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Another client with the same settings and a connection pool of its own (ProxyCall's
    /// through an environment proxy, one per thread: `proxy::client`).
    pub fn fresh(&self) -> reqwest::Client {
        Self::build(self.connect_timeout, self.request_timeout)
    }

    fn build(connect_timeout: Duration, request_timeout: Duration) -> reqwest::Client {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            // Shorter than common server keep-alives (nginx: 75 s), so a refresh is rarely sent
            // on a connection the provider is closing — which would make its outcome unknown.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("static client settings and the built-in TLS provider are valid")
    }

    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` once and reads the whole reply; a non-2xx status becomes
    /// [`UpstreamError::Refused`]. `sent` are the secrets the request carries: they are
    /// scrubbed from every text an error keeps.
    pub(crate) async fn send(&self, request: RequestBuilder, sent: &[&Secret]) -> Result<Reply, UpstreamError> {
        let mut request = request.build().map_err(|e| UpstreamError::NotSent { detail: describe(e, sent) })?;
        // The current span (a renewal, in the caller's trace) is the provider's parent.
        crate::telemetry::propagation::inject(&opentelemetry::Context::new(), request.headers_mut());
        let response = self.client.execute(request).await.map_err(|e| classify(e, sent))?;
        let status = response.status();
        let retry_after = retry_after(status, response.headers());
        let body = response.bytes().await.map_err(|e| UpstreamError::NoAnswer { detail: describe(e, sent) })?;
        if !status.is_success() {
            let reason = reason::from_body(status, &body, sent);
            return Err(UpstreamError::Refused { status: status.as_u16(), reason, retry_after });
        }
        Ok(Reply { status, body: body.to_vec() })
    }
}

/// A complete 2xx reply.
pub(crate) struct Reply {
    status: StatusCode,
    body: Vec<u8>,
}

/// Shows the status and size only: the body carries tokens.
impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply").field("status", &self.status).field("body_len", &self.body.len()).finish()
    }
}

impl Reply {
    /// The body as `T`. A mismatch says where, never what the value was (it may be a token).
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, UpstreamError> {
        serde_json::from_slice(&self.body).map_err(|e| self.unparsable(describe_json(&e)))
    }

    pub(crate) fn unparsable(&self, detail: impl Into<String>) -> UpstreamError {
        UpstreamError::Unparsable { status: self.status.as_u16(), detail: detail.into() }
    }
}

/// `base` joined with a relative `path` (`token/v1/login`, `api-token-auth/`).
pub(crate) fn endpoint(base: &Url, path: &str) -> Result<Url, UpstreamError> {
    base.join(path).map_err(|e| UpstreamError::NotSent { detail: format!("cannot join {path:?} to the base URL: {e}") })
}

/// Only a failure to connect proves the request was never written. A connect error covers
/// DNS, refused connections, the connect timeout and the TLS/HTTP2 handshake, all before any
/// byte of the request; everything later (the overall timeout included, which may fire after
/// the request went out) leaves the outcome unknown.
fn classify(e: reqwest::Error, sent: &[&Secret]) -> UpstreamError {
    let never_sent = e.is_builder() || e.is_connect();
    let detail = describe(e, sent);
    if never_sent { UpstreamError::NotSent { detail } } else { UpstreamError::NoAnswer { detail } }
}

/// The error and its causes on one line, with the URL stripped of query and credentials.
fn describe(e: reqwest::Error, sent: &[&Secret]) -> String {
    let url = e.url().map(redact_url);
    let e = e.without_url();
    let mut text = e.to_string();
    if let Some(url) = url {
        text = format!("{text} for {url}");
    }
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    scrub::scrub(text, sent)
}

fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// serde_json's messages quote the offending value (`invalid type: string "eyJ…"`), which
/// may be a token: keep only "missing field" messages, otherwise say where.
fn describe_json(e: &serde_json::Error) -> String {
    let message = e.to_string();
    if message.starts_with("missing field") {
        return message;
    }
    format!("unexpected JSON ({:?} error) at line {} column {}", e.classify(), e.line(), e.column())
}

/// `Retry-After` on 429 and 503, in seconds or as an HTTP date.
fn retry_after(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = time::PrimitiveDateTime::parse(value, HTTP_DATE).ok()?.assume_utc();
    Some((at - OffsetDateTime::now_utc()).try_into().unwrap_or(Duration::ZERO))
}

/// IMF-fixdate, e.g. `Wed, 21 Oct 2015 07:28:00 GMT`.
const HTTP_DATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

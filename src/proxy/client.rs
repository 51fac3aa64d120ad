//! ProxyCall's HTTP client: hyper's pooled client, driven directly, one per thread.
//!
//! Token calls go through reqwest (`providers::http`); a proxied call does not need what
//! reqwest adds — redirects are off, retries are off, the URL is already parsed and checked —
//! and paid for it on every call: reqwest prints each `Url` and parses it again into an
//! `http::Uri`, its redirect layer parses it back into a `Url` (IDNA included), and it clones
//! its connector per request (docs/performance.md, step 11). Here the checked URL becomes a
//! `Uri` once and goes to hyper as is.
//!
//! The same rules as the token client: sent once (hyper-util's only resend is of a request
//! never written to a pooled connection found closed), no redirects followed, HTTP/2 where a
//! TLS upstream offers it (ALPN), the connect timeout of the broker's `[http]` settings, idle
//! connections closed after 30 s, the platform's trusted roots.
//!
//! An upstream that the environment's proxy settings (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, `NO_PROXY`) send through a proxy is called through reqwest instead, which
//! implements them — exactly as before, decided per provider at startup by the same matcher
//! reqwest uses ([`Route::for_base`]).

use super::Deadline;
use super::error::ProxyError;
use super::upload::RequestBody;
use bytes::Bytes;
use http::header::{ACCEPT, HeaderValue, USER_AGENT};
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::error::Error;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use thread_local::ThreadLocal;

type BoxError = Box<dyn Error + Send + Sync>;
type Direct = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// How a provider's proxied calls leave the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// hyper's client, straight to the upstream.
    Direct,
    /// reqwest, through the proxy the environment names for this upstream.
    EnvironmentProxy,
}

impl Route {
    /// `EnvironmentProxy` if the environment's proxy settings intercept `base`, as reqwest
    /// would decide for it.
    pub(super) fn for_base(base: &Uri) -> Self {
        let matcher = hyper_util::client::proxy::matcher::Matcher::from_system();
        if matcher.intercept(base).is_some() { Self::EnvironmentProxy } else { Self::Direct }
    }
}

/// The clients of every thread that makes proxied calls.
pub(super) struct Clients {
    direct: ThreadLocal<Direct>,
    via_proxy: ThreadLocal<reqwest::Client>,
    http: crate::providers::http::HttpClient,
    tls: rustls::ClientConfig,
}

impl Clients {
    /// Clients with the settings of `http`, the broker's token client.
    pub(super) fn new(http: crate::providers::http::HttpClient) -> Self {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier)
            .expect("the built-in TLS provider and the platform's roots are usable (as for the token client)")
            .with_no_client_auth();
        Self { direct: ThreadLocal::new(), via_proxy: ThreadLocal::new(), http, tls }
    }

    fn direct(&self) -> &Direct {
        self.direct.get_or(|| {
            let mut tcp = HttpConnector::new();
            tcp.enforce_http(false);
            tcp.set_nodelay(true);
            tcp.set_connect_timeout(Some(self.http.connect_timeout()));
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(self.tls.clone())
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(tcp);
            Client::builder(TokioExecutor::new())
                // Shorter than common server keep-alives (nginx: 75 s), as for token calls.
                .pool_idle_timeout(Duration::from_secs(30))
                .pool_timer(TokioTimer::new())
                .build(https)
        })
    }

    /// Sends `request` once, by `route`, waiting for the response head until the deadline.
    pub(super) async fn send(
        &self,
        route: Route,
        mut request: Request<RequestBody>,
        deadline: &Deadline,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let timeout = deadline.remaining()?;
        let headers = request.headers_mut();
        headers.entry(USER_AGENT).or_insert(HeaderValue::from_static(crate::providers::http::USER_AGENT));
        headers.entry(ACCEPT).or_insert(HeaderValue::from_static("application/json"));
        let timed_out = |_| ProxyError::TimedOut(deadline.total);
        match route {
            Route::Direct => {
                let sent = tokio::time::timeout(timeout, self.direct().request(request)).await.map_err(timed_out)?;
                let response = sent.map_err(|e| transport(&e))?;
                Ok(response.map(ResponseBody::Direct))
            }
            Route::EnvironmentProxy => {
                let client = self.via_proxy.get_or(|| self.http.fresh());
                let (parts, body) = request.into_parts();
                let url = url::Url::parse(&parts.uri.to_string()).map_err(|e| transport(&e))?;
                let mut request = reqwest::Request::new(parts.method, url);
                *request.headers_mut() = parts.headers;
                *request.body_mut() = body.into_reqwest();
                let sent = tokio::time::timeout(timeout, client.execute(request)).await.map_err(timed_out)?;
                let response = sent.map_err(|e| transport(&e.without_url()))?;
                Ok(http::Response::<reqwest::Body>::from(response).map(ResponseBody::ViaProxy))
            }
        }
    }
}

/// A failure as a [`ProxyError`]: the error and its causes on one line. Neither hyper's
/// errors nor reqwest's without their URL name the URL (whose query may carry a caller's data).
pub(super) fn transport(e: &(dyn Error + 'static)) -> ProxyError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    ProxyError::Transport(text)
}

/// The upstream's response body, by the route it came.
pub(super) enum ResponseBody {
    Direct(hyper::body::Incoming),
    ViaProxy(reqwest::Body),
}

impl ResponseBody {
    /// The length the upstream declared, if any.
    pub(super) fn declared_length(&self) -> Option<u64> {
        self.size_hint().exact()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Direct(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
            Self::ViaProxy(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Direct(body) => body.is_end_stream(),
            Self::ViaProxy(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Direct(body) => body.size_hint(),
            Self::ViaProxy(body) => body.size_hint(),
        }
    }
}

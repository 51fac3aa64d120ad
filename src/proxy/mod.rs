//! ProxyCall: credbroker makes the upstream call with the credential attached, so callers
//! never hold a secret.
//!
//! - [`target`]: the SSRF boundary — a caller's path becomes a URL under the provider's
//!   `api_base_url`, or is refused; `upstreams`: per provider, that base minus the
//!   provider's own token endpoints.
//! - [`headers`]: header hygiene both ways.
//! - [`admission`]: the global cap on calls in flight and the bytes they hold.
//! - `call`: the unary call, bodies held in memory within small limits.
//! - `stream`: the streaming call, bodies passed on chunk by chunk; `upload` keeps what a
//!   401 retry would need.
//! - [`settings`]: limits and timeouts.
//!
//! Every call is sent once by its thread's HTTP client (`client`: hyper's, with the broker's
//! settings: no redirects, no automatic retries). The one
//! resend is conscious: after a rejection (the provider's `rejected_statuses`, default 401),
//! the credential is renewed (like `ReportRejected`: conditional on the header used, single
//! flight, limited) and the request is sent again once, if the header changed and the body
//! can be replayed.
//!
//! Every call ends by its deadline (the caller's timeout clamped to `max_timeout`): waiting
//! for the upstream, for the caller's body, and for the upstream's body alike. What the
//! boundary refuses, and the threat behind each rule, is in `docs/proxy.md`.

pub mod admission;
mod call;
mod client;
mod error;
pub mod headers;
pub mod settings;
mod stream;
pub mod target;
mod upload;
mod upstreams;

pub use admission::{Admission, InFlight};
pub use error::{ProxyError, ProxyFailure, ProxyResult};
pub use settings::ProxySettings;
pub use stream::ProxyStreamResponse;
pub use target::ProxyPath;
pub use upload::BodyStream;

use crate::broker::{Broker, CacheKey, Served};
use crate::domain::{InvalidField, ProviderName, Subject};
use client::{Clients, ResponseBody};
use http::header::HeaderMap;
use http::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;
use upload::RequestBody;
use upstreams::{Target, Upstreams};

/// How long the handed-out headers must stay valid: long enough to reach the provider.
/// Kept short, so providers with short token lifetimes are still served.
const MIN_VALIDITY: Duration = Duration::from_secs(2);

/// A parsed proxied request, without its body.
#[derive(Debug)]
pub struct ProxyHead {
    pub provider: ProviderName,
    pub subject: Option<Subject>,
    pub method: Method,
    pub path: ProxyPath,
    /// Validated by [`headers::request_headers`].
    pub headers: HeaderMap,
    /// The caller's, before clamping; `None`: the configured default.
    pub timeout: Option<Duration>,
}

/// The upstream's answer, whatever its status.
#[derive(Debug)]
pub struct ProxyResponse {
    pub status: StatusCode,
    /// Without hop-by-hop headers.
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

/// `GET`, `POST`, `PUT`, `PATCH`, `DELETE` or `HEAD`, in any case.
pub fn parse_method(field: &'static str, value: &str) -> Result<Method, InvalidField> {
    const ALLOWED: [Method; 6] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::HEAD];
    let upper = value.to_ascii_uppercase();
    ALLOWED
        .into_iter()
        .find(|m| m.as_str() == upper)
        .ok_or_else(|| InvalidField::new(field, "must be one of GET, POST, PUT, PATCH, DELETE, HEAD"))
}

/// Makes proxied calls with the broker's credentials.
pub struct Proxy {
    broker: Arc<Broker>,
    /// An HTTP client, and so a connection pool, per thread: a pooled connection is driven
    /// by a task of the runtime that opened it, so a thread's calls go out through
    /// connections its own runtime drives (with one runtime per core, `startup/cores.rs`,
    /// no hand-over to another thread; docs/performance.md, step 10).
    clients: Clients,
    settings: ProxySettings,
    upstreams: Upstreams,
    in_flight: Arc<InFlight>,
    /// PASS sliding expiry: per credential, when a successful call next deserves a store
    /// write (see `Broker::extend_session`). Saves a store read per call.
    next_extension: Arc<Mutex<HashMap<CacheKey, OffsetDateTime>>>,
}

/// The end of one call's time budget, shared by its attempts and its response body.
struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    fn new(total: Duration) -> Self {
        Self { at: Instant::now() + total, total }
    }

    fn remaining(&self) -> Result<Duration, ProxyError> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(ProxyError::TimedOut(self.total)) } else { Ok(left) }
    }
}

impl Proxy {
    pub fn new(broker: Arc<Broker>, settings: ProxySettings) -> Self {
        let upstreams = Upstreams::new(broker.registry());
        let in_flight = InFlight::new(settings.max_in_flight_calls, settings.max_in_flight_bytes);
        let clients = Clients::new(broker.http().clone());
        Self { broker, clients, settings, upstreams, in_flight, next_extension: Arc::default() }
    }

    pub fn settings(&self) -> &ProxySettings {
        &self.settings
    }

    /// The budgets every proxied call is admitted against.
    pub fn in_flight(&self) -> &Arc<InFlight> {
        &self.in_flight
    }

    /// The URL to call: refused (`INVALID_ARGUMENT`) if it would leave the provider's base
    /// URL, and (`PERMISSION_DENIED`) if it is one of the provider's token endpoints.
    fn target(&self, head: &ProxyHead) -> ProxyResult<Target> {
        self.upstreams.target(&head.provider, &head.path)
    }

    async fn authorize(&self, head: &ProxyHead) -> ProxyResult<Arc<Served>> {
        let served = self.broker.get_authorization(&head.provider, head.subject.as_ref(), MIN_VALIDITY).await?;
        tracing::Span::current().record("token_fingerprint", served.fingerprint.as_str());
        Ok(served)
    }

    /// Sends one attempt; returns the response head and when it was sent.
    async fn send(
        &self,
        head: &ProxyHead,
        target: &Target,
        served: &Served,
        body: RequestBody,
        deadline: &Deadline,
        parent: &opentelemetry::Context,
    ) -> Result<(http::Response<ResponseBody>, OffsetDateTime), ProxyError> {
        let mut headers = head.headers.clone();
        for (name, value) in served.http_headers().map_err(ProxyError::CredentialHeader)? {
            headers.insert(name.clone(), value.clone());
        }
        crate::telemetry::propagation::inject(parent, &mut headers);
        let mut request = http::Request::new(body);
        *request.method_mut() = head.method.clone();
        *request.uri_mut() = target.uri.clone();
        *request.headers_mut() = headers;
        let sent_at = OffsetDateTime::now_utc();
        let started = std::time::Instant::now();
        let response = self.clients.send(target.route, request, deadline).await?;
        crate::telemetry::metrics::proxied(&head.provider, response.status().as_u16(), started.elapsed());
        Ok((response, sent_at))
    }

    /// Whether the upstream rejected `served` (the provider instance's `rejected_statuses`,
    /// default 401) in a way a renewal may fix (the provider says: e.g. PASS AppBearer's 401
    /// means "no record for this client number", not a dead credential).
    fn rejected(&self, head: &ProxyHead, served: &Served, status: StatusCode) -> bool {
        served.renewable && self.broker.rejects(&head.provider, status.as_u16())
    }

    /// After a rejection of `served`: renews the credential if `served` is still its current
    /// header (single flight and limits, like `ReportRejected`) and returns the header to
    /// retry with, if it differs.
    async fn renewed(&self, head: &ProxyHead, served: &Served) -> Option<Arc<Served>> {
        // A task of its own: a caller that gives up (deadline, disconnect) must not cut a
        // renewal — possibly a single-use token rotation — in half.
        let (broker, provider, subject) = (self.broker.clone(), head.provider.clone(), head.subject.clone());
        let fingerprint = served.fingerprint.clone();
        let renewal = tokio::spawn(async move {
            broker.report_rejected(&provider, subject.as_ref(), &fingerprint).await?;
            broker.get_authorization(&provider, subject.as_ref(), MIN_VALIDITY).await
        });
        match renewal.await {
            Ok(Ok(current)) => (current.fingerprint != served.fingerprint).then_some(current),
            Ok(Err(e)) => {
                let provider = &head.provider;
                tracing::warn!(%provider, error = %e, "renewing after an upstream 401 failed; returning the 401");
                None
            }
            Err(e) => {
                tracing::error!(provider = %head.provider, error = %e, "the renewal task failed; returning the 401");
                None
            }
        }
    }

    /// A successful call slides a PASS session's expiry: tell the broker, in the background
    /// (the caller does not wait for a store write) and only when it would be worth storing.
    fn slide(&self, head: &ProxyHead, served: &Served, sent_at: OffsetDateTime) {
        let Some(subject) = head.subject.clone() else { return };
        if !served.slides {
            return;
        }
        let key: CacheKey = (head.provider.clone(), Some(subject.clone()));
        {
            let mut next = self.next_extension.lock().expect("extension map poisoned");
            if next.get(&key).is_some_and(|at| *at > sent_at) {
                return;
            }
            if next.len() > 100_000 {
                next.retain(|_, at| *at > sent_at);
            }
            // Until the broker answers, further calls need not ask again.
            next.insert(key.clone(), sent_at + Duration::from_secs(1));
        }
        let (broker, next, fingerprint) =
            (self.broker.clone(), self.next_extension.clone(), served.fingerprint.clone());
        tokio::spawn(async move {
            match broker.extend_session(&key.0, &subject, &fingerprint, sent_at).await {
                Ok(Some(at)) => drop(next.lock().expect("extension map poisoned").insert(key, at)),
                Ok(None) => {}
                Err(e) => tracing::warn!(credential = %subject, error = %e, "could not record PASS's sliding expiry"),
            }
        });
    }
}

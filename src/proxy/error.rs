//! What can go wrong in a proxied call once it is accepted. The gRPC edge maps each variant
//! to a status code in its one table (`grpc::status`). Messages name no URL, query or value:
//! only the path segment of a failure and the broker's own limits.

use crate::broker::BrokerError;
use std::time::Duration;

/// How a proxied call failed: serving the credential (the broker's error), or the call
/// itself. The broker knows nothing of the proxy, so this wraps rather than extends
/// `BrokerError`.
#[derive(Debug, thiserror::Error)]
pub enum ProxyFailure {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Call(#[from] ProxyError),
}

impl From<crate::domain::InvalidField> for ProxyFailure {
    fn from(field: crate::domain::InvalidField) -> Self {
        Self::Broker(field.into())
    }
}

pub type ProxyResult<T> = Result<T, ProxyFailure>;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the request body is larger than the limit of {limit} bytes")]
    RequestTooLarge { limit: u64 },
    #[error("the upstream response body is larger than the limit of {limit} bytes")]
    ResponseTooLarge { limit: u64 },
    #[error("the upstream exchange did not finish within {0:?}")]
    TimedOut(Duration),
    /// The caller did not send what the call waits for (`what`: "head", "body") in time.
    #[error("the caller sent no {what} within {waited:?} (the call's timeout)")]
    CallerSilent { what: &'static str, waited: Duration },
    /// No connection, or the connection failed mid-exchange. The detail is the error chain
    /// without the URL.
    #[error("the upstream call failed: {0}")]
    Transport(String),
    /// The caller broke the streaming protocol (no head first, or a second head).
    #[error("{0}")]
    Protocol(&'static str),
    /// The caller's request stream failed (it was cancelled or its connection broke).
    #[error("the request stream ended with an error: {0}")]
    RequestStream(String),
    /// The path reaches the provider's own token or session endpoints.
    #[error("path: reaches {0}, which ProxyCall never calls: their answers carry tokens")]
    TokenEndpoint(String),
    /// The global cap on proxied calls in flight is reached.
    #[error("too many proxied calls in flight (proxy.max_in_flight_calls = {0}); retry later")]
    TooManyCalls(usize),
    /// The global cap on bytes held by proxied calls is reached.
    #[error("proxied calls hold too many bytes in memory (proxy.max_in_flight_bytes = {0}); retry later")]
    TooManyBytes(u64),
    /// A stored credential does not make a valid header value (a configuration problem).
    #[error("the credential's {0} header is not a valid HTTP header value")]
    CredentialHeader(&'static str),
}

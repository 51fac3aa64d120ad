//! The one table from broker errors to gRPC status codes.
//!
//! Callers get a stable code and a message that helps them and leaks nothing; internal causes
//! are logged here, once, with their whole chain.

use crate::broker::BrokerError;
use crate::domain::{CredentialState, InvalidField};
use crate::providers::ProviderError;
use crate::providers::http::UpstreamError;
use crate::proxy::ProxyError;
use crate::store::StoreError;
use std::error::Error as _;
use tonic::{Code, Status};

/// The status code for each error: the whole policy in one place.
pub fn code(error: &BrokerError) -> Code {
    match error {
        BrokerError::InvalidArgument(_) => Code::InvalidArgument,
        BrokerError::UnknownProvider(_) | BrokerError::CredentialNotFound(_) => Code::NotFound,
        BrokerError::NotServable { state, .. } => match state {
            CredentialState::ReauthRequired | CredentialState::Revoked => Code::FailedPrecondition,
            CredentialState::Refreshing | CredentialState::Indeterminate | CredentialState::Active => Code::Unavailable,
        },
        BrokerError::Provider(ProviderError::NoOwnCredential(_)) => Code::InvalidArgument,
        BrokerError::Provider(ProviderError::AccessTokenTooShort) => Code::Unavailable,
        BrokerError::LifetimeTooShort { .. } | BrokerError::ActiveKeyMismatch { .. } => Code::FailedPrecondition,
        // The provider refused a one-off exchange (an authorization code): the caller must
        // start over; anything else upstream is worth retrying later.
        BrokerError::Upstream { source: UpstreamError::Refused { status: 400..=428 | 430..=499, .. }, .. } => {
            Code::FailedPrecondition
        }
        BrokerError::Upstream { .. } | BrokerError::Conflict(_) => Code::Unavailable,
        BrokerError::NoSession | BrokerError::Renewal(_) => Code::Internal,
        BrokerError::Budget { .. } => Code::Unavailable,
        // Proxied calls: the upstream's own status is never an error; only these are.
        BrokerError::Proxy(
            ProxyError::RequestTooLarge { .. }
            | ProxyError::ResponseTooLarge { .. }
            | ProxyError::TooManyCalls(_)
            | ProxyError::TooManyBytes(_),
        ) => Code::ResourceExhausted,
        // A well-formed path the broker refuses on purpose, for every caller: an
        // authorization decision, not a malformed argument (see docs/proxy.md).
        BrokerError::Proxy(ProxyError::TokenEndpoint(_)) => Code::PermissionDenied,
        BrokerError::Proxy(ProxyError::TimedOut(_) | ProxyError::CallerSilent { .. }) => Code::DeadlineExceeded,
        BrokerError::Proxy(ProxyError::Transport(_)) => Code::Unavailable,
        BrokerError::Proxy(ProxyError::Protocol(_)) => Code::InvalidArgument,
        BrokerError::Proxy(ProxyError::RequestStream(_)) => Code::Cancelled,
        BrokerError::Proxy(ProxyError::CredentialHeader(_)) => Code::Internal,
        BrokerError::Store(StoreError::Unavailable(_)) => Code::Unavailable,
        BrokerError::Store(StoreError::Corrupt(_)) | BrokerError::Sealed { .. } => Code::Internal,
    }
}

/// Turns a broker error into the status a caller sees, logging server-side causes.
pub fn to_status(error: BrokerError) -> Status {
    let code = code(&error);
    match code {
        Code::Internal | Code::Unavailable => tracing::warn!(error = %chain(&error), "request failed"),
        _ => tracing::debug!(error = %error, "request refused"),
    }
    let message = match &error {
        // The cause of a store failure stays in the log: it can name hosts and keys.
        BrokerError::Store(StoreError::Unavailable(_)) => "credential store unavailable; retry later".to_owned(),
        BrokerError::Store(StoreError::Corrupt(_)) => "stored credential record is unreadable".to_owned(),
        other => other.to_string(),
    };
    Status::new(code, message)
}

pub fn invalid(field: InvalidField) -> Status {
    to_status(BrokerError::InvalidArgument(field))
}

/// `error: cause: cause…`, for logs. Our error types never carry secret values.
fn chain(error: &BrokerError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

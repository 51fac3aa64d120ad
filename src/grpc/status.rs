//! The one table from broker errors to gRPC status codes.
//!
//! Callers get a stable code and a message that helps them and leaks nothing; internal causes
//! are logged here, once, with their whole chain.

use crate::broker::BrokerError;
use crate::domain::{CredentialState, InvalidField};
use crate::providers::ProviderError;
use crate::providers::http::UpstreamError;
use crate::proxy::{ProxyError, ProxyFailure};
use crate::security::SecurityError;
use crate::store::StoreError;
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
        // No token of this provider could satisfy the request: asking again will not help.
        BrokerError::MinValidityTooLong { .. }
        | BrokerError::LifetimeTooShort { .. }
        | BrokerError::ActiveKeyMismatch { .. } => Code::FailedPrecondition,
        // The provider refused a one-off exchange (an authorization code): the caller must
        // start over; anything else upstream is worth retrying later.
        BrokerError::Upstream { source: UpstreamError::Refused { status: 400..=428 | 430..=499, .. }, .. } => {
            Code::FailedPrecondition
        }
        BrokerError::Upstream { .. } | BrokerError::Conflict(_) | BrokerError::RenewingElsewhere(_) => {
            Code::Unavailable
        }
        BrokerError::RenewalPlanned { .. } | BrokerError::Draining => Code::Unavailable,
        BrokerError::NoSession | BrokerError::RenewalTaskFailed(_) => Code::Internal,
        BrokerError::Budget { .. } => Code::Unavailable,
        BrokerError::Store(StoreError::Unavailable(_) | StoreError::NotReplicated) => Code::Unavailable,
        BrokerError::Store(StoreError::Corrupt(_)) | BrokerError::Sealed { .. } => Code::Internal,
    }
}

/// Proxied calls: the upstream's own status is never an error; only these are.
pub fn proxy_code(error: &ProxyFailure) -> Code {
    match error {
        ProxyFailure::Broker(error) => code(error),
        ProxyFailure::Call(
            ProxyError::RequestTooLarge { .. }
            | ProxyError::ResponseTooLarge { .. }
            | ProxyError::TooManyCalls(_)
            | ProxyError::TooManyBytes(_),
        ) => Code::ResourceExhausted,
        // A well-formed path the broker refuses on purpose, for every caller: an
        // authorization decision, not a malformed argument (see docs/proxy.md).
        ProxyFailure::Call(ProxyError::TokenEndpoint(_)) => Code::PermissionDenied,
        ProxyFailure::Call(ProxyError::TimedOut(_) | ProxyError::CallerSilent { .. }) => Code::DeadlineExceeded,
        ProxyFailure::Call(ProxyError::Transport(_)) => Code::Unavailable,
        ProxyFailure::Call(ProxyError::Protocol(_)) => Code::InvalidArgument,
        ProxyFailure::Call(ProxyError::RequestStream(_)) => Code::Cancelled,
        ProxyFailure::Call(ProxyError::CredentialHeader(_)) => Code::Internal,
    }
}

/// Refusals at the trust boundary (`security`).
pub fn security_code(error: &SecurityError) -> Code {
    match error {
        SecurityError::Unauthenticated(_) => Code::Unauthenticated,
        SecurityError::Denied { .. } => Code::PermissionDenied,
        SecurityError::RateLimited { .. } => Code::ResourceExhausted,
        // Like Vault: no audit record, no secret; retry once the sink is back.
        SecurityError::AuditUnavailable => Code::Unavailable,
    }
}

/// A refusal as the status a caller sees. Its message never carries a token.
impl From<SecurityError> for Status {
    fn from(error: SecurityError) -> Self {
        security_status(error)
    }
}

fn security_status(error: SecurityError) -> Status {
    let code = security_code(&error);
    match code {
        Code::Unavailable => tracing::error!(error = %error, "request refused"),
        _ => tracing::info!(error = %error, "request refused"),
    }
    Status::new(code, error.to_string())
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
        BrokerError::Store(StoreError::NotReplicated) => {
            "credential store could not replicate the write in time; retry later".to_owned()
        }
        other => other.to_string(),
    };
    Status::new(code, message)
}

pub fn invalid(field: InvalidField) -> Status {
    to_status(BrokerError::InvalidArgument(field))
}

/// A proxied call's failure as the status a caller sees.
pub fn proxy_status(error: ProxyFailure) -> Status {
    match error {
        ProxyFailure::Broker(error) => to_status(error),
        call => {
            let code = proxy_code(&call);
            match code {
                Code::Internal | Code::Unavailable => tracing::warn!(error = %chain(&call), "proxied call failed"),
                _ => tracing::debug!(error = %call, "proxied call refused"),
            }
            Status::new(code, call.to_string())
        }
    }
}

/// `error: cause: cause…`, for logs. Our error types never carry secret values.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

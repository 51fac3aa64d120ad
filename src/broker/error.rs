//! What can go wrong in a broker use case. Each variant says who failed; the gRPC edge maps
//! them to status codes in one table (`grpc::status`).

use crate::crypto::CryptoError;
use crate::domain::{CredentialId, CredentialState, InvalidField, ProviderName};
use crate::providers::ProviderError;
use crate::providers::http::UpstreamError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidField),
    #[error("unknown provider {0:?}")]
    UnknownProvider(ProviderName),
    #[error("no credential stored for {0}")]
    CredentialNotFound(CredentialId),
    #[error("credential {id} is {state}: {detail}")]
    NotServable { id: CredentialId, state: CredentialState, detail: String },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("{provider}: {source}")]
    Upstream {
        provider: ProviderName,
        #[source]
        source: UpstreamError,
    },
    #[error("the provider issues tokens valid until {expires_at}, less than the requested min_validity")]
    LifetimeTooShort { expires_at: time::OffsetDateTime },
    #[error("credential {0} changed while it was being renewed; retry")]
    Conflict(CredentialId),
    #[error("the renewed credential holds no session")]
    NoSession,
    #[error("the renewal task failed: {0}")]
    Renewal(String),
    #[error("{provider}: {source}")]
    Budget {
        provider: ProviderName,
        #[source]
        source: crate::store::budget::BudgetError,
    },
    /// A proxied call failed after it was accepted (limits, timeout, transport).
    #[error(transparent)]
    Proxy(#[from] crate::proxy::ProxyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A rewrap asked for one active key and reached a replica that seals with another (a
    /// load balancer routed it to a replica not yet switched over).
    #[error(
        "this replica seals with key {active:?}, not {expected:?}: switch every replica first (docs/key-rotation.md)"
    )]
    ActiveKeyMismatch { expected: String, active: String },
    #[error("stored credential {id} cannot be opened")]
    Sealed {
        id: CredentialId,
        #[source]
        source: CryptoError,
    },
}

pub type BrokerResult<T> = Result<T, BrokerError>;

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
    #[error("unknown provider \"{0}\"")]
    UnknownProvider(ProviderName),
    #[error("no credential stored for {0}")]
    CredentialNotFound(CredentialId),
    /// `detail` is rendered from the record's typed reason (`domain::Reason`).
    #[error("the credential is {state}: {detail}")]
    NotServable { state: CredentialState, detail: String },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("{provider}: {source}")]
    Upstream {
        provider: ProviderName,
        #[source]
        source: UpstreamError,
    },
    /// Known before anything is redeemed: no fresh token would do.
    #[error(
        "min_validity is longer than this provider's tokens can be promised for ({}s when fresh)",
        longest.whole_seconds()
    )]
    MinValidityTooLong { longest: time::Duration },
    #[error("the renewed token is promised until {promised_until}, less than the requested min_validity")]
    LifetimeTooShort { promised_until: time::OffsetDateTime },
    /// The current header does not last `min_validity`, and its successor is obtained at the
    /// planned renewal — later than this request may wait.
    #[error(
        "the current header does not last min_validity and the next one is obtained at {renew_at}: retry then, or ask \
         a shorter min_validity"
    )]
    RenewalPlanned { renew_at: time::OffsetDateTime },
    #[error("credential {0} changed while it was being renewed; retry")]
    Conflict(CredentialId),
    #[error("another replica is renewing credential {0}; retry")]
    RenewingElsewhere(CredentialId),
    /// This replica is shutting down and starts no renewal; another replica will.
    #[error("this replica is shutting down; retry (another replica renews the credential)")]
    Draining,
    #[error("the credential holds no session")]
    NoSession,
    #[error("the renewal task failed: {0}")]
    RenewalTaskFailed(String),
    #[error("{provider}: {source}")]
    Budget {
        provider: ProviderName,
        #[source]
        source: crate::store::budget::BudgetError,
    },
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

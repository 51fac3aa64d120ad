//! Why a caller was turned away. Messages say what was wrong in words and never carry a
//! token; `grpc::status` maps each to its code.

/// A refusal at the trust boundary.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// No identity where one is required, or a bearer token that does not verify.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The policy grants this caller no such call. Says nothing about whether the credential
    /// exists: it is decided before any lookup.
    #[error("caller {caller:?} may not call {rpc} for provider {provider:?}, subject {subject:?}")]
    Denied { caller: String, rpc: &'static str, provider: String, subject: String },
    /// The rule that allows the call limits its rate, and this caller is over it.
    #[error("caller {caller:?} is over its rate limit for {rpc}; slow down")]
    RateLimited { caller: String, rpc: &'static str },
    /// `[audit] fail_closed` and the audit sink could not take the event.
    #[error("the audit log cannot be written; no credential is handed out until it can")]
    AuditUnavailable,
}

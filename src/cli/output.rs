//! What the commands print: human-readable by default, one JSON document with `--json`.
//! Failures go to stderr with the broker's status code and message (which never carries a
//! secret), and become the exit code of [`super::exit`].

use super::exit;
use crate::grpc::pb;
use serde::Serialize;
use serde_json::json;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments or local input; nothing was sent.
    Usage(String),
    /// The broker (or the connection to it) answered with this status.
    Rpc(tonic::Status),
    /// Every call succeeded, but some records were left to handle (a rewrap's problems,
    /// already printed).
    Incomplete,
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Failure::Rpc(status)
    }
}

/// Prints `failure` and returns its exit code.
pub fn failure(json: bool, failure: &Failure) -> u8 {
    let (code, name, message) = match failure {
        Failure::Usage(message) => (exit::USAGE, "USAGE", message.clone()),
        Failure::Rpc(status) => (exit::for_code(status.code()), code_name(status.code()), status.message().to_owned()),
        Failure::Incomplete => {
            (exit::INCOMPLETE, "INCOMPLETE", "some records were left to handle (listed above)".into())
        }
    };
    if json {
        eprintln!("{}", json!({ "error": { "code": name, "message": message } }));
    } else {
        eprintln!("credbroker: {name}: {message}");
    }
    code
}

/// `NOT_FOUND`, `UNAVAILABLE`, … as the gRPC specification spells them.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A credential's status as printed; never holds a secret (the broker returns none).
#[derive(Serialize)]
pub struct StatusView {
    provider: String,
    subject: String,
    state: &'static str,
    access_expires_at: Option<String>,
    updated_at: Option<String>,
    version: u64,
    detail: String,
}

impl From<&pb::CredentialStatus> for StatusView {
    fn from(s: &pb::CredentialStatus) -> Self {
        StatusView {
            provider: s.provider.clone(),
            subject: s.subject.clone(),
            state: s.state().as_str_name().trim_start_matches("CREDENTIAL_STATE_"),
            access_expires_at: s.access_expires_at.as_ref().map(rfc3339),
            updated_at: s.updated_at.as_ref().map(rfc3339),
            version: s.version,
            detail: s.detail.clone(),
        }
    }
}

impl StatusView {
    /// One line: `pass/jan  ACTIVE  version 3  expires …  detail`.
    pub fn line(&self) -> String {
        let mut line = format!("{}/{}  {}  version {}", self.provider, self.subject, self.state, self.version);
        if let Some(at) = &self.access_expires_at {
            line += &format!("  expires {at}");
        }
        if !self.detail.is_empty() {
            line += &format!("  ({})", self.detail);
        }
        line
    }
}

pub fn rfc3339(t: &prost_types::Timestamp) -> String {
    let format = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(t.seconds)
        .ok()
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| format!("@{}", t.seconds))
}

/// Prints `value` as JSON, or `human` otherwise.
pub fn print(json: bool, value: &impl Serialize, human: impl FnOnce() -> String) {
    if json {
        println!("{}", serde_json::to_string(value).expect("views serialize"));
    } else {
        println!("{}", human());
    }
}

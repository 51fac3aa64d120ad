//! The trust boundary: who is calling, may they, and the record of it.
//!
//! # Layout
//! - [`tls`]: the server's TLS (and mTLS) acceptor; certificate and key are read again when
//!   their files change, so rotation needs no restart and drops no connection.
//! - [`peer`]: accepted connections, each with its peer's address and certificate identity
//!   worked out once; connections that never speak are closed.
//! - [`identity`]: the caller's identity — a bearer JWT's `sub`, else the client
//!   certificate's first URI SAN (a SPIFFE ID), else its first DNS SAN.
//! - [`jwks`]: the keys JWTs are checked against — a file, or a URL fetched and refreshed.
//! - [`policy`]: `[[policy]]` rules compiled once at start-up; default deny once any exists;
//!   per-rule rate limits keyed by caller.
//! - [`audit`]: one JSON line per decision, to a file or stdout; `fail_closed` holds back
//!   credentials whose event could not be written.
//! - [`gate`]: what the gRPC services call — authenticate, authorize, audit.
//! - [`error`]: why a caller was turned away (mapped to codes in `grpc::status`).

pub mod audit;
pub mod error;
pub mod gate;
pub mod identity;
pub mod jwks;
pub mod peer;
pub mod policy;
pub mod tls;

pub use error::SecurityError;
pub use gate::{Gate, Passed};
pub use policy::Rpc;

use std::net::SocketAddr;

/// `[auth.jwt]`, `[[policy]]`, `[audit]` and `[admin]`, validated.
#[derive(Debug, Clone, Default)]
pub struct SecuritySettings {
    pub jwt: Option<identity::JwtSettings>,
    pub policy: Option<policy::Policy>,
    pub audit: Option<audit::AuditSettings>,
    /// Admin RPCs on their own listener (and not on `server.listen`).
    pub admin_listen: Option<SocketAddr>,
}

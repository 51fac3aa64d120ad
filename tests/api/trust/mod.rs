//! The trust boundary through the real binary: TLS and mTLS handshakes, caller identity
//! (SPIFFE IDs, JWTs), policy, rate limits, the audit trail, certificate rotation on disk,
//! and the exposure check. Certificates are made in the test (the harness's `Ca`); clients are tonic's.

mod exposure;
mod jwt;
mod mtls;
mod rotation;
mod support;

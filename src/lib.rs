//! credbroker: a credential broker. Services ask it over gRPC for ready-to-use upstream
//! authorization (or have it make the upstream call), so they never hold passwords or
//! refresh tokens.
//!
//! # Layout
//! - [`grpc`]: the gRPC surface — generated types, services, parsing at the edge, and the
//!   one error-to-status table.
//! - [`broker`]: the use cases (serve authorization, manage credentials) and the in-process
//!   cache of ready headers.
//! - [`providers`]: one file per upstream kind (PASS, BRO, Passolution, JouwOmgeving): how
//!   its credentials become headers.
//! - [`proxy`]: `ProxyCall` — the broker makes the upstream call: the SSRF boundary, header
//!   hygiene, limits, 401 → renew → retry, streaming bodies.
//! - [`store`]: where credentials live — Redis (shared by replicas) or memory (one replica).
//! - [`security`]: the trust boundary — TLS/mTLS, caller identity (SPIFFE ID, JWT),
//!   per-caller policy and rate limits, the audit trail.
//! - [`crypto`]: sealing secrets with AES-256-GCM before they reach a store; fingerprints.
//! - [`domain`]: validated types (`ProviderName`, `Subject`, redacted `Secret`, …).
//! - [`config`]: layered, validated configuration.
//! - [`telemetry`]: logs and OTLP traces.
//! - [`cli`]: the operator's command line (`credbroker admin`, `credbroker token`).
//! - [`startup`]: wiring it all into an `Application` that runs until shut down.
#![forbid(unsafe_code)]

pub mod broker;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod grpc;
pub mod providers;
pub mod proxy;
pub mod security;
pub mod startup;
pub mod store;
pub mod telemetry;

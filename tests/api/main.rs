//! Black-box tests of credbroker: a real tonic client over a socket, a real Redis started by
//! testcontainers (or `REDIS_URL`), the providers faked at the HTTP boundary. One test binary,
//! so it links once. Every test starts what it needs through `harness/` (its API is in
//! `harness/mod.rs`), one file or folder per behaviour.

mod admin;
mod allocator;
mod architecture;
mod bad_input;
mod budget;
#[cfg(feature = "chaos")] // fault-injection hooks: scripts/test builds with them
mod chaos;
mod cli;
mod cluster;
mod connect;
mod contract;
mod deploy;
mod get_authorization;
mod harness;
mod health_reflection;
mod journal_memory;
mod journal_replication;
mod logins;
mod passolution;
mod proxy;
mod readiness;
mod redis_security;
mod redis_store;
mod refresh_limits;
mod rotation;
mod shutdown;
mod store_conformance;
mod telemetry;
mod trust;

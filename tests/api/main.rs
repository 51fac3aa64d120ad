//! Black-box tests of credbroker: a real tonic client over a socket, a real Redis started by
//! testcontainers (or `REDIS_URL`). One test binary, so it links once.

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
mod lifecycle_logins;
mod lifecycle_oauth;
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

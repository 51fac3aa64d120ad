//! Black-box tests of credbroker: a real tonic client over a socket, a real Redis started by
//! testcontainers (or `REDIS_URL`). One test binary, so it links once.

mod admin;
mod bad_input;
mod budget;
mod chaos;
mod cluster;
mod deploy;
mod get_authorization;
mod health_reflection;
mod helpers;
mod lifecycle_logins;
mod lifecycle_oauth;
mod proxy;
mod redis_store;
mod shutdown;
mod store_conformance;
mod telemetry;
mod upstream;

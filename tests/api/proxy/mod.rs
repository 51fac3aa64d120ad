//! ProxyCall and ProxyCallStream against the fake upstream: every provider, the SSRF
//! boundary, header rules, limits and timeouts, streaming large bodies, 401 → renew → retry,
//! PASS's sliding expiry, trace context.

mod calls;
mod headers;
mod limits;
mod renewal;
mod ssrf;
mod streaming;
mod support;
mod trace;

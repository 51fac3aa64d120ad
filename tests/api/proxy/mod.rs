//! ProxyCall and ProxyCallStream against the fake upstream: every provider, the SSRF
//! boundary (paths, token endpoints, rewriting headers), header rules, limits, the global
//! caps and deadlines, streaming large bodies, 401 → renew → retry, PASS's sliding expiry,
//! trace context; provider error bodies that echo a token; the environment's proxy settings.

mod calls;
mod deadlines;
mod echoes;
mod environment;
mod headers;
mod limits;
mod renewal;
mod ssrf;
mod streaming;
mod support;
mod trace;

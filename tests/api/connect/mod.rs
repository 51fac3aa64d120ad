//! The consent flow (docs/connect.md): its session store, the HTTP listener, the whole flow
//! against the fake's consent page, the attacks it refuses, and a real browser through nginx.

pub mod store;

//! Key rotation (`docs/key-rotation.md`): the Rewrap RPC on a real Redis (`rewrap.rs`), and
//! the whole procedure on three real replicas restarted step by step (`fleet.rs`).

mod fleet;
mod rewrap;
mod support;

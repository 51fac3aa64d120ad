//! The operator's command line: `credbroker admin …` and `credbroker token …` talk gRPC to a
//! running broker (plaintext, TLS or mTLS, optionally with a bearer token), so nobody writes
//! grpcurl JSON by hand or puts a secret on a command line.
//!
//! - [`args`]: the clap definitions (what an operator types).
//! - `connect`: the channel — TLS/mTLS, bearer token, deadline on every call.
//! - `secret_input`: secrets come from standard input, a file or an environment variable,
//!   never from argv.
//! - `admin`, `token`: one function per subcommand; `output`: human or `--json`.
//! - [`exit`]: the one table from gRPC status to exit code.
//!
//! Adding an admin RPC (e.g. `Rewrap`) is a variant in [`args::AdminCommand`] and one arm in
//! `admin::run`.

mod admin;
pub mod args;
mod connect;
pub mod exit;
mod output;
mod secret_input;
mod token;

use std::process::ExitCode;

pub use args::{AdminArgs, TokenArgs};

/// Runs `credbroker admin …` and returns the process's exit code.
pub fn run_admin(args: AdminArgs) -> ExitCode {
    block_on(admin::run(args))
}

/// Runs `credbroker token …` and returns the process's exit code.
pub fn run_token(args: TokenArgs) -> ExitCode {
    block_on(token::run(args))
}

fn block_on(work: impl Future<Output = u8>) -> ExitCode {
    // One call at a time: a current-thread runtime is all a command needs.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("starting the tokio runtime");
    ExitCode::from(runtime.block_on(work))
}

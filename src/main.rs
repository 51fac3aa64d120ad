//! The `credbroker` binary: parse the command line, load configuration, start telemetry,
//! build the application, run it until SIGTERM/SIGINT. `admin` and `token` hand over to
//! [`credbroker::cli`].

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use credbroker::cli;
use credbroker::config::Settings;
use credbroker::startup::{Application, shutdown_signal};
use credbroker::telemetry;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: ProxyCall's throughput against nginx is about a fifth
/// higher with it in the same run, memory the same (docs/performance.md, step 2). Its arenas
/// are committed as they are used: a build setting (`.cargo/config.toml`), not code.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sysexits' EX_CONFIG: the configuration is wrong, retrying will not help.
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(version, about = "A credential broker for upstream APIs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC. Without --config: the embedded default (in-memory store, example providers).
    Serve {
        /// A TOML file; CREDBROKER__SECTION__KEY variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate the configuration and exit.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Manage stored credentials on a running broker (secrets from stdin, a file or an env var).
    Admin(cli::AdminArgs),
    /// Print the headers the broker hands out for PROVIDER [SUBJECT] (debugging; live credentials).
    Token(cli::TokenArgs),
}

fn main() -> ExitCode {
    let (config, check_only) = match Cli::parse().command {
        Command::Serve { config } => (config, false),
        Command::CheckConfig { config } => (config, true),
        Command::Admin(args) => return cli::run_admin(args),
        Command::Token(args) => return cli::run_token(args),
    };
    let settings = match Settings::load(config.as_deref(), std::env::vars()) {
        Ok(settings) => settings,
        Err(errors) => {
            eprintln!("credbroker: {errors}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if check_only {
        println!("configuration is valid ({} provider instance(s))", settings.providers.len());
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    match runtime.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("credbroker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let telemetry = telemetry::init(&settings.telemetry)?;
    let shutdown = shutdown_signal();
    let result = async { Application::build(settings).await?.run_until_stopped(shutdown).await }.await;
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "credbroker failed");
    }
    telemetry.shutdown().await;
    result
}

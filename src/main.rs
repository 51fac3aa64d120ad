//! The `credbroker` binary: parse the command line, load configuration, start telemetry,
//! build the application, run it until SIGTERM/SIGINT. `admin` and `token` hand over to
//! [`credbroker::cli`].

use clap::{Parser, Subcommand};
use credbroker::cli;
use credbroker::config::Settings;
use credbroker::startup::{Application, shutdown_signal};
use credbroker::telemetry;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: ProxyCall's throughput against nginx is about a fifth
/// higher with it in the same run, memory the same (docs/performance.md, step 2).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_arena_eager_commit` (its number in v3's `mi_option_t`; the Rust
/// bindings' constants follow v2's numbering).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commits mimalloc's arenas as they are used rather than on reservation: with its default
/// (eager on Linux) an idle broker is 29 MB resident instead of 18 MB. The option only
/// matters before the first arena is reserved — by the first allocation, which Rust's runtime
/// makes before `main` — so it is set from `.init_array`: after mimalloc's own constructor
/// has read the `MIMALLOC_*` environment (it runs first, at priority 101) and before any
/// allocation. An operator's `MIMALLOC_ARENA_EAGER_COMMIT` is left as given.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static LAZY_ARENA_COMMIT: extern "C" fn() = lazy_arena_commit;

#[cfg(target_os = "linux")]
extern "C" fn lazy_arena_commit() {
    // SAFETY: getenv with a NUL-terminated name while the process has one thread and no
    // allocation has happened; mi_option_set only writes mimalloc's option table.
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
    }
}

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

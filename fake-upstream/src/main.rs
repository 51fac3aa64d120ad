//! `fake-upstream`: runs the fake providers on a fixed address with demo seed data, for
//! demos and manual runs of the broker.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use fake_upstream::{FakeConfig, FakeUpstream};
use tokio::net::TcpListener;

/// Fakes of the PASS, BRO, Passolution and JouwOmgeving APIs on one HTTP server.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "FAKE_UPSTREAM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Also serve the control API (knobs and ledger as JSON; see `control.rs`) here.
    /// For test suites in other languages; never expose it.
    #[arg(long, env = "FAKE_UPSTREAM_CONTROL")]
    control: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("fake-upstream: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let fake = match FakeUpstream::start_on(listener, FakeConfig::default()).await {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!("fake-upstream: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(addr) = args.control {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                println!("fake-upstream control on http://{}/", listener.local_addr().unwrap_or(addr));
                let router = fake_upstream::control::router(fake.knobs(), fake.ledger());
                tokio::spawn(async move { axum::serve(listener, router).await });
            }
            Err(e) => {
                eprintln!("fake-upstream: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{}\n\nCtrl-C to stop.", fake.seed_demo());
    let _ = tokio::signal::ctrl_c().await;
    fake.shutdown().await;
    ExitCode::SUCCESS
}

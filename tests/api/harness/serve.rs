//! The real binary's start: `credbroker serve` in a process of its own, for what only a
//! process shows — its logs, exit code and signals, its environment, TLS files on disk. It
//! listens on a free loopback port (`CREDBROKER__SERVER__LISTEN`) unless its configuration
//! says where. [`Serve::start`] gives a [`Process`].

use super::eventually::within;
use super::pki::{Ca, Leaf};
use super::process::{Output, Process};
use super::{free_port, wait_for_port};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// How long a start that must be refused may take to exit.
const EXIT_PATIENCE: Duration = Duration::from_secs(30);

/// What `credbroker serve` is started with; [`Serve::start`] runs it.
#[must_use = "a builder does nothing until `.start()`"]
pub struct Serve {
    command: Command,
    port: Option<u16>,
    dir: tempfile::TempDir,
    output: Output,
    /// Pieces of the configuration file written at the start (`.config`, `.tls`).
    config: Vec<String>,
}

impl Serve {
    /// `credbroker serve` (the test build's) on a free loopback port, nothing else set.
    pub fn new() -> Self {
        Self::of(env!("CARGO_BIN_EXE_credbroker"))
    }

    /// [`Serve::new`] with another build of the binary (a release build, say).
    pub fn of(binary: &str) -> Self {
        let port = free_port();
        Self::binary(binary, Some(port)).env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
    }

    /// `credbroker serve` listening where its configuration (`.config`) says; the start waits
    /// for loopback `port` if given.
    pub fn as_configured(port: Option<u16>) -> Self {
        Self::binary(env!("CARGO_BIN_EXE_credbroker"), port)
    }

    /// `credbroker check-config` with what `.config` and `.env` give it: [`Serve::exits`] says
    /// how it ended.
    pub fn check_config() -> Self {
        Self::command(env!("CARGO_BIN_EXE_credbroker"), "check-config", None)
    }

    fn binary(binary: &str, port: Option<u16>) -> Self {
        Self::command(binary, "serve", port)
    }

    fn command(binary: &str, subcommand: &str, port: Option<u16>) -> Self {
        let mut command = Command::new(binary);
        command.arg(subcommand).stdin(Stdio::null()).kill_on_drop(true);
        Self { command, port, dir: tempfile::tempdir().unwrap(), output: Output::Discard, config: Vec::new() }
    }

    /// Listens on loopback `port` (a restarted replica keeps its port).
    pub fn on_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self.env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn envs(mut self, settings: &[(&str, &str)]) -> Self {
        self.command.envs(settings.iter().copied());
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    /// The Passolution instance's API and token endpoint under `base` (the fake's Passolution
    /// root, or somewhere else on purpose).
    pub fn passolution_at(self, base: &str) -> Self {
        super::fake::passolution(base).iter().fold(self, |serve, (key, value)| serve.env(key, value))
    }

    /// Writes `contents` to `name` in the process's directory.
    pub fn file(self, name: &str, contents: impl AsRef<[u8]>) -> Self {
        std::fs::write(self.dir.path().join(name), contents).unwrap();
        self
    }

    /// Configuration in a file (`--config`): `text`, with `{dir}` for the process's directory.
    pub fn config(mut self, text: &str) -> Self {
        self.config.push(text.replace("{dir}", &self.dir.path().display().to_string()));
        self
    }

    /// `--config path`, a file of the test's (instead of `.config`).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.command.arg("--config").arg(path.into());
        self
    }

    /// TLS with `server`'s certificate (reloaded every 200 ms, handshakes bounded at 2 s),
    /// client certificates from `client_ca` required if given: `[server.tls]` in the
    /// configuration file, the certificates in the process's directory.
    pub fn tls(self, server: &Leaf, client_ca: Option<&Ca>) -> Self {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        let mut table = format!(
            "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\nreload_interval = \"200ms\"\nhandshake_timeout = \"2s\"\n",
            path("server.pem"),
            path("server.key")
        );
        if client_ca.is_some() {
            table.push_str(&format!("client_ca_file = {:?}\n", path("client-ca.pem")));
        }
        let serve = self.file("server.pem", &server.cert).file("server.key", &server.key).config(&table);
        match client_ca {
            Some(ca) => serve.file("client-ca.pem", ca.pem()),
            None => serve,
        }
    }

    /// Keeps standard error line by line ([`Process::logs`]).
    pub fn capture_logs(mut self) -> Self {
        self.output = Output::Capture;
        self
    }

    /// Writes standard output and error to `stdout.log` and `stderr.log` in its directory.
    pub fn log_to_files(mut self) -> Self {
        self.output = Output::Files;
        self
    }

    /// Starts it and waits until it listens.
    pub async fn start(mut self) -> Process {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut child = self.spawn();
        let reader = (self.output == Output::Capture).then(|| keep_lines(&mut child, log.clone()));
        if let Some(port) = self.port {
            wait_for_port(port).await;
        }
        Process::started(self.port.unwrap_or(0), child, self.output, log, reader, self.dir)
    }

    /// Runs a start that must be refused: its exit status and everything it printed.
    pub async fn fails(self) -> (ExitStatus, String) {
        self.exits().await
    }

    /// Runs the command to its end: its exit status and everything it printed.
    pub async fn exits(mut self) -> (ExitStatus, String) {
        self.write_config();
        self.command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let output = within("a refused start", EXIT_PATIENCE, self.command.output()).await.unwrap();
        let text = [output.stdout, output.stderr].map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).concat();
        (output.status, text)
    }

    /// Writes the pieces given by `.config` and `.tls` to `credbroker.toml` for `--config`.
    fn write_config(&mut self) {
        if self.config.is_empty() {
            return;
        }
        let path = self.dir.path().join("credbroker.toml");
        std::fs::write(&path, self.config.join("\n")).unwrap();
        self.command.arg("--config").arg(path);
    }

    fn spawn(&mut self) -> Child {
        self.write_config();
        let file = |name: &str| std::fs::File::create(self.dir.path().join(name)).unwrap();
        match self.output {
            Output::Discard => self.command.stdout(Stdio::null()).stderr(Stdio::null()),
            Output::Capture => self.command.stdout(Stdio::null()).stderr(Stdio::piped()),
            Output::Files => self.command.stdout(file("stdout.log")).stderr(file("stderr.log")),
        };
        self.command.spawn().expect("the credbroker binary runs")
    }
}

/// Keeps every line of the child's standard error in `log`, as it comes.
fn keep_lines(child: &mut Child, log: Arc<Mutex<Vec<String>>>) -> JoinHandle<()> {
    let stderr = child.stderr.take().expect("standard error is piped");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.lock().unwrap().push(line);
        }
    })
}

//! A running `credbroker serve` (started by [`Serve`](super::Serve)): its clients, signals,
//! exit, and what it logged.

use super::clients::Clients;
use super::eventually::{eventually, within};
use super::pki::{Ca, Leaf};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::Child;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// How long a process may take to exit once it has been told to.
const EXIT_PATIENCE: Duration = Duration::from_secs(30);

/// Where the process's output goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Output {
    /// Nowhere.
    Discard,
    /// Standard error kept line by line ([`Process::logs`]); standard output discarded.
    Capture,
    /// `stdout.log` and `stderr.log` in the process's directory.
    Files,
}

/// A running `credbroker serve`; killed when dropped (woken first if stopped). Derefs to
/// plaintext [`Clients`] of its port, connected at their first call.
pub struct Process {
    /// The loopback port it listens on (0 when its configuration chose another address).
    pub port: u16,
    pub pid: u32,
    clients: Clients,
    child: Child,
    output: Output,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl std::ops::Deref for Process {
    type Target = Clients;
    fn deref(&self) -> &Clients {
        &self.clients
    }
}

impl Process {
    pub(super) fn started(
        port: u16,
        child: Child,
        output: Output,
        log: Arc<Mutex<Vec<String>>>,
        reader: Option<JoinHandle<()>>,
        dir: tempfile::TempDir,
    ) -> Self {
        let pid = child.id().expect("a running child has a pid");
        let clients = Clients::lazy(format!("127.0.0.1:{port}"));
        Self { port, pid, clients, child, output, log, reader, dir }
    }

    /// A TLS channel to loopback `port`, trusting `ca`, presenting `client` if given.
    pub async fn tls_channel_to(port: u16, ca: &Ca, client: Option<&Leaf>) -> Result<Channel, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.pem())).domain_name("localhost");
        if let Some(leaf) = client {
            tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
        }
        let endpoint = Channel::from_shared(format!("https://127.0.0.1:{port}")).unwrap();
        endpoint.tls_config(tls)?.connect_timeout(Duration::from_secs(5)).connect().await
    }

    /// [`Process::tls_channel_to`] its own port.
    pub async fn tls_channel(&self, ca: &Ca, client: Option<&Leaf>) -> Result<Channel, tonic::transport::Error> {
        Self::tls_channel_to(self.port, ca, client).await
    }

    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.pid as i32), signal);
    }

    /// Its exit status, if it exits within `patience`.
    pub async fn exited(&mut self, patience: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(patience, self.child.wait()).await.ok()?.ok()
    }

    /// SIGTERM, then its exit status and everything it logged (it must exit within 30 s).
    pub async fn finish(mut self) -> (ExitStatus, String) {
        self.signal(Signal::SIGTERM);
        let status = self.exited(EXIT_PATIENCE).await.expect("exits within 30 s of SIGTERM");
        if let Some(reader) = self.reader.take() {
            within("reading the last log lines", EXIT_PATIENCE, reader).await.unwrap();
        }
        (status, self.logs())
    }

    /// Every line logged so far: captured standard error, or the log files and the audit log.
    pub fn logs(&self) -> String {
        match self.output {
            Output::Capture => self.log.lock().unwrap().join("\n"),
            Output::Files => ["stdout.log", "stderr.log", "audit.jsonl"].map(|name| self.read(name)).concat(),
            Output::Discard => String::new(),
        }
    }

    /// The lines logged so far, as they were captured.
    pub fn lines(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.log.lock().unwrap()
    }

    /// Until a logged line contains `text` (at most 20 s).
    pub async fn logged(&self, text: &str) {
        let seen = || async { self.logs().contains(text) };
        eventually(&format!("{text:?} is logged"), Duration::from_secs(20), seen).await;
    }

    /// A file in its directory (empty if there is none yet).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.signal(Signal::SIGCONT);
        let _ = self.child.start_kill();
    }
}

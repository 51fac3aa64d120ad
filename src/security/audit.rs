//! The audit trail: one JSON line per decision, to a file (appended) or stdout.
//!
//! Each event is serialized by the caller's thread, then handed to the kernel in one `write`
//! before the RPC answers, which is what `fail_closed` promises, at the cost of a syscall per
//! decision (measured by `cargo bench --bench grpc_load -- --tls`, README). A file is opened
//! with `O_APPEND`, so concurrent writers need no lock: the kernel places each `write` whole at
//! the end of the file. stdout goes through its own lock. A bounded channel to a writer task
//! would be as cheap on the hot path but could only promise "queued".

use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// `[audit]`, validated.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// `None`: stdout (`path = "-"`).
    pub path: Option<PathBuf>,
    /// No credential handed out unless its event was written.
    pub fail_closed: bool,
}

/// One decision. Never a token: `token_fingerprint` is the broker's keyed fingerprint.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    #[serde(with = "time::serde::rfc3339")]
    pub time: time::OffsetDateTime,
    pub caller: &'a str,
    pub peer: Option<String>,
    pub rpc: &'static str,
    pub provider: &'a str,
    pub subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_fingerprint: Option<&'a str>,
    /// `allowed`, `denied`, `unauthenticated`, `rate_limited` or `failed`.
    pub outcome: &'static str,
    /// The gRPC status code name the caller got (`OK`, `PERMISSION_DENIED`, …).
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    pub replica: &'a str,
}

enum Sink {
    File(std::fs::File),
    Stdout,
}

pub struct AuditLog {
    sink: Sink,
    pub fail_closed: bool,
    /// Whether the last write succeeded: a failing sink is reported loudly once per change.
    healthy: AtomicBool,
}

impl AuditLog {
    /// Opens the sink (a file is created if missing, and appended to).
    pub fn open(settings: &AuditSettings) -> std::io::Result<Self> {
        let sink = match &settings.path {
            None => Sink::Stdout,
            Some(path) => Sink::File(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        };
        Ok(Self { sink, fail_closed: settings.fail_closed, healthy: AtomicBool::new(true) })
    }

    /// Writes one event as one line; `Err` when the sink did not take it.
    pub fn write(&self, event: &Event<'_>) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(384);
        serde_json::to_writer(&mut line, event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let result = match &self.sink {
            // One `write` for a line of a few hundred bytes; `write_all` only loops on a
            // short write (a full disk), which the kernel reports on the next try.
            Sink::File(file) => (&*file).write_all(&line),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&line).and_then(|()| out.flush())
            }
        };
        self.note(&result);
        result
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn note(&self, result: &std::io::Result<()>) {
        let ok = result.is_ok();
        if self.healthy.swap(ok, Ordering::Relaxed) != ok {
            match result {
                Ok(()) => tracing::warn!("audit log: writable again"),
                Err(e) if self.fail_closed => {
                    tracing::error!(error = %e, "audit log: cannot write; credential RPCs answer UNAVAILABLE (fail_closed)")
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit log: cannot write; decisions go unrecorded (fail_closed = false)")
                }
            }
        }
    }
}

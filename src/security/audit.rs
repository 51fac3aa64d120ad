//! The audit trail: one JSON line per decision, to a file (appended) or stdout.
//!
//! Each event is serialized by the caller's task and queued to one writer task, which writes
//! everything queued since its last write with a single `write` (group commit). With
//! `fail_closed`, a call that hands out a credential waits until its line is in the kernel,
//! which is what `fail_closed` promises; every other line (refusals, failures, admin calls,
//! any line without `fail_closed`) is queued without waiting, as no answer depends on it. One syscall per
//! batch instead of one per decision, and no runtime thread waits on another for the file
//! (measured by `cargo bench --bench grpc_load -- --tls`, docs/performance.md). Lines are in the kernel's
//! page cache when the caller is answered, not fsynced: a machine crash can lose the last
//! ones, a process crash cannot lose an awaited one.

use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tonic::Code;

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
    #[serde(serialize_with = "display")]
    pub peer: Option<std::net::SocketAddr>,
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

/// `"127.0.0.1:4711"` (or `null`), written straight into the line.
fn display<S: serde::Serializer>(peer: &Option<std::net::SocketAddr>, serializer: S) -> Result<S::Ok, S::Error> {
    match peer {
        Some(peer) => serializer.collect_str(peer),
        None => serializer.serialize_none(),
    }
}

pub struct AuditLog {
    lines: mpsc::UnboundedSender<Line>,
    pub fail_closed: bool,
}

/// A serialized event on its way to the writer; `written` is told whether it got there.
struct Line {
    bytes: Vec<u8>,
    written: Option<oneshot::Sender<bool>>,
}

impl AuditLog {
    /// Opens the sink (a file is created if missing, and appended to); the log, and its
    /// writer, which must run for lines to be written ([`AuditWriter::run`]).
    pub fn open(settings: &AuditSettings) -> std::io::Result<(Self, AuditWriter)> {
        let sink = match &settings.path {
            None => Sink::Stdout,
            Some(path) => Sink::File(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        };
        let (lines, queue) = mpsc::unbounded_channel();
        let writer = AuditWriter { sink, queue, fail_closed: settings.fail_closed, healthy: true };
        Ok((Self { lines, fail_closed: settings.fail_closed }, writer))
    }

    /// Writes one event as one line and waits until the kernel has it; `Err` when the sink
    /// did not take it.
    pub async fn write(&self, event: &Event<'_>) -> std::io::Result<()> {
        let (written, done) = oneshot::channel();
        self.send(event, Some(written))?;
        match done.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(std::io::Error::other("the audit sink refused the line")),
            Err(_) => Err(std::io::Error::other("the audit writer stopped")),
        }
    }

    /// Hands one event to the writer without waiting (a line no answer depends on). A failed
    /// write is counted and logged by the writer.
    pub fn record(&self, event: &Event<'_>) {
        if self.send(event, None).is_err() {
            crate::telemetry::metrics::instruments().audit_write_failures.add(1, &[]);
        }
    }

    fn send(&self, event: &Event<'_>, written: Option<oneshot::Sender<bool>>) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(384);
        serde_json::to_writer(&mut bytes, event).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        self.lines.send(Line { bytes, written }).map_err(|_| std::io::Error::other("the audit writer stopped"))
    }
}

/// The one writer of the sink: takes every line queued since its last write and writes them
/// with one system call (group commit), then tells each waiting call whether its line made
/// it. Under load a batch holds many lines, so the sink costs one syscall per batch rather
/// than one per decision, and no two runtime threads ever wait on each other for the file.
/// A write blocks this task for the syscall's duration only (page cache; no fsync).
pub struct AuditWriter {
    sink: Sink,
    queue: mpsc::UnboundedReceiver<Line>,
    fail_closed: bool,
    /// Whether the last write succeeded: a change is logged once.
    healthy: bool,
}

impl AuditWriter {
    /// Writes until every [`AuditLog`] is gone or `stop` (the drain) comes; then takes no
    /// new line and writes those already queued, so no decision made is left unwritten.
    pub async fn run(mut self, stop: CancellationToken) {
        // Cancelled only while waiting for lines (`recv_many` loses none): never mid-write.
        let stopped = tokio::select! {
            () = self.write_queued() => false,
            () = stop.cancelled() => true,
        };
        if stopped {
            self.queue.close();
            self.write_queued().await;
        }
    }

    /// Writes batches until the queue is closed and empty.
    async fn write_queued(&mut self) {
        let (mut batch, mut buffer) = (Vec::with_capacity(256), Vec::with_capacity(64 * 1024));
        while self.queue.recv_many(&mut batch, 256).await > 0 {
            self.write(&mut batch, &mut buffer);
        }
    }

    /// Writes `batch` with one system call and tells its waiting calls whether it made it.
    fn write(&mut self, batch: &mut Vec<Line>, buffer: &mut Vec<u8>) {
        buffer.clear();
        for line in batch.iter() {
            buffer.extend_from_slice(&line.bytes);
        }
        let result = match &self.sink {
            // `write_all` loops only on a short write (a full disk), which the kernel reports
            // on the next try.
            Sink::File(file) => (&*file).write_all(buffer),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buffer).and_then(|()| out.flush())
            }
        };
        if result.is_err() {
            let failed = batch.len() as u64;
            crate::telemetry::metrics::instruments().audit_write_failures.add(failed, &[]);
        }
        note(&result, &mut self.healthy, self.fail_closed);
        for line in batch.drain(..) {
            if let Some(written) = line.written {
                let _ = written.send(result.is_ok());
            }
        }
    }
}

/// A failing sink is reported loudly, once per change.
fn note(result: &std::io::Result<()>, healthy: &mut bool, fail_closed: bool) {
    let ok = result.is_ok();
    if std::mem::replace(healthy, ok) == ok {
        return;
    }
    match result {
        Ok(()) => tracing::warn!("audit log: writable again"),
        Err(e) if fail_closed => {
            tracing::error!(error = %e, "audit log: cannot write; credential RPCs answer UNAVAILABLE (fail_closed)")
        }
        Err(e) => tracing::error!(error = %e, "audit log: cannot write; decisions go unrecorded (fail_closed = false)"),
    }
}

/// The canonical name of a gRPC code (`PERMISSION_DENIED`), as audit events write it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

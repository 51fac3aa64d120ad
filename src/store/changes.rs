//! Change notifications between replicas.
//!
//! Every write of a credential is announced (`version\nprovider\nsubject`) on a Redis pub/sub
//! channel. Each replica forwards what it hears into a local broadcast channel, where two
//! kinds of listeners wait: the cache (drop headers older than the announced version) and
//! callers waiting for another replica's refresh (re-read when their credential changes).
//!
//! Pub/sub is fire-and-forget: a replica that was disconnected may have missed messages, so
//! after every (re)subscription it emits `Change::Resync` and listeners assume everything
//! changed — not at the disconnect itself, when the cache is all there is to serve from. With the in-memory store the feed is just the local channel.
//!
//! An announcement may carry a fourth line, the W3C `traceparent` of the span that wrote (only
//! trace and span ids and flags: never `tracestate`, never anything of the credential), so a
//! caller on another replica that waited for that write can link its span to it. Parsing is
//! lenient: a missing or malformed trace line is no trace, never a dropped announcement.
//! Caveat for a rolling upgrade: replicas from before the trace line read it as part of the
//! subject and drop such an announcement (a control character), falling back on TTLs until
//! they are upgraded too.

use super::RedisStore;
use crate::domain::{CredentialId, ProviderName, Subject};
use futures::StreamExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::sync::broadcast;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The credential was written; `version` is its new version; `trace`, when announced, the
    /// span that wrote it (for a span link, `broker::lease::wait_for_change`).
    Changed { id: CredentialId, version: u64, trace: Option<SpanContext> },
    /// Messages may have been missed: treat every credential as changed.
    Resync,
}

#[derive(Clone)]
pub struct ChangeFeed {
    local: broadcast::Sender<Change>,
    redis: Option<RedisStore>,
}

impl ChangeFeed {
    pub fn memory() -> Self {
        Self { local: broadcast::channel(1024).0, redis: None }
    }

    /// A feed over Redis pub/sub, and the relay that must run for it to hear other replicas:
    /// it subscribes, reconnects by itself, and ends when every handle to the feed is gone.
    pub fn redis(store: RedisStore) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let feed = Self { local: broadcast::channel(1024).0, redis: Some(store.clone()) };
        let relay = subscribe(store, feed.local.downgrade());
        (feed, relay)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.local.subscribe()
    }

    /// Announces a write. Failures are logged, not returned: the write itself succeeded, and
    /// listeners also have time-to-live and version checks to fall back on.
    pub async fn publish(&self, id: &CredentialId, version: u64) {
        let trace = current_span_context();
        let Some(store) = &self.redis else {
            let _ = self.local.send(Change::Changed { id: id.clone(), version, trace });
            return;
        };
        let mut message = format!("{version}\n{}\n{}", id.provider, id.subject);
        if let Some(trace) = &trace {
            message.push('\n');
            message.push_str(&traceparent(trace));
        }
        let result: Result<(), _> = async {
            let mut conn = store.connection().await.map_err(|e| e.to_string())?;
            redis::cmd("PUBLISH")
                .arg(store.changes_channel())
                .arg(message)
                .query_async::<i64>(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(credential = %id, error = %e, "could not announce a change; other replicas catch up by TTL");
        }
    }
}

async fn subscribe(store: RedisStore, local: broadcast::WeakSender<Change>) {
    loop {
        if let Err(e) = listen(&store, &local).await {
            tracing::warn!(error = %e, "change feed disconnected; resubscribing");
        }
        if local.upgrade().is_none() {
            return;
        }
        // No resync here: while Redis is away nobody can write, and this replica's cache is
        // what keeps serving. The resync comes once subscribed again (in `listen`).
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen(store: &RedisStore, local: &broadcast::WeakSender<Change>) -> redis::RedisResult<()> {
    let mut pubsub = store.pubsub_client().await?.get_async_pubsub().await?;
    pubsub.subscribe(store.changes_channel()).await?;
    match local.upgrade() {
        Some(sender) => drop(sender.send(Change::Resync)),
        None => return Ok(()),
    }
    let mut messages = pubsub.into_on_message();
    while let Some(message) = messages.next().await {
        let Some(sender) = local.upgrade() else { return Ok(()) };
        match parse(message.get_payload_bytes()) {
            Some(change) => drop(sender.send(change)),
            None => tracing::warn!("ignoring a malformed change message"),
        }
    }
    Ok(())
}

/// The current span's OpenTelemetry context, if it has one (traces are exported).
fn current_span_context() -> Option<SpanContext> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = tracing::Span::current().context();
    let span = context.span().span_context().clone();
    span.is_valid().then_some(span)
}

/// The W3C `traceparent` of `span`: ids and sampled flag only.
fn traceparent(span: &SpanContext) -> String {
    format!("00-{}-{}-{:02x}", span.trace_id(), span.span_id(), span.trace_flags().to_u8())
}

/// A `traceparent` line as a remote span context; `None` if it is not a valid one.
fn parse_traceparent(line: &str) -> Option<SpanContext> {
    let carrier = HashMap::from([("traceparent".to_owned(), line.trim().to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let span = context.span().span_context().clone();
    span.is_valid().then_some(span)
}

fn parse(payload: &[u8]) -> Option<Change> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut lines = text.split('\n');
    let version = lines.next()?.parse().ok()?;
    let provider = ProviderName::parse("provider", lines.next()?).ok()?;
    let subject = Subject::stored(lines.next()?)?;
    // Optional, and lenient: from a replica that sends none, or a bad one, it is no trace.
    let trace = lines.next().and_then(parse_traceparent);
    Some(Change::Changed { id: CredentialId::new(provider, subject), version, trace })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_junk_is_ignored() {
        let change = parse(b"7\nbro\norg:1 {x}").unwrap();
        let Change::Changed { id, version, trace } = change else { panic!() };
        assert_eq!((id.to_string(), version, trace), ("bro/org:1 {x}".to_owned(), 7, None));
        assert_eq!(parse(b"x\nbro\norg"), None);
        assert_eq!(parse(b"7\nbro"), None);
    }

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_trace_line_is_the_writers_span_and_a_bad_one_is_no_trace() {
        let change = parse(format!("7\nbro\norg\n{TRACEPARENT}").as_bytes()).unwrap();
        let Change::Changed { id, version, trace: Some(trace) } = change else { panic!("{change:?}") };
        assert_eq!((id.to_string(), version), ("bro/org".to_owned(), 7));
        assert_eq!(trace.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.span_id().to_string(), "00f067aa0ba902b7");
        assert!(trace.is_remote() && trace.is_sampled());
        assert_eq!(traceparent(&trace), TRACEPARENT);
        // Lenient: the announcement stands whatever the trace line holds.
        for junk in ["", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"] {
            let change = parse(format!("7\nbro\norg\n{junk}").as_bytes()).unwrap();
            assert!(matches!(change, Change::Changed { version: 7, trace: None, .. }), "{junk:?}: {change:?}");
        }
        // Lines after the trace (a later format) are ignored.
        let change = parse(format!("7\nbro\norg\n{TRACEPARENT}\nmore").as_bytes()).unwrap();
        assert!(matches!(change, Change::Changed { trace: Some(_), .. }));
    }
}

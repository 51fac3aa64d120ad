//! The streaming call: the request body goes upstream as it arrives, and the response body
//! comes back as it arrives, in messages of at most `stream_chunk_size` bytes. Neither is
//! held whole; memory per call is bounded by the chunks in flight (and the replay buffer).
//!
//! A 401 is retried only when the request body had ended and fit in the replay buffer
//! (`max_request_body`, what a unary call would hold anyway) by the time the 401 arrived. A
//! larger body has already gone and is not kept: the 401 is returned, and the renewed
//! credential serves the caller's next attempt.
//!
//! The deadline holds throughout: for the caller's first body chunk (a stream that sends
//! only its head ends with `TimedOut`), for the upstream's answer, and for the response body,
//! which a task of its own reads so that the deadline ends the upstream exchange even when
//! the caller stops reading.

use super::client::{ResponseBody, transport};
use super::error::{ProxyError, ProxyResult};
use super::upload::{BodyStream, Upload};
use super::{Admission, Deadline, Proxy, ProxyHead, headers};
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use http::header::HeaderMap;
use http::{Method, StatusCode};
use http_body_util::BodyDataStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Response chunks read ahead of the caller: what a caller that stops reading leaves in memory.
const IN_TRANSIT: usize = 2;

/// The upstream's status and headers, and its body still to come.
pub struct ProxyStreamResponse {
    pub status: StatusCode,
    /// Without hop-by-hop headers.
    pub headers: HeaderMap,
    /// Ends after the last chunk, or with an error: then the body is incomplete.
    pub body: BoxStream<'static, Result<Bytes, ProxyError>>,
}

impl Proxy {
    /// Starts the call; returns once the upstream's response head has arrived.
    /// `admission` is the call's slot, which also holds the replay copy's bytes.
    pub async fn call_stream(
        &self,
        head: ProxyHead,
        body: BodyStream,
        parent: &opentelemetry::Context,
        admission: Arc<Admission>,
    ) -> ProxyResult<ProxyStreamResponse> {
        let target = self.target(&head)?;
        let deadline = Deadline::new(self.settings.timeout(head.timeout));
        let mut served = self.authorize(&head).await?;
        let s = &self.settings;
        let limits = (s.max_stream_request_body, s.max_request_body);
        let (body, upload) = Upload::start(body, limits, &deadline, admission).await?;
        let sent = self.send(&head, &target, &served, body, &deadline, parent).await;
        let (mut response, mut sent_at) = sent.map_err(|e| upload.take_error().unwrap_or(e))?;
        if self.rejected(&head, &served, response.status()) {
            if let Some(renewed) = self.renewed(&head, &served).await {
                if let Some(replay) = upload.replay() {
                    served = renewed;
                    (response, sent_at) = self.send(&head, &target, &served, replay, &deadline, parent).await?;
                }
            }
        }
        if response.status().is_success() {
            self.slide(&head, &served, sent_at);
        }
        let limit = s.max_stream_response_body;
        let declared = response.body().declared_length();
        if declared.is_some_and(|length| length > limit) && head.method != Method::HEAD {
            return Err(ProxyError::ResponseTooLarge { limit }.into());
        }
        let status = response.status();
        let headers = headers::response_headers(std::mem::take(response.headers_mut()));
        let body = pumped(chunked(response.into_body(), limit, s.stream_chunk_size), &deadline);
        Ok(ProxyStreamResponse { status, headers, body })
    }
}

/// `body`, read by a task of its own until it ends or the deadline passes. At the deadline
/// the task drops the upstream response (freeing its connection) whether or not the caller
/// reads; the caller then finds `TimedOut` after what it had not read yet.
fn pumped(
    mut body: BoxStream<'static, Result<Bytes, ProxyError>>,
    deadline: &Deadline,
) -> BoxStream<'static, Result<Bytes, ProxyError>> {
    let (tx, rx) = mpsc::channel(IN_TRANSIT);
    let (at, total) = (deadline.at, deadline.total);
    // Whether the caller was given the body's end (its last chunk, or an error).
    let complete = Arc::new(AtomicBool::new(false));
    let done = complete.clone();
    tokio::spawn(async move {
        loop {
            let item = match tokio::time::timeout_at(at, body.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => return done.store(true, Ordering::Release),
                Err(_) => return, // the receiver reports the timeout
            };
            let failed = item.is_err();
            // A caller that went away, or that does not read by the deadline, ends the task.
            let sent = matches!(tokio::time::timeout_at(at, tx.send(item)).await, Ok(Ok(())));
            if failed || !sent {
                // Delivered an error: that was the end. Otherwise the receiver reports one.
                return done.store(failed && sent, Ordering::Release);
            }
        }
    });
    // The channel closes when the task ends: after the last chunk, or early.
    let ending =
        stream::once(async move { (!complete.load(Ordering::Acquire)).then_some(Err(ProxyError::TimedOut(total))) });
    ReceiverStream::new(rx).chain(ending.filter_map(|end| async move { end })).boxed()
}

/// The response body in chunks of at most `size` bytes, failing once past `limit` bytes.
fn chunked(body: ResponseBody, limit: u64, size: usize) -> BoxStream<'static, Result<Bytes, ProxyError>> {
    let mut seen = 0u64;
    BodyDataStream::new(body)
        .map(move |chunk| {
            let chunk = chunk.map_err(|e| transport(&*e))?;
            seen += chunk.len() as u64;
            if seen > limit { Err(ProxyError::ResponseTooLarge { limit }) } else { Ok(chunk) }
        })
        .flat_map(move |chunk| stream::iter(split(chunk, size)))
        .boxed()
}

/// Splits a chunk into pieces of at most `size` bytes, without copying.
fn split(chunk: Result<Bytes, ProxyError>, size: usize) -> Vec<Result<Bytes, ProxyError>> {
    let Ok(mut bytes) = chunk else { return vec![chunk] };
    let mut pieces = Vec::with_capacity(bytes.len() / size.max(1) + 1);
    while bytes.len() > size {
        pieces.push(Ok(bytes.split_to(size)));
    }
    if !bytes.is_empty() {
        pieces.push(Ok(bytes));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::Instant;

    /// One chunk, then nothing ever; says when it is dropped.
    fn stalling(dropped: Arc<AtomicBool>) -> BoxStream<'static, Result<Bytes, ProxyError>> {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Flag(dropped);
        stream::once(async { Ok(Bytes::from_static(b"first")) })
            .chain(stream::pending())
            .map(move |item| {
                let _ = &flag;
                item
            })
            .boxed()
    }

    fn deadline(ms: u64) -> Deadline {
        let total = Duration::from_millis(ms);
        Deadline { at: Instant::now() + total, total }
    }

    #[tokio::test]
    async fn a_stalled_body_ends_with_timed_out_after_what_came() {
        let dropped = Arc::new(AtomicBool::new(false));
        let mut body = pumped(stalling(dropped.clone()), &deadline(200));
        assert_eq!(body.next().await.unwrap().unwrap(), "first");
        assert!(matches!(body.next().await, Some(Err(ProxyError::TimedOut(_)))));
        assert!(body.next().await.is_none());
        assert!(dropped.load(Ordering::SeqCst), "the upstream body is gone");
    }

    #[tokio::test]
    async fn the_upstream_body_is_dropped_at_the_deadline_even_when_nobody_reads() {
        let dropped = Arc::new(AtomicBool::new(false));
        let unread = pumped(stalling(dropped.clone()), &deadline(200));
        let gone = async {
            while !dropped.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), gone).await.expect("dropped at the deadline, unread");
        drop(unread);
    }

    #[tokio::test]
    async fn a_complete_body_ends_cleanly() {
        let chunks = stream::iter([Ok(Bytes::from_static(b"a")), Ok(Bytes::from_static(b"b"))]).boxed();
        let got: Vec<_> = pumped(chunks, &deadline(5_000)).collect().await;
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(Result::is_ok));
    }

    #[test]
    fn chunks_are_split_to_the_configured_size() {
        let sizes = |n: usize, size| {
            split(Ok(Bytes::from(vec![0u8; n])), size).into_iter().map(|p| p.unwrap().len()).collect::<Vec<_>>()
        };
        assert_eq!(sizes(10, 4), [4, 4, 2]);
        assert_eq!(sizes(8, 4), [4, 4]);
        assert_eq!(sizes(3, 4), [3]);
        assert!(sizes(0, 4).is_empty());
    }
}

//! What a proxied request carries upstream ([`RequestBody`]), and a streamed body on its way:
//! counted against its limit, and kept for one replay while it fits in the replay buffer and
//! the global byte budget (past either, it is no longer kept: the call goes on, without a
//! replay after a 401).
//!
//! The state sits behind a std `Mutex` shared by the body (polled by the HTTP client's
//! connection task) and the call that reads it after the response: held only for a few
//! field updates, never across an `.await`.

use super::error::ProxyError;
use super::{Admission, Deadline};
use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as it arrives from the caller.
pub type BodyStream = BoxStream<'static, Result<Bytes, ProxyError>>;

#[derive(Default)]
struct State {
    /// Every chunk so far, while they fit in the replay buffer; `None` once they did not.
    kept: Option<Vec<Bytes>>,
    total: u64,
    finished: bool,
    /// Why the body failed, when it was the caller's stream or our limit (not the upstream).
    error: Option<ProxyError>,
}

/// Handle to a body being sent.
#[derive(Clone)]
pub(super) struct Upload(Arc<Mutex<State>>);

/// What the HTTP client sees when the body fails; the reason is kept in the [`Upload`].
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read")]
pub(super) struct UploadFailed;

impl Upload {
    /// Wraps `body` (at most `limit` bytes; up to `replay_limit` kept) into what is sent.
    /// Waits for the first chunk — until the deadline, no longer: a caller that sends only
    /// its head gets `CallerSilent`. A body that turns out empty is sent as no body at all, rather
    /// than as an empty chunked upload.
    pub(super) async fn start(
        body: BodyStream,
        limits: (u64, u64),
        deadline: &Deadline,
        admission: Arc<Admission>,
    ) -> Result<(RequestBody, Upload), ProxyError> {
        let (limit, replay_limit) = limits;
        let upload = Upload(Arc::new(Mutex::new(State { kept: Some(Vec::new()), ..State::default() })));
        let mut body = body.peekable();
        let first = tokio::time::timeout_at(deadline.at, Pin::new(&mut body).peek()).await;
        let silent = ProxyError::CallerSilent { what: "body", waited: deadline.total };
        if first.map_err(|_| silent)?.is_none() {
            upload.state().finished = true;
            return Ok((RequestBody::Empty, upload));
        }
        let counted = Counted { inner: body.boxed(), upload: upload.clone(), limit, replay_limit, admission };
        Ok((RequestBody::Streamed(counted), upload))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().expect("upload state poisoned")
    }

    /// Why sending failed, if the body (not the upstream) was the cause.
    pub(super) fn take_error(&self) -> Option<ProxyError> {
        self.state().error.take()
    }

    /// The whole body again, if it ended and fit in the replay buffer.
    pub(super) fn replay(&self) -> Option<RequestBody> {
        let state = self.state();
        let kept = state.kept.as_ref().filter(|_| state.finished && state.error.is_none())?;
        Some(RequestBody::full(Bytes::from(kept.concat())))
    }
}

pub(super) struct Counted {
    inner: BodyStream,
    upload: Upload,
    limit: u64,
    replay_limit: u64,
    admission: Arc<Admission>,
}

impl Stream for Counted {
    type Item = Result<Bytes, UploadFailed>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let item = ready!(self.inner.poll_next_unpin(cx));
            let mut state = self.upload.state();
            let chunk = match item {
                None => {
                    state.finished = true;
                    return Poll::Ready(None);
                }
                Some(Err(e)) => {
                    state.error = Some(e);
                    return Poll::Ready(Some(Err(UploadFailed)));
                }
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => chunk,
            };
            state.total += chunk.len() as u64;
            if state.total > self.limit {
                state.error = Some(ProxyError::RequestTooLarge { limit: self.limit });
                return Poll::Ready(Some(Err(UploadFailed)));
            }
            // Bytes already kept stay reserved until the call ends, even once dropped: the
            // budget errs on the safe side.
            if state.total > self.replay_limit || self.admission.hold(chunk.len()).is_err() {
                state.kept = None;
            } else if let Some(kept) = &mut state.kept {
                kept.push(chunk.clone());
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
    }
}

/// What a proxied request carries upstream.
pub(super) enum RequestBody {
    /// No body at all rather than an empty one: a GET must not look like an upload.
    Empty,
    Full(Bytes),
    /// The caller's stream, counted and kept for a replay.
    Streamed(Counted),
}

impl RequestBody {
    pub(super) fn full(bytes: Bytes) -> Self {
        if bytes.is_empty() { Self::Empty } else { Self::Full(bytes) }
    }

    pub(super) fn into_reqwest(self) -> Option<reqwest::Body> {
        match self {
            Self::Empty => None,
            Self::Full(bytes) => Some(reqwest::Body::from(bytes)),
            Self::Streamed(counted) => Some(reqwest::Body::wrap_stream(counted)),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match this {
            Self::Empty => Poll::Ready(None),
            Self::Full(_) => {
                let Self::Full(bytes) = std::mem::replace(this, Self::Empty) else { unreachable!() };
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Self::Streamed(counted) => Pin::new(counted)
                .poll_next(cx)
                .map(|item| item.map(|chunk| chunk.map(Frame::data).map_err(BoxError::from))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Empty)
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            Self::Streamed(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Upload {
        Upload(Arc::new(Mutex::new(State { kept: Some(Vec::new()), ..State::default() })))
    }

    fn admitted(max_bytes: u64) -> Arc<Admission> {
        super::super::InFlight::new(1, max_bytes).admit().unwrap()
    }

    fn counted(sizes: &[usize], upload: &Upload, limit: u64, replay_limit: u64, budget: u64) -> Counted {
        Counted { inner: chunks(sizes), upload: upload.clone(), limit, replay_limit, admission: admitted(budget) }
    }

    fn chunks(sizes: &[usize]) -> BodyStream {
        let items: Vec<Result<Bytes, ProxyError>> = sizes.iter().map(|n| Ok(Bytes::from(vec![7u8; *n]))).collect();
        futures::stream::iter(items).boxed()
    }

    #[tokio::test]
    async fn small_finished_bodies_replay_and_large_ones_or_ones_over_budget_do_not() {
        let cases =
            [(&[3usize, 4][..], 10u64, 100, Some(7usize)), (&[6, 6][..], 10, 100, None), (&[3, 4][..], 10, 5, None)];
        for (sizes, replay, budget, expected) in cases {
            let upload = fresh();
            let mut counted = counted(sizes, &upload, 100, replay, budget);
            assert!(upload.replay().is_none(), "not finished yet");
            while let Some(item) = counted.next().await {
                item.unwrap();
            }
            let replayed = upload.replay().map(|b| http_body::Body::size_hint(&b).exact());
            assert_eq!(replayed, expected.map(|n| Some(n as u64)));
        }
    }

    #[tokio::test]
    async fn bodies_past_the_limit_fail_with_the_reason_kept() {
        let upload = fresh();
        let mut counted = counted(&[5, 5, 5], &upload, 12, 100, 100);
        assert!(counted.next().await.unwrap().is_ok());
        assert!(counted.next().await.unwrap().is_ok());
        assert!(counted.next().await.unwrap().is_err());
        assert!(matches!(upload.take_error(), Some(ProxyError::RequestTooLarge { limit: 12 })));
        assert!(upload.replay().is_none());
    }
}

//! The streaming call: the request body goes upstream as it arrives, and the response body
//! comes back as it arrives, in messages of at most `stream_chunk_size` bytes. Neither is
//! held whole; memory per call is bounded by the chunks in flight (and the replay buffer).
//!
//! A 401 is retried only when the request body had ended and fit in the replay buffer
//! (`max_request_body`, what a unary call would hold anyway) by the time the 401 arrived. A
//! larger body has already gone and is not kept: the 401 is returned, and the renewed
//! credential serves the caller's next attempt.

use super::error::{ProxyError, ProxyResult, upstream};
use super::upload::{BodyStream, Upload};
use super::{Deadline, Proxy, ProxyHead, headers};
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use std::time::Duration;

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
    pub async fn call_stream(
        &self,
        head: ProxyHead,
        body: BodyStream,
        parent: &opentelemetry::Context,
    ) -> ProxyResult<ProxyStreamResponse> {
        let url = self.target(&head)?;
        let deadline = Deadline::new(self.settings.timeout(head.timeout));
        let mut served = self.authorize(&head).await?;
        let s = &self.settings;
        let (body, upload) = Upload::start(body, s.max_stream_request_body, s.max_request_body).await;
        let sent = self.send(&head, &url, &served, body, &deadline, parent).await;
        let (mut response, mut sent_at) = sent.map_err(|e| upload.take_error().unwrap_or(e))?;
        if self.rejected(&head, &served, response.status()) {
            if let Some(renewed) = self.renewed(&head, &served).await {
                if let Some(replay) = upload.replay() {
                    served = renewed;
                    (response, sent_at) = self.send(&head, &url, &served, replay, &deadline, parent).await?;
                }
            }
        }
        if response.status().is_success() {
            self.slide(&head, &served, sent_at);
        }
        let limit = s.max_stream_response_body;
        if response.content_length().is_some_and(|length| length > limit) && head.method != reqwest::Method::HEAD {
            return Err(ProxyError::ResponseTooLarge { limit }.into());
        }
        let status = response.status();
        let headers = headers::response_headers(std::mem::take(response.headers_mut()));
        let body = chunked(response, limit, s.stream_chunk_size, deadline.total);
        Ok(ProxyStreamResponse { status, headers, body })
    }
}

/// The response body in chunks of at most `size` bytes, failing once past `limit` bytes.
fn chunked(
    response: reqwest::Response,
    limit: u64,
    size: usize,
    timeout: Duration,
) -> BoxStream<'static, Result<Bytes, ProxyError>> {
    let mut seen = 0u64;
    response
        .bytes_stream()
        .map(move |chunk| {
            let chunk = chunk.map_err(|e| upstream(e, timeout))?;
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

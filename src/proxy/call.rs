//! The unary call: the request body arrives whole and the response body is read whole, each
//! within its configured limit — so a 401 can always be retried with the same body. The
//! response body's bytes are reserved against the global budget as they arrive.

use super::error::{ProxyError, ProxyResult, upstream};
use super::{Admission, Deadline, Proxy, ProxyHead, ProxyResponse, headers};
use bytes::{Bytes, BytesMut};
use reqwest::Method;

impl Proxy {
    /// Makes the call; the upstream's status, whatever it is, is a successful result.
    /// `admission` is the call's slot; the request body's bytes are already held by it.
    pub async fn call(
        &self,
        head: ProxyHead,
        body: Bytes,
        parent: &opentelemetry::Context,
        admission: &Admission,
    ) -> ProxyResult<ProxyResponse> {
        let limit = self.settings.max_request_body;
        if body.len() as u64 > limit {
            return Err(ProxyError::RequestTooLarge { limit }.into());
        }
        let url = self.target(&head)?;
        let deadline = Deadline::new(self.settings.timeout(head.timeout));
        let mut served = self.authorize(&head).await?;
        let (mut response, mut sent_at) =
            self.send(&head, &url, &served, body.clone().into(), &deadline, parent).await?;
        if self.rejected(&head, &served, response.status()) {
            if let Some(renewed) = self.renewed(&head, &served).await {
                served = renewed;
                (response, sent_at) = self.send(&head, &url, &served, body.into(), &deadline, parent).await?;
            }
        }
        if response.status().is_success() {
            self.slide(&head, &served, sent_at);
        }
        let status = response.status();
        let headers = headers::response_headers(std::mem::take(response.headers_mut()));
        let body = self.read_body(response, &head.method, &deadline, admission).await?;
        Ok(ProxyResponse { status, headers, body })
    }

    /// The whole response body, refused as soon as it is known to exceed the limit.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        method: &Method,
        deadline: &Deadline,
        admission: &Admission,
    ) -> Result<Bytes, ProxyError> {
        let limit = self.settings.max_response_body;
        let declared = response.content_length().filter(|_| *method != Method::HEAD);
        if declared.is_some_and(|length| length > limit) {
            return Err(ProxyError::ResponseTooLarge { limit });
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| upstream(e, deadline.total))? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(ProxyError::ResponseTooLarge { limit });
            }
            admission.hold(chunk.len())?;
            if body.is_empty() && declared == Some(chunk.len() as u64) {
                return Ok(chunk); // the usual small reply: one chunk, no copy
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

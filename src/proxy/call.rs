//! The unary call: the request body arrives whole and the response body is read whole, each
//! within its configured limit — so a 401 can always be retried with the same body. The
//! response body's bytes are reserved against the global budget as they arrive.

use super::client::{ResponseBody, transport};
use super::error::{ProxyError, ProxyResult};
use super::upload::RequestBody;
use super::{Admission, Deadline, Proxy, ProxyHead, ProxyResponse, headers};
use bytes::{Bytes, BytesMut};
use http::Method;
use http_body_util::BodyExt;

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
        let target = self.target(&head)?;
        let deadline = Deadline::new(self.settings.timeout(head.timeout));
        let mut served = self.authorize(&head).await?;
        let (mut response, mut sent_at) =
            self.send(&head, &target, &served, RequestBody::full(body.clone()), &deadline, parent).await?;
        if self.rejected(&head, &served, response.status()) {
            if let Some(renewed) = self.renewed(&head, &served).await {
                served = renewed;
                (response, sent_at) =
                    self.send(&head, &target, &served, RequestBody::full(body), &deadline, parent).await?;
            }
        }
        if response.status().is_success() {
            self.slide(&head, &served, sent_at);
        }
        let status = response.status();
        let headers = headers::response_headers(std::mem::take(response.headers_mut()));
        let body = self.read_body(response.into_body(), &head.method, &deadline, admission).await?;
        Ok(ProxyResponse { status, headers, body })
    }

    /// The whole response body, refused as soon as it is known to exceed the limit; read by
    /// the call's deadline.
    async fn read_body(
        &self,
        mut response: ResponseBody,
        method: &Method,
        deadline: &Deadline,
        admission: &Admission,
    ) -> Result<Bytes, ProxyError> {
        let limit = self.settings.max_response_body;
        let declared = response.declared_length().filter(|_| *method != Method::HEAD);
        if declared.is_some_and(|length| length > limit) {
            return Err(ProxyError::ResponseTooLarge { limit });
        }
        let mut body = BytesMut::new();
        loop {
            let frame = tokio::time::timeout_at(deadline.at, response.frame()).await;
            let frame = match frame.map_err(|_| ProxyError::TimedOut(deadline.total))? {
                None => break,
                Some(frame) => frame.map_err(|e| transport(&*e))?,
            };
            // Trailers (rare in HTTP/1.1 replies) are not passed on, as before.
            let Ok(chunk) = frame.into_data() else { continue };
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

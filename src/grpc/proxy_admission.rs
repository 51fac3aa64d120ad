//! Admission of proxied calls, in front of the broker service: a `ProxyCall` or
//! `ProxyCallStream` takes its slot from the global budget (`proxy::admission`) before tonic
//! reads a byte of its request, or is answered `RESOURCE_EXHAUSTED` at once. A unary request
//! body's frames are reserved against the byte budget as they arrive — so a flood of large
//! messages is refused while it arrives, not after it has been buffered. The slot and the
//! bytes are held until the response body has been sent (or dropped).
//!
//! Other RPCs pass straight through, without an allocation.

use super::status::proxy_status;
use crate::proxy::{Admission, InFlight};
use futures::future::{BoxFuture, Either, FutureExt};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;
use tower::Service;

const UNARY: &str = "/credbroker.v1.CredentialBroker/ProxyCall";
const STREAM: &str = "/credbroker.v1.CredentialBroker/ProxyCallStream";

/// Wraps the broker service; see the module documentation.
#[derive(Clone)]
pub struct ProxyAdmission<S> {
    pub inner: S,
    pub in_flight: Arc<InFlight>,
}

impl<S: NamedService> NamedService for ProxyAdmission<S> {
    const NAME: &'static str = S::NAME;
}

type Request = http::Request<Body>;
type Response = http::Response<Body>;

impl<S> Service<Request> for ProxyAdmission<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let path = request.uri().path();
        let unary = path == UNARY;
        if !unary && path != STREAM {
            return Either::Left(self.inner.call(request));
        }
        let admission = match self.in_flight.admit() {
            Ok(admission) => admission,
            Err(refused) => {
                return Either::Right(std::future::ready(Ok(proxy_status(refused.into()).into_http())).boxed());
            }
        };
        if unary {
            let held = admission.clone();
            request = request.map(|body| Body::new(Admitted { inner: body, admission: held, counts: true }));
        }
        request.extensions_mut().insert(admission.clone());
        // The response body keeps the slot (and the bytes) until it has been sent.
        let held = move |response: Response| {
            response.map(|body| Body::new(Admitted { inner: body, admission, counts: false }))
        };
        Either::Right(self.inner.call(request).map(move |result| result.map(held)).boxed())
    }
}

/// A body that keeps its call's admission until it is dropped; a unary request body's data
/// frames are also reserved against the byte budget as they arrive (`counts`).
struct Admitted {
    inner: Body,
    admission: Arc<Admission>,
    counts: bool,
}

impl HttpBody for Admitted {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let size = match &frame {
            Some(Ok(frame)) if self.counts => frame.data_ref().map_or(0, bytes::Bytes::len),
            _ => 0,
        };
        if let Err(refused) = self.admission.hold(size) {
            return Poll::Ready(Some(Err(proxy_status(refused.into()))));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

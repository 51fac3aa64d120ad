//! tonic refuses a request message over the service's size limit before reading it — good:
//! nothing oversized is buffered — but with `OUT_OF_RANGE`. The contract says a body past the
//! limit is `RESOURCE_EXHAUSTED`; this wrapper says so. The broker service itself never
//! answers `OUT_OF_RANGE`, so every such status from it is tonic's size refusal.

use futures::future::{FutureExt, Map};
use std::task::{Context, Poll};
use tonic::codegen::http;
use tonic::server::NamedService;
use tower::Service;

const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: &str = "8";

/// Wraps a gRPC service; see the module documentation.
#[derive(Clone)]
pub struct SizeRefusals<S>(pub S);

impl<S: NamedService> NamedService for SizeRefusals<S> {
    const NAME: &'static str = S::NAME;
}

type Response = http::Response<tonic::body::Body>;

impl<S, R> Service<R> for SizeRefusals<S>
where
    S: Service<R, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Map<S::Future, fn(Result<Response, S::Error>) -> Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.0.call(request).map(|result| result.map(rewrite))
    }
}

/// A trailers-only answer (the refusal comes before any message) carries its status in the
/// headers.
fn rewrite(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if headers.get("grpc-status").is_some_and(|status| status == OUT_OF_RANGE) {
        headers.insert("grpc-status", http::HeaderValue::from_static(RESOURCE_EXHAUSTED));
    }
    response
}

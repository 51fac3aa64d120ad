//! `rpc_server_call_duration_seconds`: a tower layer around the gRPC server that times every
//! call and labels it as the OpenTelemetry RPC conventions say (`rpc.system`, `rpc.service`,
//! `rpc.method`, `rpc.grpc.status_code`).
//!
//! The time is taken to the response head: a unary call is complete by then; a streamed
//! response (ProxyCallStream) is counted with the status its head carries. Labels stay
//! bounded: a path naming no service credbroker serves, or a method that turned out
//! UNIMPLEMENTED, is labelled `unknown` — a caller cannot mint series.

use futures::future::BoxFuture;
use opentelemetry::KeyValue;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::http;
use tower::{Layer, Service};

const SERVICES: [&str; 5] = [
    "credbroker.v1.CredentialBroker",
    "credbroker.v1.CredentialAdmin",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];
const UNIMPLEMENTED: i64 = 12;

/// `Server::builder().layer(RpcMetricsLayer)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for RpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = service_and_method(request.uri().path());
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            if let Ok(response) = &result {
                record(service, method, grpc_status(response), started);
            }
            result
        })
    }
}

/// `/pkg.Service/Method` → (service, method), `unknown` for services not served here.
fn service_and_method(path: &str) -> (&'static str, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    match SERVICES.iter().find(|known| **known == service) {
        Some(known) => (known, method.to_owned()),
        None => ("unknown", "unknown".to_owned()),
    }
}

/// The status in the response head: present for errors (trailers-only responses); a call
/// whose head has none is answering normally (OK).
fn grpc_status<R>(response: &http::Response<R>) -> i64 {
    let header = response.headers().get("grpc-status").and_then(|v| v.to_str().ok());
    header.and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn record(service: &'static str, method: String, code: i64, started: Instant) {
    let method = if code == UNIMPLEMENTED { "unknown".to_owned() } else { method };
    let attributes = [
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.service", service),
        KeyValue::new("rpc.method", method),
        KeyValue::new("rpc.grpc.status_code", code),
    ];
    super::metrics::instruments().rpc_duration.record(started.elapsed().as_secs_f64(), &attributes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_to_the_services_served_here() {
        assert_eq!(
            service_and_method("/credbroker.v1.CredentialBroker/GetAuthorization"),
            ("credbroker.v1.CredentialBroker", "GetAuthorization".to_owned())
        );
        assert_eq!(service_and_method("/evil.Service/x"), ("unknown", "unknown".to_owned()));
        assert_eq!(service_and_method("/metrics"), ("unknown", "unknown".to_owned()));
    }
}

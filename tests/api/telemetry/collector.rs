//! In-test OpenTelemetry collectors (OTLP over gRPC on loopback) and the span tree they
//! received.

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use std::sync::{Arc, Mutex};
use tokio_stream::wrappers::TcpListenerStream;

/// An OTLP collector on loopback: the trace requests it received and the names of the metric
/// instruments.
#[derive(Clone, Default)]
pub struct Collector {
    pub received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    pub metric_names: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl Collector {
    /// Starts one, serving traces and metrics; its address.
    pub async fn start() -> (Self, std::net::SocketAddr) {
        let collector = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()));
        tokio::spawn(server.serve_with_incoming(TcpListenerStream::new(listener)));
        (collector, addr)
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.received.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[derive(Debug)]
pub struct Exported {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
}

pub fn exported_spans(collector: &Collector) -> Vec<Exported> {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let received = collector.received.lock().unwrap();
    let spans = received.iter().flat_map(|r| &r.resource_spans).flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans);
    spans
        .map(|s| Exported {
            name: s.name.clone(),
            trace_id: hex(&s.trace_id),
            span_id: hex(&s.span_id),
            parent: hex(&s.parent_span_id),
            links: s.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect(),
        })
        .collect()
}

/// Whether `span` is `ancestor` or below it, following parent ids within `spans`.
pub fn descends(span: &Exported, ancestor: &str, spans: &[&Exported]) -> bool {
    let mut current = span;
    for _ in 0..spans.len() + 1 {
        if current.span_id == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_id == current.parent) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        let metrics = request.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics);
        self.metric_names.lock().unwrap().extend(metrics.map(|m| m.name.clone()));
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

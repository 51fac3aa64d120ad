//! The ProxyCall RPCs: the caller's trace context, parsing at the edge, the call, and the
//! answer back as proto. `broker_service` delegates here; `proxy_admission` has admitted the
//! call before its request was read.

use super::pb::{self, proxy_call_chunk::Part};
use super::proxy_convert::{body_chunk, response_head};
use super::status::{invalid, proxy_status};
use crate::domain::InvalidField;
use crate::proxy::{Admission, Proxy, ProxyError, ProxyHead};
use crate::security::{Gate, Rpc};
use crate::telemetry::sampling::root_span;
use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};
use opentelemetry::Context;
use opentelemetry::propagation::Extractor;
use std::pin::Pin;
use std::sync::Arc;
use tonic::metadata::{KeyRef, MetadataMap};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, Span};

/// What `ProxyCallStream` answers with.
pub type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::ProxyCallResponseChunk, Status>> + Send>>;

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        let ascii = |key| if let KeyRef::Ascii(key) = key { Some(key.as_str()) } else { None };
        self.0.keys().filter_map(ascii).collect()
    }
}

/// The caller's W3C trace context (`traceparent`, `tracestate` metadata).
fn caller_context(metadata: &MetadataMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&MetadataExtractor(metadata)))
}

// The spans are made by hand rather than with `#[instrument]`: their parent (the caller's
// trace) must be set before they are first entered, and it decides whether they are sampled.
macro_rules! rpc_span {
    ($name:literal) => {
        tracing::info_span!(
            $name,
            otel.kind = "server",
            rpc.system = "grpc",
            provider = tracing::field::Empty,
            subject = tracing::field::Empty,
            http.request.method = tracing::field::Empty,
            url.path = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            token_fingerprint = tracing::field::Empty,
        )
    };
}

fn record_head(head: &ProxyHead) {
    let span = Span::current();
    span.record("provider", head.provider.as_str());
    span.record("subject", head.subject.as_ref().map_or("", |s| s.as_str()));
    span.record("http.request.method", head.method.as_str());
    // The path without its query: queries may carry a caller's data.
    span.record("url.path", head.path.path());
}

/// The call's slot: taken by `proxy_admission` before the request was read, or here when the
/// service is served without that layer (then a unary body is held here too).
fn admission<T>(proxy: &Proxy, request: &Request<T>, body: usize) -> Result<Arc<Admission>, Status> {
    if let Some(admission) = request.extensions().get::<Arc<Admission>>() {
        return Ok(admission.clone());
    }
    let admitted = proxy.in_flight().admit().and_then(|a| a.hold(body).map(|()| a));
    admitted.map_err(|e| proxy_status(e.into()))
}

pub(super) async fn unary(
    proxy: &Proxy,
    gate: &Gate,
    request: Request<pb::ProxyCallRequest>,
) -> Result<Response<pb::ProxyCallResponse>, Status> {
    let parent = caller_context(request.metadata());
    let span = root_span(&parent, || rpc_span!("credbroker.v1.CredentialBroker/ProxyCall"));
    async move {
        let (provider, subject) = (&request.get_ref().provider, &request.get_ref().subject);
        let passed = gate.check(&request, Rpc::ProxyCall, provider, subject)?;
        // The decision to use the credential is audited before the upstream call.
        gate.finish(&passed, Ok(None)).await?;
        let result = unary_call(proxy, request, &parent).await;
        if let Err(status) = &result {
            let _ = gate.finish(&passed, Err(status)).await;
        }
        result
    }
    .instrument(span)
    .await
}

async fn unary_call(
    proxy: &Proxy,
    request: Request<pb::ProxyCallRequest>,
    parent: &Context,
) -> Result<Response<pb::ProxyCallResponse>, Status> {
    {
        let admission = admission(proxy, &request, request.get_ref().body.len())?;
        let (head, body) = <(ProxyHead, Bytes)>::try_from(request.into_inner()).map_err(invalid)?;
        record_head(&head);
        let response = proxy.call(head, body, parent, &admission).await.map_err(proxy_status)?;
        Span::current().record("http.response.status_code", response.status.as_u16());
        Ok(Response::new(response.into()))
    }
}

pub(super) async fn streaming(
    proxy: &Proxy,
    gate: &Gate,
    request: Request<Streaming<pb::ProxyCallChunk>>,
) -> Result<Response<ResponseStream>, Status> {
    let parent = caller_context(request.metadata());
    let span = root_span(&parent, || rpc_span!("credbroker.v1.CredentialBroker/ProxyCallStream"));
    async move {
        let caller = gate.authenticate(&request, Rpc::ProxyCallStream)?;
        let admission = admission(proxy, &request, 0)?;
        let mut chunks = request.into_inner();
        let head = match first_message(proxy, &mut chunks).await? {
            Some(pb::ProxyCallChunk { part: Some(Part::Head(head)) }) => ProxyHead::try_from(head).map_err(invalid)?,
            _ => return Err(invalid(InvalidField::new("head", "the first message must carry the head"))),
        };
        record_head(&head);
        let passed =
            gate.authorize(caller, head.provider.as_str(), head.subject.as_ref().map_or("", |s| s.as_str()))?;
        gate.finish(&passed, Ok(None)).await?;
        let body = upload(chunks, proxy.settings().max_message_size());
        let response = proxy.call_stream(head, body, &parent, admission).await.map_err(proxy_status);
        if let Err(status) = &response {
            let _ = gate.finish(&passed, Err(status)).await;
        }
        let response = response?;
        Span::current().record("http.response.status_code", response.status.as_u16());
        let first = response_head(response.status, &response.headers);
        let rest = response.body.map(|chunk| chunk.map(body_chunk).map_err(|e| proxy_status(e.into())));
        Ok(Response::new(Box::pin(stream::once(async { Ok(first) }).chain(rest)) as ResponseStream))
    }
    .instrument(span)
    .await
}

/// The head, waited for no longer than `proxy.default_timeout`: the caller's own timeout is
/// in the head, and a stream that never sends one must not hold its slot for ever.
async fn first_message(
    proxy: &Proxy,
    chunks: &mut Streaming<pb::ProxyCallChunk>,
) -> Result<Option<pb::ProxyCallChunk>, Status> {
    let waited = proxy.settings().default_timeout;
    match tokio::time::timeout(waited, chunks.message()).await {
        Ok(message) => message,
        Err(_) => Err(proxy_status(ProxyError::CallerSilent { what: "head", waited }.into())),
    }
}

/// The request body: every message after the head. A message over `max_message` bytes is
/// refused by tonic before it is read.
fn upload(chunks: Streaming<pb::ProxyCallChunk>, max_message: usize) -> crate::proxy::BodyStream {
    chunks
        .map(move |message| match message {
            Ok(pb::ProxyCallChunk { part: Some(Part::Body(bytes)) }) => Ok(bytes),
            Ok(pb::ProxyCallChunk { part: None }) => Ok(Bytes::new()),
            Ok(pb::ProxyCallChunk { part: Some(Part::Head(_)) }) => {
                Err(ProxyError::Protocol("head: only the first message may carry the head"))
            }
            Err(status) if status.code() == tonic::Code::OutOfRange => {
                Err(ProxyError::RequestTooLarge { limit: max_message as u64 })
            }
            Err(status) => Err(ProxyError::RequestStream(status.message().to_owned())),
        })
        .boxed()
}

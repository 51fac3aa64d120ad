//! Parsing at the edge for the ProxyCall RPCs: proto requests become a [`ProxyHead`] (and
//! body), and proxied responses become proto messages.

use super::convert::duration;
use super::pb;
use crate::domain::{InvalidField, ProviderName, Subject};
use crate::proxy::{ProxyHead, ProxyPath, ProxyResponse, headers, parse_method};
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, HeaderMap};
use std::time::Duration;

/// Timeouts beyond this are refused as nonsense; sensible ones are clamped by the proxy.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

fn head(
    provider: &str,
    subject: &str,
    method: &str,
    path: &str,
    caller_headers: &[pb::Header],
    timeout: Option<prost_types::Duration>,
) -> Result<ProxyHead, InvalidField> {
    let pairs = caller_headers.iter().map(|h| (h.name.as_str(), h.value.as_str()));
    Ok(ProxyHead {
        provider: ProviderName::parse("provider", provider)?,
        subject: Subject::parse_optional("subject", subject)?,
        method: parse_method("method", method)?,
        path: ProxyPath::parse("path", path)?,
        headers: headers::request_headers("headers", pairs)?,
        timeout: timeout.map(|t| duration("timeout", Some(t), Duration::ZERO, MAX_TIMEOUT)).transpose()?,
    })
}

impl TryFrom<pb::ProxyCallRequest> for (ProxyHead, Bytes) {
    type Error = InvalidField;
    fn try_from(r: pb::ProxyCallRequest) -> Result<Self, InvalidField> {
        let head = head(&r.provider, &r.subject, &r.method, &r.path, &r.headers, r.timeout)?;
        let body = r.body;
        // A caller's content-length frames the upstream request: it must be the truth.
        if let Some(declared) = head.headers.get(CONTENT_LENGTH) {
            if declared.to_str().ok().and_then(|v| v.parse::<usize>().ok()) != Some(body.len()) {
                let problem = format!("content-length does not match the body ({} bytes)", body.len());
                return Err(InvalidField::new("headers", problem));
            }
        }
        Ok((head, body))
    }
}

impl TryFrom<pb::ProxyCallHead> for ProxyHead {
    type Error = InvalidField;
    fn try_from(h: pb::ProxyCallHead) -> Result<Self, InvalidField> {
        head(&h.provider, &h.subject, &h.method, &h.path, &h.headers, h.timeout)
    }
}

fn proto_headers(headers: &HeaderMap) -> Vec<pb::Header> {
    headers::pairs(headers).map(|(name, value)| pb::Header { name, value }).collect()
}

impl From<ProxyResponse> for pb::ProxyCallResponse {
    fn from(response: ProxyResponse) -> Self {
        Self { status: response.status.as_u16().into(), headers: proto_headers(&response.headers), body: response.body }
    }
}

/// The first message of a streamed response.
pub fn response_head(status: StatusCode, headers: &HeaderMap) -> pb::ProxyCallResponseChunk {
    let head = pb::ProxyCallResponseHead { status: status.as_u16().into(), headers: proto_headers(headers) };
    pb::ProxyCallResponseChunk { part: Some(pb::proxy_call_response_chunk::Part::Head(head)) }
}

/// A later message of a streamed response.
pub fn body_chunk(bytes: Bytes) -> pb::ProxyCallResponseChunk {
    pb::ProxyCallResponseChunk { part: Some(pb::proxy_call_response_chunk::Part::Body(bytes)) }
}

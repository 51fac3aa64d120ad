//! Data endpoints for exercising a proxy, served under every provider's API base (`pass/`,
//! `bro/api/v2/`, `passolution/api/v2/`, `jouwomgeving/api/`) behind that provider's own
//! authorization rules:
//!
//! | route                          | answer                                                      |
//! |--------------------------------|-------------------------------------------------------------|
//! | any method `data/echo[/…]`     | JSON: method, path, query, body length and SHA-256 (1)      |
//! | any method `data/mirror`       | the request body back, with its content type                |
//! | `POST`/`PUT` `data/sink`       | reads the body as it arrives: `{"len","sha256"}`            |
//! | `GET data/blob?size=N`         | N bytes of [`blob`], streamed; `&chunked` omits the length  |
//! | `GET data/slow?ms=N`           | answers after N ms                                          |
//! | `GET data/redirect`            | 302 to `data/echo`                                          |
//! | `GET data/ping`                | a tiny constant, for benchmarks                             |
//!
//! (1) `?status=N` answers N; the reply carries hop-by-hop headers and session cookies (a
//! proxy must strip them) and `x-echo: yes`. Refusals are 401 `{"message":"Unauthenticated."}`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, get, post};
use futures::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::config::Provider;
use crate::{bro, jouwomgeving, pass, passolution};

const BLOB_CHUNK: usize = 64 * 1024;

/// The routes under `base` (the provider's API base within its prefix, e.g. `/api/v2`).
pub(crate) fn router(provider: Provider, base: &str, state: &AppState) -> Router<AppState> {
    let auth = move |state: State<AppState>, request: Request, next: axum::middleware::Next| {
        authorize(provider, state, request, next)
    };
    Router::new()
        .route(&format!("{base}/data/echo"), any(echo))
        .route(&format!("{base}/data/echo/{{*rest}}"), any(echo))
        .route(&format!("{base}/data/mirror"), any(mirror))
        .route(&format!("{base}/data/sink"), post(sink).put(sink))
        .route(&format!("{base}/data/blob"), get(blob_response))
        .route(&format!("{base}/data/slow"), get(slow))
        .route(&format!("{base}/data/redirect"), get(redirect))
        .route(&format!("{base}/data/ping"), get(ping))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth))
}

async fn authorize(
    provider: Provider,
    State(state): State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    let allowed = match provider {
        Provider::Pass => pass::data_plane(&state, headers).is_ok(),
        Provider::Bro => bro::authorized(&state, headers),
        Provider::Passolution => passolution::authorized(&state, headers),
        Provider::JouwOmgeving => jouwomgeving::authorized(&state, headers),
    };
    if !allowed && provider == Provider::Passolution {
        return passolution::unauthenticated(&state);
    }
    if !allowed {
        return (StatusCode::UNAUTHORIZED, Json(json!({"message": "Unauthenticated."}))).into_response();
    }
    next.run(request).await
}

/// `len` deterministic pseudo-random bytes: what `data/blob` serves, for checking downloads.
pub fn blob(len: usize) -> Vec<u8> {
    blob_range(0, len)
}

fn blob_range(start: usize, end: usize) -> Vec<u8> {
    (start as u64..end as u64).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

async fn echo(method: Method, OriginalUri(uri): OriginalUri, headers: HeaderMap, body: Bytes) -> Response {
    let status = query_param(uri.query(), "status").and_then(|s| StatusCode::from_bytes(s.as_bytes()).ok());
    let report = json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "content_type": headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        "body_len": body.len(),
        "body_sha256": sha256_hex(&body),
    });
    let mut response = (status.unwrap_or(StatusCode::OK), Json(report)).into_response();
    let extra = response.headers_mut();
    for (name, value) in [
        ("x-echo", "yes"),
        ("keep-alive", "timeout=5"),
        ("proxy-authenticate", "Basic realm=\"fake\""),
        ("connection", "x-hop"),
        ("x-hop", "1"),
        ("set-cookie", "laravel_session=fake-upstream-session; HttpOnly"),
        ("set-cookie2", "legacy=fake-upstream-session"),
    ] {
        extra.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let pairs: HashMap<String, String> = serde_urlencoded::from_str(query?).ok()?;
    pairs.get(name).cloned()
}

async fn mirror(headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).cloned();
    let mut response = body.into_response();
    if let Some(content_type) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    }
    response
}

/// Reads the body as it arrives, never holding it whole.
async fn sink(body: Body) -> Response {
    let (mut len, mut hash) = (0usize, Sha256::new());
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return StatusCode::BAD_REQUEST.into_response() };
        len += chunk.len();
        hash.update(&chunk);
    }
    let sha256: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Json(json!({"len": len, "sha256": sha256})).into_response()
}

async fn blob_response(Query(query): Query<HashMap<String, String>>) -> Response {
    let size: usize = query.get("size").and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunks = (0..size).step_by(BLOB_CHUNK).map(move |start| {
        let end = (start + BLOB_CHUNK).min(size);
        Ok::<_, Infallible>(Bytes::from(blob_range(start, end)))
    });
    let mut response = Body::from_stream(futures::stream::iter(chunks)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if !query.contains_key("chunked") {
        response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    response
}

async fn slow(Query(query): Query<HashMap<String, String>>) -> Response {
    let ms: u64 = query.get("ms").and_then(|s| s.parse().ok()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"slept_ms": ms})).into_response()
}

async fn redirect() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, "echo")]).into_response()
}

async fn ping() -> Response {
    Json(json!({"ok": true})).into_response()
}

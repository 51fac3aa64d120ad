//! `/oauth/authorize`: Passport's authorize screen, as a browser sees it. `GET` checks the
//! request as league's `validateAuthorizationRequest` does and shows one HTML page with a
//! login and the consent question (Allow / Deny); `POST` (the form) logs the user in and
//! redirects back to the client's registered `redirect_uri` — with a code bound to the
//! client, the redirect URI, the scopes and the PKCE challenge, or with
//! `error=access_denied` — always carrying `state` and, per the `passolution_iss` knob, `iss`
//! (RFC 9207).
//!
//! A request whose client or redirect URI is unknown gets an error page, never a redirect
//! (RFC 6749 §4.1.2.1: the client is not trusted yet). Other problems (a wrong
//! `response_type`, an unknown scope) redirect back with the error, as league does.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::codes::Challenge;
use crate::app::AppState;
use crate::config::IssuerReply;

type Params = HashMap<String, String>;

/// The parameters the form carries from the GET to the POST.
const CARRIED: [&str; 6] = ["client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"];

pub(super) async fn show(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    match check(&state, &params) {
        Err(refusal) => refusal,
        Ok(()) => page(&params, None),
    }
}

pub(super) async fn decide(State(state): State<AppState>, Form(params): Form<Params>) -> Response {
    if let Err(refusal) = check(&state, &params) {
        return refusal;
    }
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    if param("decision") != "allow" {
        return back(&state, &params, &[("error", "access_denied")]);
    }
    if !state.passolution.login_ok(param("username"), param("password")) {
        return page(&params, Some("These credentials do not match our records."));
    }
    let challenge = params
        .get("code_challenge")
        .map(|value| Challenge { value: value.clone(), s256: param("code_challenge_method") == "S256" });
    let lifetime = state.knobs.config().passolution_code_lifetime;
    let code =
        state.passolution.issue_code(param("client_id"), param("redirect_uri"), challenge, scopes(&params), lifetime);
    back(&state, &params, &[("code", &code)])
}

/// The client and redirect URI must be registered (else an error page); the rest of the
/// request is checked with the answer sent back to the client.
fn check(state: &AppState, params: &Params) -> Result<(), Response> {
    let param = |name: &str| params.get(name).map(String::as_str);
    let registered = state.passolution.redirect_uri(param("client_id").unwrap_or_default());
    match (registered, param("redirect_uri")) {
        (Some(registered), Some(uri)) if registered == uri => {}
        _ => return Err(error_page("Client authentication failed")),
    }
    if param("response_type").is_some_and(|t| t != "code") {
        return Err(back(state, params, &[("error", "unsupported_response_type")]));
    }
    let known = state.knobs.config().passolution_scopes;
    if !scopes(params).iter().all(|s| s == "*" || known.contains(s)) {
        return Err(back(state, params, &[("error", "invalid_scope")]));
    }
    Ok(())
}

fn scopes(params: &Params) -> Vec<String> {
    params.get("scope").map(|s| s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}

/// 302 to the registered redirect URI with `answer`, the request's `state` and `iss`.
fn back(state: &AppState, params: &Params, answer: &[(&str, &str)]) -> Response {
    let redirect_uri = &params["redirect_uri"];
    let mut query: Vec<(&str, &str)> = answer.to_vec();
    query.extend(params.get("state").map(|s| ("state", s.as_str())));
    let issuer = state.passolution.issuer.get().cloned().unwrap_or_default();
    match state.knobs.config().passolution_iss {
        IssuerReply::Correct => query.push(("iss", &issuer)),
        IssuerReply::Wrong => query.push(("iss", "https://attacker.example/")),
        IssuerReply::Omitted => {}
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let query = serde_urlencoded::to_string(query).expect("strings always encode");
    (StatusCode::FOUND, [(header::LOCATION, format!("{redirect_uri}{separator}{query}"))]).into_response()
}

/// The login and consent form; the request's parameters ride along as hidden fields.
fn page(params: &Params, problem: Option<&str>) -> Response {
    let hidden: String = CARRIED
        .iter()
        .filter_map(|name| params.get(*name).map(|v| (name, v)))
        .map(|(name, value)| format!(r#"<input type="hidden" name="{name}" value="{}">"#, escape(value)))
        .collect();
    let client = escape(params.get("client_id").map_or("", String::as_str));
    let scope = escape(params.get("scope").map_or("", String::as_str));
    let problem = problem.map(|p| format!(r#"<p class="problem">{p}</p>"#)).unwrap_or_default();
    let body = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Passolution — Authorization Request</title></head>
<body><h1>Authorization Request</h1><p><strong>{client}</strong> is requesting permission to access your account (scopes: {scope}).</p>{problem}
<form method="post" action="authorize">{hidden}
<label>E-mail <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button name="decision" value="allow">Authorize</button> <button name="decision" value="deny">Cancel</button>
</form></body></html>"#
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

fn error_page(message: &str) -> Response {
    let body = format!("<!doctype html><html><body><h1>Error</h1><p>{message}</p></body></html>");
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

/// HTML-escapes a value for text or a double-quoted attribute.
fn escape(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

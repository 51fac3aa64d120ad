//! Passolution's authorize screen: a login and consent form; Allow redirects back with a code
//! bound to the client, redirect URI, scopes and PKCE challenge, Deny with `access_denied`;
//! `state` and `iss` always come back.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fake_upstream::{FakeConfig, IssuerReply, Provider};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

use crate::helpers::{TestFake, spawn};
use crate::passolution::{CLIENT, REDIRECT, SECRET, spawn_client, token_json};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn request(scope: &str) -> Vec<(&'static str, String)> {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    vec![
        ("client_id", CLIENT.into()),
        ("redirect_uri", REDIRECT.into()),
        ("response_type", "code".into()),
        ("scope", scope.into()),
        ("state", "st<\"ate>".into()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".into()),
    ]
}

/// The form POSTed with `decision` and a login; the redirect's query parameters.
async fn decide(t: &TestFake, scope: &str, decision: &str, password: &str) -> (u16, HashMap<String, String>) {
    let mut form = request(scope);
    form.extend([("decision", decision.into()), ("username", "anna".into()), ("password", password.into())]);
    let response = t.http.post(t.url(Provider::Passolution, "oauth/authorize")).form(&form).send().await.unwrap();
    let status = response.status().as_u16();
    let Some(location) = response.headers().get("location") else { return (status, HashMap::new()) };
    let location = reqwest::Url::parse(location.to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    (status, location.query_pairs().into_owned().collect())
}

async fn consenting() -> TestFake {
    let t = spawn_client(FakeConfig::default()).await;
    t.fake.add_passolution_user("anna", "pw");
    t
}

#[tokio::test]
async fn the_page_asks_for_a_login_and_consent_and_escapes_what_it_shows() {
    let t = consenting().await;
    let url = t.url(Provider::Passolution, "oauth/authorize");
    let response = t.http.get(url).query(&request("read")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    for part in [r#"name="username""#, r#"type="password""#, r#"value="allow""#, r#"value="deny""#] {
        assert!(page.contains(part), "{part} in {page}");
    }
    assert!(page.contains("st&lt;&quot;ate&gt;") && !page.contains("st<\"ate>"), "{page}");
}

#[tokio::test]
async fn allow_returns_a_code_bound_to_the_request_with_state_and_iss() {
    let t = consenting().await;
    let (status, back) = decide(&t, "read write", "allow", "pw").await;
    assert_eq!(status, 302);
    assert_eq!((back["state"].as_str(), back["iss"].clone()), ("st<\"ate>", t.fake.passolution_issuer()));
    let exchange = |verifier: &str, redirect: &str| {
        json!({"grant_type": "authorization_code", "client_id": CLIENT, "client_secret": SECRET,
               "redirect_uri": redirect, "code": back["code"], "code_verifier": verifier})
    };
    let (status, body) = token_json(&t, exchange(VERIFIER, "https://app.example/other")).await;
    assert_eq!((status, &body["hint"]), (400, &json!("Invalid redirect URI")));
    let (status, body) = token_json(&t, exchange(&"x".repeat(43), REDIRECT)).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")), "the challenge binds the code");
    let (status, body) = token_json(&t, exchange(VERIFIER, REDIRECT)).await;
    assert_eq!(status, 200, "{body}");
    let claims = body["access_token"].as_str().unwrap().split('.').nth(1).unwrap().to_owned();
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["scopes"], json!(["read", "write"]));
    assert_eq!(t.fake.passolution_code_verifiers(), [VERIFIER]);
    let (status, _) = token_json(&t, exchange(VERIFIER, REDIRECT)).await;
    assert_eq!(status, 400, "a code is single use");
}

#[tokio::test]
async fn deny_wrong_passwords_unknown_scopes_and_unknown_clients() {
    let t = consenting().await;
    let (status, back) = decide(&t, "read", "deny", "").await;
    assert_eq!((status, back["error"].as_str(), back["state"].as_str()), (302, "access_denied", "st<\"ate>"));
    assert!(!back.contains_key("code"));
    let (status, back) = decide(&t, "read", "allow", "wrong").await;
    assert_eq!((status, back.len()), (200, 0), "the form again, no redirect");
    let (_, back) = decide(&t, "admin", "allow", "pw").await;
    assert_eq!(back["error"], "invalid_scope");
    let unknown = spawn().await;
    let url = unknown.url(Provider::Passolution, "oauth/authorize");
    let response = unknown.http.get(url).query(&request("read")).send().await.unwrap();
    assert_eq!((response.status().as_u16(), response.headers().get("location")), (400, None));
}

#[tokio::test]
async fn a_knob_drops_iss_or_sends_another_servers() {
    let t = consenting().await;
    t.fake.knobs().set_passolution_iss(IssuerReply::Omitted);
    assert!(!decide(&t, "read", "allow", "pw").await.1.contains_key("iss"));
    t.fake.knobs().set_passolution_iss(IssuerReply::Wrong);
    let (_, back) = decide(&t, "read", "allow", "pw").await;
    assert!(back["iss"] != t.fake.passolution_issuer() && back.contains_key("code"));
}

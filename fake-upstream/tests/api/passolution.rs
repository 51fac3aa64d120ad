//! Passolution: authorization code with PKCE, refresh rotation in Passport's order,
//! client credentials, rate limit, and the API's view of revoked tokens.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fake_upstream::{FakeConfig, Operation, Outcome, Provider, RefreshErrorStyle};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestFake, spawn_with, status_json};

pub const CLIENT: &str = "client-1";
pub const SECRET: &str = "secret-1";
pub const REDIRECT: &str = "https://app.example/callback";

pub async fn spawn_client(config: FakeConfig) -> TestFake {
    let t = spawn_with(config).await;
    t.fake.add_passolution_client(CLIENT, SECRET, REDIRECT);
    t
}

pub async fn token_json(t: &TestFake, body: Value) -> (u16, Value) {
    let url = t.url(Provider::Passolution, "oauth/token");
    status_json(t.http.post(url).json(&body).send().await.unwrap()).await
}

async fn refresh(t: &TestFake, refresh_token: &str) -> (u16, Value) {
    let body = json!({"grant_type": "refresh_token", "client_id": CLIENT, "client_secret": SECRET,
                      "refresh_token": refresh_token});
    token_json(t, body).await
}

async fn api_status(t: &TestFake, access_token: &str) -> u16 {
    let url = t.url(Provider::Passolution, "api/v2/infosystem/passolution");
    let request = t.http.get(url).bearer_auth(access_token).header("Accept", "application/json");
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn authorization_code_with_pkce() {
    let t = spawn_client(FakeConfig::default()).await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-extra-chars";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let code = t.fake.issue_passolution_code(CLIENT, Some(&challenge));
    let exchange = |verifier: &str| {
        json!({"grant_type": "authorization_code", "client_id": CLIENT, "client_secret": SECRET,
               "redirect_uri": REDIRECT, "code": code, "code_verifier": verifier})
    };

    let wrong = "x".repeat(43);
    let (status, body) = token_json(&t, exchange(&wrong)).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")));
    assert_eq!(body["hint"], "Failed to verify `code_verifier`.");

    let (status, body) = token_json(&t, exchange(verifier)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 31_536_000);
    assert!(body["refresh_token"].as_str().unwrap().starts_with("def50200"));
    assert_eq!(api_status(&t, body["access_token"].as_str().unwrap()).await, 200);

    let (status, body) = token_json(&t, exchange(verifier)).await;
    assert_eq!((status, &body["hint"]), (400, &json!("Authorization code has been revoked")));
}

#[tokio::test]
async fn form_body_and_basic_client_credentials() {
    let t = spawn_client(FakeConfig::default()).await;
    let code = t.fake.issue_passolution_code(CLIENT, None);
    let form = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)];
    let url = t.url(Provider::Passolution, "oauth/token");
    let response = t.http.post(&url).basic_auth(CLIENT, Some(SECRET)).form(&form).send().await.unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, 200, "{body}");

    let response = t.http.post(&url).basic_auth(CLIENT, Some("wrong")).form(&form).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Basic realm=\"OAuth\"");
    let (status, body) = status_json(response).await;
    assert_eq!(status, 401);
    let expected = json!({"error": "invalid_client", "error_description": "Client authentication failed",
                          "message": "Client authentication failed"});
    assert_eq!(body, expected);
}

#[tokio::test]
async fn refresh_rotates_and_a_replay_is_a_violation() {
    let t = spawn_client(FakeConfig::default()).await;
    let (old_access, old_refresh) = t.fake.issue_passolution_tokens(CLIENT);
    assert_eq!(api_status(&t, &old_access).await, 200);

    let (status, body) = refresh(&t, &old_refresh).await;
    assert_eq!(status, 200, "{body}");
    let new_access = body["access_token"].as_str().unwrap();
    assert_ne!(body["refresh_token"].as_str().unwrap(), old_refresh);
    assert_eq!(api_status(&t, &old_access).await, 401, "old access token revoked at once");
    assert_eq!(api_status(&t, new_access).await, 200);

    let (status, body) = refresh(&t, &old_refresh).await;
    let expected = json!({"error": "invalid_grant", "error_description": "The refresh token is invalid.",
                          "hint": "Token has been revoked", "message": "The refresh token is invalid."});
    assert_eq!((status, body), (400, expected));

    let ledger = t.fake.ledger();
    assert_eq!(ledger.redemptions_of(&old_refresh), 1);
    let violations = ledger.violations();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].presented_token.as_deref(), Some(old_refresh.as_str()));
    assert_eq!(violations[0].credential.as_deref(), Some(CLIENT));
    assert!(
        matches!(&violations[0].outcome, Outcome::Refused { status: 400, reason } if reason == "Token has been revoked")
    );
}

#[tokio::test]
async fn older_servers_refuse_with_401_and_bad_clients_come_first() {
    let config = FakeConfig { passolution_error_style: RefreshErrorStyle::Older, ..FakeConfig::default() };
    let t = spawn_client(config).await;
    let (_, old_refresh) = t.fake.issue_passolution_tokens(CLIENT);
    assert_eq!(refresh(&t, &old_refresh).await.0, 200);

    let (status, body) = refresh(&t, &old_refresh).await;
    assert_eq!(
        (status, &body["error"], &body["hint"]),
        (401, &json!("invalid_request"), &json!("Token has been revoked"))
    );
    let (status, body) = refresh(&t, "def50200garbage").await;
    assert_eq!((status, &body["hint"]), (401, &json!("Cannot decrypt the refresh token")));

    // Client first: a bad secret is invalid_client even for a replayed token — still a violation.
    let bad_client = json!({"grant_type": "refresh_token", "client_id": CLIENT, "client_secret": "nope",
                            "refresh_token": old_refresh});
    let (status, body) = token_json(&t, bad_client).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
    assert_eq!(t.fake.ledger().violations().len(), 2);
}

#[tokio::test]
async fn client_credentials_has_no_refresh_token() {
    let t = spawn_client(FakeConfig::default()).await;
    let body = json!({"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET});
    let (status, body) = token_json(&t, body).await;
    assert_eq!(status, 200);
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(api_status(&t, body["access_token"].as_str().unwrap()).await, 200);
    let (status, body) = token_json(&t, json!({"grant_type": "password"})).await;
    assert_eq!((status, &body["error"]), (400, &json!("unsupported_grant_type")));
}

#[tokio::test]
async fn too_many_attempts_above_the_limit() {
    let t = spawn_client(FakeConfig { passolution_rate_limit: 3, ..FakeConfig::default() }).await;
    let body = json!({"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET});
    let url = t.url(Provider::Passolution, "oauth/token");
    for remaining in ["2", "1", "0"] {
        let response = t.http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
    }
    let response = t.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(response.headers()["x-ratelimit-limit"], "3");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"message": "Too Many Attempts."}));

    let throttled = |e: &fake_upstream::Entry| matches!(e.outcome, Outcome::Refused { status: 429, .. });
    assert_eq!(t.fake.ledger().count(throttled), 1);
    assert_eq!(t.fake.ledger().count(|e| e.operation == Operation::ClientCredentialsGrant), 4);
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let config = FakeConfig {
        passolution_access_lifetime: Duration::from_millis(300),
        passolution_refresh_lifetime: Duration::ZERO,
        ..FakeConfig::default()
    };
    let t = spawn_client(config).await;
    let (access, refresh_token) = t.fake.issue_passolution_tokens(CLIENT);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api_status(&t, &access).await, 401);
    let (status, body) = refresh(&t, &refresh_token).await;
    assert_eq!((status, &body["hint"]), (400, &json!("Token has expired")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_let_exactly_one_win() {
    let t = spawn_client(FakeConfig::default()).await;
    let (_, refresh_token) = t.fake.issue_passolution_tokens(CLIENT);
    let body = json!({"grant_type": "refresh_token", "client_id": CLIENT, "client_secret": SECRET,
                      "refresh_token": refresh_token});
    let url = t.url(Provider::Passolution, "oauth/token");
    let sends: Vec<_> = (0..8).map(|_| tokio::spawn(t.http.post(&url).json(&body).send())).collect();
    let mut statuses = Vec::new();
    for send in sends {
        statuses.push(send.await.unwrap().unwrap().status().as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 400, 400, 400, 400, 400, 400, 400]);
    let ledger = t.fake.ledger();
    assert_eq!(ledger.redemptions_of(&refresh_token), 1);
    assert_eq!(ledger.attempts_with(&refresh_token), 8);
    assert_eq!(ledger.violations().len(), 7);
}

//! JouwOmgeving: djangorestframework-jwt obtain, refresh and expiry.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fake_upstream::{FakeConfig, Provider};
use serde_json::{Value, json};

use crate::helpers::{TestFake, now_unix, sleep_until_unix, spawn_with, status_json};

async fn spawn_user(config: FakeConfig) -> TestFake {
    let t = spawn_with(config).await;
    t.fake.add_jouwomgeving_user("app", "wachtwoord");
    t
}

async fn obtain(t: &TestFake, username: &str, password: &str) -> (u16, Value) {
    let url = t.url(Provider::JouwOmgeving, "api/api-token-auth/");
    let body = json!({"username": username, "password": password});
    status_json(t.http.post(url).json(&body).send().await.unwrap()).await
}

async fn refresh(t: &TestFake, token: &str) -> (u16, Value) {
    let url = t.url(Provider::JouwOmgeving, "api/api-token-refresh/");
    status_json(t.http.post(url).json(&json!({"token": token})).send().await.unwrap()).await
}

async fn users(t: &TestFake, authorization: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = t.http.get(t.url(Provider::JouwOmgeving, "api/users/"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = status_json(response).await;
    (status, challenge, body)
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn obtain_and_use_a_token() {
    let t = spawn_user(FakeConfig::default()).await;
    let (status, body) = obtain(&t, "app", "wachtwoord").await;
    assert_eq!(status, 200);
    let token = body["token"].as_str().unwrap();
    let claims = claims(token);
    assert_eq!((&claims["user_id"], &claims["username"]), (&json!(1), &json!("app")));
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["orig_iat"].as_u64().unwrap(), 300);

    let (status, _, body) = users(&t, Some(&format!("JWT {token}"))).await;
    assert_eq!((status, &body["results"][0]["username"]), (200, &json!("app")));

    let refused = [
        (None, "Authentication credentials were not provided."),
        (Some("JWT not.a.jwt"), "Error decoding signature."),
        (Some("Bearer x"), "Authentication credentials were not provided."),
    ];
    for (authorization, detail) in refused {
        let (status, challenge, body) = users(&t, authorization).await;
        assert_eq!((status, challenge.as_deref(), body), (401, Some("JWT realm=\"api\""), json!({"detail": detail})));
    }

    let (status, body) = obtain(&t, "app", "fout").await;
    let expected = json!({"non_field_errors": ["Unable to log in with provided credentials."]});
    assert_eq!((status, body), (400, expected));
}

#[tokio::test]
async fn a_two_second_token_expires() {
    let config = FakeConfig { jouwomgeving_jwt_lifetime: Duration::from_secs(2), ..FakeConfig::default() };
    let t = spawn_user(config).await;
    let token = obtain(&t, "app", "wachtwoord").await.1["token"].as_str().unwrap().to_owned();
    let (status, body) = refresh(&t, &token).await;
    assert_eq!(status, 200);
    let refreshed = body["token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&refreshed)["orig_iat"], claims(&token)["orig_iat"]);

    // No clock leeway: expired once the Unix second passes `exp`.
    let exp = claims(&refreshed)["exp"].as_u64().unwrap();
    assert!(exp - now_unix() <= 2);
    sleep_until_unix(exp + 1).await;
    let (status, challenge, body) = users(&t, Some(&format!("JWT {refreshed}"))).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("JWT realm=\"api\"")));
    assert_eq!(body, json!({"detail": "Signature has expired."}));
    let (status, body) = refresh(&t, &refreshed).await;
    assert_eq!((status, body), (400, json!({"non_field_errors": ["Signature has expired."]})));
}

#[tokio::test]
async fn refresh_ends_with_the_refresh_window() {
    let config = FakeConfig { jouwomgeving_refresh_window: Duration::ZERO, ..FakeConfig::default() };
    let t = spawn_user(config).await;
    let token = obtain(&t, "app", "wachtwoord").await.1["token"].as_str().unwrap().to_owned();
    sleep_until_unix(claims(&token)["orig_iat"].as_u64().unwrap() + 1).await;
    let (status, body) = refresh(&t, &token).await;
    assert_eq!((status, body), (400, json!({"non_field_errors": ["Refresh has expired."]})));
}

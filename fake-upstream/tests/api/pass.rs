//! PASS: Basic login, refresh, logout, sliding expiry, AppBearer, PasswordToken.

use std::time::{Duration, SystemTime};

use fake_upstream::{FakeConfig, Provider};
use serde_json::Value;

use crate::helpers::{TestFake, spawn, spawn_with, status_json};

async fn login(t: &TestFake, user: &str, password: &str) -> (u16, Value) {
    let url = t.url(Provider::Pass, "token/v1/login");
    status_json(t.http.post(url).basic_auth(user, Some(password)).send().await.unwrap()).await
}

async fn pashouder(t: &TestFake, authorization: &str) -> (u16, Value) {
    let url = t.url(Provider::Pass, "rest/sales/v1/pashouder");
    let request = t.http.get(url).header("API-Key", t.fake.pass_api_key());
    status_json(request.header("Authorization", authorization).send().await.unwrap()).await
}

fn message(body: &Value) -> &str {
    body["result"]["message"].as_str().unwrap()
}

#[tokio::test]
async fn login_refresh_logout() {
    let t = spawn().await;
    t.fake.add_pass_user("jan", "geheim123", true);
    let (status, body) = login(&t, "jan", "geheim123").await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "AccessToken");
    let token = body["token"].as_str().unwrap().to_owned();
    let expiry = body["expiry_date"].as_str().unwrap().to_owned();
    // ISO-8601 UTC with milliseconds: 2019-09-25T13:40:45.904Z
    assert_eq!((expiry.len(), &expiry[19..20], &expiry[23..]), (24, ".", "Z"), "{expiry}");

    for method in [reqwest::Method::POST, reqwest::Method::DELETE] {
        let url = t.url(Provider::Pass, "token/v1/refresh");
        let response = t.http.request(method, url).bearer_auth(&token).send().await.unwrap();
        let (status, body) = status_json(response).await;
        assert_eq!(status, 200);
        assert_eq!(body["token"], token.as_str(), "same token, later expiry");
        assert!(body["expiry_date"].as_str().unwrap() >= expiry.as_str());
    }

    let logout = t.http.delete(t.url(Provider::Pass, "token/v1/login")).bearer_auth(&token);
    assert_eq!(logout.send().await.unwrap().status(), 204);
    let (status, body) = pashouder(&t, &format!("Bearer {token}")).await;
    assert_eq!((status, message(&body)), (401, "Token expired"));
    assert_eq!(t.fake.ledger().entries().len(), 4);
}

#[tokio::test]
async fn login_errors_use_pass_messages() {
    let t = spawn().await;
    t.fake.add_pass_user("jan", "geheim123", true);
    t.fake.add_pass_user("piet", "geheim123", false);
    let response = t.http.post(t.url(Provider::Pass, "token/v1/login")).send().await.unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!((status, message(&body)), (400, "Authorization header missing"));
    assert_eq!(body["result"]["code"], 400);
    for (user, password, expected) in [
        ("jan", "wrong", "Authentication failed"),
        ("klaas", "x", "User not found"),
        ("piet", "geheim123", "User not active"),
        ("jan", "", "Password is missing"),
    ] {
        let (status, body) = login(&t, user, password).await;
        assert_eq!((status, message(&body)), (401, expected));
    }
}

#[tokio::test]
async fn each_use_slides_the_expiry() {
    let lifetime = Duration::from_secs(2);
    let config = FakeConfig { pass_max_lifetime: lifetime, ..FakeConfig::default() };
    let t = spawn_with(config).await;
    t.fake.add_pass_user("jan", "geheim123", true);
    let token = login(&t, "jan", "geheim123").await.1["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let expiry = || t.fake.pass_token_expiry(&token).unwrap();
    let first_expiry = expiry();

    // Halfway through its life, a use slides the expiry to a full lifetime from then.
    until(first_expiry - lifetime / 2).await;
    assert_eq!(pashouder(&t, &bearer).await.0, 200);
    let slid = expiry();
    assert!(slid > first_expiry);
    // Past the first expiry: alive only because the last use slid it.
    until(first_expiry + Duration::from_millis(1)).await;
    assert!(SystemTime::now() < slid, "the machine stalled past the slid expiry; nothing to check");
    let (status, body) = pashouder(&t, &bearer).await;
    assert_eq!(status, 200);
    assert_eq!(body["pashouder"]["login_name"], "jan");
    // Past the last use's expiry, with no use in between: expired.
    until(expiry() + Duration::from_millis(1)).await;
    let (status, body) = pashouder(&t, &bearer).await;
    assert_eq!((status, message(&body)), (401, "Token expired"));
}

/// Waits until the clock passes `at` — a time read from the fake's state, not a guess.
async fn until(at: SystemTime) {
    if let Ok(left) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
}

#[tokio::test]
async fn app_bearer_and_api_key() {
    let t = spawn().await;
    t.fake.add_pass_client_number("100001");
    let key = t.fake.pass_api_key();
    let (status, body) = pashouder(&t, &format!("AppBearer {key},100001")).await;
    assert_eq!((status, &body["pashouder"]["client_number"]), (200, &Value::from("100001")));

    for (authorization, expected) in [
        (format!("AppBearer {key},999999"), (401, "Token invalid or not found")),
        ("AppBearer other-key,100001".to_owned(), (401, "API key not authorized")),
        (format!("AppBearer {key}, 100001"), (401, "Authorization header invalid")),
        ("Bearer unknown-token".to_owned(), (401, "Token invalid or not found")),
        ("Digest abc".to_owned(), (406, "Auth bearer unknown")),
    ] {
        let (status, body) = pashouder(&t, &authorization).await;
        assert_eq!((status, message(&body)), expected, "{authorization}");
    }

    let url = t.url(Provider::Pass, "sales/v1/pashouder");
    let (status, body) = status_json(t.http.get(&url).header("API-Key", &key).send().await.unwrap()).await;
    assert_eq!((status, message(&body)), (406, "Authorization header missing"));
    let no_key = t.http.get(&url).header("Authorization", format!("AppBearer {key},100001"));
    let (status, body) = status_json(no_key.send().await.unwrap()).await;
    assert_eq!((status, message(&body)), (401, "API key not authorized"));

    let aanbod = t.http.get(t.url(Provider::Pass, "aanbod/v1/aanbiedingen")).header("API-Key", &key);
    assert_eq!(aanbod.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn password_token_changes_the_password() {
    let t = spawn().await;
    t.fake.add_pass_user("jan", "geheim123", true);
    let url = t.url(Provider::Pass, "token/v1/passwordtoken?login_name=jan");
    let without_key = t.http.post(&url).send().await.unwrap();
    assert_eq!(without_key.status(), 401);
    let response = t.http.post(&url).header("API-Key", t.fake.pass_api_key()).send().await.unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!((status, &body["token_type"]), (200, &Value::from("PasswordToken")));

    let change = t.http.post(t.url(Provider::Pass, "token/v1/changepassword"));
    let change = change.bearer_auth(body["token"].as_str().unwrap());
    let response = change.json(&serde_json::json!({"password": "nieuw-wachtwoord"})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(login(&t, "jan", "nieuw-wachtwoord").await.0, 200);
}

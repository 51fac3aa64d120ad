//! How the shared client sends, and how it classifies what comes back, over real sockets.

use std::time::Duration;

use fake_upstream::{Delivery, FailureMode, Operation, Outcome, Provider, Times};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::test_support::{client, closed_port_url, fake, impatient_client, url};
use super::*;

/// A PASS login through the raw client: the simplest call the fake routes through its knobs.
async fn pass_login(http: &HttpClient, base: &str) -> Result<Reply, UpstreamError> {
    let request = http.inner().post(url(&format!("{base}token/v1/login"))).basic_auth("anna", Some("pw"));
    http.send(request, &[]).await
}

/// Serves one connection with `status` (e.g. `302 Found`), extra header lines and `body`;
/// yields the request head it read, lower-cased.
async fn one_shot(status: &str, headers: &str, body: &str) -> (String, JoinHandle<String>) {
    let response = format!("HTTP/1.1 {status}\r\n{headers}content-length: {}\r\n\r\n{body}", body.len());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let served = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed before sending its headers");
            head.extend_from_slice(&buf[..n]);
        }
        stream.write_all(response.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        String::from_utf8_lossy(&head).to_lowercase()
    });
    (base, served)
}

#[tokio::test]
async fn a_closed_port_is_not_sent() {
    let http = client();
    let err = http.send(http.inner().get(closed_port_url()), &[]).await.unwrap_err();
    assert!(matches!(err, UpstreamError::NotSent { .. }), "{err:?}");
}

#[tokio::test]
async fn a_connection_dropped_before_processing_is_no_answer_and_not_resent() {
    let fake = fake().await;
    fake.add_pass_user("anna", "pw", true);
    // Only the first call fails: a resend by any layer below us would succeed and show here.
    fake.knobs().fail(Provider::Pass, FailureMode::DropBeforeProcessing, Times::Next(1));
    let err = pass_login(&client(), &fake.url(Provider::Pass)).await.expect_err("the call fails");
    assert!(matches!(err, UpstreamError::NoAnswer { .. }), "{err:?}");
    assert_eq!(fake.ledger().count(|e| e.operation == Operation::Login), 1);
}

#[tokio::test]
async fn a_connection_dropped_after_committing_looks_the_same() {
    let fake = fake().await;
    fake.add_pass_user("anna", "pw", true);
    fake.knobs().fail(Provider::Pass, FailureMode::CommitThenDrop, Times::Next(1));
    let err = pass_login(&client(), &fake.url(Provider::Pass)).await.expect_err("the call fails");
    assert!(matches!(err, UpstreamError::NoAnswer { .. }), "{err:?}");
    let entries = fake.ledger().entries();
    assert_eq!(entries.len(), 1);
    assert_eq!((&entries[0].outcome, entries[0].delivery), (&Outcome::Issued, Delivery::Dropped));
}

#[tokio::test]
async fn a_hanging_provider_times_out_as_no_answer() {
    let fake = fake().await;
    fake.knobs().fail(Provider::Pass, FailureMode::Hang, Times::UntilReset);
    let http = impatient_client(Duration::from_millis(300));
    let err = pass_login(&http, &fake.url(Provider::Pass)).await.expect_err("the call fails");
    assert!(matches!(&err, UpstreamError::NoAnswer { detail } if detail.contains("timed out")), "{err:?}");
}

#[tokio::test]
async fn an_injected_status_is_refused_with_its_canonical_reason() {
    let fake = fake().await;
    fake.knobs().fail(Provider::Pass, FailureMode::Status(502), Times::Next(1));
    let err = pass_login(&client(), &fake.url(Provider::Pass)).await.expect_err("the call fails");
    assert!(
        matches!(&err, UpstreamError::Refused { status: 502, reason, retry_after: None } if reason == "Bad Gateway"),
        "{err:?}"
    );
}

#[tokio::test]
async fn sends_accept_json_and_its_user_agent() {
    let (base, served) = one_shot("200 OK", "", "{}").await;
    let http = client();
    http.send(http.inner().get(url(&base)), &[]).await.unwrap();
    let head = served.await.unwrap();
    assert!(head.contains("accept: application/json\r\n"), "{head}");
    assert!(head.contains(&format!("user-agent: credbroker/{}\r\n", env!("CARGO_PKG_VERSION"))), "{head}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (base, served) = one_shot("302 Found", "location: /elsewhere\r\n", "").await;
    let http = client();
    let err = http.send(http.inner().post(url(&base)), &[]).await.expect_err("a redirect is a refusal");
    assert!(matches!(err, UpstreamError::Refused { status: 302, .. }), "{err:?}");
    served.await.unwrap();
}

#[tokio::test]
async fn retry_after_is_read_on_429() {
    let body = r#"{"message":"Too Many Attempts."}"#;
    let (base, _served) = one_shot("429 Too Many Requests", "retry-after: 17\r\n", body).await;
    let http = client();
    let err = http.send(http.inner().post(url(&base)), &[]).await.expect_err("429 is a refusal");
    let expected = Some(Duration::from_secs(17));
    assert!(
        matches!(&err, UpstreamError::Refused { status: 429, reason, retry_after } if reason == "Too Many Attempts." && *retry_after == expected),
        "{err:?}"
    );
}

#[tokio::test]
async fn echoed_secrets_and_query_strings_are_kept_out_of_errors() {
    let (base, _served) = one_shot("400 Bad Request", "", r#"{"detail":"bad: hunter2-pw"}"#).await;
    let http = client();
    let password = Secret::new("hunter2-pw");
    let err = http.send(http.inner().post(url(&base)), &[&password]).await.unwrap_err();
    assert!(matches!(&err, UpstreamError::Refused { reason, .. } if reason == "bad: [redacted]"), "{err:?}");
    let with_query = closed_port_url().join("x?key=hunter2-pw").unwrap();
    let err = http.send(http.inner().get(with_query), &[]).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2") && !shown.contains('?'), "{shown}");
}

#[test]
fn unparsable_replies_say_where_not_what() {
    let reply = Reply { status: StatusCode::OK, body: br#"{"token": 12345678}"#.to_vec() };
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Token {
        token: String,
    }
    let err = reply.json::<Token>().unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("line 1") && !shown.contains("12345678"), "{shown}");
    let reply = Reply { status: StatusCode::OK, body: b"{}".to_vec() };
    assert!(reply.json::<Token>().unwrap_err().to_string().contains("missing field `token`"));
}

/// Every failing call of every client, with distinctive secret values: none may show up in
/// an error's `Display` or `Debug`, nor in a `TokenSet`'s `Debug`.
#[tokio::test]
async fn no_error_shows_a_secret_we_sent_or_received() {
    use crate::providers::{jouwomgeving, pass, passolution};
    let fake = fake().await;
    fake.add_passolution_client("app", "s3cret-client-XYZ", "https://app.example/cb");
    let (access, refresh) = fake.issue_passolution_tokens("app");
    let base = fake.url(Provider::Passolution);
    let mut po = passolution::PassolutionSettings {
        api_base_url: url(&format!("{base}api/v2/")),
        token_url: url(&format!("{base}oauth/token")),
        client_id: "app".into(),
        client_secret: Secret::new("s3cret-client-XYZ"),
        token_budget_per_minute: 240,
        probe_path: passolution::PROBE_PATH.into(),
        refresh_token_lifetime: std::time::Duration::from_secs(3600),
    };
    let http = client();
    let (access, refresh) = (Secret::new(access), Secret::new(refresh));
    let tokens = test_support::refresh(&http, &po, &refresh).await.unwrap();
    let new_access = tokens.access_token.expose().to_owned();
    let mut shown = vec![format!("{tokens:?}")];
    let mut errors = vec![test_support::refresh(&http, &po, &refresh).await.unwrap_err()];
    errors.push(
        passolution::exchange_code(&http, &po, &refresh, "https://app.example/cb", Some(&access)).await.unwrap_err(),
    );
    fake.knobs().fail(Provider::Passolution, FailureMode::CommitThenDrop, Times::Next(1));
    errors.push(test_support::refresh(&http, &po, tokens.refresh_token.as_ref().unwrap()).await.unwrap_err());
    po.client_secret = Secret::new("wrong-client-secret-QQQ");
    errors.push(passolution::client_credentials(&http, &po).await.unwrap_err());
    let api_key = Secret::new(fake.pass_api_key());
    let pass = pass::PassSettings { api_base_url: url(&fake.url(Provider::Pass)), api_key: api_key.clone() };
    errors.push(pass::login(&http, &pass, "nobody", &Secret::new("pass-password-PPP")).await.unwrap_err());
    errors.push(pass::refresh(&http, &pass, &access).await.unwrap_err());
    let jo = jouwomgeving::JouwOmgevingSettings {
        api_base_url: url(&format!("{}api/", fake.url(Provider::JouwOmgeving))),
        token_path: "api-token-auth/".into(),
        refresh_path: None,
    };
    errors.push(jouwomgeving::obtain(&http, &jo, "nobody", &Secret::new("jo-password-JJJ")).await.unwrap_err());
    shown.extend(errors.iter().map(|e| format!("{e} {e:?}")));
    let secrets = [
        "s3cret-client-XYZ",
        "wrong-client-secret-QQQ",
        api_key.expose(),
        "pass-password-PPP",
        "jo-password-JJJ",
        access.expose(),
        refresh.expose(),
        &new_access,
    ];
    for text in &shown {
        for secret in secrets {
            assert!(!text.contains(secret), "{text:?} shows a secret");
        }
    }
}

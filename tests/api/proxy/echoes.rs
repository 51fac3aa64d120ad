//! A provider whose error body echoes the token it was sent — whole, and cut short by the
//! provider itself — must not get any of it into a status message or a credential's detail.
//! (Before, the reason was cut to length first and scrubbed after, so the first characters of
//! a long refresh token survived the cut.)

use crate::harness::{Broker, CLIENT_SECRET, secs};
use credbroker::grpc::pb::{self, CredentialState, put_credential_request::Secret as PutSecret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::Code;

/// A Passport-like token endpoint that refuses every refresh, echoing the token it got.
async fn echoing_token_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oauth/token", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
    url
}

async fn answer(mut stream: TcpStream) {
    let request = read_request(&mut stream).await;
    let token = url::form_urlencoded::parse(request.split("\r\n\r\n").nth(1).unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "refresh_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let cut: String = token.chars().take(30).collect();
    let description = format!("The refresh token {token} is invalid (seen before as {cut}...)");
    let body = serde_json::json!({"error": "invalid_grant", "hint": "Token has been revoked", "error_description": description})
        .to_string();
    let head =
        format!("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
    let _ = stream.write_all(format!("{head}{body}").as_bytes()).await;
}

/// The head and a body of `content-length` bytes.
async fn read_request(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            if n == 0 {
                return text;
            } else {
                continue;
            };
        };
        let length = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0);
        if n == 0 || body.len() >= length {
            return text;
        }
    }
}

/// Every stretch of 12 characters of `secret`: none may appear in what a caller sees.
fn assert_no_part_of(secret: &str, text: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for window in chars.windows(12) {
        let part: String = window.iter().collect();
        assert!(!text.contains(&part), "{part:?} of a secret in {text:?}");
    }
}

#[tokio::test]
async fn a_token_echoed_in_a_provider_error_never_reaches_a_caller() {
    let token_url = echoing_token_endpoint().await;
    let env = [
        ("CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL", token_url.as_str()),
        ("CREDBROKER__PROVIDERS__PASSOLUTION__CLIENT_SECRET", CLIENT_SECRET),
    ];
    let app = Broker::new().envs(&env).start().await;
    // Passport's refresh tokens are long hex strings: 24 characters before the cut survived.
    let refresh = format!("def50200{}", "9a8b7c6d5e4f3a2b1c0d".repeat(36));
    let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(5);
    let tokens = pb::OAuthTokens {
        refresh_token: refresh.clone(),
        access_token: "access-token-that-is-about-to-expire".into(),
        access_expires_at: Some(prost_types::Timestamp { seconds: expires.unix_timestamp(), nanos: 0 }),
    };
    app.put("passolution", "u", PutSecret::OauthTokens(tokens)).await.unwrap();
    let error = app.get_valid_for("passolution", "u", secs(60)).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    let status = app.status("passolution", "u").await.unwrap();
    assert_eq!(status.state(), CredentialState::ReauthRequired);
    for shown in [error.message(), status.detail.as_str()] {
        assert!(shown.contains("Token has been revoked"), "the reason survives: {shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert_no_part_of(&refresh, shown);
        assert_no_part_of(CLIENT_SECRET, shown);
    }
}

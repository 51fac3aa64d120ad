//! Bearer JWTs (callers without a mesh): verified against the JWKS, `iss`, `aud`,
//! `exp`/`nbf`; identity = `sub`. Every bad token is UNAUTHENTICATED, in words, never echoed.

use super::support::tls_broker;
use crate::harness::{Ca, Clients, eventually};
use base64::Engine;
use credbroker::grpc::pb::{self, credential_broker_client::CredentialBrokerClient};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use rcgen::KeyPair;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tonic::Code;

const ISSUER: &str = "https://kubernetes.default.svc";
const SUB: &str = "system:serviceaccount:billing:api";
/// How long a JWKS fetch may take to show, on a loaded machine.
const KEY_FETCH: std::time::Duration = std::time::Duration::from_secs(60);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An ES256 signing key and its JWK (key id `k1`).
fn es256() -> (EncodingKey, Value) {
    es256_with_id("k1")
}

fn es256_with_id(kid: &str) -> (EncodingKey, Value) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = key.public_key_raw(); // 0x04 || x || y
    let jwk =
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "x": b64(&raw[1..33]), "y": b64(&raw[33..])});
    (EncodingKey::from_ec_der(&key.serialize_der()), jwk)
}

fn claims(aud: &str, expires_in: i64) -> Value {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    json!({"iss": ISSUER, "aud": aud, "sub": SUB, "exp": now + expires_in, "nbf": now - 5, "iat": now - 5})
}

fn sign(key: &EncodingKey, claims: &Value) -> String {
    sign_with_id(key, "k1", claims)
}

fn sign_with_id(key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    encode(&header, claims, key).unwrap()
}

async fn get_with(channel: &tonic::transport::Channel, token: Option<&str>) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(pb::GetAuthorizationRequest {
        provider: "bro".into(),
        subject: "tenant-42/missing".into(),
        min_validity: None,
    });
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    CredentialBrokerClient::new(channel.clone()).get_authorization(request).await.map(|_| ())
}

#[tokio::test]
async fn jwts_are_verified_and_bad_ones_refused_in_words_without_echo() {
    let (key, jwk) = es256();
    let keys = tempfile::tempdir().unwrap();
    let jwks = keys.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [jwk]}).to_string()).unwrap();
    let config = format!(
        "[auth.jwt]\njwks_file = {:?}\nissuer = \"{ISSUER}\"\naudience = \"credbroker\"\nleeway = \"5s\"\n\n\
         [[policy]]\ncallers = [\"system:serviceaccount:billing:*\"]\nrpcs = [\"*\"]\nproviders = [\"bro\"]\nsubjects = [\"tenant-42/*\"]\n",
        jwks.display()
    );
    let ca = Ca::new("server CA");
    let broker = tls_broker(&ca.server(), None, &config).start().await; // TLS, no client certificates
    let channel = broker.tls_channel(&ca, None).await.unwrap();

    let valid = sign(&key, &claims("credbroker", 600));
    let allowed = get_with(&channel, Some(&valid)).await.unwrap_err();
    assert_eq!(allowed.code(), Code::NotFound, "authenticated and allowed, the credential just is not there");

    let (other_key, _) = es256();
    let none =
        format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(claims("credbroker", 600).to_string().as_bytes()));
    let cases = [
        ("expired", sign(&key, &claims("credbroker", -600)), "expired"),
        ("wrong aud", sign(&key, &claims("someone-else", 600)), "audience"),
        ("wrong key", sign(&other_key, &claims("credbroker", 600)), "signature"),
        ("alg none", none, "none"),
    ];
    for (case, token, words) in cases {
        let refused = get_with(&channel, Some(&token)).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{case}: {refused:?}");
        assert!(refused.message().contains(words), "{case}: {}", refused.message());
        assert!(!refused.message().contains(&token[..20]), "{case}: the token is echoed");
    }
    let anonymous = Clients::over(channel).get("bro", "tenant-42/a").await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "a policy needs an identity");
    assert!(!broker.logs().contains(&valid[valid.len() - 30..]), "no token in the logs");
}

/// A JWKS served over HTTP (HTTP/1.1, one request per connection); the test changes it.
async fn serve_jwks(keys: Arc<Mutex<Value>>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/openid/v1/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = keys.lock().unwrap().to_string();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(format!("{head}{body}").as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_jwks_url_is_fetched_and_fetched_again_when_a_token_names_a_new_key() {
    let (first, first_jwk) = es256_with_id("k1");
    let (second, second_jwk) = es256_with_id("k2");
    let served = Arc::new(Mutex::new(json!({"keys": [first_jwk.clone()]})));
    let url = serve_jwks(served.clone()).await;
    // Refreshed hourly: only the unknown key id can make it fetch again within the test.
    let config = format!(
        "[auth.jwt]\njwks_url = \"{url}\"\njwks_refresh = \"1h\"\nissuer = \"{ISSUER}\"\naudience = \"credbroker\"\n\n\
         [[policy]]\ncallers = [\"system:serviceaccount:billing:*\"]\nrpcs = [\"*\"]\nproviders = [\"bro\"]\nsubjects = [\"tenant-42/*\"]\n"
    );
    let ca = Ca::new("server CA");
    let broker = tls_broker(&ca.server(), None, &config).start().await;
    let channel = broker.tls_channel(&ca, None).await.unwrap();
    let accepted = |token: String| {
        let channel = channel.clone();
        async move { get_with(&channel, Some(&token)).await.unwrap_err().code() == Code::NotFound }
    };
    let first_key = || accepted(sign(&first, &claims("credbroker", 600)));
    eventually("the first key is fetched", KEY_FETCH, first_key).await;

    let rotated = sign_with_id(&second, "k2", &claims("credbroker", 600));
    assert!(!accepted(rotated.clone()).await, "k2 is not published yet");
    *served.lock().unwrap() = json!({"keys": [first_jwk, second_jwk]});
    let rotated_key = || accepted(rotated.clone());
    eventually("the rotated key is fetched after a token named it", KEY_FETCH, rotated_key).await;
}

//! Bearer JWTs (callers without a mesh): verified against the JWKS, `iss`, `aud`,
//! `exp`/`nbf`; identity = `sub`. Every bad token is UNAUTHENTICATED, in words, never echoed.

use super::pki::Ca;
use super::support::{Broker, get};
use base64::Engine;
use credbroker::grpc::pb::{self, credential_broker_client::CredentialBrokerClient};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use rcgen::KeyPair;
use serde_json::{Value, json};
use tonic::Code;

const ISSUER: &str = "https://kubernetes.default.svc";
const SUB: &str = "system:serviceaccount:billing:api";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An ES256 signing key and its JWK.
fn es256() -> (EncodingKey, Value) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = key.public_key_raw(); // 0x04 || x || y
    let jwk =
        json!({"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "x": b64(&raw[1..33]), "y": b64(&raw[33..])});
    (EncodingKey::from_ec_der(&key.serialize_der()), jwk)
}

fn claims(aud: &str, expires_in: i64) -> Value {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    json!({"iss": ISSUER, "aud": aud, "sub": SUB, "exp": now + expires_in, "nbf": now - 5, "iat": now - 5})
}

fn sign(key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
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
    let broker = Broker::start(&ca.server(), None, &config).await; // TLS, no client certificates
    let channel = broker.channel(&ca, None).await.unwrap();

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
    let anonymous = get(&channel, "bro", "tenant-42/a").await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "a policy needs an identity");
    assert!(!broker.logs().contains(&valid[valid.len() - 30..]), "no token in the logs");
}

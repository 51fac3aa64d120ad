use super::*;
use jsonwebtoken::{EncodingKey, Header, encode};
use rcgen::{CertificateParams, KeyPair, SanType};

fn cert(sans: Vec<SanType>) -> CertificateDer<'static> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.self_signed(&KeyPair::generate().unwrap()).unwrap().der().clone()
}

#[test]
fn certificate_identity_is_the_first_uri_san_else_the_first_dns_san() {
    let spiffe = "spiffe://example.org/ns/billing/sa/api";
    let both =
        cert(vec![SanType::DnsName("api.billing".try_into().unwrap()), SanType::URI(spiffe.try_into().unwrap())]);
    assert_eq!(from_certificate(&both).as_deref(), Some(spiffe));
    let dns = cert(vec![SanType::DnsName("api.billing".try_into().unwrap())]);
    assert_eq!(from_certificate(&dns).as_deref(), Some("api.billing"));
    assert_eq!(from_certificate(&cert(vec![])), None);
}

/// An ES256 key and its JWKS entry.
fn es256(kid: &str) -> (EncodingKey, jsonwebtoken::jwk::Jwk) {
    use base64::Engine;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = key.public_key_raw(); // 0x04 || x || y
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&raw[1..33]), "y": b64(&raw[33..])});
    (EncodingKey::from_ec_der(&key.serialize_der()), serde_json::from_value(jwk).unwrap())
}

fn settings(jwk: jsonwebtoken::jwk::Jwk) -> JwtSettings {
    JwtSettings {
        keys: JwkSet { keys: vec![jwk] },
        issuer: "https://kubernetes.default.svc".into(),
        audience: "credbroker".into(),
        leeway: Duration::from_secs(5),
    }
}

fn token(key: &EncodingKey, kid: &str, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    encode(&header, &claims, key).unwrap()
}

fn claims(aud: &str, exp_in: i64) -> serde_json::Value {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    serde_json::json!({"iss": "https://kubernetes.default.svc", "aud": aud, "sub": "system:serviceaccount:billing:api", "exp": now + exp_in, "nbf": now - 1})
}

#[test]
fn a_valid_jwt_yields_its_sub_and_every_bad_one_is_refused_in_words() {
    let (key, jwk) = es256("k1");
    let s = settings(jwk);
    assert_eq!(
        verify_jwt(&s, &token(&key, "k1", claims("credbroker", 600))).unwrap(),
        "system:serviceaccount:billing:api"
    );
    let expired = verify_jwt(&s, &token(&key, "k1", claims("credbroker", -600))).unwrap_err();
    assert!(expired.contains("expired"), "{expired}");
    let aud = verify_jwt(&s, &token(&key, "k1", claims("someone-else", 600))).unwrap_err();
    assert!(aud.contains("audience"), "{aud}");
    let (other, _) = es256("k1");
    let wrong_key = verify_jwt(&s, &token(&other, "k1", claims("credbroker", 600))).unwrap_err();
    assert!(wrong_key.contains("signature"), "{wrong_key}");
    // alg none: header {"alg":"none"}, no signature.
    use base64::Engine;
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!("{}.{}.", b64(serde_json::json!({"alg": "none"})), b64(claims("credbroker", 600)));
    let refused = verify_jwt(&s, &none).unwrap_err();
    assert!(refused.contains("none") && !refused.contains(&none), "{refused}");
}

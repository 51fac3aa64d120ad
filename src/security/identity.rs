//! Who is calling: a bearer JWT's `sub` (verified against the configured JWKS), else the
//! client certificate's first URI SAN (a SPIFFE ID), else its first DNS SAN.
//!
//! A presented bearer token must verify even when a certificate identifies the caller too: a
//! bad token is a refusal, never a silent fallback. Errors say what was wrong in words and
//! never include the token.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use std::time::Duration;
use x509_parser::extensions::GeneralName;

/// `[auth.jwt]`, validated: the keys are loaded at start-up.
#[derive(Clone)]
pub struct JwtSettings {
    pub keys: JwkSet,
    pub issuer: String,
    pub audience: String,
    pub leeway: Duration,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.keys.len();
        f.debug_struct("JwtSettings")
            .field("keys", &keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Certificate,
    Jwt,
    None,
}

/// The identity from a client certificate (DER): first URI SAN, else first DNS SAN.
pub fn from_certificate(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let names = parsed.subject_alternative_name().ok()??.value.general_names.clone();
    let uri = names.iter().find_map(|n| if let GeneralName::URI(uri) = n { Some(*uri) } else { None });
    let dns = || names.iter().find_map(|n| if let GeneralName::DNSName(dns) = n { Some(*dns) } else { None });
    uri.or_else(dns).map(str::to_owned)
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// Algorithms a JWKS key may sign with. No HMAC: a JWKS is public, and a shared secret in it
/// would let anyone holding the file mint tokens.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Verifies a bearer token: signature by a JWKS key (by `kid`, else every key), `iss`,
/// `aud`, `exp`/`nbf` with leeway. Returns `sub`.
pub fn verify_jwt(settings: &JwtSettings, token: &str) -> Result<String, String> {
    let header = decode_header(token).map_err(|_| {
        "bearer token: not a JWT with a supported signature algorithm (\"none\" is never accepted)".to_owned()
    })?;
    if !ASYMMETRIC.contains(&header.alg) {
        return Err(format!("bearer token: algorithm {:?} is not accepted (asymmetric signatures only)", header.alg));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = settings.leeway.as_secs();
    let candidates = settings.keys.keys.iter().filter(|k| header.kid.is_none() || k.common.key_id == header.kid);
    let mut last = "bearer token: no key in the JWKS matches its key id".to_owned();
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        match decode::<Claims>(token, &key, &validation) {
            Ok(data) => return Ok(data.claims.sub),
            Err(e) => last = describe(&e),
        }
    }
    Err(last)
}

fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    let what = match error.kind() {
        K::InvalidSignature | K::InvalidKeyFormat | K::InvalidAlgorithm => {
            "signature does not verify with the configured keys"
        }
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not valid yet (nbf)",
        K::InvalidAudience => "wrong audience (aud)",
        K::InvalidIssuer => "wrong issuer (iss)",
        K::MissingRequiredClaim(_) => "a required claim (exp, iss, aud, sub) is missing",
        _ => "malformed",
    };
    format!("bearer token: {what}")
}

#[cfg(test)]
mod tests;

//! The JWTs of djangorestframework-jwt: HS256, claims `user_id`, `username`, `exp`,
//! `email` and `orig_iat`, verified with no clock leeway (the library's default).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub user_id: u64,
    pub username: String,
    pub exp: u64,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_iat: Option<u64>,
}

/// Why a token was not accepted, in the library's words.
#[derive(Debug)]
pub(crate) enum JwtError {
    Expired,
    Undecodable,
}

impl JwtError {
    pub fn message(&self) -> &'static str {
        match self {
            JwtError::Expired => "Signature has expired.",
            JwtError::Undecodable => "Error decoding signature.",
        }
    }
}

pub(crate) fn encode(claims: &Claims, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("HS256 signing cannot fail")
}

pub(crate) fn decode(token: &str, secret: &str) -> Result<Claims, JwtError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    let key = DecodingKey::from_secret(secret.as_bytes());
    match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(JwtError::Expired),
        Err(_) => Err(JwtError::Undecodable),
    }
}

/// The username claim without verifying anything, to name the credential in the ledger.
pub(crate) fn username_unverified(token: &str) -> Option<String> {
    let data = jsonwebtoken::dangerous::insecure_decode::<Claims>(token).ok()?;
    Some(data.claims.username)
}

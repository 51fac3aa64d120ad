//! Authorization codes as league's `AuthCodeGrant` checks them: expiry, revocation,
//! client, redirect URI, then PKCE (S256 or plain).

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// PKCE challenge with its method (`S256`, or RFC 7636's `plain`).
#[derive(Clone, Debug)]
pub(crate) struct Challenge {
    pub value: String,
    pub s256: bool,
}

impl Challenge {
    pub fn s256(value: &str) -> Challenge {
        Challenge { value: value.to_owned(), s256: true }
    }

    fn verifies(&self, verifier: &str) -> bool {
        if !self.s256 {
            return verifier == self.value;
        }
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == self.value
    }
}

/// Why a code exchange was refused: the league error kind and its hint.
pub(crate) enum CodeError {
    Request { parameter: &'static str, hint: Option<&'static str> },
    Grant(&'static str),
}

pub(crate) struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: Option<Challenge>,
    /// What the user consented to; the tokens issued for the code carry them.
    pub scopes: Vec<String>,
    pub expires: SystemTime,
    pub revoked: bool,
}

/// league's `validateAuthorizationCode` plus the PKCE check.
pub(crate) fn check_code(
    code: &Code,
    client_id: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<(), CodeError> {
    let request = |parameter, hint| Err(CodeError::Request { parameter, hint });
    if code.expires < SystemTime::now() {
        return request("code", Some("Authorization code has expired"));
    }
    if code.revoked {
        return request("code", Some("Authorization code has been revoked"));
    }
    if code.client_id != client_id {
        return request("code", Some("Authorization code was not issued to this client"));
    }
    match redirect_uri {
        None => return request("redirect_uri", None),
        Some(uri) if uri != code.redirect_uri => return request("redirect_uri", Some("Invalid redirect URI")),
        Some(_) => {}
    }
    let Some(challenge) = &code.challenge else {
        return Ok(());
    };
    let Some(verifier) = verifier else {
        return request("code_verifier", None);
    };
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return request("code_verifier", Some("Code Verifier must follow the specifications of RFC-7636."));
    }
    if !challenge.verifies(verifier) {
        return Err(CodeError::Grant("Failed to verify `code_verifier`."));
    }
    Ok(())
}

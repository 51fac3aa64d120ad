//! Parsing at the edge: generated proto types become domain types here (and back), so they
//! never travel further. A refused field becomes `INVALID_ARGUMENT` naming it; a message
//! never echoes a secret value.

use super::pb;
use crate::broker::{CredentialView, Served};
use crate::domain::{CredentialId, CredentialState, InvalidField, ProviderName, Secret, SecretMaterial, Subject};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use std::time::Duration;
use time::OffsetDateTime;

/// Used when a caller does not say how long the headers must stay valid.
pub const DEFAULT_MIN_VALIDITY: Duration = Duration::from_secs(30);
const MAX_MIN_VALIDITY: Duration = Duration::from_secs(400 * 24 * 3600);
const MAX_SECRET_LEN: usize = 16 * 1024;
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

/// A parsed `GetAuthorizationRequest`.
pub struct AuthorizationQuery {
    pub provider: ProviderName,
    pub subject: Option<Subject>,
    pub min_validity: Duration,
}

impl TryFrom<pb::GetAuthorizationRequest> for AuthorizationQuery {
    type Error = InvalidField;
    fn try_from(request: pb::GetAuthorizationRequest) -> Result<Self, InvalidField> {
        Ok(Self {
            provider: ProviderName::parse("provider", &request.provider)?,
            subject: Subject::parse_optional("subject", &request.subject)?,
            min_validity: duration("min_validity", request.min_validity, DEFAULT_MIN_VALIDITY, MAX_MIN_VALIDITY)?,
        })
    }
}

/// A protobuf duration, defaulted when unset and bounded.
pub fn duration(
    field: &'static str,
    value: Option<prost_types::Duration>,
    default: Duration,
    max: Duration,
) -> Result<Duration, InvalidField> {
    let Some(value) = value else { return Ok(default) };
    let value = Duration::try_from(value).map_err(|_| InvalidField::new(field, "must be a non-negative duration"))?;
    if value > max {
        return Err(InvalidField::new(field, format!("must be at most {}s", max.as_secs())));
    }
    Ok(value)
}

impl TryFrom<pb::CredentialRef> for CredentialId {
    type Error = InvalidField;
    fn try_from(reference: pb::CredentialRef) -> Result<Self, InvalidField> {
        credential_id(&reference.provider, &reference.subject)
    }
}

fn credential_id(provider: &str, subject: &str) -> Result<CredentialId, InvalidField> {
    Ok(CredentialId::new(ProviderName::parse("provider", provider)?, Subject::parse("subject", subject)?))
}

impl TryFrom<pb::PutCredentialRequest> for (CredentialId, SecretMaterial) {
    type Error = InvalidField;
    fn try_from(request: pb::PutCredentialRequest) -> Result<Self, InvalidField> {
        let id = credential_id(&request.provider, &request.subject)?;
        let secret = request.secret.ok_or_else(|| {
            InvalidField::new(
                "secret",
                "required: one of username_password, client_number, bro_token, oauth_tokens, authorization_code",
            )
        })?;
        Ok((id, material(secret)?))
    }
}

fn material(secret: pb::put_credential_request::Secret) -> Result<SecretMaterial, InvalidField> {
    use pb::put_credential_request::Secret as S;
    Ok(match secret {
        S::UsernamePassword(up) => SecretMaterial::UsernamePassword {
            username: text("username_password.username", up.username)?,
            password: secret_text("username_password.password", up.password)?,
        },
        S::ClientNumber(number) => {
            SecretMaterial::ClientNumber { client_number: secret_text("client_number", number)? }
        }
        S::BroToken(token) => {
            SecretMaterial::BroToken { username: bro_username(token.username)?, code: bro_code(token.code)? }
        }
        S::OauthTokens(tokens) => oauth_tokens(tokens)?,
        S::AuthorizationCode(code) => SecretMaterial::AuthorizationCode {
            code: secret_text("authorization_code.code", code.code)?,
            redirect_uri: text("authorization_code.redirect_uri", code.redirect_uri)?,
            code_verifier: optional_secret("authorization_code.code_verifier", code.code_verifier)?,
        },
    })
}

fn oauth_tokens(tokens: pb::OAuthTokens) -> Result<SecretMaterial, InvalidField> {
    let refresh_token = optional_secret("oauth_tokens.refresh_token", tokens.refresh_token)?;
    let access_token = optional_secret("oauth_tokens.access_token", tokens.access_token)?;
    if refresh_token.is_none() && access_token.is_none() {
        return Err(InvalidField::new("oauth_tokens", "needs a refresh_token, an access_token, or both"));
    }
    let access_expires_at =
        tokens.access_expires_at.map(|t| timestamp("oauth_tokens.access_expires_at", t)).transpose()?;
    Ok(SecretMaterial::OAuthTokens { refresh_token, access_token, access_expires_at })
}

/// The token username the portal issues: `|`-separated non-empty parts, e.g.
/// `0dce6fc98256|123456789|1234` (sent raw in Basic).
fn bro_username(value: String) -> Result<String, InvalidField> {
    let username = text("bro_token.username", value)?;
    if username.split('|').count() < 2 || username.split('|').any(str::is_empty) {
        let problem =
            "must be the token username the portal issued: parts separated by '|', e.g. 0dce6fc98256|123456789|1234";
        return Err(InvalidField::new("bro_token.username", problem));
    }
    Ok(username)
}

/// The token code: 64 hexadecimal characters. The message never repeats the value.
fn bro_code(value: String) -> Result<Secret, InvalidField> {
    let code = secret_text("bro_token.code", value)?;
    if code.expose().len() != 64 || !code.expose().bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InvalidField::new("bro_token.code", "must be the 64 hexadecimal characters of the token code"));
    }
    Ok(code)
}

/// A non-empty string without control characters: these values end up in HTTP headers,
/// where CR/LF would let a caller inject headers.
fn text(field: &'static str, value: String) -> Result<String, InvalidField> {
    if value.is_empty() {
        return Err(InvalidField::new(field, "must not be empty"));
    }
    if value.len() > MAX_SECRET_LEN {
        return Err(InvalidField::new(field, format!("longer than {MAX_SECRET_LEN} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidField::new(field, "contains control characters"));
    }
    Ok(value)
}

fn secret_text(field: &'static str, value: String) -> Result<Secret, InvalidField> {
    text(field, value).map(Secret::new)
}

fn optional_secret(field: &'static str, value: String) -> Result<Option<Secret>, InvalidField> {
    if value.is_empty() { Ok(None) } else { secret_text(field, value).map(Some) }
}

fn timestamp(field: &'static str, value: prost_types::Timestamp) -> Result<OffsetDateTime, InvalidField> {
    let nanos = i128::from(value.seconds) * 1_000_000_000 + i128::from(value.nanos);
    if !(0..1_000_000_000).contains(&value.nanos) {
        return Err(InvalidField::new(field, "nanos out of range"));
    }
    OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| InvalidField::new(field, "out of range"))
}

pub fn to_timestamp(value: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: value.unix_timestamp(), nanos: value.nanosecond() as i32 }
}

/// A listing request: provider, where to start, how many.
pub fn list_query(
    request: &pb::ListCredentialsRequest,
) -> Result<(ProviderName, Option<Subject>, usize), InvalidField> {
    let provider = ProviderName::parse("provider", &request.provider)?;
    let after = match request.page_token.as_str() {
        "" => None,
        token => Some(
            decode_page_token(token)
                .ok_or_else(|| InvalidField::new("page_token", "not a token this service issued"))?,
        ),
    };
    let size = match request.page_size as usize {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    Ok((provider, after, size))
}

/// Page tokens are opaque to callers: the last subject of the page, base64url.
pub fn encode_page_token(subject: &Subject) -> String {
    URL_SAFE_NO_PAD.encode(subject.as_str())
}

fn decode_page_token(token: &str) -> Option<Subject> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    Subject::stored(std::str::from_utf8(&bytes).ok()?)
}

impl From<&Served> for pb::GetAuthorizationResponse {
    fn from(served: &Served) -> Self {
        Self {
            headers: served
                .headers
                .iter()
                .map(|(name, value)| pb::Header { name: (*name).to_owned(), value: value.expose().to_owned() })
                .collect(),
            expires_at: served.expires_at.map(to_timestamp),
            token_fingerprint: served.fingerprint.to_string(),
        }
    }
}

impl From<CredentialState> for pb::CredentialState {
    fn from(state: CredentialState) -> Self {
        match state {
            CredentialState::Active => Self::Active,
            CredentialState::Refreshing => Self::Refreshing,
            CredentialState::Indeterminate => Self::Indeterminate,
            CredentialState::ReauthRequired => Self::ReauthRequired,
            CredentialState::Revoked => Self::Revoked,
        }
    }
}

impl From<CredentialView> for pb::CredentialStatus {
    fn from(view: CredentialView) -> Self {
        Self {
            provider: view.id.provider.to_string(),
            subject: view.id.subject.to_string(),
            state: pb::CredentialState::from(view.state).into(),
            access_expires_at: view.access_expires_at.map(to_timestamp),
            updated_at: Some(to_timestamp(view.updated_at)),
            version: view.version,
            detail: view.detail,
        }
    }
}

#[cfg(test)]
mod tests;

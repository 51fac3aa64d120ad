//! Passolution (Laravel Passport) state: clients, authorization codes, access and refresh
//! tokens. A refresh follows Passport's order under one lock — check the refresh token,
//! revoke the old access and refresh token, issue a new pair — so concurrent redemptions
//! of one token behave as at the real server: exactly one wins.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::codes::{Challenge, Code, CodeError, check_code};
use super::ratelimit::RateLimiter;
use crate::config::FakeConfig;
use crate::util::{ceil_secs, random_hex, unix_secs};

/// How long new tokens live and what signs them; read from the knobs per call.
pub(crate) struct Lifetimes {
    pub access: Duration,
    pub refresh: Duration,
    pub jwt_secret: String,
}

impl Lifetimes {
    pub fn from_config(config: &FakeConfig) -> Lifetimes {
        Lifetimes {
            access: config.passolution_access_lifetime,
            refresh: config.passolution_refresh_lifetime,
            jwt_secret: config.passolution_jwt_secret.clone(),
        }
    }
}

/// A token reply; client_credentials gets no refresh token.
pub(crate) struct Pair {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: u64,
}

struct Client {
    secret: String,
    redirect_uri: String,
}

struct Access {
    client_id: String,
    expires: SystemTime,
    /// When it was revoked (by a refresh, or an operator), if it was.
    revoked_at: Option<SystemTime>,
}

struct Refresh {
    client_id: String,
    scopes: Vec<String>,
    access_token: String,
    expires: SystemTime,
    revoked: bool,
    /// Revoked by a successful refresh, as opposed to revoked by an operator.
    redeemed: bool,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<String, Client>,
    /// Accounts that may log in on the consent page: username → password.
    users: HashMap<String, String>,
    /// Every `code_verifier` a successful code exchange presented, for tests that look for
    /// it where it must not be.
    verifiers: Vec<String>,
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
}

#[derive(Default)]
pub(crate) struct Store {
    inner: Mutex<Inner>,
    pub limiter: RateLimiter,
    /// What the authorize redirect sends as `iss`: the fake's Passolution URL, set at start.
    pub issuer: std::sync::OnceLock<String>,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An empty secret registers a public (PKCE-only) client.
    pub fn add_client(&self, id: &str, secret: &str, redirect_uri: &str) {
        let client = Client { secret: secret.to_owned(), redirect_uri: redirect_uri.to_owned() };
        self.lock().clients.insert(id.to_owned(), client);
    }

    /// Passport's `validateClient`: known, and the secret matches unless the client is public.
    pub fn client_ok(&self, id: &str, secret: Option<&str>) -> bool {
        let inner = self.lock();
        let Some(client) = inner.clients.get(id) else {
            return false;
        };
        client.secret.is_empty() || secret == Some(client.secret.as_str())
    }

    pub fn add_user(&self, username: &str, password: &str) {
        self.lock().users.insert(username.to_owned(), password.to_owned());
    }

    pub fn login_ok(&self, username: &str, password: &str) -> bool {
        self.lock().users.get(username).is_some_and(|p| p == password)
    }

    pub fn verifiers(&self) -> Vec<String> {
        self.lock().verifiers.clone()
    }

    pub fn redirect_uri(&self, client_id: &str) -> Option<String> {
        self.lock().clients.get(client_id).map(|c| c.redirect_uri.clone())
    }

    /// Issues an authorization code, as the authorize screen would after consent.
    pub fn issue_code(
        &self,
        client_id: &str,
        redirect_uri: &str,
        challenge: Option<Challenge>,
        scopes: Vec<String>,
        lifetime: Duration,
    ) -> String {
        let code = format!("def50200{}", random_hex(160));
        let entry = Code {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            challenge,
            scopes,
            expires: SystemTime::now() + lifetime,
            revoked: false,
        };
        self.lock().codes.insert(code.clone(), entry);
        code
    }

    /// league's `AuthCodeGrant`: validate the code, the redirect URI and PKCE, then issue.
    pub fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        l: &Lifetimes,
    ) -> Result<Pair, CodeError> {
        let mut inner = self.lock();
        let entry = inner
            .codes
            .get_mut(code)
            .ok_or(CodeError::Request { parameter: "code", hint: Some("Cannot decrypt the authorization code") })?;
        check_code(entry, client_id, redirect_uri, verifier)?;
        entry.revoked = true;
        let scopes = entry.scopes.clone();
        inner.verifiers.extend(verifier.map(str::to_owned));
        Ok(inner.issue(client_id, &scopes, true, SystemTime::now(), l))
    }

    /// league's `RefreshTokenGrant` after the client check. Also says whether the token had
    /// already been redeemed: such a call is a violation whatever the answer.
    pub fn refresh(&self, client_id: &str, token: &str, l: &Lifetimes) -> (Result<Pair, &'static str>, bool) {
        let mut inner = self.lock();
        let Some(old) = inner.refresh.get_mut(token) else {
            return (Err("Cannot decrypt the refresh token"), false);
        };
        let replay = old.redeemed;
        let refusal = if old.client_id != client_id {
            Some("Token is not linked to client")
        } else if unix_secs(old.expires) < unix_secs(SystemTime::now()) {
            Some("Token has expired")
        } else if old.revoked {
            Some("Token has been revoked")
        } else {
            None
        };
        if let Some(hint) = refusal {
            return (Err(hint), replay);
        }
        (old.revoked, old.redeemed) = (true, true);
        let (old_access, scopes) = (old.access_token.clone(), old.scopes.clone());
        let now = SystemTime::now();
        if let Some(access) = inner.access.get_mut(&old_access) {
            access.revoked_at.get_or_insert(now);
        }
        (Ok(inner.issue(client_id, &scopes, true, now, l)), replay)
    }

    /// Issues tokens without any exchange; `with_refresh` is false for client_credentials.
    pub fn issue(&self, client_id: &str, with_refresh: bool, l: &Lifetimes) -> Pair {
        self.lock().issue(client_id, &[], with_refresh, SystemTime::now(), l)
    }

    /// Issues tokens as if at `issued_at` (in the past): their lifetime counts from then.
    pub fn issue_at(&self, client_id: &str, issued_at: SystemTime, l: &Lifetimes) -> Pair {
        self.lock().issue(client_id, &[], true, issued_at, l)
    }

    /// When an access token was revoked, if it was.
    pub fn access_revoked_at(&self, token: &str) -> Option<SystemTime> {
        self.lock().access.get(token)?.revoked_at
    }

    pub fn was_redeemed(&self, refresh_token: &str) -> bool {
        self.lock().refresh.get(refresh_token).is_some_and(|r| r.redeemed)
    }

    /// The client an access token belongs to, if the token is neither revoked nor expired.
    pub fn access_client(&self, token: &str) -> Option<String> {
        let inner = self.lock();
        let access = inner.access.get(token)?;
        (access.revoked_at.is_none() && access.expires > SystemTime::now()).then(|| access.client_id.clone())
    }

    /// Revokes every token of a client, like a user withdrawing the app's access.
    pub fn revoke_client(&self, client_id: &str) {
        let mut inner = self.lock();
        let now = SystemTime::now();
        inner.access.values_mut().filter(|a| a.client_id == client_id).for_each(|a| {
            a.revoked_at.get_or_insert(now);
        });
        inner.refresh.values_mut().filter(|r| r.client_id == client_id).for_each(|r| r.revoked = true);
    }
}

impl Inner {
    fn issue(
        &mut self,
        client_id: &str,
        scopes: &[String],
        with_refresh: bool,
        now: SystemTime,
        l: &Lifetimes,
    ) -> Pair {
        let access_token = access_jwt(client_id, scopes, with_refresh, now, l);
        let access = Access { client_id: client_id.to_owned(), expires: now + l.access, revoked_at: None };
        self.access.insert(access_token.clone(), access);
        let refresh_token = with_refresh.then(|| {
            // Passport's refresh tokens are long encrypted blobs starting `def50200`.
            let token = format!("def50200{}", random_hex(256));
            let refresh = Refresh {
                client_id: client_id.to_owned(),
                scopes: scopes.to_vec(),
                access_token: access_token.clone(),
                expires: now + l.refresh,
                revoked: false,
                redeemed: false,
            };
            self.refresh.insert(token.clone(), refresh);
            token
        });
        Pair { access_token, refresh_token, expires_in: ceil_secs(l.access) }
    }
}

/// A JWT shaped like Passport's (Passport signs RS256; HS256 keeps the fake keyless).
/// Client-credentials tokens have no user, hence the empty `sub`; `scopes` are those the user
/// consented to.
fn access_jwt(client_id: &str, scopes: &[String], for_user: bool, now: SystemTime, l: &Lifetimes) -> String {
    let iat = unix_secs(now);
    let claims = json!({
        "aud": client_id,
        "jti": random_hex(40),
        "iat": iat,
        "nbf": iat,
        "exp": iat + ceil_secs(l.access),
        "sub": if for_user { "1" } else { "" },
        "scopes": scopes,
    });
    let key = EncodingKey::from_secret(l.jwt_secret.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("HS256 signing cannot fail")
}

//! PASS state: pashouder accounts, AppBearer client numbers, and tokens with sliding expiry.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::util::random_alnum;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Access,
    Password,
}

struct User {
    password: String,
    active: bool,
}

struct Token {
    kind: TokenKind,
    login: String,
    expires: SystemTime,
}

/// Why a login (or password-token request) was refused, in PASS's words.
#[derive(Debug)]
pub(crate) enum LoginError {
    UserNotFound,
    UserNotActive,
    PasswordMissing,
    AuthenticationFailed,
}

impl LoginError {
    pub fn message(&self) -> &'static str {
        match self {
            LoginError::UserNotFound => "User not found",
            LoginError::UserNotActive => "User not active",
            LoginError::PasswordMissing => "Password is missing",
            LoginError::AuthenticationFailed => "Authentication failed",
        }
    }
}

/// Why a presented token was refused.
#[derive(Debug)]
pub(crate) enum TokenError {
    NotFound,
    Expired,
}

impl TokenError {
    pub fn message(&self) -> &'static str {
        match self {
            TokenError::NotFound => "Token invalid or not found",
            TokenError::Expired => "Token expired",
        }
    }
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, User>,
    tokens: HashMap<String, Token>,
    client_numbers: HashSet<String>,
}

#[derive(Default)]
pub(crate) struct Store(Mutex<Inner>);

impl Store {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn add_user(&self, login: &str, password: &str, active: bool) {
        let user = User { password: password.to_owned(), active };
        self.lock().users.insert(login.to_owned(), user);
    }

    pub fn add_client_number(&self, number: &str) {
        self.lock().client_numbers.insert(number.to_owned());
    }

    pub fn has_client_number(&self, number: &str) -> bool {
        self.lock().client_numbers.contains(number)
    }

    /// Checks the password and issues a new AccessToken.
    pub fn login(&self, login: &str, password: &str, lifetime: Duration) -> Result<(String, SystemTime), LoginError> {
        let mut inner = self.lock();
        let user = inner.users.get(login).ok_or(LoginError::UserNotFound)?;
        if !user.active {
            return Err(LoginError::UserNotActive);
        }
        if password.is_empty() {
            return Err(LoginError::PasswordMissing);
        }
        if user.password != password {
            return Err(LoginError::AuthenticationFailed);
        }
        Ok(inner.issue(TokenKind::Access, login, lifetime))
    }

    /// Issues a PasswordToken for an existing, active user.
    pub fn password_token(&self, login: &str, lifetime: Duration) -> Result<(String, SystemTime), LoginError> {
        let mut inner = self.lock();
        let user = inner.users.get(login).ok_or(LoginError::UserNotFound)?;
        if !user.active {
            return Err(LoginError::UserNotActive);
        }
        Ok(inner.issue(TokenKind::Password, login, lifetime))
    }

    /// A successful use of a token: checks it and slides its expiry to now + `lifetime`.
    /// Returns the token's login and new expiry.
    pub fn touch(&self, token: &str, kind: TokenKind, lifetime: Duration) -> Result<(String, SystemTime), TokenError> {
        let mut inner = self.lock();
        let entry = inner.valid_token(token, kind)?;
        entry.expires = SystemTime::now() + lifetime;
        Ok((entry.login.clone(), entry.expires))
    }

    /// Logout: the token stays known but is expired from now on.
    pub fn expire(&self, token: &str) -> Result<(), TokenError> {
        let mut inner = self.lock();
        inner.valid_token(token, TokenKind::Access)?.expires = SystemTime::now();
        Ok(())
    }

    /// Sets a new password with a PasswordToken, which is used up.
    pub fn change_password(&self, token: &str, password: &str) -> Result<String, TokenError> {
        let mut inner = self.lock();
        let login = inner.valid_token(token, TokenKind::Password)?.login.clone();
        inner.tokens.remove(token);
        if let Some(user) = inner.users.get_mut(&login) {
            user.password = password.to_owned();
        }
        Ok(login)
    }

    pub fn login_of(&self, token: &str) -> Option<String> {
        self.lock().tokens.get(token).map(|t| t.login.clone())
    }

    pub fn expiry(&self, token: &str) -> Option<SystemTime> {
        self.lock().tokens.get(token).map(|t| t.expires)
    }
}

impl Inner {
    fn issue(&mut self, kind: TokenKind, login: &str, lifetime: Duration) -> (String, SystemTime) {
        let token = random_alnum(40);
        let expires = SystemTime::now() + lifetime;
        let entry = Token { kind, login: login.to_owned(), expires };
        self.tokens.insert(token.clone(), entry);
        (token, expires)
    }

    fn valid_token(&mut self, token: &str, kind: TokenKind) -> Result<&mut Token, TokenError> {
        let entry = self.tokens.get_mut(token).filter(|t| t.kind == kind).ok_or(TokenError::NotFound)?;
        if entry.expires <= SystemTime::now() {
            return Err(TokenError::Expired);
        }
        Ok(entry)
    }
}

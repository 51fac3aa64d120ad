//! The upstream providers: how each one's credentials become request headers.
//!
//! One file per provider kind. A [`Provider`] is one configured instance (a PASS deployment,
//! a JouwOmgeving organisation, …); the [`Registry`] maps the names callers use to instances.
//! What differs between kinds — how a credential becomes headers, how it is renewed, whether a
//! refresh revokes the previous token, which statuses mean "token rejected" — is asked of the
//! `Provider`, answered in `behaviour.rs`: the one place that matches on the kind.

mod behaviour;
pub mod bro;
pub mod endpoints;
pub mod http;
pub mod jouwomgeving;
pub mod pass;
pub mod passolution;

pub use behaviour::Renewal;
pub use jouwomgeving::{jwt_expiry, jwt_issued_at};

use crate::domain::{ProviderName, Secret};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// Ready-to-use headers and how long they stay valid.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// Lower-case header names; the values are secrets.
    pub headers: Vec<(&'static str, Secret)>,
    /// `None` when the credential does not expire.
    pub expires_at: Option<OffsetDateTime>,
}

impl Authorization {
    pub fn single(name: &'static str, value: String, expires_at: Option<OffsetDateTime>) -> Self {
        Self { headers: vec![(name, Secret::new(value))], expires_at }
    }
}

/// What a probe with an access token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The provider accepted the token.
    Alive,
    /// The provider answered one of the instance's `rejected_statuses`.
    Rejected { status: u16 },
}

/// Why a provider cannot produce headers from what is stored.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider {0} has no credential of its own: a subject is required")]
    NoOwnCredential(ProviderName),
    #[error("the access token is not valid for the requested time and this credential cannot be renewed")]
    AccessTokenTooShort,
}

/// The provider instance's own credential (empty subject).
pub enum OwnCredential {
    /// Headers straight from configuration (PASS: the API key).
    Static(Authorization),
    /// A token to obtain with the instance's own client credentials (Passolution):
    /// [`Provider::obtain_own_token`].
    Obtained,
}

/// The kind of a provider instance, with its kind-specific settings.
#[derive(Debug, Clone)]
pub enum ProviderSettings {
    Pass(pass::PassSettings),
    Bro(bro::BroSettings),
    Passolution(passolution::PassolutionSettings),
    JouwOmgeving(jouwomgeving::JouwOmgevingSettings),
}

/// One configured provider instance.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: ProviderName,
    pub settings: ProviderSettings,
    /// Statuses of a data call that mean "the token was rejected" (default `[401]`): a probe
    /// reads them as "revoked", a proxied call as "renew and retry once".
    pub rejected_statuses: Vec<u16>,
}

/// `authorization: Bearer <token>`: OAuth2 access tokens and PASS AccessTokens.
pub fn bearer(token: &Secret, expires_at: OffsetDateTime) -> Authorization {
    Authorization::single("authorization", format!("Bearer {}", token.expose()), Some(expires_at))
}

/// The configured provider instances, by the name callers use.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    providers: HashMap<ProviderName, Arc<Provider>>,
}

impl Registry {
    pub fn new(providers: impl IntoIterator<Item = Provider>) -> Self {
        Self { providers: providers.into_iter().map(|p| (p.name.clone(), Arc::new(p))).collect() }
    }
    pub fn get(&self, name: &ProviderName) -> Option<&Arc<Provider>> {
        self.providers.get(name)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }
}

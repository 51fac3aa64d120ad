//! The upstream providers: how each one's credentials become request headers.
//!
//! One file per provider kind. A [`Provider`] is one configured instance (a PASS deployment,
//! a JouwOmgeving organisation, …); the [`Registry`] maps the names callers use to instances.
//! What differs between kinds — how a credential becomes headers, how it is renewed, whether a
//! refresh revokes the previous token, which statuses mean "token rejected" — is asked of the
//! `Provider` (here and in `behaviour.rs`); the broker never matches on the kind.

mod behaviour;
pub mod bro;
pub mod endpoints;
pub mod http;
pub mod jouwomgeving;
pub mod pass;
pub mod passolution;

pub use behaviour::Renewal;
pub use jouwomgeving::{jwt_expiry, jwt_issued_at};

use crate::domain::{InvalidField, ProviderName, Secret, SecretMaterial, Vault};
use endpoints::TokenEndpoints;

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

impl Provider {
    /// The config `kind` of this instance.
    pub fn kind(&self) -> &'static str {
        match &self.settings {
            ProviderSettings::Pass(_) => "pass",
            ProviderSettings::Bro(_) => "bro",
            ProviderSettings::Passolution(_) => "passolution",
            ProviderSettings::JouwOmgeving(_) => "jouwomgeving",
        }
    }

    /// The instance's own token and session endpoints, which `ProxyCall` never reaches.
    pub fn token_endpoints(&self) -> TokenEndpoints {
        match &self.settings {
            ProviderSettings::Pass(s) => pass::token_endpoints(s),
            ProviderSettings::Bro(_) => bro::token_endpoints(),
            ProviderSettings::Passolution(s) => passolution::token_endpoints(s),
            ProviderSettings::JouwOmgeving(s) => jouwomgeving::token_endpoints(s),
        }
    }

    /// Refuses secret kinds this provider cannot use (e.g. a BRO token for PASS).
    pub fn accepts(&self, material: &SecretMaterial) -> Result<(), InvalidField> {
        let fits = match &self.settings {
            ProviderSettings::Pass(_) => pass::accepts(material),
            ProviderSettings::Bro(_) => bro::accepts(material),
            ProviderSettings::Passolution(_) => passolution::accepts(material),
            ProviderSettings::JouwOmgeving(_) => jouwomgeving::accepts(material),
        };
        if fits {
            Ok(())
        } else {
            let problem =
                format!("a {} secret does not fit provider {} (kind {})", material.kind(), self.name, self.kind());
            Err(InvalidField::new("secret", problem))
        }
    }

    /// The provider instance's own credential, for the empty subject.
    pub fn own_credential(&self) -> Result<OwnCredential, ProviderError> {
        match &self.settings {
            ProviderSettings::Pass(s) => Ok(OwnCredential::Static(pass::own_authorization(s))),
            ProviderSettings::Passolution(_) => Ok(OwnCredential::Obtained),
            _ => Err(ProviderError::NoOwnCredential(self.name.clone())),
        }
    }

    /// Headers from a stored vault, valid until the session's expiry (`None`: never expire).
    /// `None` when a session-based credential has no session.
    pub fn headers(&self, vault: &Vault) -> Option<Authorization> {
        let session = vault.session.as_ref();
        match &self.settings {
            ProviderSettings::Pass(s) => pass::headers(s, &vault.material, session),
            ProviderSettings::Bro(_) => bro::headers(&vault.material),
            ProviderSettings::Passolution(_) => session.map(passolution::headers),
            ProviderSettings::JouwOmgeving(_) => session.map(jouwomgeving::headers),
        }
    }
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

//! The upstream providers: how each one's credentials become request headers.
//!
//! One file per provider kind. A [`Provider`] is one configured instance (a PASS deployment,
//! a JouwOmgeving organisation, …); the [`Registry`] maps the names callers use to instances.

pub mod bro;
pub mod jouwomgeving;
pub mod pass;
pub mod passolution;

use crate::domain::{InvalidField, ProviderName, Secret, SecretMaterial};
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

/// Why a provider cannot produce headers from what is stored.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider {0} has no credential of its own: a subject is required")]
    NoOwnCredential(ProviderName),
    #[error("{0}")]
    NotYetSupported(&'static str),
    #[error("the access token is valid for less than the requested time and cannot be refreshed yet")]
    AccessTokenTooShort,
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

    /// Headers for the provider instance's own credential (empty subject).
    pub fn own_authorization(&self) -> Result<Authorization, ProviderError> {
        match &self.settings {
            ProviderSettings::Pass(s) => Ok(pass::own_authorization(s)),
            ProviderSettings::Passolution(_) => {
                Err(ProviderError::NotYetSupported("client-credentials tokens arrive with the token-lifecycle work"))
            }
            _ => Err(ProviderError::NoOwnCredential(self.name.clone())),
        }
    }

    /// Headers from a subject's stored secret, valid until at least `valid_until`.
    pub fn authorization(
        &self,
        material: &SecretMaterial,
        valid_until: OffsetDateTime,
    ) -> Result<Authorization, ProviderError> {
        match &self.settings {
            ProviderSettings::Pass(s) => pass::authorization(s, material),
            ProviderSettings::Bro(_) => bro::authorization(material),
            ProviderSettings::Passolution(_) => passolution::authorization(material, valid_until),
            ProviderSettings::JouwOmgeving(_) => jouwomgeving::authorization(material),
        }
    }
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

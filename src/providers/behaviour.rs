//! What the broker asks of a provider instance: its kind's name, which secrets it takes, how a
//! credential becomes headers, how it is renewed, whether a refresh revokes the previous token,
//! what a rejection looks like, whether use slides the expiry — and the upstream calls that go
//! with it. The one place outside configuration parsing that matches on the provider kind:
//! everything else asks a `Provider`.

use super::endpoints::TokenEndpoints;
use super::http::{HttpClient, TokenSet, UpstreamError};
use super::passolution::RefreshFailure;
use super::{Authorization, OwnCredential, Probe, Provider, ProviderError, ProviderSettings};
use super::{bro, jouwomgeving, pass, passolution};
use crate::domain::{InvalidField, Secret, SecretMaterial, Vault};
use std::time::Duration;
use url::Url;

/// How a stored credential gets a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal<'a> {
    /// It cannot: static headers (BRO, a PASS client number), or OAuth tokens without a
    /// refresh token.
    Static,
    /// Log in again with the stored username and password: idempotent, safe to repeat.
    Login,
    /// Redeem this single-use refresh token: sent at most once (`broker::rotation`).
    Rotation(&'a Secret),
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

    pub fn renewal<'a>(&self, vault: &'a Vault) -> Renewal<'a> {
        match (&self.settings, &vault.material) {
            (
                ProviderSettings::Pass(_) | ProviderSettings::JouwOmgeving(_),
                SecretMaterial::UsernamePassword { .. },
            ) => Renewal::Login,
            (ProviderSettings::Passolution(_), SecretMaterial::OAuthTokens { refresh_token: Some(token), .. }) => {
                Renewal::Rotation(token)
            }
            _ => Renewal::Static,
        }
    }

    /// Whether a refresh revokes the previous access token at once (Laravel Passport does).
    /// Then a header stops being valid when the broker renews it, so the validity promised to
    /// callers ends at the planned renewal — and an unknown refresh outcome can be resolved by
    /// probing with the old token. Logins (PASS, JouwOmgeving) leave earlier tokens valid.
    pub fn refresh_revokes_previous(&self) -> bool {
        matches!(self.settings, ProviderSettings::Passolution(_))
    }

    /// Whether `status` from a data call means "this token was rejected".
    pub fn rejects(&self, status: u16) -> bool {
        self.rejected_statuses.contains(&status)
    }

    /// Whether a rejection of this credential's header is about the credential at all: PASS's
    /// AppBearer 401 means "no record for this client number", which no renewal fixes.
    pub fn rejection_renews(&self, vault: &Vault) -> bool {
        !matches!(vault.material, SecretMaterial::ClientNumber { .. })
    }

    /// Whether a successful call with this credential extends its session (PASS's sliding
    /// expiry of a pashouder AccessToken).
    pub fn usage_slides(&self, vault: &Vault) -> bool {
        matches!(self.settings, ProviderSettings::Pass(_))
            && matches!(vault.material, SecretMaterial::UsernamePassword { .. })
    }

    /// Where the instance's API lives: proxied paths and the probe are joined to it.
    pub fn api_base_url(&self) -> &Url {
        match &self.settings {
            ProviderSettings::Pass(s) => &s.api_base_url,
            ProviderSettings::Bro(s) => &s.api_base_url,
            ProviderSettings::Passolution(s) => &s.api_base_url,
            ProviderSettings::JouwOmgeving(s) => &s.api_base_url,
        }
    }

    /// The fleet-wide budget of token requests per minute, for rate-limited token endpoints.
    pub fn token_budget_per_minute(&self) -> Option<u32> {
        match &self.settings {
            ProviderSettings::Passolution(s) => Some(s.token_budget_per_minute),
            _ => None,
        }
    }

    /// How long an unused refresh token lives upstream (rotating providers only).
    pub fn refresh_token_lifetime(&self) -> Option<Duration> {
        match &self.settings {
            ProviderSettings::Passolution(s) => Some(s.refresh_token_lifetime),
            _ => None,
        }
    }

    /// A new session from the stored login (PASS extends the current one first).
    pub async fn login(&self, http: &HttpClient, vault: &Vault) -> Result<TokenSet, UpstreamError> {
        let SecretMaterial::UsernamePassword { username, password } = &vault.material else {
            return Err(self.cannot("log in without a username and password"));
        };
        match &self.settings {
            ProviderSettings::Pass(s) => pass::renew(http, s, username, password, vault.session.as_ref()).await,
            ProviderSettings::JouwOmgeving(s) => jouwomgeving::obtain(http, s, username, password).await,
            _ => Err(self.cannot("log in")),
        }
    }

    /// Posts one OAuth2 grant to the instance's token endpoint, with the client's own
    /// authentication: one request, never repeated by anything below. There is no refresh
    /// function here: the refresh grant (a single-use refresh token) is composed in one place,
    /// `broker::rotation`, by the function that consumes the journal's permit to send it.
    pub async fn token_grant(
        &self,
        http: &HttpClient,
        grant: &[(&str, &str)],
        sent: &[&Secret],
    ) -> Result<TokenSet, UpstreamError> {
        match &self.settings {
            ProviderSettings::Passolution(s) => passolution::token_request(http, s, grant, sent).await,
            _ => Err(self.cannot("take OAuth2 grants")),
        }
    }

    /// What a failed refresh grant means for the refresh token.
    pub fn classify_refresh_failure(&self, error: &UpstreamError) -> RefreshFailure {
        passolution::classify_refresh_error(error)
    }

    /// Tries `access_token` on the instance's probe path.
    pub async fn probe(&self, http: &HttpClient, access_token: &Secret) -> Result<Probe, UpstreamError> {
        match &self.settings {
            ProviderSettings::Passolution(s) => {
                passolution::probe(http, s, access_token, &self.rejected_statuses).await
            }
            _ => Err(self.cannot("be probed")),
        }
    }

    /// Whether `material` must be exchanged before it can be stored (an authorization code).
    pub fn exchanges(&self, material: &SecretMaterial) -> bool {
        matches!(
            (&self.settings, material),
            (ProviderSettings::Passolution(_), SecretMaterial::AuthorizationCode { .. })
        )
    }

    /// Exchanges what [`exchanges`](Self::exchanges) said must be exchanged.
    pub async fn exchange(&self, http: &HttpClient, material: &SecretMaterial) -> Result<TokenSet, UpstreamError> {
        match (&self.settings, material) {
            (
                ProviderSettings::Passolution(s),
                SecretMaterial::AuthorizationCode { code, redirect_uri, code_verifier },
            ) => passolution::exchange_code(http, s, code, redirect_uri, code_verifier.as_ref()).await,
            _ => Err(self.cannot("exchange this secret")),
        }
    }

    /// The instance's own token ([`OwnCredential::Obtained`](super::OwnCredential)).
    pub async fn obtain_own_token(&self, http: &HttpClient) -> Result<TokenSet, UpstreamError> {
        match &self.settings {
            ProviderSettings::Passolution(s) => passolution::client_credentials(http, s).await,
            _ => Err(self.cannot("obtain a token of its own")),
        }
    }

    /// Ends the credential's session upstream where the provider has a logout (PASS).
    pub async fn logout(&self, http: &HttpClient, vault: &Vault) -> Result<(), UpstreamError> {
        match (&self.settings, &vault.session) {
            (ProviderSettings::Pass(s), Some(session)) => pass::logout(http, s, &session.token).await,
            _ => Ok(()),
        }
    }

    fn cannot(&self, what: &str) -> UpstreamError {
        UpstreamError::NotSent { detail: format!("provider {} (kind {}) cannot {what}", self.name, self.kind()) }
    }
}

//! Start-up configuration. Everything a test may want to change while the fake runs is
//! copied into [`Knobs`](crate::Knobs) at start; the rest (secrets) is fixed per instance.

use std::fmt;
use std::time::Duration;

/// One of the four faked upstreams; each lives under its own path prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    Pass,
    Bro,
    Passolution,
    JouwOmgeving,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Provider::Pass, Provider::Bro, Provider::Passolution, Provider::JouwOmgeving];

    /// The path prefix (no slashes) the provider is served under.
    pub fn prefix(self) -> &'static str {
        match self {
            Provider::Pass => "pass",
            Provider::Bro => "bro",
            Provider::Passolution => "passolution",
            Provider::JouwOmgeving => "jouwomgeving",
        }
    }

    /// The provider whose prefix starts `path` (e.g. `/pass/token/v1/login`).
    pub fn from_path(path: &str) -> Option<Provider> {
        let first = path.trim_start_matches('/').split('/').next()?;
        Provider::ALL.into_iter().find(|p| p.prefix() == first)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// How Passolution refuses a revoked, expired or unknown refresh token. Real servers differ
/// by league/oauth2-server version, and the broker must handle both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RefreshErrorStyle {
    /// league/oauth2-server 8.x and later: 400 `invalid_grant`.
    #[default]
    Newer,
    /// Before 8.x: 401 `invalid_request`.
    Older,
}

/// What the authorize endpoint's redirect back says in `iss` (RFC 9207). Real servers
/// either send their issuer or nothing; the other values exist to test the client's check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IssuerReply {
    /// The fake's own issuer, [`FakeUpstream::passolution_issuer`](crate::FakeUpstream::passolution_issuer).
    #[default]
    Correct,
    /// No `iss` parameter (a server that predates RFC 9207).
    Omitted,
    /// Another server's issuer, as in a mix-up attack.
    Wrong,
}

/// Initial settings of a fake. `Default` gives the providers' documented defaults.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// PASS: the organisation's API key (header `API-Key`, and the first half of AppBearer).
    pub pass_api_key: String,
    /// PASS: the sliding lifetime; every successful use resets expiry to now + this.
    pub pass_max_lifetime: Duration,
    /// Passolution: access-token lifetime (`expires_in`).
    pub passolution_access_lifetime: Duration,
    /// Passolution: refresh-token lifetime (Passport's default is one year too).
    pub passolution_refresh_lifetime: Duration,
    /// Passolution: authorization-code lifetime (Passport: 10 minutes).
    pub passolution_code_lifetime: Duration,
    /// Passolution: requests allowed on `/oauth/token` per window (all clients together).
    pub passolution_rate_limit: u32,
    /// Passolution: the rate-limit window (Laravel: a fixed window from the first hit).
    pub passolution_rate_window: Duration,
    pub passolution_error_style: RefreshErrorStyle,
    /// Passolution: the scopes the authorize endpoint knows (`*` is always accepted).
    pub passolution_scopes: Vec<String>,
    /// Passolution: what the authorize redirect says in `iss`.
    pub passolution_iss: IssuerReply,
    /// Passolution: the status of a data call without a live token (Laravel: 401; some
    /// frameworks answer 403).
    pub passolution_unauthenticated_status: u16,
    /// Passolution: key that signs the (HS256) access-token JWTs.
    pub passolution_jwt_secret: String,
    /// JouwOmgeving: `JWT_EXPIRATION_DELTA`.
    pub jouwomgeving_jwt_lifetime: Duration,
    /// JouwOmgeving: `JWT_REFRESH_EXPIRATION_DELTA`, counted from `orig_iat`.
    pub jouwomgeving_refresh_window: Duration,
    /// JouwOmgeving: `JWT_SECRET_KEY`.
    pub jouwomgeving_secret: String,
    /// Delay added before every request, for every provider (per-provider via `Knobs`).
    pub latency: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        FakeConfig {
            pass_api_key: "fake-pass-api-key".into(),
            pass_max_lifetime: Duration::from_secs(7 * DAY),
            passolution_access_lifetime: Duration::from_secs(365 * DAY),
            passolution_refresh_lifetime: Duration::from_secs(365 * DAY),
            passolution_code_lifetime: Duration::from_secs(600),
            passolution_rate_limit: 300,
            passolution_rate_window: Duration::from_secs(60),
            passolution_error_style: RefreshErrorStyle::Newer,
            passolution_scopes: vec!["read".into(), "write".into()],
            passolution_iss: IssuerReply::Correct,
            passolution_unauthenticated_status: 401,
            passolution_jwt_secret: "fake-passolution-signing-key".into(),
            jouwomgeving_jwt_lifetime: Duration::from_secs(300),
            jouwomgeving_refresh_window: Duration::from_secs(7 * DAY),
            jouwomgeving_secret: "fake-jouwomgeving-secret-key".into(),
            latency: Duration::ZERO,
        }
    }
}

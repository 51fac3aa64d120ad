//! `[server.tls]`, the connection limits in `[server]`, `[auth.jwt]`, `[[policy]]`,
//! `[audit]`, `[admin]` — and the exposure check across them: a broker reachable from the
//! network must have TLS and a policy, unless `server.allow_insecure` says otherwise on
//! purpose.

use super::ServerSettings;
use super::section::Sections;
use crate::security::SecuritySettings;
use crate::security::audit::AuditSettings;
use crate::security::identity::JwtSettings;
use crate::security::jwks::{JwksSource, MIN_REFETCH};
use crate::security::policy::{self, Policy, RateLimit, Rpc, Rule};
use crate::security::tls::{self, TlsSettings};
use serde::Deserialize;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
    #[serde(default = "five_seconds", with = "humantime_serde")]
    reload_interval: Duration,
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    handshake_timeout: Duration,
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

/// `[server.tls]`: the files are loaded once here, so a bad one stops start-up naming its key.
pub(super) fn validate_tls(raw: Option<RawTls>, errors: &mut Vec<String>) -> Option<Option<TlsSettings>> {
    let Some(raw) = raw else { return Some(None) };
    if raw.reload_interval < Duration::from_millis(100) || raw.handshake_timeout.is_zero() {
        errors.push("server.tls: reload_interval at least 100ms, handshake_timeout above 0".into());
        return None;
    }
    let settings = TlsSettings {
        cert_file: raw.cert_file,
        key_file: raw.key_file,
        client_ca_file: raw.client_ca_file,
        reload_interval: raw.reload_interval,
        handshake_timeout: raw.handshake_timeout,
    };
    match tls::load(&settings) {
        Ok(_) => Some(Some(settings)),
        Err(e) if e.starts_with("server.tls") => {
            errors.push(e);
            None
        }
        Err(e) => {
            errors.push(format!("server.tls (cert_file, key_file, client_ca_file): {e}"));
            None
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawAuth {
    jwt: Option<RawJwt>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    jwks_file: Option<PathBuf>,
    jwks_url: Option<String>,
    #[serde(default = "five_minutes", with = "humantime_serde")]
    jwks_refresh: Duration,
    issuer: String,
    audience: String,
    #[serde(default = "thirty_seconds", with = "humantime_serde")]
    leeway: Duration,
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    callers: Vec<String>,
    rpcs: Vec<String>,
    providers: Vec<String>,
    subjects: Vec<String>,
    rate_per_second: Option<u32>,
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: String,
    #[serde(default)]
    fail_closed: bool,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
}

/// Reads and validates the security sections; every problem names its key.
pub(super) fn parse(sections: &mut Sections, errors: &mut Vec<String>) -> Option<SecuritySettings> {
    let before = errors.len();
    let auth = sections.read::<RawAuth>("auth", errors);
    let audit = sections.read::<Option<RawAudit>>("audit", errors);
    let admin = sections.read::<RawAdmin>("admin", errors);
    let rules = sections.read::<Vec<RawRule>>("policy", errors);
    let jwt = auth.and_then(|a| a.jwt).and_then(|j| validate_jwt(j, errors));
    let policy = rules.filter(|r| !r.is_empty()).map(|rules| validate_policy(rules, errors));
    let admin_listen = admin.and_then(|a| a.listen).and_then(|listen| match listen.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errors.push(format!("admin.listen: {listen:?} is not an address like 127.0.0.1:50052"));
            None
        }
    });
    let audit = audit
        .flatten()
        .map(|a| AuditSettings { path: (a.path != "-").then(|| PathBuf::from(a.path)), fail_closed: a.fail_closed });
    (errors.len() == before).then_some(SecuritySettings { jwt, policy, audit, admin_listen })
}

fn validate_jwt(raw: RawJwt, errors: &mut Vec<String>) -> Option<JwtSettings> {
    if raw.issuer.is_empty() || raw.audience.is_empty() {
        errors.push("auth.jwt: issuer and audience must be non-empty".into());
        return None;
    }
    let keys = match (raw.jwks_file, raw.jwks_url) {
        (Some(file), None) => JwksSource::File(jwks_file(&file, errors)?),
        (None, Some(url)) => {
            JwksSource::Url { url: jwks_url(&url, raw.jwks_refresh, errors)?, refresh: raw.jwks_refresh }
        }
        _ => {
            errors.push("auth.jwt: give exactly one of jwks_file or jwks_url".into());
            return None;
        }
    };
    Some(JwtSettings { keys, issuer: raw.issuer, audience: raw.audience, leeway: raw.leeway })
}

fn jwks_file(file: &Path, errors: &mut Vec<String>) -> Option<jsonwebtoken::jwk::JwkSet> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| errors.push(format!("auth.jwt.jwks_file: cannot read {}: {e}", file.display())))
        .ok()?;
    let keys: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
        .map_err(|e| errors.push(format!("auth.jwt.jwks_file: not a JWKS (JSON with \"keys\"): {e}")))
        .ok()?;
    if keys.keys.is_empty() {
        errors.push("auth.jwt.jwks_file: no key in the set".into());
        return None;
    }
    Some(keys)
}

fn jwks_url(url: &str, refresh: Duration, errors: &mut Vec<String>) -> Option<url::Url> {
    if refresh < MIN_REFETCH {
        errors.push(format!("auth.jwt.jwks_refresh: at least {}s", MIN_REFETCH.as_secs()));
    }
    match url::Url::parse(url) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && refresh >= MIN_REFETCH => Some(url),
        Ok(_) if refresh < MIN_REFETCH => None,
        _ => {
            errors.push(format!("auth.jwt.jwks_url: {url:?} is not an http(s) URL"));
            None
        }
    }
}

fn validate_policy(rules: Vec<RawRule>, errors: &mut Vec<String>) -> Policy {
    let rules = rules.into_iter().enumerate().filter_map(|(i, rule)| validate_rule(i, rule, errors)).collect();
    Policy { rules }
}

fn validate_rule(index: usize, raw: RawRule, errors: &mut Vec<String>) -> Option<Rule> {
    let at = format!("policy[{index}]");
    let before = errors.len();
    let mut globs = |key: &str, patterns: &[String]| {
        policy::globs(patterns).map_err(|e| errors.push(format!("{at}.{key}: {e}"))).ok()
    };
    let (callers, providers, subjects) =
        (globs("callers", &raw.callers), globs("providers", &raw.providers), globs("subjects", &raw.subjects));
    let rpcs = rpcs(&at, &raw.rpcs, errors);
    let rate = rate(&at, raw.rate_per_second, raw.burst, errors);
    if raw.callers.is_empty() {
        errors.push(format!("{at}.callers: at least one glob (an empty list would match no caller)"));
    }
    if errors.len() > before {
        return None;
    }
    Some(Rule { callers: callers?, rpcs, providers: providers?, subjects: subjects?, rate })
}

/// Proto method names; `"*"` is every RPC that uses a credential (`Rpc::in_wildcard`) — never
/// an admin one.
fn rpcs(at: &str, names: &[String], errors: &mut Vec<String>) -> Vec<Rpc> {
    let mut rpcs = Vec::new();
    for name in names {
        match (name.as_str(), Rpc::parse(name)) {
            ("*", _) => rpcs.extend(Rpc::ALL.into_iter().filter(|rpc| rpc.in_wildcard())),
            (_, Some(rpc)) => rpcs.push(rpc),
            (_, None) => errors.push(format!(
                "{at}.rpcs: {name:?} is not an RPC (GetAuthorization, ReportRejected, ProxyCall, ProxyCallStream, \
                 PutCredential, GetCredentialStatus, ListCredentials, DeleteCredential, Rewrap, \
                 StartAuthorization, GetAuthorizationSession, WatchCredentials, ReplayWebhooks, or \"*\")"
            )),
        }
    }
    rpcs
}

fn rate(at: &str, per_second: Option<u32>, burst: Option<u32>, errors: &mut Vec<String>) -> Option<RateLimit> {
    let per_second = NonZeroU32::new(per_second?).or_else(|| {
        errors.push(format!("{at}.rate_per_second: above 0 (leave it out for no limit)"));
        None
    })?;
    let burst = match burst {
        None => per_second,
        Some(burst) => NonZeroU32::new(burst).or_else(|| {
            errors.push(format!("{at}.burst: above 0"));
            None
        })?,
    };
    Some(RateLimit { per_second, burst })
}

/// A broker reachable from the network with no TLS or no policy hands credentials to anyone
/// who reaches it: refused unless `server.allow_insecure` is set on purpose.
pub(super) fn check_exposure(server: &ServerSettings, security: &SecuritySettings, errors: &mut Vec<String>) {
    let exposed = |addr: &std::net::SocketAddr| !addr.ip().is_loopback();
    let listeners = [Some(server.listen), security.admin_listen];
    if server.allow_insecure || !listeners.iter().flatten().any(exposed) {
        return;
    }
    let mut missing = Vec::new();
    if server.tls.is_none() {
        missing.push("[server.tls] (cert_file, key_file, client_ca_file)");
    }
    if security.policy.is_none() {
        missing.push("at least one [[policy]]");
    }
    if !missing.is_empty() {
        errors.push(format!(
            "server.listen / admin.listen: a non-loopback address needs {}; set server.allow_insecure = true only \
             if something else (a mesh, a TLS-terminating proxy, a network policy) guards it",
            missing.join(" and ")
        ));
    }
}

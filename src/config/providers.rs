//! `[[providers]]`: one table per provider instance, checked per kind.

use super::env::ProviderOverride;
use super::keys::shape;
use super::section::Sections;
use crate::domain::{ProviderName, Secret};
use crate::providers::bro::BroSettings;
use crate::providers::jouwomgeving::JouwOmgevingSettings;
use crate::providers::pass::PassSettings;
use crate::providers::passolution::PassolutionSettings;
use crate::providers::{Provider, ProviderSettings};
use figment::Figment;
use figment::error::Kind;
use figment::providers::Serialized;
use figment::value::{Dict, Value};
use serde::Deserialize;
use std::collections::HashSet;
use url::Url;

/// One provider table without its `name`: the `kind` is the tag, and each kind's struct lists
/// the only keys that kind takes, so serde refuses any other. The table `{kind = "bro", …}` is
/// read as `{bro = {…}}` (externally tagged): unlike an internally tagged enum, which serde
/// buffers, figment then still reads environment strings as numbers and names the key of a
/// problem.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Pass(RawPass),
    Bro(RawBro),
    Passolution(RawPassolution),
    Jouwomgeving(RawJouwOmgeving),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPass {
    api_base_url: Option<String>,
    api_key: Option<Secret>,
    rejected_statuses: Option<StatusList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBro {
    api_base_url: Option<String>,
    rejected_statuses: Option<StatusList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPassolution {
    api_base_url: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    token_budget_per_minute: Option<u32>,
    probe_path: Option<String>,
    rejected_statuses: Option<StatusList>,
    #[serde(default, with = "humantime_serde")]
    refresh_token_lifetime: Option<std::time::Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJouwOmgeving {
    api_base_url: Option<String>,
    token_path: Option<String>,
    refresh_path: Option<String>,
    rejected_statuses: Option<StatusList>,
}

/// Laravel Passport's default refresh-token lifetime (Passolution does not document its own).
const DEFAULT_REFRESH_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Reads and checks every provider table, collecting problems as `providers[i].key: …`.
pub(super) fn parse(
    sections: &mut Sections,
    overrides: Vec<ProviderOverride>,
    errors: &mut Vec<String>,
) -> Vec<Provider> {
    sections.claim("providers", shape::<RawKind>());
    let mut tables = match sections.figment().find_value("providers") {
        Ok(Value::Array(_, tables)) => tables,
        Ok(_) => {
            errors.push("providers: must be an array of tables ([[providers]])".into());
            return Vec::new();
        }
        Err(_) => Vec::new(),
    };
    let from_env = apply_overrides(&mut tables, overrides, errors);
    let mut seen = HashSet::new();
    let mut providers = Vec::new();
    for (i, table) in tables.into_iter().enumerate() {
        let at = format!("providers[{i}]");
        let Value::Dict(_, mut table) = table else {
            errors.push(format!("{at}: must be a table"));
            continue;
        };
        let name = take_string(&at, "name", &mut table, errors);
        if let Some(name) = name.as_ref().filter(|name| !seen.insert(name.to_string())) {
            errors.push(format!("{at}.name: {name:?} is configured twice"));
        }
        let origin = Origin { at: &at, name: name.as_deref().unwrap_or_default(), from_env: &from_env[i] };
        let kind =
            take_string(&at, "kind", &mut table, errors).and_then(|kind| read_kind(&origin, &kind, table, errors));
        if let (Some(name), Some(kind)) = (name, kind) {
            providers.extend(check(&at, &name, kind, errors));
        }
    }
    providers
}

/// A required string key, taken out of the table (`name` and `kind` are not the kind's own).
fn take_string(at: &str, key: &str, table: &mut Dict, errors: &mut Vec<String>) -> Option<String> {
    match table.remove(key) {
        Some(Value::String(_, value)) => Some(value),
        Some(_) => {
            errors.push(format!("{at}.{key}: must be a string"));
            None
        }
        None => {
            errors.push(format!("{at}.{key}: required"));
            None
        }
    }
}

/// Where a provider's keys came from, to name them in a problem.
struct Origin<'a> {
    at: &'a str,
    name: &'a str,
    /// The keys set by `CREDBROKER__PROVIDERS__<NAME>__<KEY>`.
    from_env: &'a HashSet<String>,
}

/// The rest of the table as its kind's struct: `{kind: rest}` read as the tagged enum, lossily
/// (environment values are strings, so `TOKEN_BUDGET_PER_MINUTE=60` must still read as a
/// number). serde stops at the first unknown key: it is set aside and the table read again, so
/// every unknown key is reported at once.
fn read_kind(origin: &Origin, kind: &str, mut table: Dict, errors: &mut Vec<String>) -> Option<RawKind> {
    let mut refused = false;
    loop {
        let tagged = Dict::from([(kind.to_owned(), Value::from(table.clone()))]);
        let error = match Figment::from(Serialized::defaults(tagged)).extract_lossy::<RawKind>() {
            Ok(raw) => return (!refused).then_some(raw),
            Err(error) => error,
        };
        let unknown = match &error.kind {
            Kind::UnknownField(field, _) => table.remove(field).is_some(),
            _ => false,
        };
        errors.extend(error.into_iter().map(|e| describe_in(origin, kind, &e)));
        refused = true;
        if !unknown {
            return None;
        }
    }
}

/// `providers[i].key: problem`, from a figment error inside one provider table (whose path
/// starts with the kind, the enum's tag).
fn describe_in(origin: &Origin, kind: &str, error: &figment::Error) -> String {
    let key = error.path.get(1..).unwrap_or_default().join(".");
    let at = match origin.from_env.contains(&key) {
        true => format!(
            "{}.{key} (from CREDBROKER__PROVIDERS__{}__{})",
            origin.at,
            env_name(origin.name).to_uppercase(),
            key.to_uppercase()
        ),
        false if key.is_empty() => origin.at.to_owned(),
        false => format!("{}.{key}", origin.at),
    };
    match &error.kind {
        Kind::UnknownVariant(other, kinds) => {
            format!("{}.kind: {other:?} is not one of {}", origin.at, kinds.join(", "))
        }
        Kind::UnknownField(field, keys) => match super::strict::nearest(field, keys) {
            Some(near) => format!("{at}: not used by kind {kind}; did you mean `{near}`?"),
            None => format!("{at}: not used by kind {kind} (it takes name, kind, {})", keys.join(", ")),
        },
        other => format!("{at}: {other}"),
    }
}

/// `CREDBROKER__PROVIDERS__<NAME>__<KEY>=value` sets `key` on the provider named NAME; returns
/// the keys set on each table.
fn apply_overrides(
    tables: &mut [Value],
    overrides: Vec<ProviderOverride>,
    errors: &mut Vec<String>,
) -> Vec<HashSet<String>> {
    let mut from_env = vec![HashSet::new(); tables.len()];
    for (name, key, value) in overrides {
        let target = tables.iter_mut().enumerate().find_map(|(i, t)| match t {
            Value::Dict(_, dict) if dict.get("name").and_then(Value::as_str).map(env_name) == Some(name.clone()) => {
                Some((i, dict))
            }
            _ => None,
        });
        match target {
            Some((i, dict)) if !name.is_empty() => {
                from_env[i].insert(key.clone());
                dict.insert(key, Value::from(value));
            }
            _ => errors.push(format!(
                "environment: CREDBROKER__PROVIDERS__{}__{}: no configured provider has that name",
                name.to_uppercase(),
                key.to_uppercase()
            )),
        }
    }
    from_env
}

/// How a provider name is spelled in a variable name, lower-cased.
fn env_name(name: &str) -> String {
    name.to_lowercase().replace('-', "_")
}

fn check(at: &str, name: &str, kind: RawKind, errors: &mut Vec<String>) -> Option<Provider> {
    let before = errors.len();
    if !valid_name(name) {
        errors.push(format!("{at}.name: {name:?} must be 1-64 of a-z, 0-9, '-', '_', starting with a letter or digit"));
    }
    let (settings, statuses) = match kind {
        RawKind::Pass(raw) => (pass(at, &raw, errors), raw.rejected_statuses),
        RawKind::Bro(raw) => (bro(at, &raw, errors), raw.rejected_statuses),
        RawKind::Passolution(raw) => (passolution(at, &raw, errors), raw.rejected_statuses),
        RawKind::Jouwomgeving(raw) => (jouwomgeving(at, &raw, errors), raw.rejected_statuses),
    };
    let rejected_statuses = rejected_statuses(at, statuses.as_ref(), errors);
    let name = ProviderName::parse("name", name).ok()?;
    (errors.len() == before).then_some(Provider { name, settings: settings?, rejected_statuses })
}

/// `[401, 403]` in a file; `401,403` from the environment (whose values are strings).
#[derive(Deserialize)]
#[serde(untagged)]
enum StatusList {
    List(Vec<u16>),
    Text(String),
}

/// Which statuses of a data call mean "token rejected": 4xx only (a 5xx says nothing about
/// the token), default `[401]`.
fn rejected_statuses(at: &str, value: Option<&StatusList>, errors: &mut Vec<String>) -> Vec<u16> {
    let statuses = match value {
        None => Some(vec![401]),
        Some(StatusList::List(list)) => Some(list.clone()),
        Some(StatusList::Text(text)) => text.split(',').map(|s| s.trim().parse().ok()).collect(),
    };
    match statuses {
        Some(list) if !list.is_empty() && list.iter().all(|s| (400..=499).contains(s)) => list,
        _ => {
            errors.push(format!("{at}.rejected_statuses: a non-empty list of 4xx statuses, e.g. [401, 403]"));
            Vec::new()
        }
    }
}

fn valid_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    (1..=64).contains(&name.len()) && name.chars().all(ok) && !name.starts_with(['-', '_'])
}

fn pass(at: &str, raw: &RawPass, errors: &mut Vec<String>) -> Option<ProviderSettings> {
    let api_base_url = base_url(at, raw.api_base_url.as_deref(), None, errors);
    let api_key = required_secret(at, "api_key", raw.api_key.as_ref(), errors);
    Some(ProviderSettings::Pass(PassSettings { api_base_url: api_base_url?, api_key: api_key? }))
}

fn bro(at: &str, raw: &RawBro, errors: &mut Vec<String>) -> Option<ProviderSettings> {
    let api_base_url =
        base_url(at, raw.api_base_url.as_deref(), Some("https://www.bronhouderportaal-bro.nl/api/v2/"), errors);
    Some(ProviderSettings::Bro(BroSettings { api_base_url: api_base_url? }))
}

fn passolution(at: &str, raw: &RawPassolution, errors: &mut Vec<String>) -> Option<ProviderSettings> {
    let api_base_url = base_url(at, raw.api_base_url.as_deref(), Some("https://api.passolution.eu/api/v2/"), errors);
    let token_url =
        url(at, "token_url", raw.token_url.as_deref().unwrap_or("https://web.passolution.eu/oauth/token"), errors);
    let client_id = raw.client_id.clone().filter(|c| !c.is_empty());
    if client_id.is_none() {
        errors.push(format!("{at}.client_id: required for kind passolution"));
    }
    let client_secret = required_secret(at, "client_secret", raw.client_secret.as_ref(), errors);
    let budget = match raw.token_budget_per_minute.unwrap_or(240) {
        0 => {
            errors.push(format!("{at}.token_budget_per_minute: must be at least 1 (Passolution allows 300)"));
            None
        }
        n => Some(n),
    };
    let probe_path = raw.probe_path.clone().unwrap_or_else(|| crate::providers::passolution::PROBE_PATH.into());
    if probe_path.starts_with('/') || probe_path.contains("://") {
        errors.push(format!("{at}.probe_path: a path relative to api_base_url (no leading '/', no scheme)"));
    }
    Some(ProviderSettings::Passolution(PassolutionSettings {
        api_base_url: api_base_url?,
        token_url: token_url?,
        client_id: client_id?,
        client_secret: client_secret?,
        token_budget_per_minute: budget?,
        probe_path,
        refresh_token_lifetime: raw.refresh_token_lifetime.unwrap_or(DEFAULT_REFRESH_TOKEN_LIFETIME),
    }))
}

fn jouwomgeving(at: &str, raw: &RawJouwOmgeving, errors: &mut Vec<String>) -> Option<ProviderSettings> {
    let api_base_url = base_url(at, raw.api_base_url.as_deref(), None, errors);
    Some(ProviderSettings::JouwOmgeving(JouwOmgevingSettings {
        api_base_url: api_base_url?,
        token_path: raw.token_path.clone().unwrap_or_else(|| "api-token-auth/".into()),
        refresh_path: raw.refresh_path.clone(),
    }))
}

fn required_secret(at: &str, key: &str, value: Option<&Secret>, errors: &mut Vec<String>) -> Option<Secret> {
    let value = value.filter(|v| !v.is_empty()).cloned();
    if value.is_none() {
        errors.push(format!("{at}.{key}: required"));
    }
    value
}

/// The base every request path is joined to: http(s), a host, no query; ends with `/` so
/// joining keeps its last segment.
fn base_url(at: &str, value: Option<&str>, default: Option<&str>, errors: &mut Vec<String>) -> Option<Url> {
    let Some(value) = value.or(default) else {
        errors.push(format!("{at}.api_base_url: required"));
        return None;
    };
    let mut url = url(at, "api_base_url", value, errors)?;
    if url.query().is_some() || url.fragment().is_some() {
        errors.push(format!("{at}.api_base_url: must not carry a query or fragment"));
        return None;
    }
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Some(url)
}

fn url(at: &str, key: &str, value: &str, errors: &mut Vec<String>) -> Option<Url> {
    match Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
        _ => {
            errors.push(format!("{at}.{key}: {value:?} is not an http(s) URL"));
            None
        }
    }
}

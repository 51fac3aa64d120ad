//! `[[providers]]`: one table per provider instance, checked per kind.

use crate::domain::{ProviderName, Secret};
use crate::providers::bro::BroSettings;
use crate::providers::jouwomgeving::JouwOmgevingSettings;
use crate::providers::pass::PassSettings;
use crate::providers::passolution::PassolutionSettings;
use crate::providers::{Provider, ProviderSettings};
use figment::Figment;
use figment::providers::Serialized;
use figment::value::Value;
use serde::Deserialize;
use std::collections::HashSet;
use url::Url;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    kind: String,
    api_base_url: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    api_key: Option<Secret>,
    token_path: Option<String>,
    refresh_path: Option<String>,
    token_budget_per_minute: Option<u32>,
    probe_path: Option<String>,
    rejected_statuses: Option<StatusList>,
    #[serde(default, with = "humantime_serde")]
    refresh_token_lifetime: Option<std::time::Duration>,
}

/// Laravel Passport's default refresh-token lifetime (Passolution does not document its own).
const DEFAULT_REFRESH_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Reads and checks every provider table, collecting problems as `providers[i].key: …`.
pub(super) fn parse(
    figment: &Figment,
    overrides: Vec<(String, String, String)>,
    errors: &mut Vec<String>,
) -> Vec<Provider> {
    let mut tables = match figment.find_value("providers") {
        Ok(Value::Array(_, tables)) => tables,
        Ok(_) => {
            errors.push("providers: must be an array of tables ([[providers]])".into());
            return Vec::new();
        }
        Err(_) => Vec::new(),
    };
    apply_overrides(&mut tables, overrides, errors);
    let mut seen = HashSet::new();
    let mut providers = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        let at = format!("providers[{i}]");
        // Lossy, like the other sections: values from the environment are strings, so
        // `TOKEN_BUDGET_PER_MINUTE=60` must still read as a number.
        match Figment::from(Serialized::defaults(table)).extract_lossy::<RawProvider>() {
            Ok(raw) => {
                if !seen.insert(raw.name.clone()) {
                    errors.push(format!("{at}.name: {:?} is configured twice", raw.name));
                }
                providers.extend(check(&at, raw, errors));
            }
            Err(e) => errors.extend(e.into_iter().map(|e| describe_in(&at, &e))),
        }
    }
    providers
}

/// `providers[i].key: problem`, from a figment error inside one provider table.
fn describe_in(at: &str, error: &figment::Error) -> String {
    match error.path.is_empty() {
        true => format!("{at}: {}", error.kind),
        false => format!("{at}.{}: {}", error.path.join("."), error.kind),
    }
}

/// `CREDBROKER__PROVIDERS__<NAME>__<KEY>=value` sets `key` on the provider named NAME.
fn apply_overrides(tables: &mut [Value], overrides: Vec<(String, String, String)>, errors: &mut Vec<String>) {
    for (name, key, value) in overrides {
        let target = tables.iter_mut().find_map(|t| match t {
            Value::Dict(_, dict) if dict.get("name").and_then(Value::as_str).map(env_name) == Some(name.clone()) => {
                Some(dict)
            }
            _ => None,
        });
        match target {
            Some(dict) if !name.is_empty() => {
                dict.insert(key, Value::from(value));
            }
            _ => errors.push(format!(
                "environment: CREDBROKER__PROVIDERS__{}__{}: no configured provider has that name",
                name.to_uppercase(),
                key.to_uppercase()
            )),
        }
    }
}

/// How a provider name is spelled in a variable name, lower-cased.
fn env_name(name: &str) -> String {
    name.to_lowercase().replace('-', "_")
}

fn check(at: &str, raw: RawProvider, errors: &mut Vec<String>) -> Option<Provider> {
    let before = errors.len();
    if !valid_name(&raw.name) {
        errors.push(format!(
            "{at}.name: {:?} must be 1-64 of a-z, 0-9, '-', '_', starting with a letter or digit",
            raw.name
        ));
    }
    let settings = match raw.kind.as_str() {
        "pass" => pass(at, &raw, errors),
        "bro" => bro(at, &raw, errors),
        "passolution" => passolution(at, &raw, errors),
        "jouwomgeving" => jouwomgeving(at, &raw, errors),
        other => {
            errors.push(format!("{at}.kind: {other:?} is not one of pass, bro, passolution, jouwomgeving"));
            None
        }
    };
    let rejected_statuses = rejected_statuses(at, raw.rejected_statuses.as_ref(), errors);
    let name = ProviderName::parse("name", &raw.name).ok()?;
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

fn pass(at: &str, raw: &RawProvider, errors: &mut Vec<String>) -> Option<ProviderSettings> {
    unused(
        at,
        "pass",
        &[
            ("token_url", raw.token_url.is_some()),
            ("client_id", raw.client_id.is_some()),
            ("client_secret", raw.client_secret.is_some()),
            ("token_path", raw.token_path.is_some()),
            ("refresh_path", raw.refresh_path.is_some()),
            ("probe_path", raw.probe_path.is_some()),
            ("refresh_token_lifetime", raw.refresh_token_lifetime.is_some()),
        ],
        errors,
    );
    let api_base_url = base_url(at, raw.api_base_url.as_deref(), None, errors);
    let api_key = required_secret(at, "api_key", raw.api_key.as_ref(), errors);
    Some(ProviderSettings::Pass(PassSettings { api_base_url: api_base_url?, api_key: api_key? }))
}

fn bro(at: &str, raw: &RawProvider, errors: &mut Vec<String>) -> Option<ProviderSettings> {
    unused(
        at,
        "bro",
        &[
            ("token_url", raw.token_url.is_some()),
            ("client_id", raw.client_id.is_some()),
            ("client_secret", raw.client_secret.is_some()),
            ("api_key", raw.api_key.is_some()),
            ("token_path", raw.token_path.is_some()),
            ("refresh_path", raw.refresh_path.is_some()),
            ("probe_path", raw.probe_path.is_some()),
            ("refresh_token_lifetime", raw.refresh_token_lifetime.is_some()),
        ],
        errors,
    );
    let api_base_url =
        base_url(at, raw.api_base_url.as_deref(), Some("https://www.bronhouderportaal-bro.nl/api/v2/"), errors);
    Some(ProviderSettings::Bro(BroSettings { api_base_url: api_base_url? }))
}

fn passolution(at: &str, raw: &RawProvider, errors: &mut Vec<String>) -> Option<ProviderSettings> {
    unused(
        at,
        "passolution",
        &[
            ("api_key", raw.api_key.is_some()),
            ("token_path", raw.token_path.is_some()),
            ("refresh_path", raw.refresh_path.is_some()),
        ],
        errors,
    );
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

fn jouwomgeving(at: &str, raw: &RawProvider, errors: &mut Vec<String>) -> Option<ProviderSettings> {
    unused(
        at,
        "jouwomgeving",
        &[
            ("token_url", raw.token_url.is_some()),
            ("client_id", raw.client_id.is_some()),
            ("client_secret", raw.client_secret.is_some()),
            ("api_key", raw.api_key.is_some()),
            ("probe_path", raw.probe_path.is_some()),
            ("refresh_token_lifetime", raw.refresh_token_lifetime.is_some()),
        ],
        errors,
    );
    let api_base_url = base_url(at, raw.api_base_url.as_deref(), None, errors);
    Some(ProviderSettings::JouwOmgeving(JouwOmgevingSettings {
        api_base_url: api_base_url?,
        token_path: raw.token_path.clone().unwrap_or_else(|| "api-token-auth/".into()),
        refresh_path: raw.refresh_path.clone(),
    }))
}

fn unused(at: &str, kind: &str, keys: &[(&str, bool)], errors: &mut Vec<String>) {
    for (key, _) in keys.iter().filter(|(_, set)| *set) {
        errors.push(format!("{at}.{key}: not used by kind {kind}"));
    }
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

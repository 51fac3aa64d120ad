//! The `CREDBROKER__` environment variables: section keys at any depth
//! (`CREDBROKER__SERVER__TLS__CERT_FILE` is `server.tls.cert_file`) as a figment layer named
//! "environment", so a problem in a value a variable set names the variable; and provider keys
//! (`CREDBROKER__PROVIDERS__<NAME>__<KEY>`), applied by provider name.

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

pub(super) const PREFIX: &str = "CREDBROKER__";

/// The name figment records as the source of every value a variable set.
pub(super) const SOURCE: &str = "environment";

/// A provider override: the provider's name as spelled in the variable (lower-cased), the
/// key, the value.
pub(super) type ProviderOverride = (String, String, String);

/// The section keys set by variables, layered over the file.
pub(super) struct Environment(Dict);

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named(SOURCE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Global.collect(self.0.clone()))
    }
}

/// Splits `CREDBROKER__…` variables into section keys and provider overrides; a variable that
/// is neither is a problem.
pub(super) fn split(
    vars: impl IntoIterator<Item = (String, String)>,
    errors: &mut Vec<String>,
) -> (Environment, Vec<ProviderOverride>) {
    let mut sections = Dict::new();
    let mut providers = Vec::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        match path.as_slice() {
            [section, provider, key] if section == "providers" => {
                providers.push((provider.clone(), key.clone(), value))
            }
            [section, ..] if section == "providers" => errors
                .push(format!("environment: {name}: a provider's key is set as CREDBROKER__PROVIDERS__<NAME>__<KEY>")),
            _ if path.iter().any(String::is_empty) => {
                errors.push(format!("environment: {name}: an empty key between `__` separators"))
            }
            _ => insert(&mut sections, &path, value),
        }
    }
    (Environment(sections), providers)
}

/// Sets `path` (at least one key) in nested tables; a key already holding a plain value is
/// replaced by a table.
fn insert(dict: &mut Dict, path: &[String], value: String) {
    match path {
        [key] => {
            dict.insert(key.clone(), Value::from(value));
        }
        [key, rest @ ..] => {
            let entry = dict.entry(key.clone()).or_insert_with(|| Dict::new().into());
            if !matches!(entry, Value::Dict(..)) {
                *entry = Dict::new().into();
            }
            if let Value::Dict(_, table) = entry {
                insert(table, rest, value);
            }
        }
        [] => {}
    }
}

/// The variable that sets the key at `path` (`["server", "listen"]`:
/// `CREDBROKER__SERVER__LISTEN`).
pub(super) fn variable<S: AsRef<str>>(path: &[S]) -> String {
    let keys: Vec<String> = path.iter().map(|key| key.as_ref().to_uppercase()).collect();
    format!("{PREFIX}{}", keys.join("__"))
}

//! Unknown keys: every table refuses a key it does not know, at every depth and whether the
//! file or a variable set it, and the refusal names the nearest known key, so a misspelled
//! `[audti]` or `listne` is caught and its fix shown. What is known comes from the raw types
//! themselves (`keys.rs`); the provider kinds are checked where a provider is read.

use super::keys::Shape;
use figment::Figment;
use figment::value::Value;

/// The known key closest to `unknown`, if one is close enough to be a likely misspelling
/// (a transposed, missing or extra letter or two), or a known key it begins.
pub(super) fn nearest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|key| (strsim::normalized_damerau_levenshtein(unknown, key), *key))
        // Or a known key the unknown one begins (`master` for `master_name`).
        .filter(|(similarity, key)| *similarity >= 0.6 || (unknown.len() >= 4 && key.starts_with(unknown)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, key)| key)
}

/// Reports every key in `value` (found at `path`) that `shape` does not have, at every depth,
/// each naming the nearest known key — as a variable name when a variable set it. The kinds of
/// a provider are checked where the provider is read (`providers.rs`), naming its kind.
pub(super) fn refuse_unknown(
    figment: &Figment,
    path: &mut Vec<String>,
    value: &Value,
    shape: &Shape,
    errors: &mut Vec<String>,
) {
    match (value, shape) {
        (Value::Array(_, items), _) => items.iter().for_each(|item| refuse_unknown(figment, path, item, shape, errors)),
        (Value::Dict(_, table), Shape::Table(_)) => {
            for (key, value) in table {
                path.push(key.clone());
                match shape.get(key) {
                    Some(below) => refuse_unknown(figment, path, value, below, errors),
                    None => errors.push(unknown(figment, path, value, &shape.keys())),
                }
                path.pop();
            }
        }
        _ => {}
    }
}

/// `unknown table `audti`; did you mean `audit`?`, prefixed with the variables that set it
/// when the environment did.
fn unknown(figment: &Figment, path: &[String], value: &Value, known: &[&str]) -> String {
    let (parent, key) = path.split_at(path.len() - 1);
    let what = match value {
        Value::Dict(..) => "table",
        Value::Array(_, items) if !items.is_empty() && items.iter().all(|i| matches!(i, Value::Dict(..))) => "table",
        _ => "key",
    };
    let hint = match nearest(&key[0], known) {
        Some(near) => format!("; did you mean `{}`?", [parent, &[near.to_owned()]].concat().join(".")),
        None if known.is_empty() => String::new(),
        None => format!(" (known here: {})", known.join(", ")),
    };
    let message = format!("unknown {what} `{}`{hint}", path.join("."));
    match figment.get_metadata(value.tag()).is_some_and(|m| m.name == super::env::SOURCE) {
        true => format!("environment: {}: {message}", variables(path, value).join(", ")),
        false => message,
    }
}

/// The variables that set `value` at `path`: one per key it holds, at every depth.
fn variables(path: &[String], value: &Value) -> Vec<String> {
    match value {
        Value::Dict(_, table) => {
            table.iter().flat_map(|(key, value)| variables(&[path, &[key.clone()]].concat(), value)).collect()
        }
        _ => vec![super::env::variable(path)],
    }
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn a_misspelling_finds_its_key_and_a_stranger_finds_none() {
        let sections = ["server", "store", "audit", "admin", "auth", "policy"];
        assert_eq!(nearest("audti", &sections), Some("audit"));
        assert_eq!(nearest("polcy", &sections), Some("policy"));
        assert_eq!(nearest("listne", &["listen", "cores"]), Some("listen"));
        assert_eq!(nearest("client_secert", &["client_id", "client_secret"]), Some("client_secret"));
        assert_eq!(nearest("api_key", &["api_base_url", "token_url", "client_id"]), None);
        assert_eq!(nearest("zzz", &sections), None);
        assert_eq!(nearest("master", &["master_name", "addresses"]), Some("master_name"));
    }
}

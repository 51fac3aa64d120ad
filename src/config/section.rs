//! Reading one section of the layered configuration into its raw type, every problem
//! named by its key (`section.key: problem`).

use figment::Figment;
use serde::Deserialize;

/// Reads one section; absent means defaults. Values from the environment are strings, so
/// numbers and booleans are read leniently.
pub(super) fn section<T: for<'de> Deserialize<'de> + Default>(
    figment: &Figment,
    name: &str,
    errors: &mut Vec<String>,
) -> Option<T> {
    if figment.find_value(name).is_err() {
        return Some(T::default());
    }
    match figment.extract_inner_lossy::<T>(name) {
        Ok(value) => Some(value),
        Err(e) => {
            errors.extend(e.into_iter().map(|e| describe(name, &e)));
            None
        }
    }
}

/// `section.key: problem`, from a figment error.
fn describe(prefix: &str, error: &figment::Error) -> String {
    let path = if error.path.is_empty() { prefix.to_owned() } else { error.path.join(".") };
    format!("{path}: {}", error.kind)
}

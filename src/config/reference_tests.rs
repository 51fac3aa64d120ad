//! docs/configuration.md against the configuration itself: every key the sections accept (as
//! the strict check knows them, from the serde types) is documented in the reference's TOML
//! blocks, and every key documented there is accepted. A provider's keys are checked per kind.

use super::keys::Shape;
use std::collections::BTreeSet;

const REFERENCE: &str = include_str!("../../docs/configuration.md");

/// `server.tls.cert_file`, `providers.passolution.client_id`: every key holding a value, a
/// provider's keys under its kind.
fn leaves(shape: &Shape, path: &mut Vec<&'static str>, out: &mut BTreeSet<String>) {
    match shape {
        Shape::Value => {
            out.insert(path.join("."));
        }
        Shape::Table(keys) | Shape::Kinds(keys) => {
            for (key, below) in keys {
                path.push(key);
                leaves(below, path, out);
                path.pop();
            }
        }
    }
}

/// The keys the reference's ```toml blocks set, under their `[table]` headers; a line
/// `# key = …` documents an alternative to the key above it. A `[[providers]]` entry's keys are
/// put under its `kind`; its `name` and `kind` themselves are every kind's.
fn documented(reference: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let (mut in_toml, mut table, mut provider) = (false, String::new(), Vec::new());
    for line in reference.lines() {
        if line.starts_with("```") || line.starts_with('[') {
            flush_provider(&mut provider, &mut out);
        }
        if line.starts_with("```") {
            in_toml = line == "```toml";
        } else if in_toml && line.starts_with('[') {
            table = line.trim_start_matches('[').split(']').next().unwrap_or_default().to_owned();
        } else if let Some(entry) = in_toml.then(|| key_line(line)).flatten() {
            if table == "providers" {
                provider.push(entry);
            } else {
                out.insert(format!("{table}.{}", entry.0));
            }
        }
    }
    out
}

fn key_line(line: &str) -> Option<(String, String)> {
    let (key, value) = line.strip_prefix("# ").unwrap_or(line).split_once(" = ")?;
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    let value = value.split("  #").next().unwrap_or_default().trim().trim_matches('"');
    plain.then(|| (key.to_owned(), value.to_owned()))
}

fn flush_provider(entry: &mut Vec<(String, String)>, out: &mut BTreeSet<String>) {
    let kind = entry.iter().find(|(key, _)| key == "kind").map(|(_, kind)| kind.clone());
    for (key, _) in entry.drain(..).filter(|(key, _)| key != "name" && key != "kind") {
        out.insert(format!("providers.{}.{key}", kind.as_deref().unwrap_or("<no kind>")));
    }
}

fn accepted() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    leaves(&super::raw::accepted(), &mut Vec::new(), &mut out);
    out
}

#[test]
fn the_configuration_reference_documents_every_key_and_only_those() {
    let (accepted, documented) = (accepted(), documented(REFERENCE));
    let undocumented: Vec<_> = accepted.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&accepted).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "accepted but not in docs/configuration.md: {undocumented:?}\n\
         in docs/configuration.md but not accepted: {unknown:?}"
    );
    // The probe reaches nested tables, arrays of tables and each provider kind.
    for key in ["server.tls.cert_file", "encryption.keys.key_file", "policy.callers", "providers.pass.api_key"] {
        assert!(accepted.contains(key), "{key}");
    }
}

/// Negative controls: the comparison notices a key dropped from the reference, and a key
/// documented for a kind that does not take it.
#[test]
fn the_reference_check_notices_a_missing_or_a_stray_key() {
    let without_cores: String =
        REFERENCE.lines().filter(|line| !line.starts_with("cores = ")).map(|line| format!("{line}\n")).collect();
    assert!(!documented(&without_cores).contains("server.cores"));
    assert!(documented(REFERENCE).contains("server.cores"));
    let stray = REFERENCE.replacen("kind = \"bro\"", "kind = \"bro\"\napi_key = \"…\"", 1);
    assert!(!accepted().contains("providers.bro.api_key") && documented(&stray).contains("providers.bro.api_key"));
}

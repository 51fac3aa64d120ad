//! What the deploy checks share: the repository's files, YAML read as JSON values, external
//! tools, and validating a deployment's configuration with the real binary.

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

/// How long a running renewal may still take to commit after its upstream answer
/// (`COMMIT_PATIENCE` in src/broker/rotation/outcome.rs); part of every termination grace period.
pub const COMMIT_PATIENCE: Duration = Duration::from_secs(30);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(relative: impl AsRef<Path>) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every document of a YAML file, as JSON values (so `pointer()` and `==` work on them).
pub fn yaml_file(relative: impl AsRef<Path>) -> Vec<Value> {
    let relative = relative.as_ref();
    yaml_documents(&read(relative)).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", relative.display()))
}

/// Every document of a YAML text (e.g. a tool's output).
pub fn yaml_text(text: &str) -> Vec<Value> {
    yaml_documents(text).unwrap_or_else(|e| panic!("not valid YAML: {e}\n{text}"))
}

fn yaml_documents(text: &str) -> Result<Vec<Value>, yaml_rust2::ScanError> {
    let documents = YamlLoader::load_from_str(text)?;
    Ok(documents.iter().filter(|d| !matches!(d, Yaml::Null)).map(to_json).collect())
}

fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Real(text) => text.parse::<f64>().map(Value::from).unwrap_or_else(|_| Value::String(text.clone())),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(hash) => Value::Object(hash.iter().map(|(k, v)| (key_text(k), to_json(v))).collect::<Map<_, _>>()),
        Yaml::Null => Value::Null,
        Yaml::Alias(_) | Yaml::BadValue => panic!("unresolved YAML node {yaml:?}"),
    }
}

fn key_text(key: &Yaml) -> String {
    match key {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("unsupported YAML key {other:?}"),
    }
}

/// A string field, or a panic naming what is missing.
pub fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("{pointer} missing in {value}"))
}

/// `5s`, `90s`, `1m30s` as a Duration.
pub fn duration(text: &str) -> Duration {
    humantime_serde::re::humantime::parse_duration(text).unwrap_or_else(|e| panic!("bad duration {text:?}: {e}"))
}

/// Runs a command to the end; panics with its stderr when it cannot start or fails.
pub fn run_ok(command: &mut Command) -> Output {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// The path of a tool CI installs; a missing tool fails the check, saying how to get it.
pub fn required_tool(name: &str, install: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| panic!("`{name}` is not on PATH; this check needs it: {install}"))
}

pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A fixed encryption key in a file, as a deployment mounts it.
pub fn key_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), crate::harness::TEST_KEY).unwrap();
    file
}

/// `credbroker check-config` on a deployment's configuration file and environment.
/// Keys this binary does not know yet (see [`pending_keys_unknown`]) are dropped first.
pub fn check_config(toml: &str, env: &[(String, String)]) -> Result<(), String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), without_pending_keys(toml)).unwrap();
    let output = run(Command::new(env!("CARGO_BIN_EXE_credbroker"))
        .args(["check-config", "--config"])
        .arg(file.path())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v))));
    match output.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
    }
}

/// `[server]` keys the deployment files set that other work in progress adds to the binary
/// (the drain on SIGTERM, the insecure-listener guard), with a value to probe.
const PENDING_SERVER_KEYS: [(&str, &str); 2] = [("drain_delay", "1s"), ("allow_insecure", "true")];

/// Which of the pending keys this binary rejects as unknown. Asked of the binary, so the
/// checks validate every key once it exists, and until then do not fail on its absence.
pub fn pending_keys_unknown() -> &'static [&'static str] {
    static UNKNOWN: OnceLock<Vec<&'static str>> = OnceLock::new();
    UNKNOWN
        .get_or_init(|| PENDING_SERVER_KEYS.iter().filter(|(k, v)| !known_to_binary(k, v)).map(|(k, _)| *k).collect())
}

fn known_to_binary(key: &str, value: &str) -> bool {
    let variable = format!("CREDBROKER__SERVER__{}", key.to_uppercase());
    let output =
        run(Command::new(env!("CARGO_BIN_EXE_credbroker")).arg("check-config").env_clear().env(&variable, value));
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.success() {
        true => true,
        false if stderr.contains("unknown key") && stderr.contains(key) => false,
        false => panic!("probing server.{key} with {variable}={value}: unexpected failure:\n{stderr}"),
    }
}

/// The configuration without the lines setting keys this binary does not know yet.
pub fn without_pending_keys(toml: &str) -> String {
    let unknown = pending_keys_unknown();
    let kept = toml.lines().filter(|line| {
        let key = line.split('=').next().unwrap_or("").trim();
        !(line.contains('=') && unknown.contains(&key))
    });
    kept.map(|line| format!("{line}\n")).collect()
}

/// The configuration file as figment reads it, for looking up single keys.
pub fn toml_value(toml: &str, key: &str) -> Option<String> {
    use figment::providers::{Format, Toml};
    let figment = figment::Figment::from(Toml::string(toml));
    let value: figment::value::Value = figment.find_value(key).ok()?;
    Some(value.into_string().unwrap_or_else(|| panic!("{key} is not a string")))
}

/// How long a replica may take from SIGTERM to exit: the drain delay, the grace for in-flight
/// RPCs, then a running renewal's upstream timeout and commit patience.
pub fn shutdown_budget(toml: &str) -> Duration {
    let drain =
        duration(&toml_value(toml, "server.drain_delay").expect("set server.drain_delay explicitly in deployments"));
    let grace = toml_value(toml, "server.shutdown_grace").map_or(Duration::from_secs(30), |t| duration(&t));
    let upstream = toml_value(toml, "upstream.request_timeout").map_or(Duration::from_secs(30), |t| duration(&t));
    drain + grace + upstream + COMMIT_PATIENCE
}

//! Reading secrets: from an environment variable, a file, or standard input — never from
//! argv, where shell history and `ps` would keep them. Errors name the source, never the
//! content.

use super::args::SecretFrom;
use super::output::Failure;
use secrecy::{ExposeSecret, SecretString};
use std::io::{IsTerminal, Read};
use std::path::Path;
use zeroize::Zeroizing;

/// The secret from `from`: the variable, the file, else standard input.
pub fn read(from: &SecretFrom) -> Result<SecretString, Failure> {
    match (&from.secret_env, &from.secret_file) {
        (Some(var), _) => from_env(var),
        (None, Some(path)) => from_file(path),
        (None, None) => from_stdin(),
    }
}

/// The secret's lines: `count` required, the rest optional, each non-empty when present.
pub fn lines(secret: &SecretString, required: usize) -> Result<Vec<SecretString>, Failure> {
    let lines: Vec<SecretString> =
        secret.expose_secret().lines().filter(|l| !l.trim().is_empty()).map(|l| SecretString::from(l.trim())).collect();
    if lines.len() < required {
        return Err(Failure::Usage(format!("the secret input needs {required} line(s), it has {}", lines.len())));
    }
    Ok(lines)
}

pub fn from_env(var: &str) -> Result<SecretString, Failure> {
    let value = std::env::var(var).map_err(|_| Failure::Usage(format!("environment variable {var} is not set")))?;
    non_empty(Zeroizing::new(value), &format!("environment variable {var}"))
}

pub fn from_file(path: &Path) -> Result<SecretString, Failure> {
    let value = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read the secret file {}: {}", path.display(), e.kind())))?;
    non_empty(Zeroizing::new(value), &format!("secret file {}", path.display()))
}

fn from_stdin() -> Result<SecretString, Failure> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!(
            "credbroker: reading the secret from standard input (it echoes; end with Ctrl-D). \
             Prefer a pipe, --secret-file or --secret-env."
        );
    }
    let mut value = Zeroizing::new(String::new());
    stdin
        .read_to_string(&mut value)
        .map_err(|e| Failure::Usage(format!("cannot read standard input: {}", e.kind())))?;
    non_empty(value, "standard input")
}

// Zeroizing: the copy read in is wiped too, not only the SecretString made from it.
fn non_empty(value: Zeroizing<String>, source: &str) -> Result<SecretString, Failure> {
    let trimmed = value.trim_end_matches(['\r', '\n']);
    if trimmed.trim().is_empty() {
        return Err(Failure::Usage(format!("no secret in {source}")));
    }
    Ok(SecretString::from(trimmed))
}

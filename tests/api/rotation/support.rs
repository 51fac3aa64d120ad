//! The configurations of each step of `docs/key-rotation.md`, the fingerprint pin computed by
//! the documented shell line, and helpers to drive Rewrap and look into Redis.

use crate::harness::{Broker, TEST_KEY, TestBroker};
use credbroker::config::DEFAULT_TOML;
use credbroker::grpc::pb::{self, credential_admin_client::CredentialAdminClient};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tonic::transport::Channel;

/// The key being rotated in (32 bytes, base64) and its id.
pub const NEW_KEY: &str = "Q2xhc3NpYy1yb3RhdGlvbi1rZXktMjAyNi0xMiEhISE=";
pub const NEW_ID: &str = "2026-12";
/// A BRO code as the provider issues them: 64 hex characters.
pub fn bro_code(n: usize) -> String {
    format!("{n:064x}")
}

/// A configuration of the procedure (`TEST_KEY` is the old key, id `primary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Before: one key, fingerprints derived from it.
    Old,
    /// 0: the fingerprint key pinned to what `Old` derives.
    Pinned,
    /// 1: both keys, the old one sealing.
    BothOldActive,
    /// 2: both keys, the new one sealing.
    BothNewActive,
    /// 4: only the new key.
    NewOnly,
    /// Refused: two keys and no fingerprint key.
    TwoKeysUnpinned,
}

impl Step {
    /// The `[encryption]` part of the configuration.
    pub fn encryption(self) -> String {
        let old = format!("[[encryption.keys]]\nid = \"primary\"\nkey = \"{TEST_KEY}\"\n");
        let new = format!("[[encryption.keys]]\nid = \"{NEW_ID}\"\nkey = \"{NEW_KEY}\"\n");
        let pin = format!("fingerprint_key = \"{}\"\n", pin());
        match self {
            Step::Old => format!("[encryption]\nkey = \"{TEST_KEY}\"\n"),
            Step::Pinned => format!("[encryption]\nkey = \"{TEST_KEY}\"\n{pin}"),
            Step::BothOldActive => format!("{old}{new}[encryption]\nactive_key = \"primary\"\n{pin}"),
            Step::BothNewActive => format!("{old}{new}[encryption]\nactive_key = \"{NEW_ID}\"\n{pin}"),
            Step::NewOnly => format!("{new}[encryption]\n{pin}"),
            Step::TwoKeysUnpinned => format!("{old}{new}[encryption]\nactive_key = \"{NEW_ID}\"\n"),
        }
    }

    /// The embedded default's providers with this step's encryption, as a file in `dir`.
    pub fn config_file(self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{self:?}.toml"));
        std::fs::write(&path, format!("{DEFAULT_TOML}\n{}", self.encryption())).unwrap();
        path
    }
}

/// The fingerprint key that keeps `TEST_KEY`'s fingerprints: the output of the shell line in
/// `docs/key-rotation.md`, run as documented on a key file holding `TEST_KEY`.
pub fn pin() -> &'static str {
    static PIN: OnceLock<String> = OnceLock::new();
    PIN.get_or_init(|| {
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/key-rotation.md")).unwrap();
        let line = docs.lines().find(|l| l.contains("openssl dgst -sha256")).expect("the documented pin command");
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("credbroker-key");
        std::fs::write(&key_file, format!("{TEST_KEY}\n")).unwrap();
        let command = line.replace("/run/secrets/credbroker-key", key_file.to_str().unwrap());
        let output = std::process::Command::new("sh").arg("-c").arg(&command).output().unwrap();
        assert!(output.status.success(), "{command}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    })
}

/// An in-process replica of `step` on a shared Redis and key prefix (its keys from the
/// step's configuration file).
pub async fn replica(redis_url: &str, prefix: &str, step: Step) -> TestBroker {
    let dir = tempfile::tempdir().unwrap();
    Broker::new()
        .config_file(step.config_file(dir.path()))
        .env("CREDBROKER__STORE__REDIS_URL", redis_url)
        .env("CREDBROKER__STORE__KEY_PREFIX", prefix)
        .start()
        .await
}

pub fn request(max_records: u32, after: Option<pb::RewrapCursor>) -> pb::RewrapRequest {
    pb::RewrapRequest { max_records, after, records_per_second: 1000, ..Default::default() }
}

pub fn cursor(provider: &str, subject: &str) -> pb::RewrapCursor {
    pb::RewrapCursor { provider: provider.into(), subject: subject.into() }
}

/// A whole run: calls of `per_call` records until the walk is complete, counts summed.
pub async fn run(admin: &CredentialAdminClient<Channel>, per_call: u32, expect: &str) -> pb::RewrapResponse {
    run_paced(admin, per_call, 1000, expect).await
}

/// [`run`], re-sealing at most `per_second` records a second.
pub async fn run_paced(
    admin: &CredentialAdminClient<Channel>,
    per_call: u32,
    per_second: u32,
    expect: &str,
) -> pb::RewrapResponse {
    let mut total = pb::RewrapResponse::default();
    let mut after = None;
    loop {
        let call = pb::RewrapRequest {
            expect_active_key: expect.into(),
            records_per_second: per_second,
            ..request(per_call, after)
        };
        let answer = admin.clone().rewrap(call).await.expect("a rewrap call").into_inner();
        assert_eq!(answer.seen, answer.rewrapped + answer.already_current + answer.skipped + answer.unreadable);
        total.seen += answer.seen;
        total.rewrapped += answer.rewrapped;
        total.already_current += answer.already_current;
        total.skipped += answer.skipped;
        total.unreadable += answer.unreadable;
        total.problems.extend(answer.problems);
        total.active_key = answer.active_key;
        match answer.next {
            Some(next) => after = Some(next),
            None => return total,
        }
    }
}

/// The id of the key each stored record is sealed with, by Redis key.
pub async fn sealed_with(redis_url: &str, prefix: &str) -> Vec<(String, String)> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*:cred")).query_async(&mut conn).await.unwrap();
    let mut out = Vec::new();
    for key in keys {
        let data: Option<String> = redis::cmd("HGET").arg(&key).arg("data").query_async(&mut conn).await.unwrap();
        let Some(data) = data else { continue }; // a tombstone
        let record: serde_json::Value = serde_json::from_str(&data).unwrap();
        let sealed = record["sealed"].as_str().unwrap();
        out.push((key, sealed.split(':').nth(1).unwrap().to_owned()));
    }
    out.sort();
    out
}

//! A chaos run's report: the fake's ledger (reuses, refreshes, the newest refresh token), the
//! refresh token Redis holds (decrypted with the fleet's key), the transitions and any secret
//! in the replicas' logs.

use super::scenario::SUBJECT;
use crate::harness::{CLIENT_SECRET, Fleet, TEST_KEY};
use credbroker::crypto::{KeyMaterial, Keyring};
use credbroker::domain::{CredentialId, ProviderName, SecretMaterial, Subject, Vault};
use credbroker::grpc::pb::CredentialState;
use credbroker::store::StoredCredential;
use fake_upstream::{Operation, Outcome};
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Report {
    pub reuses: usize,
    pub lost_silently: usize,
    pub refreshes: usize,
    pub callers: usize,
    pub served: usize,
    pub all_served_after: Option<Duration>,
    pub final_state: CredentialState,
    pub versions_grew: bool,
    pub secrets_in_logs: usize,
    /// Every `transition` the replicas logged (`fence`, `probe_alive`, …).
    pub transitions: BTreeSet<String>,
    /// `Term`: whether the signalled replica exited with status 0 (within 30 s).
    pub clean_exit: Option<bool>,
    /// Whether a live replica (not the killed or terminated one) served the credential at
    /// the end.
    pub served_at_end: bool,
}

/// How a run ended, as the callers and the settling saw it.
pub(super) struct Ended {
    pub callers: usize,
    pub served: usize,
    pub last_served: Instant,
    pub final_state: CredentialState,
    pub versions_grew: bool,
    pub clean_exit: Option<bool>,
    pub served_at_end: bool,
}

/// The run's report: the ledger, the stored refresh token and the logs against the invariants.
pub(super) fn report(
    fleet: &Fleet,
    first_refresh: &str,
    stored: Option<String>,
    logs: &str,
    started: Instant,
    ended: Ended,
) -> Report {
    let Ended { callers, served, last_served, final_state, versions_grew, clean_exit, served_at_end } = ended;
    let newest = newest_refresh_token(fleet, first_refresh);
    let flagged = matches!(final_state, CredentialState::Indeterminate | CredentialState::ReauthRequired)
        && logs.contains("\"alert\"");
    let holds_newest = final_state == CredentialState::Active && stored.as_deref() == Some(newest.as_str());
    Report {
        reuses: fleet.fake.ledger().violations().len(),
        lost_silently: usize::from(!holds_newest && !flagged),
        refreshes: fleet.fake.ledger().count(|e| e.operation == Operation::RefreshTokenGrant),
        callers,
        served,
        all_served_after: (served == callers).then(|| last_served.duration_since(started)),
        final_state,
        versions_grew,
        secrets_in_logs: secrets_in(fleet, logs),
        transitions: transitions(logs),
        clean_exit,
        served_at_end,
    }
}

/// The values of every `"transition":"…"` field in the logs.
pub(super) fn transitions(logs: &str) -> BTreeSet<String> {
    const FIELD: &str = "\"transition\":\"";
    logs.match_indices(FIELD)
        .filter_map(|(at, _)| {
            let rest = &logs[at + FIELD.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect()
}

/// Follows the ledger from the first refresh token to the newest one the provider issued.
pub(super) fn newest_refresh_token(fleet: &Fleet, first: &str) -> String {
    let entries = fleet.fake.ledger().entries();
    let mut current = first.to_owned();
    while let Some(next) = entries.iter().find(|e| {
        e.operation == Operation::RefreshTokenGrant
            && e.outcome == Outcome::Issued
            && e.presented_token.as_deref() == Some(&current)
    }) {
        current = next.issued_token.clone().expect("a refresh issues a refresh token");
    }
    current
}

/// The refresh token the store holds now, decrypted with the fleet's key.
pub(super) async fn stored_refresh_token(fleet: &Fleet) -> Option<String> {
    stored_refresh_token_at(&fleet.redis.url()).await
}

/// The refresh token the Redis at `url` holds for the scenario's credential.
pub(super) async fn stored_refresh_token_at(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*:{passolution:chaos}:cred").query_async(&mut conn).await.ok()?;
    let (version, data): (u64, String) =
        redis::cmd("HMGET").arg(keys.first()?).arg("version").arg("data").query_async(&mut conn).await.ok()?;
    let record: StoredCredential = serde_json::from_str(&data).ok()?;
    let key = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, TEST_KEY).ok()?;
    let keyring =
        Keyring::new(vec![KeyMaterial { id: "primary".into(), bytes: zeroize::Zeroizing::new(key) }], "primary")
            .ok()?;
    let id = CredentialId::new(ProviderName::parse("p", "passolution").ok()?, Subject::parse("s", SUBJECT).ok()?);
    let vault: Vault = keyring.open(&id, version, &record.sealed).ok()?;
    match vault.material {
        SecretMaterial::OAuthTokens { refresh_token, .. } => refresh_token.map(|t| t.expose().to_owned()),
        _ => None,
    }
}

/// How many secrets (the client secret, any token the fake issued) appear in the logs.
pub(super) fn secrets_in(fleet: &Fleet, logs: &str) -> usize {
    let mut secrets: HashSet<String> =
        fleet.fake.ledger().entries().into_iter().flat_map(|e| [e.presented_token, e.issued_token]).flatten().collect();
    secrets.insert(CLIENT_SECRET.to_owned());
    secrets.iter().filter(|s| s.len() >= 8 && logs.contains(s.as_str())).count()
}

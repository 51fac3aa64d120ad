//! What the refresh journal costs in Redis, measured with `MEMORY USAGE` through the real
//! scripts: one credential rotated over and over (reserve + commit, as the broker does), with a
//! record the size of a real Passolution one. Keys per credential stay two (record + journal)
//! however long it rotates; the journal's bytes grow with the attempts inside the horizon, and
//! nothing else. The steady state of a fleet is computed from these figures (docs/redis.md,
//! docs/refresh-safety.md); the checkpoints are appended to `target/tmp/journal-memory.txt`.

use crate::harness::{TEST_KEY, TestRedis, random_prefix};
use base64::Engine;
use credbroker::crypto::{KeyMaterial, Keyring};
use credbroker::domain::{CredentialId, ProviderName, Secret, SecretMaterial, Session, Subject, Vault};
use credbroker::store::{Attempt, CredentialStore, Reservation, StoredCredential};
use std::io::Write;
use std::time::Duration;

const HORIZON: Duration = Duration::from_secs(400 * 24 * 3600);
/// Attempts in the journal at each checkpoint: a fresh credential, a day, a month and 100 days
/// of hourly rotation. From a few hundred on, the cost per attempt is constant (a sorted set
/// past its compact encoding), so longer horizons are computed from it (9 602 measured once:
/// 139.1 bytes per attempt, as at 2 400).
const CHECKPOINTS: [usize; 4] = [1, 24, 720, 2_400];

/// A record as the broker writes it for a Passolution credential: a Passport-sized access JWT
/// and refresh token, sealed.
fn record(keyring: &Keyring, id: &CredentialId, version: u64, round: usize) -> StoredCredential {
    let token = |len: usize| Secret::new(format!("{round:08}{}", "x".repeat(len - 8)));
    let vault = Vault {
        material: SecretMaterial::OAuthTokens {
            refresh_token: Some(token(700)),
            access_token: None,
            access_expires_at: None,
        },
        session: Some(Session {
            token: token(900),
            expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            obtained_at: time::OffsetDateTime::now_utc(),
            renew_at: Some(time::OffsetDateTime::now_utc() + time::Duration::minutes(45)),
            lifetime_known: true,
        }),
    };
    let mut stored = StoredCredential::active(keyring.seal(id, version, &vault));
    stored.access_expires_at = vault.session.as_ref().map(|s| s.expires_at);
    stored
}

async fn memory_usage(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0).query_async(conn).await.unwrap()
}

#[tokio::test]
async fn the_journal_is_two_keys_per_credential_and_its_bytes_are_measured() {
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let store = redis.store(&prefix);
    let mut conn = redis.connection().await;
    let key = base64::engine::general_purpose::STANDARD.decode(TEST_KEY).unwrap();
    let keyring =
        Keyring::new(vec![KeyMaterial { id: "primary".into(), bytes: zeroize::Zeroizing::new(key) }], "primary")
            .unwrap();
    let id = CredentialId::new(
        ProviderName::parse("p", "passolution").unwrap(),
        Subject::parse("s", "tenant-0001").unwrap(),
    );
    let mut version = store.put(&id, 0, &record(&keyring, &id, 1, 0)).await.unwrap().unwrap();
    let (cred_key, journal_key) =
        (format!("{prefix}:{{passolution:tenant-0001}}:cred"), format!("{prefix}:{{passolution:tenant-0001}}:journal"));
    let mut lines = Vec::new();
    for round in 1..=*CHECKPOINTS.last().unwrap() {
        let attempt = format!("{:032x}", round);
        let reserving = record(&keyring, &id, version + 1, round);
        let reservation = store.reserve_refresh(
            &id,
            version,
            Attempt { id: &attempt, owner: "replica-nonce", horizon: HORIZON },
            &reserving,
        );
        let Reservation::Reserved { version: reserved } = reservation.await.unwrap() else { panic!("round {round}") };
        version =
            store.compare_and_swap(&id, reserved, &record(&keyring, &id, reserved + 1, round)).await.unwrap().unwrap();
        if !CHECKPOINTS.contains(&round) {
            continue;
        }
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{prefix}:{{passolution:*")).query_async(&mut conn).await.unwrap();
        assert_eq!(keys.len(), 2, "a record and a journal, whatever the rotations: {keys:?}");
        let (record_bytes, journal_bytes) =
            (memory_usage(&mut conn, &cred_key).await, memory_usage(&mut conn, &journal_key).await);
        assert_eq!(store.journal(&id).await.unwrap().len(), round, "every attempt within the horizon is kept");
        lines.push(format!(
            "journal memory: attempts={round} keys_per_credential=2 record_bytes={record_bytes} journal_bytes={journal_bytes} \
             journal_bytes_per_attempt={:.1}\n",
            journal_bytes as f64 / round as f64
        ));
    }
    // For comparison: the unbounded journal's one key per attempt, as it was written before.
    let legacy = format!("{prefix}:{{passolution:tenant-0001}}:attempt:{:032x}", 0);
    let _: () = redis::cmd("SET").arg(&legacy).arg("replica-nonce").query_async(&mut conn).await.unwrap();
    lines.push(format!("journal memory: legacy key per attempt bytes={}\n", memory_usage(&mut conn, &legacy).await));
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("journal-memory.txt");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for line in &lines {
        print!("{line}");
        file.write_all(line.as_bytes()).unwrap();
    }
    // One sorted-set entry per attempt (a 32-hex id and a score): far below a key per attempt.
    let last = &lines[lines.len() - 2];
    let per_attempt: f64 = last.rsplit('=').next().unwrap().trim().parse().unwrap();
    assert!(per_attempt < 150.0, "{last}");
}

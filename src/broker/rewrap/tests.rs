//! The per-record rules of rewrap, with the races made deterministic: the test writes between
//! the read a rewrap works from and its compare-and-swap. (The walk, cursors and batches are
//! tested through gRPC on Redis in `tests/api/rewrap.rs`.)

use super::*;
use crate::broker::Broker;
use crate::config::Settings;
use crate::crypto::{KeyMaterial, Keyring};
use crate::domain::{Secret, SecretMaterial, Subject, Vault};
use crate::startup::Application;
use time::OffsetDateTime;
use zeroize::Zeroizing;

const OLD: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="; // 32 × 0x01
const NEW: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="; // 32 × 0x02
const OTHER: &str = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="; // 32 × 0x03

/// A broker holding keys `old` and `new`, sealing with `new`, on the in-memory store.
async fn broker() -> Arc<Broker> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credbroker.toml");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [[encryption.keys]]\nid = \"old\"\nkey = \"{OLD}\"\n[[encryption.keys]]\nid = \"new\"\nkey = \"{NEW}\"\n\
         [encryption]\nactive_key = \"new\"\nfingerprint_key = \"{OTHER}\"\n\
         [[providers]]\nname = \"bro\"\nkind = \"bro\"\n"
    );
    std::fs::write(&path, config).unwrap();
    let settings = Settings::load(Some(&path), []).unwrap();
    Application::build(settings).await.unwrap().broker()
}

fn ring(id: &str, byte: u8) -> Keyring {
    Keyring::new(vec![KeyMaterial { id: id.into(), bytes: Zeroizing::new(vec![byte; 32]) }], id).unwrap()
}

fn id(subject: &str) -> CredentialId {
    CredentialId::new(ProviderName::parse("p", "bro").unwrap(), Subject::parse("s", subject).unwrap())
}

/// A record to store: its metadata, and a BRO code that `ring` seals when it is stored (for
/// the version the store then gives it, as every write does).
struct Draft<'a> {
    ring: Keyring,
    code: &'a str,
    meta: StoredCredential,
}

fn draft(ring: Keyring, code: &str) -> Draft<'_> {
    Draft {
        ring,
        code,
        meta: StoredCredential { updated_at: OffsetDateTime::UNIX_EPOCH, ..StoredCredential::active(String::new()) },
    }
}

/// Stores `draft` as the credential's next version; returns it as the store now has it.
async fn stored(broker: &Broker, id: &CredentialId, draft: Draft<'_>) -> StoredCredential {
    let expected = broker.store().version(id).await.unwrap();
    let material = SecretMaterial::BroToken { username: "org|1".into(), code: Secret::new(draft.code) };
    let sealed = draft.ring.seal(id, expected + 1, &Vault { material, session: None });
    let record = StoredCredential { sealed, ..draft.meta };
    assert_eq!(broker.store().put(id, expected, &record).await.unwrap(), Some(expected + 1));
    broker.store().get(id).await.unwrap().unwrap()
}

fn code(broker: &Broker, id: &CredentialId, record: &StoredCredential) -> String {
    let vault: Vault = broker.records().keyring().open(id, record.version, &record.sealed).unwrap();
    let SecretMaterial::BroToken { code, .. } = vault.material else { panic!("a BRO token") };
    code.expose().to_owned()
}

#[tokio::test]
async fn a_record_written_after_the_read_is_resealed_as_written_never_overwritten() {
    let broker = broker().await;
    let id = id("raced");
    let read = stored(&broker, &id, draft(ring("old", 1), "first")).await;
    // Another replica (still sealing with `old`) replaces the secret after rewrap read it.
    let replaced = stored(&broker, &id, draft(ring("old", 1), "second")).await;

    assert_eq!(reseal(broker.records(), &id, read).await.unwrap(), Outcome::Rewrapped);
    let now = broker.store().get(&id).await.unwrap().unwrap();
    assert_eq!(now.version, replaced.version + 1, "one write, on top of the newer record");
    assert!(broker.records().keyring().is_current(&now.sealed));
    assert_eq!(code(&broker, &id, &now), "second", "the newer secret survives");
}

#[tokio::test]
async fn a_record_already_resealed_by_a_writer_is_left_as_it_is() {
    let broker = broker().await;
    let id = id("written");
    let read = stored(&broker, &id, draft(ring("old", 1), "first")).await;
    let written = stored(&broker, &id, draft(ring("new", 2), "second")).await;

    assert_eq!(reseal(broker.records(), &id, read).await.unwrap(), Outcome::AlreadyCurrent);
    assert_eq!(broker.store().get(&id).await.unwrap().unwrap(), written, "untouched");
}

#[tokio::test]
async fn records_mid_refresh_and_unreadable_ones_are_reported_and_untouched() {
    let broker = broker().await;
    let (busy, foreign) = (id("busy"), id("foreign"));
    let mut refreshing = draft(ring("old", 1), "in-flight");
    refreshing.meta.state = CredentialState::Refreshing;
    let refreshing = stored(&broker, &busy, refreshing).await;
    let unknown_key = stored(&broker, &foreign, draft(ring("gone", 3), "x")).await;

    let outcome = reseal(broker.records(), &busy, refreshing.clone()).await.unwrap();
    assert!(matches!(outcome, Outcome::Problem(ProblemKind::MidRefresh, _)), "{outcome:?}");
    let outcome = reseal(broker.records(), &foreign, unknown_key.clone()).await.unwrap();
    let Outcome::Problem(ProblemKind::Unreadable, detail) = outcome else { panic!("{outcome:?}") };
    assert!(detail.contains("\"gone\"") && detail.contains("does not have"), "names the missing key: {detail}");
    assert_eq!(broker.store().get(&busy).await.unwrap().unwrap(), refreshing);
    assert_eq!(broker.store().get(&foreign).await.unwrap().unwrap(), unknown_key);
}

#[tokio::test]
async fn only_the_seal_changes_state_detail_and_times_stay() {
    let broker = broker().await;
    let id = id("flagged");
    let mut flagged = draft(ring("old", 1), "kept");
    flagged.meta.state = CredentialState::Indeterminate;
    flagged.meta.reason = Some(crate::domain::Reason::NoAnswer { cause: "timed out".into() });
    flagged.meta.probe_at = Some(OffsetDateTime::UNIX_EPOCH + time::Duration::days(19_999));
    flagged.meta.access_expires_at = Some(OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000));
    let read = stored(&broker, &id, flagged).await;

    assert_eq!(reseal(broker.records(), &id, read.clone()).await.unwrap(), Outcome::Rewrapped);
    let now = broker.store().get(&id).await.unwrap().unwrap();
    let expected = StoredCredential { version: read.version + 1, sealed: now.sealed.clone(), ..read.clone() };
    assert_eq!(now, expected);
    assert_ne!(now.sealed, read.sealed);
    assert_eq!(code(&broker, &id, &now), "kept");
}

#[tokio::test]
async fn a_record_deleted_after_the_read_is_not_brought_back() {
    let broker = broker().await;
    let id = id("deleted");
    let read = stored(&broker, &id, draft(ring("old", 1), "first")).await;
    broker.store().delete(&id).await.unwrap();

    let outcome = reseal(broker.records(), &id, read).await.unwrap();
    assert!(matches!(outcome, Outcome::Problem(ProblemKind::Deleted, _)), "{outcome:?}");
    assert_eq!(broker.store().get(&id).await.unwrap(), None);
}

#[test]
fn pace_spaces_reseals_and_an_idle_stretch_earns_no_burst() {
    let start = Instant::now();
    let mut pace = Pace { gap: Duration::from_millis(200), next: start };
    let slots: Vec<_> = (0..4).map(|_| pace.book(start) - start).collect();
    assert_eq!(slots, [0, 200, 400, 600].map(Duration::from_millis));
    // Ten seconds without re-seals, then three at once: still one per gap.
    let later = start + Duration::from_secs(10);
    let slots: Vec<_> = (0..3).map(|_| pace.book(later) - later).collect();
    assert_eq!(slots, [0, 200, 400].map(Duration::from_millis));
    assert_eq!(Pace::new(5).gap, Duration::from_millis(200));
    assert_eq!(Pace::new(0).gap, Duration::from_secs(1), "zero is treated as one per second");
}

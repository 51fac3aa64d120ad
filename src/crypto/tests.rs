use super::*;
use crate::domain::{ProviderName, Secret, SecretMaterial, Subject};

fn id(provider: &str, subject: &str) -> CredentialId {
    CredentialId::new(ProviderName::parse("p", provider).unwrap(), Subject::parse("s", subject).unwrap())
}

fn key(id: &str, byte: u8) -> KeyMaterial {
    KeyMaterial { id: id.into(), bytes: Zeroizing::new(vec![byte; 32]) }
}

fn material() -> SecretMaterial {
    SecretMaterial::BroToken { username: "org|1".into(), code: Secret::new("supersecretcode") }
}

#[test]
fn round_trip_and_no_plaintext_in_ciphertext() {
    let ring = Keyring::new(vec![key("k1", 1)], "k1").unwrap();
    let sealed = ring.seal(&id("bro", "alice"), 3, &material());
    assert!(sealed.starts_with("v2:k1:"));
    assert!(!sealed.contains("supersecretcode") && !sealed.contains("org|1"));
    assert_eq!(ring.open::<SecretMaterial>(&id("bro", "alice"), 3, &sealed).unwrap(), material());
}

#[test]
fn moved_ciphertext_does_not_open() {
    let ring = Keyring::new(vec![key("k1", 1)], "k1").unwrap();
    let sealed = ring.seal(&id("bro", "alice"), 3, &material());
    assert!(matches!(ring.open::<SecretMaterial>(&id("bro", "bob"), 3, &sealed), Err(CryptoError::DoesNotOpen)));
    assert!(matches!(ring.open::<SecretMaterial>(&id("pass", "alice"), 3, &sealed), Err(CryptoError::DoesNotOpen)));
}

#[test]
fn tampering_and_garbage_are_refused() {
    let ring = Keyring::new(vec![key("k1", 1)], "k1").unwrap();
    let mut sealed = ring.seal(&id("bro", "alice"), 3, &material()).into_bytes();
    let last = sealed.len() - 2;
    sealed[last] = if sealed[last] == b'A' { b'B' } else { b'A' };
    let sealed = String::from_utf8(sealed).unwrap();
    assert!(ring.open::<SecretMaterial>(&id("bro", "alice"), 3, &sealed).is_err());
    for junk in ["", "v1", "v2:k1", "v2:k1:!!!", "v3:k1:AAAA", "v2:k1:AAAA", "v1:k1:AAAA"] {
        assert!(ring.open::<SecretMaterial>(&id("bro", "alice"), 3, junk).is_err(), "{junk}");
    }
}

#[test]
fn rotation_old_key_opens_new_key_seals() {
    let old = Keyring::new(vec![key("k1", 1)], "k1").unwrap();
    let sealed_old = old.seal(&id("bro", "alice"), 3, &material());
    let rotated = Keyring::with_fingerprint_key(vec![key("k1", 1), key("k2", 2)], "k2", Some(pin())).unwrap();
    assert_eq!(rotated.open::<SecretMaterial>(&id("bro", "alice"), 3, &sealed_old).unwrap(), material());
    assert!(rotated.seal(&id("bro", "alice"), 3, &material()).starts_with("v2:k2:"));
    let gone = Keyring::new(vec![key("k2", 2)], "k2").unwrap();
    assert!(matches!(
        gone.open::<SecretMaterial>(&id("bro", "alice"), 3, &sealed_old),
        Err(CryptoError::UnknownKey(_))
    ));
}

#[test]
fn fingerprints_are_stable_short_and_keyed() {
    let a = Keyring::new(vec![key("k1", 1)], "k1").unwrap();
    let b = Keyring::new(vec![key("k1", 9)], "k1").unwrap();
    let fp = a.fingerprint(["Bearer abc"]);
    assert_eq!(fp.len(), 16);
    assert_eq!(fp, a.fingerprint(["Bearer abc"]));
    assert_ne!(fp, a.fingerprint(["Bearer abd"]));
    assert_ne!(fp, b.fingerprint(["Bearer abc"]));
    assert_ne!(a.fingerprint(["ab", "c"]), a.fingerprint(["a", "bc"]));
}

/// A fingerprint key pinned to what a keyring holding only `k1` (byte 1) derives: the value
/// `docs/key-rotation.md`'s shell line computes from that key.
fn pin() -> Zeroizing<Vec<u8>> {
    let derived = Sha256::new().chain_update(b"credbroker fingerprint v1\0").chain_update([1u8; 32]).finalize();
    Zeroizing::new(derived.to_vec())
}

#[test]
fn fingerprints_stay_the_same_through_a_whole_rotation() {
    let steps = [
        Keyring::new(vec![key("k1", 1)], "k1").unwrap(),
        Keyring::with_fingerprint_key(vec![key("k1", 1)], "k1", Some(pin())).unwrap(),
        Keyring::with_fingerprint_key(vec![key("k1", 1), key("k2", 2)], "k1", Some(pin())).unwrap(),
        Keyring::with_fingerprint_key(vec![key("k1", 1), key("k2", 2)], "k2", Some(pin())).unwrap(),
        Keyring::with_fingerprint_key(vec![key("k2", 2)], "k2", Some(pin())).unwrap(),
    ];
    let first = steps[0].fingerprint(["Bearer abc"]);
    for (step, ring) in steps.iter().enumerate() {
        assert_eq!(ring.fingerprint(["Bearer abc"]), first, "step {step}");
    }
    // Without the pin, the last step (only k2 left) would key fingerprints differently.
    assert_ne!(Keyring::new(vec![key("k2", 2)], "k2").unwrap().fingerprint(["Bearer abc"]), first);
}

#[test]
fn several_keys_need_their_own_fingerprint_key() {
    let error = Keyring::new(vec![key("k1", 1), key("k2", 2)], "k2").unwrap_err();
    assert!(error.contains("fingerprint key"), "{error}");
    let short = Keyring::with_fingerprint_key(vec![key("k1", 1)], "k1", Some(Zeroizing::new(vec![0; 16])));
    assert!(short.unwrap_err().contains("32 bytes"));
}

#[test]
fn current_means_this_format_and_the_active_key() {
    let old = Keyring::new(vec![key("k1", 1)], "k1").unwrap();
    let both = Keyring::with_fingerprint_key(vec![key("k1", 1), key("k2", 2)], "k2", Some(pin())).unwrap();
    let sealed_old = old.seal(&id("bro", "alice"), 3, &material());
    let sealed_new = both.seal(&id("bro", "alice"), 3, &material());
    assert!(old.is_current(&sealed_old) && !both.is_current(&sealed_old));
    assert!(both.is_current(&sealed_new) && !old.is_current(&sealed_new));
    // Only the exact id counts: `k2x` is not `k2`, and other formats are never current.
    assert!(
        !both.is_current("v1:k2x:AAAA")
            && !both.is_current("v0:k2:AAAA")
            && !both.is_current("v1:k2:AAAA")
            && !both.is_current("k2")
    );
    assert_eq!(both.active_id(), "k2");
}

#[test]
fn a_record_written_back_over_a_newer_version_does_not_open() {
    let ring = Keyring::new(vec![key("k1", 1)], "k1").unwrap();
    let sealed_at_3 = ring.seal(&id("bro", "alice"), 3, &material());
    assert!(matches!(ring.open::<SecretMaterial>(&id("bro", "alice"), 5, &sealed_at_3), Err(CryptoError::DoesNotOpen)));
    assert!(ring.open::<SecretMaterial>(&id("bro", "alice"), 2, &sealed_at_3).is_err(), "nor an older one");
}

#[test]
fn v1_records_still_open_whatever_their_version() {
    let ring = Keyring::new(vec![key("k1", 1)], "k1").unwrap();
    let legacy = super::seal_legacy(&ring, &id("bro", "alice"), &material());
    assert!(legacy.starts_with("v1:k1:"));
    for version in [1, 7] {
        assert_eq!(ring.open::<SecretMaterial>(&id("bro", "alice"), version, &legacy).unwrap(), material());
    }
    assert!(ring.open::<SecretMaterial>(&id("bro", "bob"), 1, &legacy).is_err(), "still bound to the credential");
}

#[test]
fn transient_values_open_only_for_their_purpose_and_binding() {
    let ring = Keyring::new(vec![key("k1", 1)], "k1").unwrap();
    let sealed = ring.seal_transient("pkce", "state-hash-1", &Secret::new("the-verifier"));
    assert!(sealed.starts_with("t1:k1:") && !sealed.contains("the-verifier"), "{sealed}");
    let opened: Secret = ring.open_transient("pkce", "state-hash-1", &sealed).unwrap();
    assert_eq!(opened.expose(), "the-verifier");
    let moved = ring.open_transient::<Secret>("pkce", "state-hash-2", &sealed);
    assert!(matches!(moved, Err(CryptoError::DoesNotOpen)));
    assert!(matches!(ring.open_transient::<Secret>("other", "state-hash-1", &sealed), Err(CryptoError::DoesNotOpen)));
    // Neither kind opens as the other.
    assert!(matches!(ring.open::<Secret>(&id("bro", "a"), 1, &sealed), Err(CryptoError::Malformed)));
    let record = ring.seal(&id("bro", "a"), 1, &Secret::new("x"));
    assert!(matches!(ring.open_transient::<Secret>("pkce", "s", &record), Err(CryptoError::Malformed)));
}

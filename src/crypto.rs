//! Sealing secrets before they reach a store, and fingerprints of what is handed out.
//!
//! Every secret is encrypted with AES-256-GCM under the active key. The associated data binds
//! the ciphertext to its credential (provider + subject), its key id and the record version it
//! was sealed for, so a ciphertext copied to another credential's key fails to open instead of
//! serving someone else's secret, and an older record written back over a newer one (a
//! rollback by someone with Redis access) fails to open instead of serving a revoked token.
//! The key id travels with the ciphertext, so old keys can keep opening records while a new
//! one seals; `is_current` tells which records still need re-sealing (`broker::rewrap`).
//!
//! Formats: `v2:<key id>:<blob>` binds the version; `v1:` (written before versions were bound)
//! is still opened, without the version, until the record is next written (every write seals
//! `v2` for the version it creates) or re-sealed by a key rewrap.
//!
//! Fingerprints are keyed with a key of their own, never with whichever key is active: replicas
//! mid-rotation seal with different keys but must agree on every fingerprint, or a
//! `ReportRejected` sent to one replica for a header another handed out is silently ignored.
//! With exactly one encryption key the fingerprint key may be derived from it (what a
//! single-key deployment has always done); several keys need an explicit one
//! (`docs/key-rotation.md`).

use crate::domain::CredentialId;
use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use zeroize::Zeroizing;

const FORMAT: &str = "v2";
/// Sealed before the record version was part of the associated data: opened, never written.
const LEGACY: &str = "v1";
/// Values that are no credential record (`seal_transient`), bound to a purpose instead.
const TRANSIENT: &str = "t1";
const NONCE_LEN: usize = 12;

/// Why a sealed secret could not be opened. Deliberately vague: never says anything about
/// the plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("sealed secret is malformed")]
    Malformed,
    #[error("sealed with key id {0:?}, which this replica does not have")]
    UnknownKey(String),
    #[error("sealed secret does not open (tampered, moved to another credential, or wrong key)")]
    DoesNotOpen,
}

/// One encryption key with its id, as configured.
pub struct KeyMaterial {
    pub id: String,
    pub bytes: Zeroizing<Vec<u8>>,
}

/// Where the fingerprint key comes from when none is configured: SHA-256 of this label and the
/// only encryption key. `docs/key-rotation.md` shows the shell line that computes the same value,
/// so a deployment can pin today's fingerprints before it adds a second key.
const DERIVED_FINGERPRINT_LABEL: &[u8] = b"credbroker fingerprint v1\0";

/// The configured keys: one seals, all open; plus the key of fingerprints.
#[derive(Clone)]
pub struct Keyring {
    ciphers: HashMap<String, Aes256Gcm>,
    active: String,
    fingerprint_key: [u8; 32],
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("active", &self.active).finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring whose fingerprint key is derived from its only key. Several keys need
    /// [`Keyring::with_fingerprint_key`]: a key derived from one of them would change when that
    /// key is retired, and every replica must compute the same fingerprints at every step.
    pub fn new(keys: Vec<KeyMaterial>, active: &str) -> Result<Self, String> {
        Self::with_fingerprint_key(keys, active, None)
    }

    /// Builds a keyring. Keys must be 32 bytes; `active` must name one of them (checked by
    /// config validation, re-checked here). `fingerprint_key` (32 bytes) keys fingerprints;
    /// without it there must be exactly one key, and the fingerprint key is derived from it.
    pub fn with_fingerprint_key(
        keys: Vec<KeyMaterial>,
        active: &str,
        fingerprint_key: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Self, String> {
        let fingerprint_key = match (fingerprint_key, keys.as_slice()) {
            (Some(pinned), _) => {
                <[u8; 32]>::try_from(pinned.as_slice()).map_err(|_| "the fingerprint key is not 32 bytes".to_owned())?
            }
            // Derived, not the key itself: fingerprints must reveal nothing about it.
            (None, [only]) => {
                Sha256::new().chain_update(DERIVED_FINGERPRINT_LABEL).chain_update(&*only.bytes).finalize().into()
            }
            (None, _) => {
                return Err("several keys need a fingerprint key of their own (fingerprints must not change with the active key)".into());
            }
        };
        let mut ciphers = HashMap::new();
        for key in keys {
            let cipher =
                Aes256Gcm::new_from_slice(&key.bytes).map_err(|_| format!("key {:?} is not 32 bytes", key.id))?;
            ciphers.insert(key.id, cipher);
        }
        if !ciphers.contains_key(active) {
            return Err(format!("active key {active:?} is not among the keys"));
        }
        Ok(Self { ciphers, active: active.to_owned(), fingerprint_key })
    }

    /// A keyring with one random key: for the embedded default (nothing outlives the process).
    pub fn ephemeral() -> Self {
        let key = aes_gcm::Key::<Aes256Gcm>::generate();
        let material = KeyMaterial { id: "ephemeral".into(), bytes: Zeroizing::new(key.to_vec()) };
        Self::new(vec![material], "ephemeral").expect("a generated key is 32 bytes")
    }

    /// Encrypts `value` (as JSON) for version `version` of credential `id`:
    /// `v2:<key id>:<base64url(nonce ‖ ciphertext)>`. Seal for the version the write creates.
    pub fn seal(&self, id: &CredentialId, version: u64, value: &impl Serialize) -> String {
        self.encrypt(FORMAT, &associated_data(FORMAT, &self.active, id, version), value)
    }

    /// Encrypts a value that is no credential record (the consent flow's PKCE verifier),
    /// bound to what it is for (`purpose`) and to the one thing it belongs to (`bound_to`):
    /// `t1:<key id>:<blob>`. It opens only with the same purpose and binding, so it can neither
    /// be moved to another entry nor read as a credential.
    pub fn seal_transient(&self, purpose: &str, bound_to: &str, value: &impl Serialize) -> String {
        self.encrypt(TRANSIENT, &transient_data(&self.active, purpose, bound_to), value)
    }

    /// Decrypts what [`Keyring::seal_transient`] produced for the same purpose and binding.
    pub fn open_transient<T: DeserializeOwned>(
        &self,
        purpose: &str,
        bound_to: &str,
        sealed: &str,
    ) -> Result<T, CryptoError> {
        let (format, key_id, body) = split(sealed)?;
        if format != TRANSIENT {
            return Err(CryptoError::Malformed);
        }
        self.decrypt(key_id, body, &transient_data(key_id, purpose, bound_to))
    }

    fn encrypt(&self, format: &str, aad: &[u8], value: &impl Serialize) -> String {
        let plaintext = Zeroizing::new(serde_json::to_vec(value).expect("sealed values serialize"));
        let cipher = &self.ciphers[&self.active];
        let nonce = Nonce::generate();
        let ciphertext = cipher
            .encrypt(&nonce, Payload { msg: &plaintext, aad })
            .expect("AES-GCM encryption of a small message cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        format!("{format}:{}:{}", self.active, URL_SAFE_NO_PAD.encode(blob))
    }

    /// The id of the key that seals.
    pub fn active_id(&self) -> &str {
        &self.active
    }

    /// Whether `sealed` is already in this keyring's format and under its active key, i.e.
    /// needs no re-sealing. Reads only the prefix: nothing is decrypted.
    pub fn is_current(&self, sealed: &str) -> bool {
        let mut parts = sealed.splitn(3, ':');
        parts.next() == Some(FORMAT) && parts.next() == Some(self.active.as_str())
    }

    /// Decrypts what `seal` produced for the same credential and version (or a `v1` blob of
    /// the same credential, whatever its version).
    pub fn open<T: DeserializeOwned>(&self, id: &CredentialId, version: u64, sealed: &str) -> Result<T, CryptoError> {
        let (format @ (FORMAT | LEGACY), key_id, body) = split(sealed)? else {
            return Err(CryptoError::Malformed);
        };
        self.decrypt(key_id, body, &associated_data(format, key_id, id, version))
    }

    fn decrypt<T: DeserializeOwned>(&self, key_id: &str, body: &str, aad: &[u8]) -> Result<T, CryptoError> {
        let cipher = self.ciphers.get(key_id).ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        let blob = URL_SAFE_NO_PAD.decode(body).map_err(|_| CryptoError::Malformed)?;
        if blob.len() < NONCE_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| CryptoError::Malformed)?;
        let plaintext = Zeroizing::new(
            cipher.decrypt(&nonce, Payload { msg: ciphertext, aad }).map_err(|_| CryptoError::DoesNotOpen)?,
        );
        serde_json::from_slice(&plaintext).map_err(|_| CryptoError::Malformed)
    }

    /// A short, non-reversible id of header values handed out: HMAC-SHA-256 under the
    /// fingerprint key (the same on every replica, whichever key is active), 64 bits in hex.
    pub fn fingerprint<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> String {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.fingerprint_key).expect("HMAC takes any key length");
        for value in values {
            mac.update(value.as_bytes());
            mac.update(b"\0");
        }
        let digest = mac.finalize().into_bytes();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// `format:key id:body`.
fn split(sealed: &str) -> Result<(&str, &str, &str), CryptoError> {
    let mut parts = sealed.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(format), Some(key_id), Some(body)) => Ok((format, key_id, body)),
        _ => Err(CryptoError::Malformed),
    }
}

/// The associated data of a transient value: its format, key id, purpose and binding (none of
/// which contains a NUL).
fn transient_data(key_id: &str, purpose: &str, bound_to: &str) -> Vec<u8> {
    [TRANSIENT, key_id, purpose, bound_to].join("\0").into_bytes()
}

/// Binds a ciphertext to its format, key id, credential and (from `v2` on) record version.
/// Provider names and subjects contain no control characters, so NUL separators make the
/// encoding unambiguous.
fn associated_data(format: &str, key_id: &str, id: &CredentialId, version: u64) -> Vec<u8> {
    let mut parts = vec![format, key_id, id.provider.as_str(), id.subject.as_str()];
    let version = version.to_string();
    if format != LEGACY {
        parts.push(&version);
    }
    parts.join("\0").into_bytes()
}

/// What `seal` wrote before the version was bound: for tests of the migration path.
#[cfg(test)]
pub(crate) fn seal_legacy(ring: &Keyring, id: &CredentialId, value: &impl Serialize) -> String {
    ring.encrypt(LEGACY, &associated_data(LEGACY, &ring.active, id, 0), value)
}

#[cfg(test)]
mod tests;

//! A record as the in-memory store keeps it: the same content as [`StoredCredential`], laid
//! out for 100 000 of them (≤ 100 MB in all). 64 bytes in one allocation plus the sealed bytes,
//! where the record itself is 176 bytes plus a base64 string a third larger than its bytes:
//!
//! - the fields most records never set (a reason, the legacy detail, probe and forced
//!   times) are boxed together, allocated only when one of them is set;
//! - the sealed value is kept as its format and key prefix (`v2:key:`) followed by the
//!   *decoded* blob, and encoded again when read. Only when that gives back exactly the
//!   same text; anything else (another format, non-canonical base64) is kept as text.
//!
//! The version lives in the store's entry, not here.

use super::super::StoredCredential;
use crate::domain::{CredentialState, Reason};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

pub(super) struct Kept {
    access_expires_at: Option<OffsetDateTime>,
    updated_at: OffsetDateTime,
    /// The prefix's bytes then the decoded blob, or the text as given (see `prefix`).
    sealed: Box<[u8]>,
    rare: Option<Box<Rare>>,
    state: CredentialState,
    /// The length of the prefix before a decoded blob; `None`: `sealed` is the text itself.
    prefix: Option<u8>,
}

/// What a record rarely carries.
#[derive(Default, PartialEq)]
struct Rare {
    reason: Option<Reason>,
    legacy_detail: String,
    probe_at: Option<OffsetDateTime>,
    forced_at: Option<OffsetDateTime>,
}

impl Kept {
    pub(super) fn new(record: &StoredCredential) -> Self {
        let rare = Rare {
            reason: record.reason.clone(),
            legacy_detail: record.legacy_detail.clone(),
            probe_at: record.probe_at,
            forced_at: record.forced_at,
        };
        let (sealed, prefix) = match compact(&record.sealed) {
            Some((bytes, prefix)) => (bytes, Some(prefix)),
            None => (record.sealed.as_bytes().into(), None),
        };
        Self {
            access_expires_at: record.access_expires_at,
            updated_at: record.updated_at,
            sealed,
            rare: (rare != Rare::default()).then(|| Box::new(rare)),
            state: record.state,
            prefix,
        }
    }

    /// The record as it was written, at `version`.
    pub(super) fn record(&self, version: u64) -> StoredCredential {
        let rare = self.rare.as_deref();
        StoredCredential {
            version,
            state: self.state,
            reason: rare.and_then(|r| r.reason.clone()),
            legacy_detail: rare.map(|r| r.legacy_detail.clone()).unwrap_or_default(),
            access_expires_at: self.access_expires_at,
            updated_at: self.updated_at,
            probe_at: rare.and_then(|r| r.probe_at),
            forced_at: rare.and_then(|r| r.forced_at),
            sealed: self.sealed(),
        }
    }

    fn sealed(&self) -> String {
        let Some(prefix) = self.prefix else {
            return String::from_utf8(self.sealed.to_vec()).expect("kept from a String");
        };
        let (head, blob) = self.sealed.split_at(usize::from(prefix));
        let mut text = String::with_capacity(head.len() + blob.len().div_ceil(3) * 4);
        text.push_str(std::str::from_utf8(head).expect("an ASCII prefix"));
        URL_SAFE_NO_PAD.encode_string(blob, &mut text);
        text
    }
}

/// `format:key:` then the decoded base64 of the rest, with the prefix's length; `None` if
/// `sealed` is not in that form or would not read back exactly the same.
fn compact(sealed: &str) -> Option<(Box<[u8]>, u8)> {
    let split = sealed.match_indices(':').nth(1)?.0 + 1;
    let (head, body) = sealed.split_at(split);
    let prefix = u8::try_from(split).ok()?;
    let blob = URL_SAFE_NO_PAD.decode(body).ok()?;
    if URL_SAFE_NO_PAD.encode(&blob) != body {
        return None;
    }
    Some(([head.as_bytes(), &blob].concat().into_boxed_slice(), prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sealed: &str) -> StoredCredential {
        StoredCredential { version: 7, ..StoredCredential::active(sealed.to_owned()) }
    }

    #[test]
    fn records_read_back_exactly_as_written() {
        let blob = URL_SAFE_NO_PAD.encode((0..=255u8).collect::<Vec<_>>());
        let mut rare = record(&format!("v2:key-1:{blob}"));
        rare.state = CredentialState::ReauthRequired;
        rare.reason = Some(Reason::RefreshRefused { reason: "invalid_grant".into() });
        rare.legacy_detail = "old".into();
        rare.probe_at = Some(OffsetDateTime::UNIX_EPOCH);
        rare.forced_at = Some(OffsetDateTime::UNIX_EPOCH);
        rare.access_expires_at = Some(OffsetDateTime::UNIX_EPOCH);
        // Texts that are not a canonical `format:key:base64` are kept as they are.
        let odd = ["v2:key:", "no-colons", "v1:k:not base64!", "v2:k:AB", "v2:k:AAA=", "v2:k:a:b"];
        let records = [record(&format!("v2:k:{blob}")), rare].into_iter().chain(odd.map(record));
        for original in records {
            let kept = Kept::new(&original);
            assert_eq!(kept.record(7), original, "{}", original.sealed);
        }
    }

    #[test]
    fn a_canonical_blob_is_kept_decoded_and_common_records_box_nothing() {
        let blob = URL_SAFE_NO_PAD.encode([9u8; 200]);
        let kept = Kept::new(&record(&format!("v2:k:{blob}")));
        assert_eq!((kept.sealed.len(), kept.prefix), (205, Some(5)));
        assert!(kept.rare.is_none());
        assert_eq!(std::mem::size_of::<Kept>(), 64);
    }
}

//! Validated domain types. Everything that crosses the gRPC edge is parsed into these
//! (`TryFrom`), so the rest of the code never sees an unchecked string.

mod connect;
mod reason;
mod secret;

pub use connect::{ConnectFailure, SessionStatus};
pub use reason::Reason;
pub use secret::{Secret, SecretMaterial, Session, Vault};

use compact_str::CompactString;
use std::fmt;

/// Longest provider name or subject accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// Why a field of a request was refused; the gRPC edge turns it into `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    pub field: &'static str,
    pub problem: String,
}

impl InvalidField {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self { field, problem: problem.into() }
    }
}

/// Checks the shape shared by provider names and subjects: 1..=256 bytes, and no character
/// that can make one identifier read as another (see `hidden`).
fn check_identifier(field: &'static str, value: &str) -> Result<(), InvalidField> {
    check_length(field, value)?;
    match value.chars().find(|c| hidden(*c)) {
        Some(c) => Err(InvalidField::new(
            field,
            format!("contains U+{:04X}, a control, format or line-separator character", u32::from(c)),
        )),
        None => Ok(()),
    }
}

fn check_length(field: &'static str, value: &str) -> Result<(), InvalidField> {
    if value.is_empty() {
        return Err(InvalidField::new(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(InvalidField::new(field, format!("longer than {MAX_ID_LEN} bytes")));
    }
    Ok(())
}

/// Controls (Cc) break log lines and Redis key readability; format characters (Cf: U+202E
/// right-to-left override, U+200B zero-width space, U+2066 isolates, …) and the line and
/// paragraph separators (Zl, Zp) change how the text around them is displayed, so a subject
/// holding one can be made to read, in a listing or an audit line, as another subject.
fn hidden(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    matches!(c.general_category(), G::Control | G::Format | G::LineSeparator | G::ParagraphSeparator)
}

/// The name of a configured provider instance, as callers pass it.
///
/// Names and subjects are `CompactString`s: up to 24 bytes (most of them) they are kept
/// inline, with no allocation — per call for the key they make, and per credential in the
/// store and the cache (the memory goal: 100 000 credentials in ≤ 100 MB).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderName(CompactString);

impl ProviderName {
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidField> {
        check_identifier(field, value)?;
        Ok(Self(CompactString::new(value)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose credential: a user, an organisation, a project — opaque to the broker.
/// Subjects are identifiers, not secrets: they may appear in logs and traces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(CompactString);

impl Subject {
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidField> {
        check_identifier(field, value)?;
        Ok(Self(CompactString::new(value)))
    }
    /// A subject a store, a peer replica or one of this service's own page tokens gives back:
    /// accepted at the edge once, maybe under the earlier rule that refused only controls. A
    /// stored credential whose subject the edge would refuse today is still listed, fed and
    /// rewrapped rather than silently lost; a caller just cannot name it any more.
    pub fn stored(value: &str) -> Option<Self> {
        check_length("subject", value).ok()?;
        (!value.chars().any(char::is_control)).then(|| Self(CompactString::new(value)))
    }
    /// An empty string means "the provider instance's own credential".
    pub fn parse_optional(field: &'static str, value: &str) -> Result<Option<Self>, InvalidField> {
        if value.is_empty() { Ok(None) } else { Self::parse(field, value).map(Some) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One stored credential: a provider instance and a subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialId {
    pub provider: ProviderName,
    pub subject: Subject,
}

impl CredentialId {
    pub fn new(provider: ProviderName, subject: Subject) -> Self {
        Self { provider, subject }
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.subject)
    }
}

/// The lifecycle state of a stored credential (see `docs/refresh-safety.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CredentialState {
    Active,
    Refreshing,
    Indeterminate,
    ReauthRequired,
    Revoked,
}

impl fmt::Display for CredentialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Active => "ACTIVE",
            Self::Refreshing => "REFRESHING",
            Self::Indeterminate => "INDETERMINATE",
            Self::ReauthRequired => "REAUTH_REQUIRED",
            Self::Revoked => "REVOKED",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        assert!(ProviderName::parse("provider", "pass").is_ok());
        assert_eq!(ProviderName::parse("provider", "").unwrap_err().field, "provider");
        assert!(Subject::parse("subject", "a\nb").is_err());
        assert!(Subject::parse("subject", &"x".repeat(257)).is_err());
        assert!(Subject::parse("subject", &"x".repeat(256)).is_ok());
        assert!(Subject::parse("subject", "ü|{}:weird but fine").is_ok());
        assert_eq!(Subject::parse_optional("subject", "").unwrap(), None);
    }

    #[test]
    fn subjects_refuse_every_control_format_and_separator_character() {
        // RTL override, zero-width space, line and paragraph separators, BOM, soft hyphen,
        // Arabic letter mark, an isolate, a tag character, NEL and DEL (both Cc).
        for c in ['\u{202E}', '\u{200B}', '\u{2028}', '\u{2029}', '\u{FEFF}', '\u{AD}', '\u{61C}', '\u{2066}'] {
            let refused = Subject::parse("subject", &format!("users/{c}42")).unwrap_err();
            assert_eq!(refused.field, "subject");
            assert!(refused.problem.contains(&format!("U+{:04X}", u32::from(c))), "{refused}");
        }
        for c in ['\u{E0041}', '\u{85}', '\u{7F}', '\0'] {
            assert!(Subject::parse("subject", &format!("a{c}")).is_err(), "U+{:04X}", u32::from(c));
        }
        // Visible text of any script stays fine, spaces included.
        for ok in ["users/Zoë", "orgs/東京 shared", "ناصر", "a b", "\u{1F600}"] {
            assert!(Subject::parse("subject", ok).is_ok(), "{ok}");
        }
        assert!(ProviderName::parse("provider", "bro\u{200B}").is_err());
    }

    #[test]
    fn stored_subjects_keep_what_the_edge_once_accepted() {
        assert_eq!(Subject::stored("users/\u{202E}42").unwrap().as_str(), "users/\u{202E}42");
        assert!(Subject::stored("a\nb").is_none() && Subject::stored("").is_none());
        assert!(Subject::stored(&"x".repeat(257)).is_none());
    }
}

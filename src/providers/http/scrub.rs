//! Keeping secrets out of the texts an upstream error keeps (a provider's reason, a
//! transport error), which end up in status messages and logs.
//!
//! Runs on the whole text, *before* it is cut to length: a cut could leave a prefix of a
//! secret that would no longer match it whole. Three rules, each replacing with `[redacted]`:
//!
//! 1. every secret the request carried, wherever it appears;
//! 2. partial echoes: a run of token characters that shares [`ECHO`] or more consecutive
//!    characters with a secret that was sent (a provider that echoes a token cut at its own
//!    limit, or glued to other text);
//! 3. values that look like tokens, sent or not: JWTs (`eyJ….….…`), runs of
//!    [`RANDOM_LEN`]+ letters and digits that switch between upper case, lower case and
//!    digits as often as random text does, and runs of [`HEX_LEN`]+ hex digits (Passport's
//!    refresh tokens). Words, CamelCase names, sentences, UUIDs and dates do not qualify.

use crate::domain::Secret;
use std::collections::HashSet;

/// Shortest shared stretch that counts as an echo of a secret.
const ECHO: usize = 12;
/// Shortest run of letters and digits that may look random.
const RANDOM_LEN: usize = 32;
/// Shortest run of hex digits taken for a token.
const HEX_LEN: usize = 40;
const REDACTED: &str = "[redacted]";

/// `text` without the secrets that were `sent`, their partial echoes, or token-looking values.
pub(super) fn scrub(text: String, sent: &[&Secret]) -> String {
    let mut text = text;
    for secret in sent.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.expose(), REDACTED);
    }
    let echoes: HashSet<&[u8]> = sent.iter().flat_map(|s| s.expose().as_bytes().windows(ECHO)).collect();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find(is_token_char) {
        out.push_str(&rest[..start]);
        let run = &rest[start..];
        let end = run.find(|c| !is_token_char(c)).unwrap_or(run.len());
        let (run, after) = run.split_at(end);
        out.push_str(if echoes_a_secret(run, &echoes) || looks_like_a_token(run) { REDACTED } else { run });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Characters of tokens in every common encoding (base64, base64url, hex, JWT).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
}

fn echoes_a_secret(run: &str, echoes: &HashSet<&[u8]>) -> bool {
    !echoes.is_empty() && run.as_bytes().windows(ECHO).any(|w| echoes.contains(w))
}

fn looks_like_a_token(run: &str) -> bool {
    is_jwt(run) || run.split(|c: char| !c.is_ascii_alphanumeric()).any(|piece| random(piece) || hex(piece))
}

/// Three base64url parts, the first a JSON object (`eyJ` is `{"`); the signature may be empty.
fn is_jwt(run: &str) -> bool {
    let parts: Vec<&str> = run.trim_end_matches('.').split('.').collect();
    let base64url = |p: &str| p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    run.starts_with("eyJ")
        && (2..=3).contains(&parts.len())
        && parts.iter().all(|p| base64url(p))
        && parts[..2].iter().all(|p| p.len() >= 4)
}

/// Letters and digits that change class (upper, lower, digit) between neighbours at least
/// once every three characters: random text does so about twice as often, words far less.
fn random(piece: &str) -> bool {
    let class = |b: &u8| (b.is_ascii_uppercase(), b.is_ascii_lowercase());
    let changes = piece.as_bytes().windows(2).filter(|w| class(&w[0]) != class(&w[1])).count();
    piece.len() >= RANDOM_LEN && changes * 3 >= piece.len()
}

/// Hex digits with both letters and digits (a long number alone is not a token).
fn hex(piece: &str) -> bool {
    piece.len() >= HEX_LEN
        && piece.bytes().all(|b| b.is_ascii_hexdigit())
        && piece.bytes().any(|b| b.is_ascii_digit())
        && piece.bytes().any(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubbed(text: &str, sent: &[&str]) -> String {
        let secrets: Vec<Secret> = sent.iter().map(|s| Secret::new(*s)).collect();
        scrub(text.to_owned(), &secrets.iter().collect::<Vec<_>>())
    }

    const REFRESH: &str = "def50200a8b9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8";

    #[test]
    fn secrets_that_were_sent_are_redacted_whole_and_in_part() {
        assert_eq!(scrubbed("bad password: hunter2 pw", &["hunter2 pw"]), "bad password: [redacted]");
        // The provider cut the echo itself, or glued it to other text.
        let cut = &REFRESH[..30];
        assert_eq!(scrubbed(&format!("token {cut}… is invalid"), &[REFRESH]), "token [redacted]… is invalid");
        let glued = format!("token=x{}", &REFRESH[20..50]);
        assert_eq!(scrubbed(&glued, &[REFRESH]), "[redacted]");
        // Short shared stretches are not echoes.
        assert_eq!(scrubbed("user anna-maria failed", &["xx-anna-maria-secret-yy"]), "user anna-maria failed");
    }

    #[test]
    fn token_looking_values_are_redacted_even_when_not_sent() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm5hIiwiZXhwIjoxfQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        assert_eq!(scrubbed(&format!("expired: {jwt}."), &[]), "expired: [redacted]");
        assert_eq!(scrubbed(&format!("refresh {REFRESH} revoked"), &[]), "refresh [redacted] revoked");
        let opaque = "Zq3VtB9xKp2LmW8nRc4YhD7sFj1GaE6u";
        assert_eq!(scrubbed(&format!("token={opaque}"), &[]), "[redacted]");
    }

    #[test]
    fn useful_text_survives() {
        for text in [
            "invalid_grant (Token has been revoked): The refresh token is invalid.",
            "request 3f2c9a4e-8b1d-4c6f-9e2a-7d5b3c1f0e8a failed at 2026-11-23T10:00:00Z",
            "ProviderAuthenticationException2 in AuthenticationServiceProviderImpl",
            "see https://docs.example.com/api/v2/errors/RateLimitExceeded#retry",
            "order 12345678901234567890123456789012345678901234567890 not found",
        ] {
            assert_eq!(scrubbed(text, &[]), text);
        }
    }
}

//! Unknown keys: every table refuses a key it does not know (serde's `deny_unknown_fields`,
//! and the top level in `section.rs`), and the refusal names the nearest known key, so a
//! misspelled `[audti]` or `listne` is caught and its fix shown.

/// The known key closest to `unknown`, if one is close enough to be a likely misspelling
/// (a transposed, missing or extra letter or two).
pub(super) fn nearest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|key| (strsim::normalized_damerau_levenshtein(unknown, key), *key))
        .filter(|(similarity, _)| *similarity >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, key)| key)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn a_misspelling_finds_its_key_and_a_stranger_finds_none() {
        let sections = ["server", "store", "audit", "admin", "auth", "policy"];
        assert_eq!(nearest("audti", &sections), Some("audit"));
        assert_eq!(nearest("polcy", &sections), Some("policy"));
        assert_eq!(nearest("listne", &["listen", "cores"]), Some("listen"));
        assert_eq!(nearest("client_secert", &["client_id", "client_secret"]), Some("client_secret"));
        assert_eq!(nearest("api_key", &["api_base_url", "token_url", "client_id"]), None);
        assert_eq!(nearest("zzz", &sections), None);
    }
}

//! Percent-decoding for the SSRF checks. Decoded bytes must be UTF-8: an invalid sequence
//! such as the overlong `%c0%ae` (a '.' to decoders that accept overlong forms, as old IIS and
//! Java ones did) is refused rather than guessed at.

use percent_encoding::percent_decode_str;
use std::borrow::Cow;

const NOT_UTF8: &str = "contains percent-encoded bytes that are not UTF-8 (such as the overlong '%c0%ae')";

/// `text` with every `%XX` decoded, as UTF-8; every '%' must start `%XX`.
pub(super) fn decode_utf8(text: &str) -> Result<Cow<'_, str>, String> {
    let hex_pair = |after: &str| after.as_bytes().get(..2).is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit));
    if !text.split('%').skip(1).all(hex_pair) {
        return Err("contains a '%' that is not followed by two hex digits".into());
    }
    decode_again(text)
}

/// Decoding for text that may legitimately hold a literal '%' (a query, after its first
/// round): `%XX` is decoded, any other '%' stays. Catches double-encoded bytes (`%25c0%25ae`)
/// that an upstream decoding twice would see.
pub(super) fn decode_again(text: &str) -> Result<Cow<'_, str>, String> {
    percent_decode_str(text).decode_utf8().map_err(|_| NOT_UTF8.into())
}

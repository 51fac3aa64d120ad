use super::*;

#[test]
fn min_validity_defaults_and_bounds() {
    let d = |seconds, nanos| Some(prost_types::Duration { seconds, nanos });
    let max = MAX_MIN_VALIDITY;
    assert_eq!(duration("f", None, DEFAULT_MIN_VALIDITY, max).unwrap(), Duration::from_secs(30));
    assert_eq!(duration("f", d(5, 500_000_000), DEFAULT_MIN_VALIDITY, max).unwrap(), Duration::from_millis(5500));
    assert!(duration("f", d(-1, 0), DEFAULT_MIN_VALIDITY, max).is_err());
    assert!(duration("f", d(0, -1), DEFAULT_MIN_VALIDITY, max).is_err());
    assert!(duration("f", d(i64::MAX, 0), DEFAULT_MIN_VALIDITY, max).is_err());
}

#[test]
fn timestamps_round_trip_and_refuse_bad_nanos() {
    let t = prost_types::Timestamp { seconds: 1_700_000_000, nanos: 123 };
    assert_eq!(to_timestamp(timestamp("f", t).unwrap()), t);
    assert!(timestamp("f", prost_types::Timestamp { seconds: 0, nanos: 1_000_000_000 }).is_err());
    assert!(timestamp("f", prost_types::Timestamp { seconds: i64::MAX, nanos: 0 }).is_err());
}

#[test]
fn page_tokens_round_trip_and_refuse_forgeries() {
    let subject = Subject::parse("s", "ü/{weird}").unwrap();
    assert_eq!(decode_page_token(&encode_page_token(&subject)), Some(subject));
    assert_eq!(decode_page_token("%%%"), None);
    assert_eq!(decode_page_token(&URL_SAFE_NO_PAD.encode("a\nb")), None);
}

#[test]
fn secrets_with_control_characters_are_refused() {
    assert!(text("f", "ok value".into()).is_ok());
    assert_eq!(text("f", "a\r\nb".into()).unwrap_err().field, "f");
    assert!(text("f", String::new()).is_err());
    assert!(text("f", "x".repeat(MAX_SECRET_LEN + 1)).is_err());
}

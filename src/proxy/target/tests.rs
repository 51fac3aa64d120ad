use super::*;

fn base() -> Url {
    Url::parse("http://127.0.0.1:8080/pass/rest/").unwrap()
}

fn joined(path: &str) -> String {
    ProxyPath::parse("path", path).unwrap().join(&base()).unwrap().to_string()
}

#[test]
fn ordinary_paths_join_under_the_base() {
    assert_eq!(joined("sales/v1/pashouder"), "http://127.0.0.1:8080/pass/rest/sales/v1/pashouder");
    assert_eq!(joined("users/"), "http://127.0.0.1:8080/pass/rest/users/");
    assert_eq!(joined("a/b?x=1&y=%2Fz&next=/c?d"), "http://127.0.0.1:8080/pass/rest/a/b?x=1&y=%2Fz&next=/c?d");
    assert_eq!(joined("a?email=jan@example.nl"), "http://127.0.0.1:8080/pass/rest/a?email=jan@example.nl");
    assert_eq!(joined("a?next=https://x.example/cb"), "http://127.0.0.1:8080/pass/rest/a?next=https://x.example/cb");
    assert_eq!(joined("caf%C3%A9/a:b/v1.2/..x"), "http://127.0.0.1:8080/pass/rest/caf%C3%A9/a:b/v1.2/..x");
    // A query may carry ';', a literal '%' (encoded once) and UTF-8.
    assert_eq!(
        joined("a?x=1;y=2&p=100%25&q=caf%C3%A9"),
        "http://127.0.0.1:8080/pass/rest/a?x=1;y=2&p=100%25&q=caf%C3%A9"
    );
}

#[test]
fn hostile_paths_are_refused() {
    for hostile in [
        "",
        "http://evil.example/",
        "//evil.example/x",
        "/sales",
        "\\\\evil\\x",
        "javascript:alert(1)",
        "localhost:8080/x",
        "../bro/",
        "a/../../bro",
        "a/..",
        "./a",
        "%2e%2e/bro",
        "%2E%2e%2fbro",
        ".%2e/bro",
        "a%2f..%2f..%2fbro",
        "a%5c..%5cbro",
        "%252e%252e/bro",
        "a//b",
        "@evil.example/x",
        "a/b@evil",
        "a%00b",
        "a%0d%0aHost:%20evil",
        "a\r\nHost: evil",
        "a?x=%0d%0a",
        "a b",
        "a#frag",
        "?next=http://evil",
        "\u{FF0E}\u{FF0E}/bro",
        "%EF%BC%8E%EF%BC%8E/bro",
        "%E3%80%82%E3%80%82/bro",
        "a%zz",
        "a%4",
        "a|b",
        "a\tb",
        // path parameters: '..;/' climbs out on Tomcat, Jetty and Spring
        "..;/bro",
        "a/..;/..;/bro",
        "a;jsessionid=x/b",
        "a/b;",
        "a%3b/b",
        "..%3B/bro",
        // percent-encodings that are not UTF-8 (overlong '.', '/', lone bytes), also double-encoded
        "%c0%ae%c0%ae/bro",
        "a/%c0%af/b",
        "%e0%80%ae/bro",
        "caf%E9",
        "%25c0%25ae/bro",
        "a?x=%c0%ae",
        "a?x=%25c0%25ae",
        "a?x=%250d%250a",
        "a%+1",
    ] {
        assert!(ProxyPath::parse("path", hostile).is_err(), "{hostile:?} was accepted");
    }
    assert!(ProxyPath::parse("path", &"a/".repeat(MAX_PATH_LEN)).is_err());
}

#[test]
fn joining_checks_the_result_again() {
    // A base without a trailing slash resolves against its directory.
    let base = Url::parse("https://api.example/v2").unwrap();
    let path = ProxyPath::parse("path", "items").unwrap();
    assert_eq!(path.join(&base).unwrap().as_str(), "https://api.example/items");
    // Should a parsed path ever normalise, the join refuses rather than leaves the base.
    let sneaky = ProxyPath { path: "a/../../x".into(), query: None };
    assert_eq!(sneaky.join(&self::base()), None);
    // Only the path is set on the base: a scheme the parser missed is a path segment on the
    // provider's own host, never another origin.
    let absolute = ProxyPath { path: "http://evil/".into(), query: None };
    let joined = absolute.join(&self::base());
    assert!(joined.is_none_or(|url| url.origin() == self::base().origin() && url.path().starts_with("/pass/rest/")));
    // The base's own query and fragment are not carried over.
    let base = Url::parse("https://api.example/v2/?debug=1#top").unwrap();
    assert_eq!(path.join(&base).unwrap().as_str(), "https://api.example/v2/items");
}

//! `[store]`: TLS files, the ACL password, Sentinel and journal replicas, validated at start.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![("CREDBROKER__ENCRYPTION__KEY".to_owned(), super::KEY.to_owned())];
    all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    all
}

fn problems(pairs: &[(&str, &str)]) -> String {
    Settings::load(None, env(pairs)).unwrap_err().to_string()
}

#[test]
fn rediss_urls_are_accepted_and_tls_files_are_read_at_start() {
    let settings = Settings::load(None, env(&[("CREDBROKER__STORE__REDIS_URL", "rediss://cache:6380")])).unwrap();
    assert!(settings.store.uses_redis() && settings.store.access.tls.is_none(), "system roots without a CA file");
    let text = problems(&[
        ("CREDBROKER__STORE__REDIS_URL", "rediss://cache:6380"),
        ("CREDBROKER__STORE__TLS_CA_FILE", "/nonexistent/ca.pem"),
    ]);
    assert!(text.contains("store.tls_ca_file: cannot read /nonexistent/ca.pem"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let text = problems(&[
        ("CREDBROKER__STORE__REDIS_URL", "rediss://cache:6380"),
        ("CREDBROKER__STORE__TLS_CA_FILE", junk.to_str().unwrap()),
    ]);
    assert!(text.contains("holds no usable PEM item"), "{text}");
    let text = problems(&[
        ("CREDBROKER__STORE__REDIS_URL", "redis://cache:6379"),
        ("CREDBROKER__STORE__TLS_CA_FILE", junk.to_str().unwrap()),
    ]);
    assert!(text.contains("need a rediss:// URL"), "{text}");
}

#[test]
fn passwords_come_from_the_environment_or_a_file_and_are_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redis-password");
    std::fs::write(&path, "file-s3cret\n").unwrap();
    let settings = Settings::load(
        None,
        env(&[
            ("CREDBROKER__STORE__REDIS_URL", "redis://cache:6379"),
            ("CREDBROKER__STORE__USERNAME", "credbroker"),
            ("CREDBROKER__STORE__PASSWORD_FILE", path.to_str().unwrap()),
        ]),
    )
    .unwrap();
    let access = &settings.store.access;
    assert_eq!(access.username.as_deref(), Some("credbroker"));
    assert_eq!(access.password.as_ref().unwrap().expose(), "file-s3cret", "the trailing newline is the file's");
    assert!(!format!("{:?}", settings.store).contains("s3cret"), "redacted in Debug");
    let text = problems(&[
        ("CREDBROKER__STORE__REDIS_URL", "redis://:url-s3cret@cache:6379:bad"),
        ("CREDBROKER__STORE__PASSWORD", "env-s3cret"),
        ("CREDBROKER__STORE__PASSWORD_FILE", path.to_str().unwrap()),
    ]);
    assert!(text.contains("store.redis_url") && text.contains("store.password:"), "{text}");
    assert!(!text.contains("s3cret"), "no password in any message: {text}");
}

#[test]
fn sentinel_comes_from_a_url_or_a_section() {
    let settings = Settings::load(
        None,
        env(&[("CREDBROKER__STORE__REDIS_URL", "redis+sentinel://app:pw@127.0.0.1:26379,127.0.0.1:26380/main")]),
    )
    .unwrap();
    let sentinel = settings.store.sentinel.as_ref().unwrap();
    assert_eq!((sentinel.master_name.as_str(), sentinel.addresses.len()), ("main", 2));
    assert_eq!(settings.store.access.password.as_ref().unwrap().expose(), "pw");
    assert!(settings.store.redis_url.is_none() && settings.store.uses_redis());
    let (_dir, path) = super::file(&format!(
        "[store]\n[store.sentinel]\nmaster_name = \"main\"\naddresses = [\"10.0.0.1:26379\"]\n\
         [encryption]\nkey = \"{}\"\n",
        super::KEY
    ));
    let settings = Settings::load(Some(&path), []).unwrap();
    assert_eq!(settings.store.sentinel.unwrap().addresses, ["10.0.0.1:26379"]);
    let text = problems(&[("CREDBROKER__STORE__REDIS_URL", "redis+sentinel://p4ss@127.0.0.1/main")]);
    assert!(text.contains("host:port") && !text.contains("p4ss"), "{text}");
}

#[test]
fn journal_replicas_need_a_redis_that_can_have_replicas() {
    let text = Settings::load(None, super::env(&[("CREDBROKER__STORE__JOURNAL_REPLICAS", "1")])).unwrap_err();
    assert!(text.to_string().contains("store.journal_replicas: only with a Redis store"), "{text}");
    // With a cluster, WAIT runs on the shard that took the write (tests/api/cluster.rs).
    let clustered = Settings::load(
        None,
        env(&[
            ("CREDBROKER__STORE__REDIS_URL", "redis://cache:6379"),
            ("CREDBROKER__STORE__CLUSTER", "true"),
            ("CREDBROKER__STORE__JOURNAL_REPLICAS", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(clustered.store.journal_replicas, 1);
    let settings = Settings::load(
        None,
        env(&[
            ("CREDBROKER__STORE__REDIS_URL", "redis://cache:6379"),
            ("CREDBROKER__STORE__JOURNAL_REPLICAS", "1"),
            ("CREDBROKER__STORE__JOURNAL_WAIT_TIMEOUT", "250ms"),
        ]),
    )
    .unwrap();
    assert_eq!((settings.store.journal_replicas, settings.store.journal_wait_timeout.as_millis()), (1, 250));
}

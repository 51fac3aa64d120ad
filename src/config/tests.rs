use super::*;
use crate::providers::ProviderSettings;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credbroker.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

const KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

#[test]
fn embedded_default_runs_in_memory_with_example_providers() {
    let settings = Settings::embedded_default();
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:50051");
    assert!(settings.store.redis_url.is_none());
    assert!(matches!(settings.encryption, EncryptionSettings::Ephemeral));
    let kinds: Vec<_> = settings.providers.iter().map(|p| p.kind()).collect();
    assert_eq!(kinds, ["pass", "bro", "passolution", "jouwomgeving"]);
}

#[test]
fn environment_overrides_sections_and_providers_by_name() {
    let settings = Settings::load(
        None,
        env(&[
            ("CREDBROKER__SERVER__LISTEN", "0.0.0.0:6000"),
            ("CREDBROKER__SERVER__ALLOW_INSECURE", "true"),
            ("CREDBROKER__CACHE__MAX_ENTRIES", "42"),
            ("CREDBROKER__CACHE__TTL", "5s"),
            ("CREDBROKER__PROVIDERS__PASSOLUTION__CLIENT_SECRET", "from-env"),
            ("CREDBROKER__PROVIDERS__JOUWOMGEVING_DEMO__TOKEN_PATH", "auth/"),
            ("UNRELATED", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.server.listen.to_string(), "0.0.0.0:6000");
    assert_eq!((settings.cache.max_entries, settings.cache.ttl.as_secs()), (42, 5));
    let passolution = settings.providers.iter().find(|p| p.name.as_str() == "passolution").unwrap();
    let ProviderSettings::Passolution(p) = &passolution.settings else { panic!() };
    assert_eq!(p.client_secret.expose(), "from-env");
    let jo = settings.providers.iter().find(|p| p.kind() == "jouwomgeving").unwrap();
    let ProviderSettings::JouwOmgeving(j) = &jo.settings else { panic!() };
    assert_eq!(j.token_path, "auth/");
}

#[test]
fn redis_without_a_key_is_refused() {
    let errors = Settings::load(None, env(&[("CREDBROKER__STORE__REDIS_URL", "redis://127.0.0.1:6379")])).unwrap_err();
    assert!(errors.0.iter().any(|e| e.starts_with("encryption.key")), "{errors}");
}

#[test]
fn a_file_replaces_the_default_and_supports_key_rotation() {
    let (_dir, path) = file(&format!(
        "[store]\nredis_url = \"redis://127.0.0.1:6379\"\n\
         [[encryption.keys]]\nid = \"old\"\nkey = \"{KEY}\"\n\
         [[encryption.keys]]\nid = \"new\"\nkey = \"{KEY}\"\n\
         [encryption]\nactive_key = \"new\"\nfingerprint_key = \"{KEY}\"\n\
         [[providers]]\nname = \"bro-prod\"\nkind = \"bro\"\napi_base_url = \"https://example.test/api/v2\"\n"
    ));
    let settings = Settings::load(Some(&path), []).unwrap();
    assert_eq!(settings.providers.len(), 1);
    let ProviderSettings::Bro(bro) = &settings.providers[0].settings else { panic!() };
    assert_eq!(bro.api_base_url.as_str(), "https://example.test/api/v2/", "a trailing slash is added");
    assert!(matches!(settings.encryption, EncryptionSettings::Keys(_)));
}

#[test]
fn every_problem_is_reported_at_once_naming_its_key() {
    let (_dir, path) = file(
        "[server]\nlisten = \"x\"\n[telemetry]\nlog_format = \"xml\"\n[encryption]\nkey = \"short\"\n\
         [[providers]]\nname = \"a\"\nkind = \"passolution\"\n\
         [[providers]]\nname = \"a\"\nkind = \"pass\"\napi_base_url = \"ftp://x\"\napi_key = \"k\"\n",
    );
    let errors = Settings::load(Some(&path), env(&[("CREDBROKER__PROVIDERS__GHOST__API_KEY", "k")])).unwrap_err();
    let text = errors.to_string();
    for key in [
        "server.listen",
        "telemetry.log_format",
        "encryption.key",
        "providers[0].client_id",
        "providers[0].client_secret",
        "providers[1].name",
        "providers[1].api_base_url",
        "CREDBROKER__PROVIDERS__GHOST__API_KEY",
    ] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
    assert!(!text.contains("short"), "never echo a key value:\n{text}");
}

#[test]
fn a_missing_file_is_an_error() {
    let errors = Settings::load(Some(Path::new("/nonexistent/credbroker.toml")), []).unwrap_err();
    assert!(errors.to_string().contains("credbroker.toml"), "{errors}");
}

#[test]
fn several_keys_need_a_fingerprint_key_and_it_is_never_echoed() {
    let two_keys = format!(
        "[[encryption.keys]]\nid = \"old\"\nkey = \"{KEY}\"\n[[encryption.keys]]\nid = \"new\"\nkey = \"{KEY}\"\n"
    );
    let (_dir, path) = file(&two_keys);
    let errors = Settings::load(Some(&path), []).unwrap_err().to_string();
    assert!(errors.contains("encryption.fingerprint_key: required with several encryption keys"), "{errors}");
    assert!(errors.contains("docs/key-rotation.md"), "the message points at the procedure: {errors}");

    let (_dir, path) = file(&format!("{two_keys}[encryption]\nfingerprint_key = \"c2hvcnQtYnV0LXNlY3JldA==\"\n"));
    let errors = Settings::load(Some(&path), []).unwrap_err().to_string();
    assert!(errors.contains("encryption.fingerprint_key: must be 32 bytes"), "{errors}");
    assert!(!errors.contains("c2hvcnQtYnV0LXNlY3JldA"), "never echo a key value:\n{errors}");

    let dir = tempfile::tempdir().unwrap();
    let pin = dir.path().join("fingerprint.key");
    std::fs::write(&pin, format!("{KEY}\n")).unwrap();
    let (_dir, path) = file(&format!("{two_keys}[encryption]\nfingerprint_key_file = \"{}\"\n", pin.display()));
    let Settings { encryption: EncryptionSettings::Keys(ring), .. } = Settings::load(Some(&path), []).unwrap() else {
        panic!("keys configured")
    };
    assert_eq!(ring.active_id(), "old", "the first key seals unless active_key says otherwise");
}

#[test]
fn a_fingerprint_key_without_an_encryption_key_is_refused() {
    let errors = Settings::load(None, env(&[("CREDBROKER__ENCRYPTION__FINGERPRINT_KEY", KEY)])).unwrap_err();
    assert!(errors.to_string().contains("encryption.fingerprint_key: only with an encryption key"), "{errors}");
}

#[test]
fn the_timing_assumption_of_the_refresh_argument_is_enforced() {
    // 2 × 10 s lease + 30 s request timeout = 50 s: 40 s leaves a paused holder too little.
    let errors = Settings::load(None, env(&[("CREDBROKER__STORE__RECONCILE_AFTER", "40s")])).unwrap_err();
    let text = errors.to_string();
    assert!(text.contains("store.reconcile_after") && text.contains("2 × store.lease_ttl"), "{text}");
    let ok = Settings::load(
        None,
        env(&[
            ("CREDBROKER__STORE__RECONCILE_AFTER", "5s"),
            ("CREDBROKER__STORE__LEASE_TTL", "1s"),
            ("CREDBROKER__UPSTREAM__REQUEST_TIMEOUT", "2s"),
        ]),
    );
    assert!(ok.is_ok(), "5 s ≥ 2 × 1 s + 2 s");
}

#[test]
fn the_journal_horizon_must_outlive_every_refresh_token() {
    let errors = Settings::load(
        None,
        env(&[
            ("CREDBROKER__REFRESH__JOURNAL_HORIZON", "30d"),
            ("CREDBROKER__PROVIDERS__PASSOLUTION__REFRESH_TOKEN_LIFETIME", "90d"),
        ]),
    )
    .unwrap_err();
    let text = errors.to_string();
    assert!(text.contains("refresh.journal_horizon") && text.contains("passolution"), "{text}");
    let settings = Settings::load(
        None,
        env(&[
            ("CREDBROKER__REFRESH__JOURNAL_HORIZON", "30d"),
            ("CREDBROKER__PROVIDERS__PASSOLUTION__REFRESH_TOKEN_LIFETIME", "14d"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.refresh.journal_horizon.as_secs(), 30 * 24 * 3600);
}

#[test]
fn rejected_statuses_are_4xx_from_a_file_or_the_environment() {
    let settings =
        Settings::load(None, env(&[("CREDBROKER__PROVIDERS__PASSOLUTION__REJECTED_STATUSES", "401, 403")])).unwrap();
    let passolution = settings.providers.iter().find(|p| p.name.as_str() == "passolution").unwrap();
    assert_eq!(passolution.rejected_statuses, [401, 403]);
    assert!(
        settings.providers.iter().filter(|p| p.name.as_str() != "passolution").all(|p| p.rejected_statuses == [401])
    );
    let (_dir, path) = file("[[providers]]\nname = \"b\"\nkind = \"bro\"\nrejected_statuses = [401, 503]\n");
    let errors = Settings::load(Some(&path), []).unwrap_err();
    assert!(errors.to_string().contains("providers[0].rejected_statuses"), "{errors}");
    let (_dir, path) = file("[[providers]]\nname = \"b\"\nkind = \"bro\"\nprobe_path = \"x\"\n");
    let errors = Settings::load(Some(&path), []).unwrap_err();
    assert!(errors.to_string().contains("providers[0].probe_path: not used by kind bro"), "{errors}");
}

#[test]
fn a_non_loopback_listener_needs_tls_and_a_policy_unless_allowed_insecure() {
    let errors = Settings::load(None, env(&[("CREDBROKER__SERVER__LISTEN", "0.0.0.0:6000")])).unwrap_err().to_string();
    assert!(errors.contains("server.listen") && errors.contains("[server.tls]"), "{errors}");
    assert!(errors.contains("[[policy]]") && errors.contains("server.allow_insecure"), "{errors}");
    let (_dir, path) = file(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"0.0.0.0:6001\"\n\
         [[policy]]\ncallers = [\"*\"]\nrpcs = [\"*\"]\nproviders = [\"*\"]\nsubjects = [\"*\"]\n",
    );
    let errors = Settings::load(Some(&path), []).unwrap_err().to_string();
    assert!(errors.contains("[server.tls]") && !errors.contains("[[policy]]"), "the admin listener counts: {errors}");
}

#[test]
fn policy_problems_name_their_rule_and_key() {
    let (_dir, path) = file(
        "[[policy]]\ncallers = [\"a[\"]\nrpcs = [\"GetAuthorisation\"]\nproviders = [\"*\"]\nsubjects = [\"\"]\n\
         rate_per_second = 0\n",
    );
    let errors = Settings::load(Some(&path), []).unwrap_err().to_string();
    for key in ["policy[0].callers", "policy[0].rpcs: \"GetAuthorisation\"", "policy[0].rate_per_second"] {
        assert!(errors.contains(key), "{key}: {errors}");
    }
}

#[test]
fn connection_limits_have_defaults_and_are_configurable() {
    let settings = Settings::embedded_default();
    assert_eq!(settings.server.max_concurrent_streams, 256);
    assert_eq!(settings.server.keepalive_interval, std::time::Duration::from_secs(30));
    assert!(settings.server.reflection && !settings.server.allow_insecure && settings.server.tls.is_none());
    let settings = Settings::load(
        None,
        env(&[
            ("CREDBROKER__SERVER__MAX_CONCURRENT_STREAMS", "8"),
            ("CREDBROKER__SERVER__KEEPALIVE_TIMEOUT", "3s"),
            ("CREDBROKER__SERVER__REFLECTION", "false"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.server.max_concurrent_streams, 8);
    assert_eq!(settings.server.keepalive_timeout, std::time::Duration::from_secs(3));
    assert!(!settings.server.reflection);
    let errors = Settings::load(None, env(&[("CREDBROKER__SERVER__MAX_CONCURRENT_STREAMS", "0")])).unwrap_err();
    assert!(errors.to_string().contains("server.max_concurrent_streams"), "{errors}");
}
/// Environment values are strings: numeric provider keys must still read as numbers.
#[test]
fn numeric_provider_keys_come_from_the_environment() {
    let settings = Settings::load(
        None,
        env(&[
            ("CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_BUDGET_PER_MINUTE", "60"),
            ("CREDBROKER__PROVIDERS__PASSOLUTION__REJECTED_STATUSES", "403"),
            // A string that looks like a number stays a string where a string is wanted.
            ("CREDBROKER__PROVIDERS__PASSOLUTION__CLIENT_SECRET", "12345"),
        ]),
    )
    .unwrap();
    let passolution = settings.providers.iter().find(|p| p.name.as_str() == "passolution").unwrap();
    assert_eq!(passolution.token_budget_per_minute(), Some(60));
    assert_eq!(passolution.rejected_statuses, [403]);
    let ProviderSettings::Passolution(p) = &passolution.settings else { panic!() };
    assert_eq!(p.client_secret.expose(), "12345");
    let errors = Settings::load(None, env(&[("CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_BUDGET_PER_MINUTE", "lots")]))
        .unwrap_err();
    assert!(errors.to_string().contains("token_budget_per_minute"), "{errors}");
}

#[path = "store_tests.rs"]
mod store_tests;

#[test]
fn server_cores_default_to_the_usable_cpus_and_are_bounded() {
    let usable = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(Settings::embedded_default().server.cores, usable);
    let cores = |n: &str| Settings::load(None, env(&[("CREDBROKER__SERVER__CORES", n)])).map(|s| s.server.cores);
    assert_eq!(cores("0").unwrap(), 0, "0: the shared runtime");
    assert_eq!(cores("3").unwrap(), 3);
    let errors = cores("100000").unwrap_err();
    assert!(errors.0.iter().any(|e| e.starts_with("server.cores: at most")), "{errors}");
    assert!(cores("-1").is_err());
}

/// Each provider kind takes only its own keys: serde refuses the others, all of them at once,
/// naming the nearest key the kind does take, and the variable when one set it.
#[test]
fn a_key_its_provider_kind_does_not_take_is_refused() {
    let (_dir, path) = file(
        "[[providers]]\nname = \"p\"\nkind = \"passolution\"\nclient_id = \"c\"\nclient_secert = \"s\"\n\
         api_key = \"k\"\n[[providers]]\nname = \"x\"\nkind = \"pas\"\n[[providers]]\nkind = \"bro\"\n",
    );
    let errors = Settings::load(Some(&path), env(&[("CREDBROKER__PROVIDERS__P__TOKEN_PATH", "t/")])).unwrap_err();
    let text = errors.to_string();
    for expected in [
        "providers[0].client_secert: not used by kind passolution; did you mean `client_secret`?",
        "providers[0].api_key: not used by kind passolution (it takes name, kind, api_base_url, token_url",
        "providers[0].token_path (from CREDBROKER__PROVIDERS__P__TOKEN_PATH): not used by kind passolution",
        "providers[1].kind: \"pas\" is not one of pass, bro, passolution, jouwomgeving",
        "providers[2].name: required",
    ] {
        assert!(text.contains(expected), "{expected}\nmissing from:\n{text}");
    }
    // The keys of a kind are accepted: the same file without the strangers loads.
    let (_dir, path) = file(
        "[[providers]]\nname = \"p\"\nkind = \"passolution\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
         token_budget_per_minute = 10\nrefresh_token_lifetime = \"30d\"\n",
    );
    let settings = Settings::load(Some(&path), env(&[("CREDBROKER__PROVIDERS__P__TOKEN_BUDGET_PER_MINUTE", "7")]));
    assert_eq!(settings.unwrap().providers[0].token_budget_per_minute(), Some(7));
}

/// The misspelled `[audti]` an operator believes is auditing every hand-out: refused, naming
/// the table meant.
#[test]
fn an_unknown_table_or_key_is_refused_at_every_level_naming_the_nearest() {
    let (_dir, path) = file(
        "listen = 1\n[audti]\npath = \"-\"\nfail_closed = true\n[servr]\nlisten = \"x\"\n[server]\nlistne = \"x\"\n\
         [server.tls]\ncert_fil = \"a\"\nkey_file = \"b\"\n[store.sentinel]\nmaster = \"m\"\naddresses = []\n\
         [[policy]]\ncaller = [\"*\"]\nrpcs = []\nproviders = []\nsubjects = []\n[auth.jwt]\nissuer = \"i\"\n\
         audience = \"a\"\njwks_uri = \"u\"\n[[encryption.keys]]\nid = \"k\"\nkey_fil = \"f\"\n\
         [telemetry]\nxyzzy = 1\n",
    );
    let text = Settings::load(Some(&path), []).unwrap_err().to_string();
    for expected in [
        "unknown table `audti`; did you mean `audit`?",
        "unknown key `listen` (known here: server, store,",
        "unknown table `servr`; did you mean `server`?",
        "unknown key `server.listne`; did you mean `server.listen`?",
        "unknown key `server.tls.cert_fil`; did you mean `server.tls.cert_file`?",
        "unknown key `store.sentinel.master`; did you mean `store.sentinel.master_name`?",
        "unknown key `policy.caller`; did you mean `policy.callers`?",
        "unknown key `auth.jwt.jwks_uri`; did you mean `auth.jwt.jwks_url`?",
        "unknown key `encryption.keys.key_fil`; did you mean `encryption.keys.key_file`?",
        "unknown key `telemetry.xyzzy` (known here: log_format, log_filter, service_name)",
    ] {
        assert!(text.contains(expected), "{expected}\nmissing from:\n{text}");
    }
}

/// A variable that maps to no key is refused, naming the variable and the key meant; nested
/// tables are reached through the variables too.
#[test]
fn an_unknown_variable_is_refused_and_nested_tables_are_reachable() {
    let load = |vars: &[(&str, &str)]| Settings::load(None, env(vars));
    let text = load(&[("CREDBROKER__SERVER__LISTNE", "0.0.0.0:1"), ("CREDBROKER__AUDTI__FAIL_CLOSED", "true")])
        .unwrap_err()
        .to_string();
    for expected in [
        "environment: CREDBROKER__SERVER__LISTNE: unknown key `server.listne`; did you mean `server.listen`?",
        "environment: CREDBROKER__AUDTI__FAIL_CLOSED: unknown table `audti`; did you mean `audit`?",
    ] {
        assert!(text.contains(expected), "{expected}\nmissing from:\n{text}");
    }
    let text = load(&[("CREDBROKER__SERVER__TLS__CERT_FILE", "/nonexistent/tls.crt")]).unwrap_err().to_string();
    assert!(text.contains("server.tls: missing field `key_file`") && !text.contains("unknown"), "{text}");
    let text = load(&[("CREDBROKER__PROVIDERS__PASS", "x")]).unwrap_err().to_string();
    assert!(text.contains("CREDBROKER__PROVIDERS__<NAME>__<KEY>"), "{text}");
    let settings = load(&[("CREDBROKER__AUDIT__PATH", "-"), ("CREDBROKER__AUTH__JWT__LEEWAY", "1s")]);
    assert!(settings.is_err_and(|e| e.to_string().contains("auth.jwt")), "auth.jwt read, incomplete");
    assert!(load(&[("CREDBROKER__AUDIT__PATH", "-")]).unwrap().security.audit.is_some());
}

#[path = "reference_tests.rs"]
mod reference_tests;

//! `credbroker admin …` and `credbroker token …`, run as the real binary in a subprocess
//! against a broker wired to the fake upstream.

use crate::harness::{Broker, bro_token, login};
use base64::Engine;
use serde_json::Value;
use std::process::{Output, Stdio};
use tokio::io::AsyncWriteExt;

const BRO_USER: &str = "0dce6fc98256|123456789|1234";
const BRO_CODE: &str = "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d0f";

/// Runs `credbroker ARGS` with `stdin` piped in and `env` set; never hangs past 60 s.
async fn credbroker(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_credbroker"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("CREDBROKER_TARGET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the credbroker binary runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command finishes")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&output.stdout)))
}

fn exit_code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

#[tokio::test]
async fn cli_admin_put_status_list_token_delete_round_trip() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().add_bro_token(BRO_USER, BRO_CODE);
    let target = format!("http://{}", app.addr);
    let t = ["--target", target.as_str()];

    let put = credbroker(
        &[&["admin", "put", "bro", "org-1", "bro-token", "--username", BRO_USER], &t[..]].concat(),
        &format!("{BRO_CODE}\n"),
        &[],
    )
    .await;
    assert_eq!(exit_code(&put), 0, "{}", text(&put.stderr));
    assert!(text(&put.stdout).starts_with("stored bro/org-1  ACTIVE  version "), "{}", text(&put.stdout));

    let status = credbroker(&[&["admin", "status", "bro", "org-1", "--json"], &t[..]].concat(), "", &[]).await;
    assert_eq!(exit_code(&status), 0, "{}", text(&status.stderr));
    let status = json(&status);
    assert_eq!((status["provider"].as_str(), status["subject"].as_str()), (Some("bro"), Some("org-1")));
    assert_eq!(status["state"], "ACTIVE");

    app.put("bro", "org-2", bro_token(BRO_USER, BRO_CODE)).await.unwrap();
    let list = credbroker(&[&["admin", "list", "bro", "--page-size", "1", "--json"], &t[..]].concat(), "", &[]).await;
    let mut subjects: Vec<_> =
        json(&list).as_array().unwrap().iter().map(|c| c["subject"].as_str().unwrap().to_owned()).collect();
    subjects.sort();
    assert_eq!(subjects, ["org-1", "org-2"], "every page is followed");

    let token = credbroker(&[&["token", "bro", "org-1", "--json"], &t[..]].concat(), "", &[]).await;
    assert_eq!(exit_code(&token), 0, "{}", text(&token.stderr));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{BRO_USER}:{BRO_CODE}"));
    assert_eq!(json(&token)["headers"][0]["value"], format!("Basic {basic}"));
    assert!(text(&token.stderr).is_empty(), "no terminal, no warning: {}", text(&token.stderr));
    let human = credbroker(&[&["token", "bro", "org-1"], &t[..]].concat(), "", &[]).await;
    assert!(text(&human.stdout).starts_with(&format!("authorization: Basic {basic}\n# expires never, fingerprint ")));

    let delete = credbroker(&[&["admin", "delete", "bro", "org-1"], &t[..]].concat(), "", &[]).await;
    assert_eq!((exit_code(&delete), text(&delete.stdout)), (0, "deleted bro/org-1\n".to_owned()));
    let gone = credbroker(&[&["admin", "status", "bro", "org-1"], &t[..]].concat(), "", &[]).await;
    assert_eq!(exit_code(&gone), 3, "NOT_FOUND → 3: {}", text(&gone.stderr));
    assert!(text(&gone.stderr).starts_with("credbroker: NOT_FOUND: "), "{}", text(&gone.stderr));
}

/// `credbroker admin put PROVIDER SUBJECT username-password --username USER FROM...`.
async fn put_login(target: &str, credential: [&str; 3], from: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let [provider, subject, username] = credential;
    let base = ["admin", "--target", target, "put", provider, subject, "username-password", "--username", username];
    credbroker(&[&base[..], from].concat(), stdin, env).await
}

#[tokio::test]
async fn cli_secrets_come_from_env_file_or_stdin_and_never_show() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().add_pass_user("jan", "pw-from-env-8431", true);
    app.fake().add_jouwomgeving_user("app", "pw-from-file-5120");
    let target = format!("http://{}", app.addr);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "pw-from-file-5120\n").unwrap();
    let jan = ["pass", "jan", "jan"];
    let acme = ["jouwomgeving-demo", "acme", "app"];
    let from_env = put_login(&target, jan, &["--secret-env", "JAN_PW"], "", &[("JAN_PW", "pw-from-env-8431")]).await;
    assert_eq!(exit_code(&from_env), 0, "{}", text(&from_env.stderr));
    let empty_stdin = put_login(&target, acme, &[], "", &[]).await;
    assert_eq!(exit_code(&empty_stdin), 2, "no secret in stdin is a usage error: {}", text(&empty_stdin.stderr));
    assert!(text(&empty_stdin.stderr).contains("no secret in standard input"));
    let no_path = put_login(&target, acme, &["--secret-file"], "", &[]).await;
    assert_eq!(exit_code(&no_path), 2, "--secret-file needs a path");
    let from_file = put_login(&target, acme, &["--secret-file", file.to_str().unwrap()], "", &[]).await;
    assert_eq!(exit_code(&from_file), 0, "{}", text(&from_file.stderr));
    let from_stdin = put_login(&target, jan, &[], "pw-from-env-8431\n", &[]).await;
    assert_eq!(exit_code(&from_stdin), 0, "{}", text(&from_stdin.stderr));
    // The secrets reached the broker: both logins work.
    assert!(app.get("pass", "jan").await.is_ok());
    assert!(app.get("jouwomgeving-demo", "acme").await.is_ok());
    // No argument takes a secret's value.
    let argv = put_login(&target, jan, &["--password", "x"], "", &[]).await;
    assert_eq!(exit_code(&argv), 2);
    for output in [&from_env, &empty_stdin, &no_path, &from_file, &from_stdin, &argv] {
        for stream in [&output.stdout, &output.stderr] {
            assert!(!text(stream).contains("pw-from"), "a secret was printed: {}", text(stream));
        }
    }
}

#[tokio::test]
async fn cli_exit_codes_follow_the_grpc_status() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().add_pass_user("piet", "right", true);
    app.put("pass", "piet", login("piet", "wrong")).await.unwrap();
    let target = format!("http://{}", app.addr);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let cases: [(&[&str], &str, i32, &str); 5] = [
        (&["token", "no-such-provider", "x", "--target", &target], "", 3, "NOT_FOUND"),
        (&["admin", "put", "bro", "org-1", "client-number", "--target", &target], "100001", 4, "INVALID_ARGUMENT"),
        (&["token", "pass", "piet", "--target", &target], "", 5, "FAILED_PRECONDITION"),
        (&["admin", "status", "pass", "piet", "--target", &closed, "--timeout", "5s"], "", 7, "UNAVAILABLE"),
        (
            &["admin", "put", "pass", "x", "client-number", "--secret-env", "UNSET_VAR_7", "--target", &target],
            "",
            2,
            "USAGE",
        ),
    ];
    for (args, stdin, expected, name) in cases {
        let output = credbroker(&[args, &["--json"]].concat(), stdin, &[]).await;
        assert_eq!(exit_code(&output), expected, "{args:?}: {}", text(&output.stderr));
        let error: Value =
            serde_json::from_slice(&output.stderr).unwrap_or_else(|_| panic!("{}", text(&output.stderr)));
        assert_eq!(error["error"]["code"], name, "{error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "the broker's message is kept");
    }
}

#[tokio::test]
async fn cli_refuses_tls_options_that_cannot_work() {
    let cases: [&[&str]; 3] = [
        &["admin", "status", "bro", "x", "--target", "https://127.0.0.1:1"],
        &["admin", "status", "bro", "x", "--target", "http://127.0.0.1:1", "--ca-file", "/nonexistent"],
        &["admin", "status", "bro", "x", "--target", "https://127.0.0.1:1", "--ca-file", "/nonexistent/ca.pem"],
    ];
    for args in cases {
        let output = credbroker(args, "", &[]).await;
        assert_eq!(exit_code(&output), 2, "{args:?}: {}", text(&output.stderr));
    }
}

/// The test certificates shared with the client libraries' suites.
fn tls_file(name: &str) -> String {
    format!("{}/clients/testdata/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A configuration file in `dir` with `[server.tls]`: client certificates from the test CA
/// required.
fn mtls_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("credbroker.toml");
    let (cert, key, ca) = (tls_file("server.pem"), tls_file("server.key"), tls_file("ca.pem"));
    let text = format!(
        "[server.tls]\ncert_file = {cert:?}\nkey_file = {key:?}\nclient_ca_file = {ca:?}\n\
         [[providers]]\nname = \"bro\"\nkind = \"bro\"\napi_base_url = \"http://127.0.0.1:9/bro/api/v2/\"\n"
    );
    std::fs::write(&config, text).unwrap();
    config
}

#[tokio::test]
async fn cli_speaks_mtls_with_a_ca_file_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::new().config_file(mtls_config(dir.path())).start().await;
    let target = format!("https://{}", broker.addr);
    let (ca, cert, key) = (tls_file("ca.pem"), tls_file("client.pem"), tls_file("client.key"));
    let base = ["admin", "list", "bro", "--json", "--target", target.as_str(), "--ca-file", ca.as_str()];
    let mtls = credbroker(&[&base[..], &["--cert-file", &cert, "--key-file", &key]].concat(), "", &[]).await;
    assert_eq!(exit_code(&mtls), 0, "{}", text(&mtls.stderr));
    assert_eq!(json(&mtls), serde_json::json!([]));
    // The server requires a client certificate: without one the handshake fails.
    // (TLS 1.3 refuses the missing certificate after the handshake: the call sees the
    // connection torn down, CANCELLED or UNAVAILABLE depending on timing.)
    let no_cert = credbroker(&base, "", &[]).await;
    assert!([1, 7].contains(&exit_code(&no_cert)), "{}", text(&no_cert.stderr));
    assert!(text(&no_cert.stderr).contains("\"code\""), "{}", text(&no_cert.stderr));
    // A CA that did not sign the server's certificate is refused.
    let wrong_ca = tls_file("client.pem");
    let untrusted =
        ["admin", "list", "bro", "--target", &target, "--ca-file", &wrong_ca, "--cert-file", &cert, "--key-file", &key];
    assert_eq!(exit_code(&credbroker(&untrusted, "", &[]).await), 7);
}

#[tokio::test]
async fn cli_rewrap_walks_every_page_and_refuses_a_replica_with_another_key() {
    let app = Broker::new().fake().quick_renewals().start().await;
    for subject in ["org-1", "org-2", "org-3"] {
        app.put("bro", subject, bro_token(BRO_USER, BRO_CODE)).await.unwrap();
    }
    let target = format!("http://{}", app.addr);
    let t = ["--target", target.as_str()];
    // The embedded default seals with its ephemeral key, id "ephemeral": everything is current.
    let args = ["admin", "rewrap", "--expect-active-key", "ephemeral", "--batch", "1", "--json"];
    let run = credbroker(&[&args[..], &t[..]].concat(), "", &[]).await;
    assert_eq!(exit_code(&run), 0, "{}", text(&run.stderr));
    let totals = json(&run);
    assert_eq!((totals["seen"].as_u64(), totals["already_current"].as_u64()), (Some(3), Some(3)), "{totals}");
    assert_eq!(totals["problems"].as_array().map(Vec::len), Some(0));

    let human = credbroker(&[&args[..6], &t[..]].concat(), "", &[]).await;
    let out = text(&human.stdout);
    assert!(out.lines().filter(|l| l.starts_with("seen ")).count() >= 3, "a line per call, one record each: {out}");
    assert!(out.contains("rewrap complete: seen 3"), "{out}");

    let other = ["admin", "rewrap", "--expect-active-key", "2027-01"];
    let refused = credbroker(&[&other[..], &t[..]].concat(), "", &[]).await;
    assert_eq!(exit_code(&refused), 5, "FAILED_PRECONDITION → 5: {}", text(&refused.stderr));
}

//! Graceful shutdown: in-flight RPCs finish; every background task ends; the binary exits 0
//! on SIGTERM.

use crate::harness::{
    Broker, Clients, Serve, StoreKind, TEST_KEY, TestRedis, bro_code, bro_token, eventually, random_prefix, within,
};
use credbroker::config::Settings;
use credbroker::startup::Application;
use std::time::Duration;

/// Pauses Redis' writes, starts an RPC that must wait for them, signals shutdown while the RPC
/// is provably in flight (Redis shows its write blocked): the RPC still completes once Redis
/// resumes, and the server then stops.
#[tokio::test]
async fn in_flight_rpcs_finish_on_shutdown() {
    let mut app = Broker::on(StoreKind::Redis).env("CREDBROKER__STORE__RESPONSE_TIMEOUT", "30s").start().await;
    app.put("bro", "warmup", bro_token("u|0", &bro_code("c0"))).await.unwrap(); // connects the store
    let mut conn = app.redis().connection().await;
    // Reads still answer (the test's own CLIENT LIST too); every write waits.
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(30_000).arg("WRITE").query_async(&mut conn).await.unwrap();
    let client = app.admin.clone();
    let rpc = tokio::spawn(async move {
        let mut client = client;
        let request = credbroker::grpc::pb::PutCredentialRequest {
            provider: "bro".into(),
            subject: "in-flight".into(),
            secret: Some(bro_token("u|1", &bro_code("c1"))),
        };
        client.put_credential(request).await
    });
    // The broker's write waiting inside Redis (a blocked client): the RPC is in flight.
    let blocked = || async {
        let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut conn.clone()).await.unwrap();
        if clients.lines().any(|line| line.split(' ').any(|field| field == "flags=b")) { Ok(()) } else { Err(clients) }
    };
    eventually("the RPC reaches Redis", Duration::from_secs(20), blocked).await;
    assert!(!rpc.is_finished(), "the RPC must still be waiting on the paused Redis");
    app.begin_shutdown();
    let refused = || async { tokio::net::TcpStream::connect(app.addr).await.is_err() };
    eventually("shutting down, the listener refuses new connections", Duration::from_secs(20), refused).await;
    assert!(!rpc.is_finished(), "still in flight while the server shuts down");
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query_async(&mut conn).await.unwrap();
    let response = rpc.await.unwrap().expect("the in-flight RPC completes during shutdown");
    assert_eq!(response.into_inner().version, 1);
    within("the server's stop", Duration::from_secs(20), app.stopped()).await.unwrap();
}

/// Redis (the change feed's relay, the readiness watch), an audit log (its writer), metrics
/// (the listener and the credential count): once `run_until_stopped` returns, every task the
/// application started has ended — and the audit writer wrote every decision made before.
#[tokio::test]
async fn shutdown_ends_every_background_task_and_writes_every_audit_line() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let env = [
        ("CREDBROKER__SERVER__LISTEN", "127.0.0.1:0"),
        ("CREDBROKER__STORE__REDIS_URL", redis.url.as_str()),
        ("CREDBROKER__STORE__KEY_PREFIX", &random_prefix()),
        ("CREDBROKER__ENCRYPTION__KEY", TEST_KEY),
        ("CREDBROKER__AUDIT__PATH", audit.to_str().unwrap()),
        ("CREDBROKER__METRICS__LISTEN", "127.0.0.1:0"),
    ];
    let settings = Settings::load(None, env.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap();
    let application = Application::build(settings).await.unwrap();
    let (tasks, addr) = (application.tasks(), application.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until_stopped(async move { drop(stopped.await) }));
    let clients = Clients::connect(addr).await;
    for n in 0..20 {
        clients.put("bro", &format!("s{n}"), bro_token("u|0", &bro_code("c0"))).await.unwrap();
    }
    assert!(tasks.len() >= 6, "relay, coherence, scheduler, audit writer, sweep, metrics, …: {}", tasks.len());
    stop.send(()).unwrap();
    within("the server's stop", Duration::from_secs(30), server).await.unwrap().unwrap();
    assert!(tasks.is_closed() && tasks.is_empty(), "{} background tasks outlived the shutdown", tasks.len());
    let lines = std::fs::read_to_string(&audit).unwrap().lines().count();
    assert_eq!(lines, 20, "one audit line per decision, all written before the process ends");
}

#[tokio::test]
async fn binary_exits_cleanly_on_sigterm() {
    let (status, _) = Serve::new().start().await.finish().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn bad_configuration_exits_with_ex_config_naming_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"nowhere\"\n[encryption]\nkey = \"c2hvcnQ=\"\n[[providers]]\nname = \"x\"\nkind = \"weird\"\n").unwrap();
    let (status, stderr) = Serve::as_configured(None).config_file(&path).fails().await;
    assert_eq!(status.code(), Some(78));
    for key in ["server.listen", "encryption.key", "providers[0].kind"] {
        assert!(stderr.contains(key), "{key} not named in:\n{stderr}");
    }
    assert!(!stderr.contains("c2hvcnQ="), "the key value must not be echoed");
}

/// The misspelled `[audti]` of an operator who believes every hand-out is audited, and a
/// variable that sets nothing: `check-config` refuses both, naming what was meant.
#[tokio::test]
async fn check_config_refuses_unknown_tables_and_variables_naming_the_nearest() {
    let audit = |table: &str| format!("[{table}]\npath = \"-\"\nfail_closed = true\n");
    let (status, text) =
        Serve::check_config().config(&audit("audti")).env("CREDBROKER__SERVER__LISTNE", "127.0.0.1:1").exits().await;
    assert_eq!(status.code(), Some(78), "{text}");
    assert!(text.contains("unknown table `audti`; did you mean `audit`?"), "{text}");
    let variable =
        "environment: CREDBROKER__SERVER__LISTNE: unknown key `server.listne`; did you mean `server.listen`?";
    assert!(text.contains(variable), "{text}");
    let (status, text) = Serve::check_config().config(&audit("audit")).exits().await;
    assert!(status.success(), "spelled right, the same file passes: {text}");
}

//! Graceful shutdown: in-flight RPCs finish; the binary exits 0 on SIGTERM.

use crate::helpers::{StoreKind, bro_code, bro_token, spawn_app_with};
use std::process::Stdio;
use std::time::Duration;

/// Pauses Redis' writes, starts an RPC that must wait for them, signals shutdown while the RPC
/// is provably in flight (Redis shows its write blocked): the RPC still completes once Redis
/// resumes, and the server then stops.
#[tokio::test]
async fn in_flight_rpcs_finish_on_shutdown() {
    let mut app = spawn_app_with(StoreKind::Redis, &[("CREDBROKER__STORE__RESPONSE_TIMEOUT", "30s")]).await;
    app.put("bro", "warmup", bro_token("u|0", &bro_code("c0"))).await.unwrap(); // connects the store
    let mut conn = app.redis.as_ref().unwrap().connection().await;
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
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut conn).await.unwrap();
        if clients.lines().any(|line| line.split(' ').any(|field| field == "flags=b")) {
            break; // the broker's write is waiting inside Redis: the RPC is in flight
        }
        assert!(std::time::Instant::now() < deadline, "the RPC never reached Redis:\n{clients}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!rpc.is_finished(), "the RPC must still be waiting on the paused Redis");
    app.begin_shutdown();
    // Shutting down: the listener is closed, new connections are refused.
    while tokio::net::TcpStream::connect(app.addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "the server never began shutting down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!rpc.is_finished(), "still in flight while the server shuts down");
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query_async(&mut conn).await.unwrap();
    let response = rpc.await.unwrap().expect("the in-flight RPC completes during shutdown");
    assert_eq!(response.into_inner().version, 1);
    let server = app.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(20), server).await.expect("server stops").unwrap().unwrap();
}

#[tokio::test]
async fn binary_exits_cleanly_on_sigterm() {
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_credbroker"))
        .arg("serve")
        .env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id().unwrap() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let status =
        tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("exits after SIGTERM").unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn bad_configuration_exits_with_ex_config_naming_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"nowhere\"\n[encryption]\nkey = \"c2hvcnQ=\"\n[[providers]]\nname = \"x\"\nkind = \"weird\"\n").unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_credbroker"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in ["server.listen", "encryption.key", "providers[0].kind"] {
        assert!(stderr.contains(key), "{key} not named in:\n{stderr}");
    }
    assert!(!stderr.contains("c2hvcnQ="), "the key value must not be echoed");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on port {port} after 10 s");
}

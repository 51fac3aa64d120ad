//! Safe by default: a network-reachable broker without TLS or policy does not start, unless
//! told so on purpose (and then says so at every start).

use crate::shutdown::{free_port, wait_for_port};
use std::process::Stdio;

async fn serve(config: &str) -> (tokio::process::Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credbroker.toml");
    std::fs::write(&path, config).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_credbroker"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::fs::File::create(dir.path().join("out.log")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err.log")).unwrap())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, dir)
}

fn output(dir: &tempfile::TempDir) -> String {
    ["out.log", "err.log"].iter().map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default()).collect()
}

#[tokio::test]
async fn an_exposed_listener_without_tls_and_policy_exits_78_naming_the_keys() {
    let port = free_port();
    let (mut child, dir) = serve(&format!("[server]\nlisten = \"0.0.0.0:{port}\"\n")).await;
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(78));
    let said = output(&dir);
    for key in ["server.listen", "[server.tls]", "[[policy]]", "server.allow_insecure"] {
        assert!(said.contains(key), "{key} not named: {said}");
    }
}

#[tokio::test]
async fn allow_insecure_starts_with_a_warning_and_the_default_says_it_is_unauthenticated() {
    let port = free_port();
    let (_child, dir) = serve(&format!("[server]\nlisten = \"0.0.0.0:{port}\"\nallow_insecure = true\n")).await;
    wait_for_port(port).await;
    wait_for_line(&dir, "allow_insecure = true").await;

    let port = free_port();
    let (_child, dir) = serve(&format!("[server]\nlisten = \"127.0.0.1:{port}\"\n")).await;
    wait_for_port(port).await;
    wait_for_line(&dir, "unauthenticated").await;
}

async fn wait_for_line(dir: &tempfile::TempDir, text: &str) {
    for _ in 0..200 {
        if output(dir).contains(text) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{text:?} never logged: {}", output(dir));
}

#[tokio::test]
async fn plaintext_clients_that_never_speak_neither_block_others_nor_stay_past_the_first_byte_timeout() {
    use tokio::io::AsyncReadExt;
    let port = free_port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nfirst_byte_timeout = \"1s\"\n\
         [[providers]]\nname = \"bro\"\nkind = \"bro\"\napi_base_url = \"http://127.0.0.1:9/bro/api/v2/\"\n"
    );
    let (_child, _dir) = serve(&config).await;
    wait_for_port(port).await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await;
    assert!(super::support::can_call(channel).await, "served while others stay silent");
    for mut socket in silent {
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(std::time::Duration::from_secs(20), socket.read(&mut byte)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the broker closes a silent connection: {closed:?}");
    }
}

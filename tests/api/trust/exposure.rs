//! Safe by default: a network-reachable broker without TLS or policy does not start, unless
//! told so on purpose (and then says so at every start).

use crate::harness::{Serve, free_port};

#[tokio::test]
async fn an_exposed_listener_without_tls_and_policy_exits_78_naming_the_keys() {
    let port = free_port();
    let (status, said) =
        Serve::as_configured(None).config(&format!("[server]\nlisten = \"0.0.0.0:{port}\"\n")).fails().await;
    assert_eq!(status.code(), Some(78));
    for key in ["server.listen", "[server.tls]", "[[policy]]", "server.allow_insecure"] {
        assert!(said.contains(key), "{key} not named: {said}");
    }
}

#[tokio::test]
async fn allow_insecure_starts_with_a_warning_and_the_default_says_it_is_unauthenticated() {
    let port = free_port();
    let exposed = format!("[server]\nlisten = \"0.0.0.0:{port}\"\nallow_insecure = true\n");
    let broker = Serve::as_configured(Some(port)).config(&exposed).log_to_files().start().await;
    broker.logged("allow_insecure = true").await;

    let port = free_port();
    let local = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n");
    let broker = Serve::as_configured(Some(port)).config(&local).log_to_files().start().await;
    broker.logged("unauthenticated").await;
}

#[tokio::test]
async fn plaintext_clients_that_never_speak_neither_block_others_nor_stay_past_the_first_byte_timeout() {
    use tokio::io::AsyncReadExt;
    let port = free_port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nfirst_byte_timeout = \"1s\"\n\
         [[providers]]\nname = \"bro\"\nkind = \"bro\"\napi_base_url = \"http://127.0.0.1:9/bro/api/v2/\"\n"
    );
    let _broker = Serve::as_configured(Some(port)).config(&config).start().await;
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

//! Certificate rotation on disk: new handshakes see the new certificate, open connections
//! carry on.

use super::pki::Ca;
use super::support::{BILLING, Broker, POLICY, can_call, get};
use std::time::{Duration, Instant};

#[tokio::test]
async fn replaced_certificate_files_serve_new_handshakes_while_open_connections_continue() {
    let clients = Ca::new("client CA");
    let (old_ca, new_ca) = (Ca::new("server CA 1"), Ca::new("server CA 2"));
    let broker = Broker::start(&old_ca.server(), Some(&clients), POLICY).await;
    let billing = clients.client(BILLING);
    // Trusts only the old server CA: if this connection were dropped, it could not come back.
    let open = broker.channel(&old_ca, Some(&billing)).await.unwrap();
    assert!(can_call(Ok(open.clone())).await);

    // Written as cert-manager would: new files renamed into place (key first, then cert; a
    // reload that sees a mismatched pair keeps the old one).
    let next = new_ca.server();
    for (name, text) in [("server.key", &next.key), ("server.pem", &next.cert)] {
        let staging = broker.path(&format!("{name}.new"));
        std::fs::write(&staging, text).unwrap();
        std::fs::rename(&staging, broker.path(name)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !can_call(broker.channel(&new_ca, Some(&billing)).await).await {
        assert!(Instant::now() < deadline, "new handshakes never presented the new certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!can_call(broker.channel(&old_ca, Some(&billing)).await).await, "new handshakes: only the new certificate");
    let still = get(&open, "bro", "tenant-42/missing").await.unwrap_err();
    assert_eq!(still.code(), tonic::Code::NotFound, "the connection opened before the swap still answers: {still:?}");
    assert!(broker.logs().contains("certificate files changed"));
}

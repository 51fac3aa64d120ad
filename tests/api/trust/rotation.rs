//! Certificate rotation on disk: new handshakes see the new certificate, open connections
//! carry on.

use super::support::{BILLING, POLICY, can_call, clients, tls_broker};
use crate::harness::{Ca, eventually};
use std::time::Duration;

#[tokio::test]
async fn replaced_certificate_files_serve_new_handshakes_while_open_connections_continue() {
    let callers = Ca::new("client CA");
    let (old_ca, new_ca) = (Ca::new("server CA 1"), Ca::new("server CA 2"));
    let broker = tls_broker(&old_ca.server(), Some(&callers), POLICY).start().await;
    let billing = callers.client(BILLING);
    // Trusts only the old server CA: if this connection were dropped, it could not come back.
    let open = broker.tls_channel(&old_ca, Some(&billing)).await.unwrap();
    assert!(can_call(Ok(open.clone())).await);

    // Written as cert-manager would: new files renamed into place (key first, then cert; a
    // reload that sees a mismatched pair keeps the old one).
    let next = new_ca.server();
    for (name, text) in [("server.key", &next.key), ("server.pem", &next.cert)] {
        let staging = broker.path(&format!("{name}.new"));
        std::fs::write(&staging, text).unwrap();
        std::fs::rename(&staging, broker.path(name)).unwrap();
    }
    let presented = || async { can_call(broker.tls_channel(&new_ca, Some(&billing)).await).await };
    eventually("new handshakes present the new certificate", Duration::from_secs(20), presented).await;
    let old = broker.tls_channel(&old_ca, Some(&billing)).await;
    assert!(!can_call(old).await, "new handshakes: only the new certificate");
    let still = clients(Ok(open)).get("bro", "tenant-42/missing").await.unwrap_err();
    assert_eq!(still.code(), tonic::Code::NotFound, "the connection opened before the swap still answers: {still:?}");
    assert!(broker.logs().contains("certificate files changed"));
}

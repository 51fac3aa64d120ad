//! mTLS: handshakes refused without the right certificate; SPIFFE IDs authorized by policy;
//! the audit trail records every decision and never a secret.

use super::pki::Ca;
use super::support::{BILLING, Broker, OPERATOR, POLICY, SALES, WRITER, can_call, get, put_bro};
use credbroker::grpc::pb::{self, credential_admin_client::CredentialAdminClient};
use tonic::Code;

async fn mtls_broker(ca: &Ca, extra: &str) -> Broker {
    let config = format!("[audit]\npath = \"{{dir}}/audit.jsonl\"\nfail_closed = true\n{POLICY}{extra}");
    Broker::start(&ca.server(), Some(ca), &config).await
}

#[tokio::test]
async fn without_a_certificate_from_the_client_ca_the_handshake_is_refused() {
    let ca = Ca::new("credbroker test CA");
    let broker = mtls_broker(&ca, "").await;
    let other = Ca::new("someone else's CA");

    let plaintext = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", broker.port)).unwrap();
    assert!(!can_call(plaintext.connect().await).await, "plaintext to a TLS listener");
    assert!(!can_call(broker.channel(&ca, None).await).await, "no client certificate");
    assert!(!can_call(broker.channel(&ca, Some(&other.client(BILLING))).await).await, "another CA's certificate");
    assert!(!can_call(broker.channel(&ca, Some(&ca.expired_client(BILLING))).await).await, "an expired certificate");
    assert!(can_call(broker.channel(&ca, Some(&ca.client(BILLING))).await).await, "the control: a valid certificate");
}

#[tokio::test]
async fn an_allowed_spiffe_id_gets_the_header_and_an_audit_line_others_are_denied_before_any_lookup() {
    let ca = Ca::new("credbroker test CA");
    let broker = mtls_broker(&ca, "").await;
    let writer = broker.channel(&ca, Some(&ca.client(WRITER))).await.unwrap();
    let billing = broker.channel(&ca, Some(&ca.client(BILLING))).await.unwrap();
    let sales = broker.channel(&ca, Some(&ca.client(SALES))).await.unwrap();
    let code_42 = put_bro(&writer, "tenant-42/a").await.unwrap();
    let code_7 = put_bro(&writer, "tenant-7/b").await.unwrap();

    let served = get(&billing, "bro", "tenant-42/a").await.expect("billing may read tenant-42");
    assert!(served.headers[0].value.starts_with("Basic "));

    // Outside its globs: denied the same way whether the credential exists or not.
    for subject in ["tenant-7/b", "tenant-7/missing"] {
        let denied = get(&billing, "bro", subject).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{subject}: {denied:?}");
        assert!(denied.message().contains(BILLING), "says who was denied: {}", denied.message());
    }
    assert_eq!(get(&sales, "bro", "tenant-42/a").await.unwrap_err().code(), Code::PermissionDenied);
    // Admin RPCs need a rule that names them: billing's rpcs = ["*"] grants none.
    assert_eq!(put_bro(&billing, "tenant-42/new").await.unwrap_err().code(), Code::PermissionDenied);
    let list = pb::ListCredentialsRequest { provider: "bro".into(), page_size: 10, page_token: String::new() };
    let refused = CredentialAdminClient::new(billing.clone()).list_credentials(list.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let listed = CredentialAdminClient::new(writer.clone()).list_credentials(list.clone()).await.unwrap().into_inner();
    assert_eq!(listed.credentials.len(), 2, "the writer's rule covers every subject");
    let operator = broker.channel(&ca, Some(&ca.client(OPERATOR))).await.unwrap();
    let seen = CredentialAdminClient::new(operator).list_credentials(list).await.unwrap().into_inner();
    let subjects: Vec<_> = seen.credentials.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects, ["tenant-42/a"], "a listing shows only what the caller's rules cover");

    let denials = |events: &[serde_json::Value]| {
        events.iter().filter(|e| e["outcome"] == "denied" && e["code"] == "PERMISSION_DENIED").count()
    };
    let events = broker.audit_when(|events| denials(events) >= 5).await;
    let allowed = events
        .iter()
        .find(|e| e["rpc"] == "GetAuthorization" && e["outcome"] == "allowed")
        .expect("the served header has its audit event");
    assert_eq!(allowed["caller"], BILLING);
    assert_eq!(allowed["token_fingerprint"], served.token_fingerprint.as_str());
    assert_eq!((allowed["provider"].as_str(), allowed["subject"].as_str()), (Some("bro"), Some("tenant-42/a")));
    assert_eq!(allowed["code"], "OK");
    assert!(allowed["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(allowed["replica"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(denials(&events), 5, "every denial is recorded: {events:#?}");

    let logs = broker.logs();
    for secret in [code_42.as_str(), code_7.as_str(), served.headers[0].value.as_str()] {
        assert!(!logs.contains(secret), "a secret reached a log or the audit trail");
    }
}

#[tokio::test]
async fn a_rule_with_a_rate_limit_answers_resource_exhausted_per_caller() {
    let ca = Ca::new("credbroker test CA");
    let broker = mtls_broker(&ca, "").await;
    let writer = broker.channel(&ca, Some(&ca.client(WRITER))).await.unwrap();
    put_bro(&writer, "tenant-1/a").await.unwrap();
    let batch = broker.channel(&ca, Some(&ca.client("spiffe://example.org/ns/batch/sa/nightly"))).await.unwrap();
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(get(&batch, "bro", "tenant-1/a").await.map(|_| Code::Ok).unwrap_or_else(|s| s.code()));
    }
    // Burst 2 at 1/s: five calls in well under two seconds cannot all pass.
    assert_eq!(&codes[..2], [Code::Ok, Code::Ok]);
    assert!(codes.contains(&Code::ResourceExhausted), "{codes:?}");
    let limited = |e: &serde_json::Value| e["outcome"] == "rate_limited" && e["code"] == "RESOURCE_EXHAUSTED";
    assert!(broker.audit_when(|events| events.iter().any(limited)).await.iter().any(limited));
}

#[tokio::test]
async fn with_fail_closed_an_unwritable_audit_sink_hands_out_no_header() {
    let ca = Ca::new("credbroker test CA");
    let metrics_port = crate::shutdown::free_port();
    // /dev/full opens, and refuses every write (ENOSPC).
    let config = format!(
        "[audit]\npath = \"/dev/full\"\nfail_closed = true\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n{POLICY}"
    );
    let broker = Broker::start(&ca.server(), Some(&ca), &config).await;
    let writer = broker.channel(&ca, Some(&ca.client(WRITER))).await.unwrap();
    put_bro(&writer, "tenant-42/a").await.expect("admin writes are not credential-returning");
    let billing = broker.channel(&ca, Some(&ca.client(BILLING))).await.unwrap();
    let refused = get(&billing, "bro", "tenant-42/a").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("audit"), "{}", refused.message());
    assert!(broker.logs().contains("audit log: cannot write"), "a loud error in the log");
    let denied = get(&billing, "bro", "tenant-7/b").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // The alert signals: failed audit writes, and denials by reason and RPC (never the caller).
    // A refusal's line is queued without waiting, so its failed write is counted a moment later.
    let value = |scrape: &str, prefix: &str| -> f64 {
        let line = scrape.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {scrape}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let scrape = loop {
        let url = format!("http://127.0.0.1:{metrics_port}/metrics");
        let scrape = reqwest::get(url).await.unwrap().text().await.unwrap();
        if value(&scrape, "credbroker_audit_write_failures_total") >= 2.0 {
            break scrape; // the refused hand-out and the denial
        }
        assert!(std::time::Instant::now() < deadline, "failed audit writes not counted: {scrape}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let denials = scrape.lines().find(|l| l.starts_with("credbroker_auth_denials_total{")).expect("denials counted");
    assert!(denials.contains("reason=\"denied\"") && denials.contains("rpc_method=\"GetAuthorization\""), "{denials}");
    assert!(!scrape.contains("spiffe://"), "no caller identity in a label");
}

#[tokio::test]
async fn admin_rpcs_on_their_own_listener_and_reflection_switched_off() {
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_client::ServerReflectionClient};
    let ca = Ca::new("credbroker test CA");
    let admin_port = crate::shutdown::free_port();
    let config = format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n{POLICY}");
    let broker = Broker::start_with(&ca.server(), Some(&ca), "reflection = false", &config).await;
    let leaf = ca.client(WRITER);
    let writer = broker.channel(&ca, Some(&leaf)).await.unwrap();
    let on_main = put_bro(&writer, "tenant-42/a").await.unwrap_err();
    assert_eq!(on_main.code(), Code::Unimplemented, "no admin API on the main listener: {on_main:?}");
    let admin = broker.channel_to(admin_port, &ca, Some(&leaf)).await.expect("the admin listener speaks the same TLS");
    put_bro(&admin, "tenant-42/a").await.expect("the admin API is on the admin listener");

    let request = ServerReflectionRequest { host: String::new(), message_request: None };
    let reflection = ServerReflectionClient::new(writer).server_reflection_info(futures::stream::iter([request])).await;
    assert_eq!(reflection.unwrap_err().code(), Code::Unimplemented, "server.reflection = false");
}

#[tokio::test]
async fn clients_that_never_speak_neither_block_others_nor_stay_past_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let ca = Ca::new("credbroker test CA");
    let broker = mtls_broker(&ca, "").await; // handshake_timeout = "2s"
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(tokio::net::TcpStream::connect(("127.0.0.1", broker.port)).await.unwrap());
    }
    assert!(can_call(broker.channel(&ca, Some(&ca.client(BILLING))).await).await, "served while others stay silent");
    for mut socket in silent {
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(std::time::Duration::from_secs(20), socket.read(&mut byte)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the broker closes a silent connection: {closed:?}");
    }
}

#[tokio::test]
async fn proxied_calls_are_authorized_before_the_upstream_and_audited_before_the_credential_is_used() {
    use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
    use credbroker::grpc::pb::proxy_call_chunk::Part;
    let ca = Ca::new("credbroker test CA");
    let broker = mtls_broker(&ca, "").await;
    let writer = broker.channel(&ca, Some(&ca.client(WRITER))).await.unwrap();
    put_bro(&writer, "tenant-42/a").await.unwrap();
    put_bro(&writer, "tenant-7/b").await.unwrap();
    let mut client = CredentialBrokerClient::new(broker.channel(&ca, Some(&ca.client(BILLING))).await.unwrap());
    let call = |subject: &str| pb::ProxyCallRequest {
        provider: "bro".into(),
        subject: subject.into(),
        method: "GET".into(),
        path: "registrations".into(),
        ..Default::default()
    };
    let denied = client.proxy_call(call("tenant-7/b")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let head = pb::ProxyCallHead {
        provider: "bro".into(),
        subject: "tenant-7/b".into(),
        method: "GET".into(),
        path: "registrations".into(),
        ..Default::default()
    };
    let chunks = futures::stream::iter([pb::ProxyCallChunk { part: Some(Part::Head(head)) }]);
    let denied = client.proxy_call_stream(chunks).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "streamed: {denied:?}");

    // Allowed; the upstream (port 9) is unreachable: the decision is audited before the call,
    // the failure after it.
    let failed = client.proxy_call(call("tenant-42/a")).await.unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    let proxied = |e: &&serde_json::Value| e["rpc"] == "ProxyCall";
    let events = broker.audit_when(|events| events.iter().filter(proxied).count() >= 3).await;
    let events: Vec<_> = events.iter().filter(proxied).collect();
    let outcomes: Vec<_> = events.iter().map(|e| (e["subject"].as_str(), e["outcome"].as_str())).collect();
    assert_eq!(
        outcomes,
        [
            (Some("tenant-7/b"), Some("denied")),
            (Some("tenant-42/a"), Some("allowed")),
            (Some("tenant-42/a"), Some("failed"))
        ]
    );
}

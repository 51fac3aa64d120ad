//! mTLS: handshakes refused without the right certificate; SPIFFE IDs authorized by policy;
//! the audit trail records every decision and never a secret.

use super::support::{BILLING, OPERATOR, POLICY, SALES, WRITER, audit_when, can_call, clients, put_bro, tls_broker};
use crate::harness::{Ca, Process, eventually, free_port};
use credbroker::grpc::pb;
use std::time::Duration;
use tonic::Code;

/// mTLS with `ca`'s certificates, the shared policy and a fail-closed audit log.
async fn mtls_broker(ca: &Ca) -> Process {
    let config = format!("[audit]\npath = \"{{dir}}/audit.jsonl\"\nfail_closed = true\n{POLICY}");
    tls_broker(&ca.server(), Some(ca), &config).start().await
}

#[tokio::test]
async fn without_a_certificate_from_the_client_ca_the_handshake_is_refused() {
    let ca = Ca::new("credbroker test CA");
    let broker = mtls_broker(&ca).await;
    let other = Ca::new("someone else's CA");

    assert!(!can_call(Ok(broker.channel.clone())).await, "plaintext to a TLS listener");
    assert!(!can_call(broker.tls_channel(&ca, None).await).await, "no client certificate");
    assert!(!can_call(broker.tls_channel(&ca, Some(&other.client(BILLING))).await).await, "another CA's certificate");
    let expired = broker.tls_channel(&ca, Some(&ca.expired_client(BILLING))).await;
    assert!(!can_call(expired).await, "an expired certificate");
    assert!(
        can_call(broker.tls_channel(&ca, Some(&ca.client(BILLING))).await).await,
        "the control: a valid certificate"
    );
}

#[tokio::test]
async fn an_allowed_spiffe_id_gets_the_header_and_an_audit_line_others_are_denied_before_any_lookup() {
    let ca = Ca::new("credbroker test CA");
    let broker = mtls_broker(&ca).await;
    let writer = clients(broker.tls_channel(&ca, Some(&ca.client(WRITER))).await);
    let billing = clients(broker.tls_channel(&ca, Some(&ca.client(BILLING))).await);
    let sales = clients(broker.tls_channel(&ca, Some(&ca.client(SALES))).await);
    let code_42 = put_bro(&writer, "tenant-42/a").await.unwrap();
    let code_7 = put_bro(&writer, "tenant-7/b").await.unwrap();

    let served = billing.get("bro", "tenant-42/a").await.expect("billing may read tenant-42");
    assert!(served.headers[0].value.starts_with("Basic "));

    // Outside its globs: denied the same way whether the credential exists or not.
    for subject in ["tenant-7/b", "tenant-7/missing"] {
        let denied = billing.get("bro", subject).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{subject}: {denied:?}");
        assert!(denied.message().contains(BILLING), "says who was denied: {}", denied.message());
    }
    assert_eq!(sales.get("bro", "tenant-42/a").await.unwrap_err().code(), Code::PermissionDenied);
    // Admin RPCs need a rule that names them: billing's rpcs = ["*"] grants none.
    assert_eq!(put_bro(&billing, "tenant-42/new").await.unwrap_err().code(), Code::PermissionDenied);
    let refused = billing.list("bro", 10, "").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let listed = writer.list("bro", 10, "").await.unwrap();
    assert_eq!(listed.credentials.len(), 2, "the writer's rule covers every subject");
    let operator = clients(broker.tls_channel(&ca, Some(&ca.client(OPERATOR))).await);
    let seen = operator.list("bro", 10, "").await.unwrap();
    let subjects: Vec<_> = seen.credentials.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects, ["tenant-42/a"], "a listing shows only what the caller's rules cover");

    let denials = |events: &[serde_json::Value]| {
        events.iter().filter(|e| e["outcome"] == "denied" && e["code"] == "PERMISSION_DENIED").count()
    };
    let events = audit_when(&broker, |events| denials(events) >= 5).await;
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
    let broker = mtls_broker(&ca).await;
    let writer = clients(broker.tls_channel(&ca, Some(&ca.client(WRITER))).await);
    put_bro(&writer, "tenant-1/a").await.unwrap();
    let batch = clients(broker.tls_channel(&ca, Some(&ca.client("spiffe://example.org/ns/batch/sa/nightly"))).await);
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(batch.get("bro", "tenant-1/a").await.map(|_| Code::Ok).unwrap_or_else(|s| s.code()));
    }
    // Burst 2 at 1/s: five calls in well under two seconds cannot all pass.
    assert_eq!(&codes[..2], [Code::Ok, Code::Ok]);
    assert!(codes.contains(&Code::ResourceExhausted), "{codes:?}");
    let limited = |e: &serde_json::Value| e["outcome"] == "rate_limited" && e["code"] == "RESOURCE_EXHAUSTED";
    audit_when(&broker, |events| events.iter().any(limited)).await;
}

#[tokio::test]
async fn with_fail_closed_an_unwritable_audit_sink_hands_out_no_header() {
    let ca = Ca::new("credbroker test CA");
    let metrics_port = free_port();
    // /dev/full opens, and refuses every write (ENOSPC).
    let config = format!(
        "[audit]\npath = \"/dev/full\"\nfail_closed = true\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n{POLICY}"
    );
    let broker = tls_broker(&ca.server(), Some(&ca), &config).start().await;
    let writer = clients(broker.tls_channel(&ca, Some(&ca.client(WRITER))).await);
    put_bro(&writer, "tenant-42/a").await.expect("admin writes are not credential-returning");
    let billing = clients(broker.tls_channel(&ca, Some(&ca.client(BILLING))).await);
    let refused = billing.get("bro", "tenant-42/a").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("audit"), "{}", refused.message());
    assert!(broker.logs().contains("audit log: cannot write"), "a loud error in the log");
    let denied = billing.get("bro", "tenant-7/b").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // The alert signals: failed audit writes, and denials by reason and RPC (never the caller).
    // A refusal's line is queued without waiting, so its failed write is counted a moment later.
    let value = |scrape: &str, prefix: &str| -> f64 {
        let line = scrape.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {scrape}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let counted = || async {
        let url = format!("http://127.0.0.1:{metrics_port}/metrics");
        let scrape = reqwest::get(url).await.unwrap().text().await.unwrap();
        if value(&scrape, "credbroker_audit_write_failures_total") >= 2.0 { Ok(scrape) } else { Err(scrape) }
    };
    // The refused hand-out and the denial.
    let scrape = eventually("both failed audit writes are counted", Duration::from_secs(20), counted).await;
    let denials = scrape.lines().find(|l| l.starts_with("credbroker_auth_denials_total{")).expect("denials counted");
    assert!(denials.contains("reason=\"denied\"") && denials.contains("rpc_method=\"GetAuthorization\""), "{denials}");
    assert!(!scrape.contains("spiffe://"), "no caller identity in a label");
}

#[tokio::test]
async fn admin_rpcs_on_their_own_listener_and_reflection_switched_off() {
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_client::ServerReflectionClient};
    let ca = Ca::new("credbroker test CA");
    let admin_port = free_port();
    let config = format!("[server]\nreflection = false\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n{POLICY}");
    let broker = tls_broker(&ca.server(), Some(&ca), &config).start().await;
    let leaf = ca.client(WRITER);
    let writer = clients(broker.tls_channel(&ca, Some(&leaf)).await);
    let on_main = put_bro(&writer, "tenant-42/a").await.unwrap_err();
    assert_eq!(on_main.code(), Code::Unimplemented, "no admin API on the main listener: {on_main:?}");
    let admin = clients(Process::tls_channel_to(admin_port, &ca, Some(&leaf)).await); // the same TLS
    put_bro(&admin, "tenant-42/a").await.expect("the admin API is on the admin listener");

    let request = ServerReflectionRequest { host: String::new(), message_request: None };
    let reflection =
        ServerReflectionClient::new(writer.channel).server_reflection_info(futures::stream::iter([request])).await;
    assert_eq!(reflection.unwrap_err().code(), Code::Unimplemented, "server.reflection = false");
}

#[tokio::test]
async fn clients_that_never_speak_neither_block_others_nor_stay_past_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let ca = Ca::new("credbroker test CA");
    let broker = mtls_broker(&ca).await; // handshake_timeout = "2s"
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(tokio::net::TcpStream::connect(("127.0.0.1", broker.port)).await.unwrap());
    }
    assert!(
        can_call(broker.tls_channel(&ca, Some(&ca.client(BILLING))).await).await,
        "served while others stay silent"
    );
    for mut socket in silent {
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(20), socket.read(&mut byte)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the broker closes a silent connection: {closed:?}");
    }
}

#[tokio::test]
async fn proxied_calls_are_authorized_before_the_upstream_and_audited_before_the_credential_is_used() {
    use credbroker::grpc::pb::proxy_call_chunk::Part;
    let ca = Ca::new("credbroker test CA");
    let broker = mtls_broker(&ca).await;
    let writer = clients(broker.tls_channel(&ca, Some(&ca.client(WRITER))).await);
    put_bro(&writer, "tenant-42/a").await.unwrap();
    put_bro(&writer, "tenant-7/b").await.unwrap();
    let mut client = clients(broker.tls_channel(&ca, Some(&ca.client(BILLING))).await).broker;
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
    let events = audit_when(&broker, |events| events.iter().filter(proxied).count() >= 3).await;
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

//! `--tls`: warm GetAuthorization with mTLS, against the constant-answer baseline behind the
//! *same* TLS acceptor (`credbroker::security::tls`), one layer at a time: credbroker with
//! mTLS only, + policy, + audit (a file, `fail_closed`). Same run, same client; rounds
//! bracket the three between two baseline measurements (`--rounds N`, default 5); the median
//! of the rounds' ratios is the figure, with the ratio of means and the noise floor beside it.

use super::{CONNECTIONS, Constant, get_authorization, request, server_runtime};
use crate::load::closed_loop;
use credbroker::config::Settings;
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::credential_broker_server::CredentialBrokerServer;
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use credbroker::security::tls::{ReloadingTls, TlsSettings};
use credbroker::startup::Application;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Server};

const CALLER: &str = "spiffe://bench.test/ns/bench/sa/client";

/// CA, server and client certificates in `dir`.
fn certificates(dir: &Path) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let leaf = |san: SanType, usage| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![san];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        (params.signed_by(&key, &ca).unwrap().pem(), key.serialize_pem())
    };
    let (server, server_key) =
        leaf(SanType::DnsName("localhost".try_into().unwrap()), ExtendedKeyUsagePurpose::ServerAuth);
    let (client, client_key) = leaf(SanType::URI(CALLER.try_into().unwrap()), ExtendedKeyUsagePurpose::ClientAuth);
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server),
        ("server.key", server_key),
        ("client.pem", client),
        ("client.key", client_key),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

fn tls_settings(dir: &Path) -> TlsSettings {
    TlsSettings {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
        client_ca_file: Some(dir.join("ca.pem")),
        reload_interval: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(10),
    }
}

/// credbroker with mTLS and the given extra configuration (policy, audit).
fn start_credbroker(rt: &tokio::runtime::Runtime, dir: &Path, name: &str, extra: &str) -> SocketAddr {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[server.tls]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\n\
         [telemetry]\nlog_filter = \"warn\"\n{extra}\n\
         [[providers]]\nname = \"bro\"\nkind = \"bro\"\napi_base_url = \"http://127.0.0.1:9/bro/api/v2/\"\n",
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("ca.pem")
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let app = rt.block_on(Application::build(Settings::load(Some(&path), []).unwrap())).unwrap();
    let addr = app.local_addr();
    rt.spawn(app.run_until_stopped(std::future::pending()));
    addr
}

/// The constant answer behind credbroker's own TLS acceptor.
fn start_baseline(rt: &tokio::runtime::Runtime, dir: &Path, answer: pb::GetAuthorizationResponse) -> SocketAddr {
    let _guard = rt.enter();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = ReloadingTls::new(tls_settings(dir)).unwrap();
    // The accept loop is the caller's task to run (startup owns it in the broker).
    let (mut incoming, accepting) = tls.incoming(listener, &[rt.handle().clone()]);
    let incoming = incoming.pop().expect("one stream per runtime");
    rt.spawn(accepting);
    rt.spawn(
        Server::builder().add_service(CredentialBrokerServer::new(Constant(answer))).serve_with_incoming(incoming),
    );
    addr
}

async fn channel(dir: &Path, addr: SocketAddr) -> Channel {
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .identity(Identity::from_pem(read("client.pem"), read("client.key")))
        .domain_name("localhost");
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap()
}

async fn clients(dir: &Path, addr: SocketAddr) -> Vec<CredentialBrokerClient<Channel>> {
    let mut out = Vec::new();
    for _ in 0..CONNECTIONS {
        out.push(CredentialBrokerClient::new(channel(dir, addr).await));
    }
    out
}

/// Stores the benchmark's credential and returns the warm answer.
async fn warm(dir: &Path, addr: SocketAddr) -> pb::GetAuthorizationResponse {
    let channel = channel(dir, addr).await;
    let secret =
        PutSecret::BroToken(pb::BroToken { username: "0dce6fc98256|123456789|1234".into(), code: "ab".repeat(32) });
    let put = pb::PutCredentialRequest { provider: "bro".into(), subject: "bench-org".into(), secret: Some(secret) };
    CredentialAdminClient::new(channel.clone()).put_credential(put).await.unwrap();
    CredentialBrokerClient::new(channel).get_authorization(request()).await.unwrap().into_inner()
}

pub fn run(seconds: u64, concurrency: usize) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    certificates(dir);
    let policy = format!(
        "[[policy]]\ncallers = [\"{CALLER}\"]\nrpcs = [\"*\", \"PutCredential\"]\nproviders = [\"bro\"]\nsubjects = [\"bench-*\"]\n"
    );
    let audit = format!("[audit]\npath = {:?}\nfail_closed = true\n{policy}", dir.join("audit.jsonl"));
    let runtimes: Vec<_> = (0..5).map(|_| server_runtime()).collect();
    let tls_only = start_credbroker(&runtimes[0], dir, "tls", "");
    let with_policy = start_credbroker(&runtimes[1], dir, "policy", &policy);
    let with_audit = start_credbroker(&runtimes[2], dir, "audit", &audit);
    let client_rt = &runtimes[4];
    let answer = client_rt.block_on(async {
        for addr in [tls_only, with_policy] {
            warm(dir, addr).await;
        }
        warm(dir, with_audit).await
    });
    let baseline = start_baseline(&runtimes[3], dir, answer);
    client_rt.block_on(async {
        // Each round brackets the three credbroker layers between two baseline measurements and
        // compares them with the mean of the two, so drift within a round cancels; the second
        // baseline's ratio to the first is the run's noise floor.
        let names = ["credbroker, mTLS", "  + policy", "  + policy + audit"];
        let mut calls = Vec::new();
        for addr in [baseline, tls_only, with_policy, with_audit] {
            calls.push(get_authorization(clients(dir, addr).await));
        }
        for call in &calls {
            closed_loop(call, concurrency, 1).await; // warm-up
        }
        let rounds = crate::load::arg("--rounds", 5).max(1) as usize;
        let (mut baseline_rate, mut rates) = (0.0, [0.0; 3]);
        let (mut ratios, mut floor): ([Vec<f64>; 3], Vec<f64>) = Default::default();
        for _ in 0..rounds {
            let before = closed_loop(&calls[0], concurrency, seconds).await;
            let mut round = [0.0; 3];
            for (rate, call) in round.iter_mut().zip(&calls[1..]) {
                *rate = closed_loop(call, concurrency, seconds).await;
            }
            let after = closed_loop(&calls[0], concurrency, seconds).await;
            let reference = (before + after) / 2.0;
            baseline_rate += reference / rounds as f64;
            floor.push(after / before);
            for i in 0..3 {
                rates[i] += round[i] / rounds as f64;
                ratios[i].push(round[i] / reference);
            }
        }
        let median = |values: &[f64]| {
            let mut values = values.to_vec();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let listed = |values: &[f64]| values.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ");
        println!(
            "mTLS throughput, {concurrency} callers over {CONNECTIONS} connections, {rounds} rounds of {seconds}s each:"
        );
        println!("  {:<30} {baseline_rate:>9.0} req/s", "baseline (constant, same TLS)");
        for (i, name) in names.iter().enumerate() {
            println!(
                "  {name:<30} {:>9.0} req/s  ratio median {:.3}, of means {:.3} (rounds {})",
                rates[i],
                median(&ratios[i]),
                rates[i] / baseline_rate,
                listed(&ratios[i])
            );
        }
        println!("  noise floor (baseline after / before, per round): {}", listed(&floor));
        let per_request = |a: f64, b: f64| (1.0 / b - 1.0 / a) * 1e6;
        println!(
            "  per-request cost (µs of the whole machine): broker {:.1}, policy {:.1}, audit {:.1}  load {}",
            per_request(baseline_rate, rates[0]),
            per_request(rates[0], rates[1]),
            per_request(rates[1], rates[2]),
            super::loadavg()
        );
    });
    let lines = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default().lines().count();
    println!("  audit lines written: {lines}");
}

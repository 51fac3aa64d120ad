//! Load benchmark: warm `GetAuthorization` against a constant-answer tonic server built into
//! the same run, over real gRPC on loopback. Not a timed test: it reports figures.
//!
//!   cargo bench --bench grpc_load                      # throughput, latency at half load, RSS
//!   cargo bench --bench grpc_load -- --seconds 10 --concurrency 128
//!   cargo bench --bench grpc_load -- --tls             # mTLS: baseline vs broker, + policy, + audit
//!
//! credbroker is the real binary (`CREDBROKER_BIN` picks another build, for A/B runs), the
//! baseline runs on its own 2-worker runtime, the load generator on another; they share the
//! machine's cores, so only ratios within one run mean anything. Rounds alternate
//! baseline/credbroker to spread drift over both.

mod load;
#[path = "grpc_load/tls.rs"]
mod tls;

use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::credential_broker_server::{CredentialBroker, CredentialBrokerServer};
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use load::{Call, arg, closed_loop, open_loop};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

const CONNECTIONS: usize = 4;

/// The baseline: the same service answering a constant, with no work behind it.
struct Constant(pb::GetAuthorizationResponse);

#[tonic::async_trait]
impl CredentialBroker for Constant {
    async fn get_authorization(
        &self,
        _: Request<pb::GetAuthorizationRequest>,
    ) -> Result<Response<pb::GetAuthorizationResponse>, Status> {
        Ok(Response::new(self.0.clone()))
    }
    async fn report_rejected(
        &self,
        _: Request<pb::ReportRejectedRequest>,
    ) -> Result<Response<pb::ReportRejectedResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn proxy_call(&self, _: Request<pb::ProxyCallRequest>) -> Result<Response<pb::ProxyCallResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    type ProxyCallStreamStream = tokio_stream::Empty<Result<pb::ProxyCallResponseChunk, Status>>;
    async fn proxy_call_stream(
        &self,
        _: Request<tonic::Streaming<pb::ProxyCallChunk>>,
    ) -> Result<Response<Self::ProxyCallStreamStream>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn start_authorization(
        &self,
        _: Request<pb::StartAuthorizationRequest>,
    ) -> Result<Response<pb::StartAuthorizationResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn get_authorization_session(
        &self,
        _: Request<pb::GetAuthorizationSessionRequest>,
    ) -> Result<Response<pb::AuthorizationSession>, Status> {
        Err(Status::unimplemented(""))
    }
    type WatchCredentialsStream = tokio_stream::Empty<Result<pb::WatchCredentialsResponse, Status>>;
    async fn watch_credentials(
        &self,
        _: Request<pb::WatchCredentialsRequest>,
    ) -> Result<Response<Self::WatchCredentialsStream>, Status> {
        Err(Status::unimplemented(""))
    }
}

fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn start_baseline(rt: &tokio::runtime::Runtime, answer: pb::GetAuthorizationResponse) -> SocketAddr {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    rt.spawn(
        Server::builder().add_service(CredentialBrokerServer::new(Constant(answer))).serve_with_incoming(incoming),
    );
    addr
}

/// The real binary (its allocator and runtime, as deployed); `CREDBROKER_BIN` picks another
/// build, for A/B runs. Stopped when dropped.
struct Credbroker(std::process::Child);

impl Drop for Credbroker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn credbroker_binary() -> std::path::PathBuf {
    std::env::var_os("CREDBROKER_BIN").map_or_else(|| env!("CARGO_BIN_EXE_credbroker").into(), Into::into)
}

fn start_credbroker() -> (Credbroker, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(credbroker_binary())
        .arg("serve")
        .env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("CREDBROKER__TELEMETRY__LOG_FILTER", "warn")
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "credbroker did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Credbroker(child), addr)
}

async fn clients(addr: SocketAddr) -> Vec<CredentialBrokerClient<Channel>> {
    let mut out = Vec::new();
    for _ in 0..CONNECTIONS {
        let channel =
            Channel::from_shared(format!("http://{addr}")).unwrap().tcp_nodelay(true).connect().await.unwrap();
        out.push(CredentialBrokerClient::new(channel));
    }
    out
}

fn request() -> pb::GetAuthorizationRequest {
    pb::GetAuthorizationRequest { provider: "bro".into(), subject: "bench-org".into(), min_validity: None }
}

/// Warm GetAuthorization over the given connections.
fn get_authorization(clients: Vec<CredentialBrokerClient<Channel>>) -> Call {
    Arc::new(move |i| {
        let mut client = clients[i % clients.len()].clone();
        Box::pin(async move {
            client.get_authorization(request()).await.expect("request succeeds");
        })
    })
}

fn main() {
    let seconds = arg("--seconds", 5);
    let concurrency = arg("--concurrency", 64) as usize;
    if std::env::args().any(|a| a == "--tls") {
        return tls::run(seconds, concurrency);
    }
    let baseline_rt = server_runtime();
    let client_rt = server_runtime();

    let (broker, broker_addr) = start_credbroker();
    let warm = client_rt.block_on(async {
        let channel = Channel::from_shared(format!("http://{broker_addr}")).unwrap().connect().await.unwrap();
        let secret =
            PutSecret::BroToken(pb::BroToken { username: "0dce6fc98256|123456789|1234".into(), code: "ab".repeat(32) });
        let put =
            pb::PutCredentialRequest { provider: "bro".into(), subject: "bench-org".into(), secret: Some(secret) };
        CredentialAdminClient::new(channel.clone()).put_credential(put).await.unwrap();
        CredentialBrokerClient::new(channel).get_authorization(request()).await.unwrap().into_inner()
    });
    // The baseline answers exactly what credbroker answers: same bytes on the wire.
    let baseline_addr = start_baseline(&baseline_rt, warm);

    client_rt.block_on(async {
        let (base, broker) = (get_authorization(clients(baseline_addr).await), get_authorization(clients(broker_addr).await));
        closed_loop(&base, concurrency, 1).await; // warm-up both
        closed_loop(&broker, concurrency, 1).await;
        let (mut b, mut c) = (0.0, 0.0);
        for _ in 0..2 {
            b += closed_loop(&base, concurrency, seconds).await / 2.0;
            c += closed_loop(&broker, concurrency, seconds).await / 2.0;
        }
        println!("throughput, {concurrency} callers over {CONNECTIONS} connections, 2×{seconds}s each:");
        println!("  baseline (constant answer): {b:>9.0} req/s");
        println!("  credbroker (warm cache):    {c:>9.0} req/s");
        println!("  ratio credbroker/baseline:  {:>9.3}  load {}", c / b, loadavg());

        for share in [0.5, 0.1] {
        let rate = c * share;
        println!("latency send→response at {:.0} % of credbroker's throughput ({rate:.0} req/s, open loop, {seconds}s):", share * 100.0);
        for (name, cl) in [("baseline", &base), ("credbroker", &broker)] {
            let (h, late) = open_loop(cl, rate, seconds).await;
            println!(
                "  {name:<10} p50 {:>5} µs  p99 {:>5} µs  p99.9 {:>6} µs  max {:>6} µs  (n={}, sent >2 ms late: {late})",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max(),
                h.len()
            );
        }
        }
    });
    drop(broker);
    rss(&client_rt);
}

/// The 1-minute load average: absolute figures on a shared machine mean little without it.
fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_owned()
}

/// Resident memory of the real binary: idle, then with 100 000 credentials stored and cached.
fn rss(rt: &tokio::runtime::Runtime) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(credbroker_binary())
        .arg("serve")
        .env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("CREDBROKER__TELEMETRY__LOG_FILTER", "warn")
        .spawn()
        .unwrap();
    let pid = child.id();
    rt.block_on(async {
        let channel = loop {
            match Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!("RSS of the credbroker binary (embedded default, in-memory store):");
        println!("  idle:                                {:>7} KiB", vm_rss(pid));
        let n = arg("--credentials", 100_000) as usize;
        let tasks: Vec<_> = (0..32)
            .map(|t| {
                let (mut admin, mut broker) =
                    (CredentialAdminClient::new(channel.clone()), CredentialBrokerClient::new(channel.clone()));
                tokio::spawn(async move {
                    for i in (t..n).step_by(32) {
                        let subject = format!("org-{i:06}");
                        let secret = PutSecret::BroToken(pb::BroToken {
                            username: format!("0dce6fc98256|{i:09}|1234"),
                            code: format!("{i:064x}"),
                        });
                        let put = pb::PutCredentialRequest {
                            provider: "bro".into(),
                            subject: subject.clone(),
                            secret: Some(secret),
                        };
                        admin.put_credential(put).await.unwrap();
                        let get = pb::GetAuthorizationRequest { provider: "bro".into(), subject, min_validity: None };
                        broker.get_authorization(get).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        println!("  with {n} credentials stored+cached: {:>7} KiB  load {}", vm_rss(pid), loadavg());
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

//! Load benchmark of `ProxyCall`: proxied calls against calling the fake upstream directly
//! with the same HTTP client, in one run. Not a timed test: it reports figures.
//!
//! A third path separates the cost of the extra hop from credbroker's own work: a bare tonic
//! server whose `ProxyCall` forwards to the fake with a fixed header and no checks at all
//! (the least any gRPC proxy must do).
//!
//!   cargo bench --bench proxy_load
//!   cargo bench --bench proxy_load -- --seconds 10 --concurrency 64 --connections 4
//!   cargo bench --bench proxy_load -- --passthrough 0      # the nginx comparisons only
//!   cargo bench --bench proxy_load -- --stream-mib 0       # without the streamed transfers
//!   cargo bench --bench proxy_load -- --seconds 0 --passthrough 0 --stream-rounds 10  # streams only
//!   cargo bench --bench proxy_load -- --latency-percent 50 # latency at half of nginx's rate
//!
//! First, `ProxyCall` of the real binary against what users would deploy instead: nginx as a
//! header-injecting reverse proxy (`nginx`), both in front of an nginx answering a fixed body,
//! h2load driving every path (`CREDBROKER_BIN` picks another binary, for A/B runs); then a
//! streamed 100 MiB upload and download through `ProxyCallStream` against the same nginx
//! with buffering off (`--stream-mib`).
//!
//! The fake upstream, credbroker and the load generator each run on their own 2-worker
//! runtime, sharing the machine's cores, so only ratios within one run mean anything. Rounds
//! alternate direct/proxied to spread drift over both. Both paths make the same upstream
//! request (`GET bro/api/v2/data/ping` with the BRO Basic header); the direct one builds the
//! header itself, the proxied one lets credbroker attach it.

use base64::{Engine, engine::general_purpose::STANDARD};
#[path = "proxy_load/cpu.rs"]
mod cpu;
mod load;
#[path = "proxy_load/nginx.rs"]
mod nginx;
#[path = "proxy_load/streamed.rs"]
mod streamed;
#[path = "proxy_load/vs_nginx.rs"]
mod vs_nginx;

use credbroker::config::Settings;
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::credential_broker_server::{CredentialBroker, CredentialBrokerServer};
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use credbroker::providers::http::HttpClient;
use credbroker::startup::Application;
use fake_upstream::{FakeConfig, FakeUpstream, Provider};
use load::{Call, arg, closed_loop, open_loop};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

const BRO_USER: &str = "0dce6fc98256|123456789|1234";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn start_credbroker(rt: &tokio::runtime::Runtime, bro_base: &str) -> std::net::SocketAddr {
    let env = vec![
        ("CREDBROKER__SERVER__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("CREDBROKER__TELEMETRY__LOG_FILTER".to_owned(), "warn".to_owned()),
        ("CREDBROKER__PROVIDERS__BRO__API_BASE_URL".to_owned(), bro_base.to_owned()),
    ];
    let app = rt.block_on(Application::build(Settings::load(None, env).unwrap())).unwrap();
    let addr = app.local_addr();
    rt.spawn(app.run_until_stopped(std::future::pending()));
    addr
}

/// The baseline hop: forwards every `ProxyCall` to one URL with one header, nothing else.
struct Passthrough {
    http: reqwest::Client,
    url: String,
    authorization: String,
}

#[tonic::async_trait]
impl CredentialBroker for Passthrough {
    async fn get_authorization(
        &self,
        _: Request<pb::GetAuthorizationRequest>,
    ) -> Result<Response<pb::GetAuthorizationResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn report_rejected(
        &self,
        _: Request<pb::ReportRejectedRequest>,
    ) -> Result<Response<pb::ReportRejectedResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn proxy_call(&self, _: Request<pb::ProxyCallRequest>) -> Result<Response<pb::ProxyCallResponse>, Status> {
        let request = self.http.get(&self.url).header("authorization", &self.authorization);
        let response = request.send().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let status = response.status().as_u16().into();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| pb::Header { name: n.as_str().into(), value: v.to_str().unwrap_or_default().into() })
            .collect();
        let body = response.bytes().await.map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::ProxyCallResponse { status, headers, body }))
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

fn start_passthrough(rt: &tokio::runtime::Runtime, bro_base: &str, code: &str) -> std::net::SocketAddr {
    let http = HttpClient::new(Duration::from_secs(5), Duration::from_secs(30)).inner().clone();
    let authorization = format!("Basic {}", STANDARD.encode(format!("{BRO_USER}:{code}")));
    let service = Passthrough { http, url: format!("{bro_base}data/ping"), authorization };
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    rt.spawn(Server::builder().add_service(CredentialBrokerServer::new(service)).serve_with_incoming(incoming));
    addr
}

async fn proxied(addr: std::net::SocketAddr, code: &str) -> Call {
    let mut channels = Vec::new();
    for _ in 0..arg("--connections", 4) {
        let channel =
            Channel::from_shared(format!("http://{addr}")).unwrap().tcp_nodelay(true).connect().await.unwrap();
        channels.push(channel);
    }
    let secret = PutSecret::BroToken(pb::BroToken { username: BRO_USER.into(), code: code.into() });
    let put = pb::PutCredentialRequest { provider: "bro".into(), subject: "bench-org".into(), secret: Some(secret) };
    // The passthrough baseline has no admin service: nothing to store there.
    let _ = CredentialAdminClient::new(channels[0].clone()).put_credential(put).await;
    let clients: Vec<_> = channels.into_iter().map(CredentialBrokerClient::new).collect();
    Arc::new(move |i| {
        let mut client = clients[i % clients.len()].clone();
        Box::pin(async move {
            let request = pb::ProxyCallRequest {
                provider: "bro".into(),
                subject: "bench-org".into(),
                method: "GET".into(),
                path: "data/ping".into(),
                ..Default::default()
            };
            let response = client.proxy_call(request).await.expect("proxied call succeeds").into_inner();
            assert_eq!(response.status, 200);
        })
    })
}

fn direct(bro_base: &str, code: &str) -> Call {
    let http = HttpClient::new(Duration::from_secs(5), Duration::from_secs(30));
    let url = format!("{bro_base}data/ping");
    let authorization = format!("Basic {}", STANDARD.encode(format!("{BRO_USER}:{code}")));
    Arc::new(move |_| {
        let request = http.inner().get(&url).header("authorization", &authorization);
        Box::pin(async move {
            let response = request.send().await.expect("direct call succeeds");
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        })
    })
}

fn main() {
    let seconds = arg("--seconds", 5);
    let concurrency = arg("--concurrency", 64) as usize;
    if seconds > 0 {
        vs_nginx::run(seconds, concurrency, arg("--connections", 4) as usize, arg("--latency-percent", 10));
    }
    let mib = arg("--stream-mib", 100) as usize;
    if mib > 0 {
        streamed::run(mib, arg("--stream-rounds", 2) as usize);
    }
    if arg("--passthrough", 1) == 0 {
        return;
    }
    let (fake_rt, broker_rt, client_rt, passthrough_rt) = (runtime(), runtime(), runtime(), runtime());
    let fake = fake_rt.block_on(FakeUpstream::start(FakeConfig::default())).unwrap();
    let code = "ab".repeat(32);
    fake.add_bro_token(BRO_USER, &code);
    let bro_base = format!("{}api/v2/", fake.url(Provider::Bro));
    let broker_addr = start_credbroker(&broker_rt, &bro_base);
    let passthrough_addr = start_passthrough(&passthrough_rt, &bro_base, &code);

    client_rt.block_on(async {
        let direct = direct(&bro_base, &code);
        let (proxied, passthrough) = (proxied(broker_addr, &code).await, proxied(passthrough_addr, &code).await);
        for call in [&direct, &passthrough, &proxied] {
            closed_loop(call, concurrency, 1).await; // warm-up
        }
        let (mut d, mut h, mut p) = (0.0, 0.0, 0.0);
        for _ in 0..2 {
            d += closed_loop(&direct, concurrency, seconds).await / 2.0;
            h += closed_loop(&passthrough, concurrency, seconds).await / 2.0;
            p += closed_loop(&proxied, concurrency, seconds).await / 2.0;
        }
        let connections = arg("--connections", 4);
        print!("throughput, {concurrency} callers ({connections} gRPC connections), 2×{seconds}s each");
        println!(" (GET data/ping on the fake BRO):");
        println!("  direct (same HTTP client):       {d:>9.0} req/s");
        println!("  bare gRPC passthrough (baseline): {h:>8.0} req/s");
        println!("  proxied (ProxyCall):             {p:>9.0} req/s");
        println!("  ratio proxied/direct:            {:>9.3}", p / d);
        println!("  ratio passthrough/direct:        {:>9.3}  (the extra hop alone)", h / d);
        println!("  ratio proxied/passthrough:       {:>9.3}  (credbroker's own work)", p / h);

        for share in [0.5, 0.1] {
            let rate = p * share;
            println!(
                "latency send→response at {:.0} % of proxied throughput ({rate:.0} req/s, open loop, {seconds}s):",
                share * 100.0
            );
            let mut p50 = [0u64; 3];
            let mut p99 = [0u64; 3];
            let paths = [("direct", &direct), ("passthrough", &passthrough), ("proxied", &proxied)];
            for (k, (name, call)) in paths.into_iter().enumerate() {
                let (h, late) = open_loop(call, rate, seconds).await;
                (p50[k], p99[k]) = (h.value_at_quantile(0.5), h.value_at_quantile(0.99));
                let (p999, max, n) = (h.value_at_quantile(0.999), h.max(), h.len());
                print!("  {name:<11} p50 {:>5} µs  p99 {:>5} µs  p99.9 {p999:>6} µs", p50[k], p99[k]);
                println!("  max {max:>6} µs  (n={n}, sent >2 ms late: {late})");
            }
            let added = |a: u64, b: u64| b as i64 - a as i64;
            for (name, base) in [("direct", 0), ("passthrough", 1)] {
                let (d50, d99) = (added(p50[base], p50[2]), added(p99[base], p99[2]));
                println!("  added vs {name:<11}: p50 {d50:+} µs, p99 {d99:+} µs");
            }
        }
    });
    drop(fake);
}

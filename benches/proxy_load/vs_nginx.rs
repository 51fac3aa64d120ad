//! `ProxyCall` of the real credbroker binary against nginx's header-injecting proxy, in one
//! run: direct to the upstream, through nginx, through credbroker — a small GET and a 64 KiB
//! POST at 64 calls in flight (h2load: 4 connections × 16 streams, `--connections` to change;
//! cleartext HTTP/2 for all but the direct POST, which is HTTP/1.1),
//! then latency at 10 % (`--latency-percent`) of nginx's GET throughput (open loop, one
//! reqwest HTTP/2 client for both, so neither side gets a different client).
//!
//! Each proxied path's runs also report the CPU time per request of each party (the proxy,
//! the upstream nginx, h2load; `cpu`): all three share the cores, so the throughput ratio
//! follows the ratio of what a request costs the whole path, and the lines say whose cost
//! differs.

use crate::cpu;
use crate::load::{Call, open_loop};
use crate::nginx::{BODY, H2load, Nginx, free_port, h2load, wait_listening};
use base64::{Engine, engine::general_purpose::STANDARD};
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use prost::Message;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

pub const USER: &str = "0dce6fc98256|123456789|1234";
const POST_BYTES: usize = 64 * 1024;
const PROXY_CALL: &str = "/credbroker.v1.CredentialBroker/ProxyCall";

/// The credbroker binary under test, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Credbroker(Child);

impl Credbroker {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn start(port: u16, upstream: u16) -> Self {
        let binary = std::env::var_os("CREDBROKER_BIN")
            .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_credbroker")), PathBuf::from);
        let child = Command::new(binary)
            .arg("serve")
            .env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("CREDBROKER__TELEMETRY__LOG_FILTER", "warn")
            .env("CREDBROKER__PROVIDERS__BRO__API_BASE_URL", format!("http://127.0.0.1:{upstream}/api/v2/"))
            .spawn()
            .unwrap();
        wait_listening(SocketAddr::from(([127, 0, 0, 1], port)), Path::new("(credbroker's stderr)"));
        Self(child)
    }
}

impl Drop for Credbroker {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        for _ in 0..250 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn proxy_request(method: &str, body: Vec<u8>) -> pb::ProxyCallRequest {
    pb::ProxyCallRequest {
        provider: "bro".into(),
        subject: "bench-org".into(),
        method: method.into(),
        path: "data/ping".into(),
        body: body.into(),
        ..Default::default()
    }
}

/// A unary gRPC request as it goes on the wire: uncompressed, length-prefixed.
fn grpc_frame(message: &impl Message) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    frame.extend_from_slice(&encoded);
    frame
}

/// Stores the credential, then checks once, through a real gRPC client, that both requests
/// h2load will send come back from the upstream with its body (h2load itself sees only HTTP
/// statuses, and a failed gRPC call is an HTTP 200 too).
async fn prepare(port: u16, code: &str) {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
    let secret = PutSecret::BroToken(pb::BroToken { username: USER.into(), code: code.into() });
    let put = pb::PutCredentialRequest { provider: "bro".into(), subject: "bench-org".into(), secret: Some(secret) };
    CredentialAdminClient::new(channel.clone()).put_credential(put).await.unwrap();
    let mut client = CredentialBrokerClient::new(channel);
    for request in [proxy_request("GET", Vec::new()), proxy_request("POST", vec![b'x'; POST_BYTES])] {
        let response = client.proxy_call(request).await.expect("ProxyCall succeeds").into_inner();
        assert_eq!((response.status, &response.body[..]), (200, BODY.as_bytes()));
    }
}

pub fn run(seconds: u64, concurrency: usize, connections: usize, latency_percent: u64) {
    let (upstream_port, direct_port, nginx_port, broker_port) = (free_port(), free_port(), free_port(), free_port());
    let code = "ab".repeat(32);
    let authorization = format!("Basic {}", STANDARD.encode(format!("{USER}:{code}")));
    let upstream = Nginx::upstream(upstream_port, direct_port);
    let nginx = Nginx::proxy(nginx_port, upstream_port, &authorization);
    let broker = Credbroker::start(broker_port, upstream_port);
    let (upstream_pids, nginx_pids, broker_pids) = (upstream.pids(), nginx.pids(), [broker.pid()]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(prepare(broker_port, &code));

    let files = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = files.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let post_body = file("post", &vec![b'x'; POST_BYTES]);
    let grpc_get = file("grpc-get", &grpc_frame(&proxy_request("GET", Vec::new())));
    let grpc_post = file("grpc-post", &grpc_frame(&proxy_request("POST", vec![b'x'; POST_BYTES])));
    let http = |port: u16| format!("http://127.0.0.1:{port}/api/v2/data/ping");
    let grpc_headers: &[&str] = &["content-type: application/grpc", "te: trailers"];
    let octets: &[&str] = &["content-type: application/octet-stream"];
    let plain = |port| H2load { url: http(port), h1: false, body: None, headers: &[] };
    let posted = |port, h1| H2load { url: http(port), h1, body: Some(&post_body), headers: octets };
    let broker_url = format!("http://127.0.0.1:{broker_port}{PROXY_CALL}");
    let workloads = [
        (
            "small GET",
            [
                plain(direct_port),
                plain(nginx_port),
                H2load { url: broker_url.clone(), h1: false, body: Some(&grpc_get), headers: grpc_headers },
            ],
        ),
        (
            "64 KiB POST",
            [
                // HTTP/1.1 to the upstream's HTTP/1.1 port: over HTTP/2, nginx's `return` does
                // not read the request body, so the posting stream stalls on flow control.
                posted(upstream_port, true),
                posted(nginx_port, false),
                H2load { url: broker_url.clone(), h1: false, body: Some(&grpc_post), headers: grpc_headers },
            ],
        ),
    ];

    let streams = concurrency.div_ceil(connections);
    let mut nginx_get = 0.0;
    println!(
        "ProxyCall vs nginx's header-injecting proxy, h2load {connections}×{streams} in flight, 2×{seconds}s each:"
    );
    for (name, [direct, nginx, broker]) in &workloads {
        let (mut d, mut n, mut b) = (Some(0.0), Some(0.0), Some(0.0));
        let add = |sum: Option<f64>, rate: Option<f64>| Some(sum? + rate? / 2.0);
        let (mut n_cpu, mut b_cpu) = (Spent::default(), Spent::default());
        for _ in 0..2 {
            d = add(d, h2load(direct, seconds, connections, streams));
            n = add(
                n,
                n_cpu.add(&nginx_pids, &upstream_pids, seconds, || h2load(nginx, seconds, connections, streams)),
            );
            b = add(
                b,
                b_cpu.add(&broker_pids, &upstream_pids, seconds, || h2load(broker, seconds, connections, streams)),
            );
        }
        let failed = || "failed".to_owned();
        let [d_text, n_text, b_text] = [d, n, b].map(|r| r.map_or_else(failed, |r| format!("{r:.0} req/s")));
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map_or_else(failed, |(a, b)| format!("{:.3}", a / b));
        let (d, n, b) = (d.unwrap_or(f64::NAN), n.unwrap_or(f64::NAN), b.unwrap_or(f64::NAN));
        if nginx_get == 0.0 {
            nginx_get = if n.is_nan() { 1000.0 } else { n };
        }
        println!("  {name:<11} direct {d_text:>12}  nginx {n_text:>12}  ProxyCall {b_text:>12}");
        let (pn, nd) = (ratio(Some(b), Some(n)), ratio(Some(n), Some(d)));
        println!("  {name:<11} ratio ProxyCall/nginx {pn}  (nginx/direct {nd})  load {}", loadavg());
        println!("  {name:<11} CPU µs/request, nginx path:     {}", n_cpu.line());
        println!("  {name:<11} CPU µs/request, ProxyCall path: {}", b_cpu.line());
    }

    let rate = nginx_get * latency_percent as f64 / 100.0;
    print!("latency send→response at {latency_percent} % of nginx's GET throughput");
    println!(" ({rate:.0} req/s, open loop, {seconds}s):");
    rt.block_on(async {
        let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
        let nginx = get(client.clone(), http(nginx_port));
        let frame = bytes::Bytes::from(std::fs::read(&grpc_get).unwrap());
        let broker = grpc(client, broker_url.clone(), frame);
        let mut p = [(0u64, 0u64); 2];
        for (k, (name, call)) in [("nginx", &nginx), ("ProxyCall", &broker)].into_iter().enumerate() {
            let (h, late) = open_loop(call, rate, seconds).await;
            p[k] = (h.value_at_quantile(0.5), h.value_at_quantile(0.99));
            let (p999, max, n) = (h.value_at_quantile(0.999), h.max(), h.len());
            print!("  {name:<9} p50 {:>5} µs  p99 {:>5} µs  p99.9 {p999:>6} µs", p[k].0, p[k].1);
            println!("  max {max:>6} µs  (n={n}, sent >2 ms late: {late})");
        }
        let (d50, d99) = (p[1].0 as i64 - p[0].0 as i64, p[1].1 as i64 - p[0].1 as i64);
        println!("  added by ProxyCall over nginx: p50 {d50:+} µs, p99 {d99:+} µs  load {}", loadavg());
    });
}

/// The CPU time of one path's h2load runs, by party, and the requests they made.
#[derive(Default)]
struct Spent {
    proxy: Duration,
    upstream: Duration,
    generator: Duration,
    requests: f64,
}

impl Spent {
    /// Runs `run` (h2load, for `seconds` after its one-second warm-up), adding what the
    /// proxy's and the upstream's processes and h2load spent.
    fn add(&mut self, proxy: &[u32], upstream: &[u32], seconds: u64, run: impl FnOnce() -> Option<f64>) -> Option<f64> {
        let before = (cpu::threads(proxy, ""), cpu::threads(upstream, ""), cpu::waited_children());
        let rate = run();
        self.proxy += cpu::threads(proxy, "") - before.0;
        self.upstream += cpu::threads(upstream, "") - before.1;
        self.generator += cpu::waited_children() - before.2;
        // h2load reports the rate of the measured seconds; the warm-up ran at about the same.
        self.requests += rate.unwrap_or(f64::NAN) * (seconds + 1) as f64;
        rate
    }

    fn line(&self) -> String {
        let per_request = |d: Duration| d.as_secs_f64() * 1e6 / self.requests;
        let total = per_request(self.proxy + self.upstream + self.generator);
        format!(
            "proxy {:>5.1}  upstream {:>5.1}  h2load {:>5.1}  (all {total:.1})",
            per_request(self.proxy),
            per_request(self.upstream),
            per_request(self.generator)
        )
    }
}

fn get(client: reqwest::Client, url: String) -> Call {
    Arc::new(move |_| {
        let request = client.get(&url);
        Box::pin(async move {
            let response = request.send().await.expect("nginx answers");
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        })
    })
}

/// ProxyCall as raw gRPC over the same HTTP/2 client. A failed call answers in headers only
/// (`grpc-status` there): refused here; a successful one carries the upstream's body.
fn grpc(client: reqwest::Client, url: String, frame: bytes::Bytes) -> Call {
    Arc::new(move |_| {
        let request = client.post(&url).header("content-type", "application/grpc").body(frame.clone());
        Box::pin(async move {
            let response = request.send().await.expect("credbroker answers");
            assert!(response.status() == 200 && response.headers().get("grpc-status").is_none(), "{response:?}");
            assert!(response.bytes().await.unwrap().len() > BODY.len());
        })
    })
}

/// The 1-minute load average: absolute figures on a shared machine mean little without it.
pub fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_owned()
}

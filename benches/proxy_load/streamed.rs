//! A streamed upload and download (100 MiB by default) through `ProxyCallStream` of the real
//! binary against nginx's header-injecting proxy with request and response buffering off —
//! nginx streaming both bodies, as credbroker does, instead of spooling them to temp files.
//!
//! Both proxies call one upstream served from this process (HTTP/1.1): the upload handler
//! reads every byte before it answers, with the count, so a transfer is timed until the last
//! byte has reached the upstream (nginx's own `return` would answer before reading the body);
//! the download streams 64 KiB chunks of one static buffer. Each transfer is timed from
//! sending the request to the last byte of the answer; the rounds alternate nginx and
//! credbroker. Clients: reqwest over cleartext HTTP/2 to nginx, tonic to credbroker (both
//! hyper's HTTP/2 with its default windows).
//!
//! Every transfer also counts the CPU time each party spent (`/proc/<pid>/task/*/schedstat`):
//! the proxy (nginx's master and workers, or credbroker), the caller and the upstream (this
//! process's threads of two runtimes, told apart by their names). On a machine where all
//! three share the cores, their CPU per byte bounds the time: the figures say how much of a
//! ratio is the proxy's own work, how much the caller's (gRPC framing costs a caller more
//! than a plain HTTP/2 upload), and how much is waiting (cores idle).

use crate::cpu;
use crate::nginx::{Nginx, free_port};
use crate::vs_nginx::{Credbroker, USER, loadavg};
use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{self, proxy_call_chunk, proxy_call_response_chunk, put_credential_request::Secret};
use futures::StreamExt;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const CHUNK: usize = 64 * 1024;
static CHUNK_BYTES: [u8; CHUNK] = [b'x'; CHUNK];

fn chunks(total: usize) -> impl Iterator<Item = Bytes> {
    (0..total / CHUNK).map(|_| Bytes::from_static(&CHUNK_BYTES))
}

/// The upstream: `POST /api/v2/upload` answers the number of bytes it read; `GET
/// /api/v2/download` streams `total` bytes.
async fn upstream(listener: tokio::net::TcpListener, total: usize) {
    use axum::body::Body;
    use axum::routing::{get, post};
    let upload = |body: Body| async move {
        let mut stream = body.into_data_stream();
        let mut read = 0;
        while let Some(chunk) = stream.next().await {
            read += chunk.expect("the proxy sends the whole body").len();
        }
        read.to_string()
    };
    let download = move || async move {
        Body::from_stream(futures::stream::iter(chunks(total).map(Ok::<_, std::convert::Infallible>)))
    };
    let app = axum::Router::new().route("/api/v2/upload", post(upload)).route("/api/v2/download", get(download));
    axum::serve(listener, app).await.unwrap();
}

async fn nginx_upload(client: &reqwest::Client, base: &str, total: usize) {
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks(total).map(Ok::<_, std::io::Error>)));
    let response = client.post(format!("{base}upload")).body(body).send().await.expect("nginx answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), total.to_string(), "the upstream read every byte");
}

async fn nginx_download(client: &reqwest::Client, base: &str, total: usize) {
    let mut response = client.get(format!("{base}download")).send().await.expect("nginx answers");
    assert_eq!(response.status(), 200);
    let mut read = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        read += chunk.len();
    }
    assert_eq!(read, total);
}

/// One `ProxyCallStream`: the head, then `body` bytes in 64 KiB messages. The answer's body
/// size and its first bytes (the upload's count).
async fn streamed(
    client: &mut CredentialBrokerClient<Channel>,
    method: &str,
    path: &str,
    body: usize,
) -> (usize, Vec<u8>) {
    let head = pb::ProxyCallHead {
        provider: "bro".into(),
        subject: "bench-org".into(),
        method: method.into(),
        path: path.into(),
        timeout: Some(prost_types::Duration { seconds: 300, nanos: 0 }),
        ..Default::default()
    };
    let first = pb::ProxyCallChunk { part: Some(proxy_call_chunk::Part::Head(head)) };
    let rest = chunks(body).map(|bytes| pb::ProxyCallChunk { part: Some(proxy_call_chunk::Part::Body(bytes)) });
    let messages = futures::stream::iter(std::iter::once(first).chain(rest));
    let mut answer = client.proxy_call_stream(messages).await.expect("ProxyCallStream starts").into_inner();
    let first = answer.message().await.expect("credbroker answers").expect("a head");
    let Some(proxy_call_response_chunk::Part::Head(head)) = first.part else { panic!("the first message is the head") };
    assert_eq!(head.status, 200);
    let (mut read, mut received) = (0, Vec::new());
    while let Some(message) = answer.message().await.expect("the whole body") {
        let Some(proxy_call_response_chunk::Part::Body(bytes)) = message.part else { panic!("a second head") };
        read += bytes.len();
        if received.len() < 64 {
            received.extend_from_slice(&bytes[..bytes.len().min(64)]);
        }
    }
    (read, received)
}

const CALLER_THREADS: &str = "bench-caller";
const UPSTREAM_THREADS: &str = "bench-upstream";

/// What one path's transfers took: wall-clock time, and the CPU time of each party.
#[derive(Default)]
struct Spent {
    wall: Vec<Duration>,
    proxy: Duration,
    caller: Duration,
    upstream: Duration,
}

impl Spent {
    /// Runs `transfer`, adding its time and the CPU time of `proxy` and of this process's
    /// caller and upstream threads.
    async fn add(&mut self, proxy: &[u32], transfer: impl std::future::Future<Output = ()>) {
        let me = [std::process::id()];
        let before = (cpu::threads(proxy, ""), cpu::threads(&me, CALLER_THREADS), cpu::threads(&me, UPSTREAM_THREADS));
        let start = Instant::now();
        transfer.await;
        self.wall.push(start.elapsed());
        self.proxy += cpu::threads(proxy, "") - before.0;
        self.caller += cpu::threads(&me, CALLER_THREADS) - before.1;
        self.upstream += cpu::threads(&me, UPSTREAM_THREADS) - before.2;
    }

    fn total(&self) -> Duration {
        self.wall.iter().sum()
    }

    /// CPU seconds per GiB moved of each party, and the cores busy on average.
    fn cpu_line(&self, gib: f64) -> String {
        let per_gib = |d: Duration| d.as_secs_f64() / gib;
        let busy = (self.proxy + self.caller + self.upstream).as_secs_f64() / self.total().as_secs_f64();
        format!(
            "proxy {:.2}  caller {:.2}  upstream {:.2}  (cores busy {busy:.2})",
            per_gib(self.proxy),
            per_gib(self.caller),
            per_gib(self.upstream)
        )
    }
}

fn runtime(name: &'static str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name(name).enable_all().build().unwrap()
}

pub fn run(mib: usize, rounds: usize) {
    let rounds = rounds.max(1);
    let total = mib * 1024 * 1024 / CHUNK * CHUNK;
    let (rt, upstream_rt) = (runtime(CALLER_THREADS), runtime(UPSTREAM_THREADS));
    let listener = upstream_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let upstream_port = listener.local_addr().unwrap().port();
    upstream_rt.spawn(upstream(listener, total));

    let code = "ab".repeat(32);
    let authorization = format!("Basic {}", STANDARD.encode(format!("{USER}:{code}")));
    let (nginx_port, broker_port) = (free_port(), free_port());
    let streaming = "client_max_body_size 0; proxy_request_buffering off; proxy_buffering off;";
    let nginx = Nginx::proxy_with(nginx_port, upstream_port, &authorization, streaming);
    let broker_process = Credbroker::start(broker_port, upstream_port);
    let (nginx_pids, broker_pids) = (nginx.pids(), [broker_process.pid()]);

    println!("streamed {mib} MiB through ProxyCallStream vs nginx (buffering off), alternating, {rounds} rounds:");
    rt.block_on(async {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{broker_port}")).unwrap().connect().await.unwrap();
        let secret = Secret::BroToken(pb::BroToken { username: USER.into(), code: code.clone() });
        let put =
            pb::PutCredentialRequest { provider: "bro".into(), subject: "bench-org".into(), secret: Some(secret) };
        CredentialAdminClient::new(channel.clone()).put_credential(put).await.unwrap();
        let mut broker = CredentialBrokerClient::new(channel).max_decoding_message_size(4 * 1024 * 1024);
        let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
        let base = format!("http://127.0.0.1:{nginx_port}/api/v2/");

        for direction in ["upload", "download"] {
            let (mut n, mut b) = (Spent::default(), Spent::default());
            for _ in 0..rounds {
                match direction {
                    "upload" => n.add(&nginx_pids, nginx_upload(&client, &base, total)).await,
                    _ => n.add(&nginx_pids, nginx_download(&client, &base, total)).await,
                }
                let transfer = async {
                    if direction == "upload" {
                        let (_, count) = streamed(&mut broker, "POST", "upload", total).await;
                        assert_eq!(count, total.to_string().as_bytes(), "the upstream read every byte");
                    } else {
                        assert_eq!(streamed(&mut broker, "GET", "download", 0).await.0, total);
                    }
                };
                b.add(&broker_pids, transfer).await;
            }
            let (n_total, b_total) = (n.total(), b.total());
            let rate = |d: Duration| (rounds * mib) as f64 / d.as_secs_f64();
            let per_round = |d: Duration| d.as_millis() / rounds as u128;
            print!("  {direction:<8} nginx {:>6} ms ({:>6.0} MiB/s)", per_round(n_total), rate(n_total));
            println!("  ProxyCallStream {:>6} ms ({:>6.0} MiB/s)", per_round(b_total), rate(b_total));
            // Each round's pair ran back to back: their ratios show the spread of single transfers.
            let mut ratios: Vec<f64> =
                n.wall.iter().zip(&b.wall).map(|(n, b)| b.as_secs_f64() / n.as_secs_f64()).collect();
            ratios.sort_by(f64::total_cmp);
            println!(
                "  {direction:<8} time ProxyCallStream/nginx {:.3}  (goal ≤ 1.2)  per round median {:.3}, {:.3}–{:.3}  load {}",
                b_total.as_secs_f64() / n_total.as_secs_f64(),
                ratios[ratios.len() / 2],
                ratios[0],
                ratios[ratios.len() - 1],
                loadavg()
            );
            let gib = (rounds * mib) as f64 / 1024.0;
            println!("  {direction:<8} CPU s/GiB, nginx path:           {}", n.cpu_line(gib));
            println!("  {direction:<8} CPU s/GiB, ProxyCallStream path: {}", b.cpu_line(gib));
        }
    });
}

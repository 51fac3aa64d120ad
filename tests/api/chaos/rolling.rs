//! Behind a load balancer, for real: nginx (Debian's, with deploy/nginx/nginx.conf pointed at
//! loopback) in front of three replicas and Redis; 100 concurrent callers with the standard
//! gRPC retry policy on UNAVAILABLE; a rolling restart of all three replicas under that load,
//! while short-lived Passolution tokens rotate. Then: 0 failed RPCs, no refresh token redeemed
//! twice, every credential ACTIVE, one upstream refresh per expiry fleet-wide.

use super::record_line;
use crate::harness::{
    Clients, Fleet, FleetOptions, eventually, free_port, issue_aged_tokens, poll, secs, wait_for_port,
};
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{self, CredentialState};
use fake_upstream::{Operation, Outcome};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::process::{Child, Command};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

const CALLERS: usize = 100;
const CREDENTIALS: usize = 10;
/// Tokens live 8 s and are renewed at 75 %: every credential rotates a few times per roll.
const LIFETIME: Duration = Duration::from_secs(8);

#[derive(Default)]
struct Tally {
    rpcs: u64,
    failed: u64,
    retries: u64,
    latency: Option<Histogram<u64>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_behind_nginx_fails_no_call() {
    let mut options = FleetOptions::new("", true);
    options.env.push(("CREDBROKER__SERVER__DRAIN_DELAY", "1s"));
    let mut fleet = Fleet::start(options).await;
    fleet.fake.knobs().set_passolution_access_lifetime(LIFETIME);
    let mut first_tokens = Vec::new();
    for n in 0..CREDENTIALS {
        let (_, refresh, tokens) = issue_aged_tokens(&fleet.fake, LIFETIME, Duration::ZERO);
        let put =
            pb::PutCredentialRequest { provider: "passolution".into(), subject: subject(n), secret: Some(tokens) };
        fleet.replicas[0].admin.clone().put_credential(put).await.unwrap();
        first_tokens.push(refresh);
    }
    let ports: Vec<u16> = fleet.replicas.iter().map(|r| r.port).collect();
    let nginx = Nginx::start(&ports).await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", nginx.port)).unwrap().connect().await.unwrap();

    let traffic = Arc::new(Traffic::default());
    let callers: Vec<_> = (0..CALLERS).map(|c| tokio::spawn(caller(c, channel.clone(), traffic.clone()))).collect();
    traffic.wait_for(CALLS_AROUND_THE_ROLL).await; // load before the roll
    let roll_started = Instant::now();
    for index in 0..fleet.replicas.len() {
        fleet.restart_replica_in_place(index).await;
        serving(fleet.replicas[index].port).await;
    }
    let roll = roll_started.elapsed();
    traffic.wait_for(traffic.calls.load(Ordering::SeqCst) + CALLS_AROUND_THE_ROLL).await; // and after it
    traffic.stop.store(true, Ordering::SeqCst);
    let mut total = Tally { latency: Some(Histogram::new(3).unwrap()), ..Tally::default() };
    for caller in callers {
        let tally = caller.await.unwrap();
        total.rpcs += tally.rpcs;
        total.failed += tally.failed;
        total.retries += tally.retries;
        total.latency.as_mut().unwrap().add(tally.latency.unwrap()).unwrap();
    }
    let states = final_states(&channel).await;
    let (refreshes, shortest_gap) = refresh_spacing(&fleet, &first_tokens);
    let latency = total.latency.as_ref().unwrap();
    let line = format!(
        "rolling restart behind nginx: callers={CALLERS} rpcs={} failed={} retries={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} roll_s={:.1} refreshes={refreshes} shortest_refresh_gap_s={:.1} reuses={}\n",
        total.rpcs,
        total.failed,
        total.retries,
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
        roll.as_secs_f64(),
        shortest_gap.as_secs_f64(),
        fleet.fake.ledger().violations().len(),
    );
    record_line(&line);

    assert!(total.rpcs > 1000, "the load ran: {line}");
    assert_eq!(total.failed, 0, "no caller saw a failure after its retries: {line}\nnginx: {}", nginx.errors());
    assert_eq!(fleet.fake.ledger().violations().len(), 0, "a refresh token was redeemed twice: {line}");
    assert!(states.iter().all(|s| *s == CredentialState::Active), "{states:?}");
    assert!(refreshes >= CREDENTIALS, "tokens rotated during the roll: {line}");
    // Renewals come at 75 % of a token's life; a second refresh for the same expiry would
    // follow the first within moments.
    assert!(shortest_gap >= LIFETIME / 2, "two refreshes for one expiry: {line}");
}

fn subject(n: usize) -> String {
    format!("rolling-{n}")
}

/// Calls made before the roll starts and after it ends (about 2 s of the callers' load here):
/// a count rather than a time, so a slow machine still puts the load around the roll.
const CALLS_AROUND_THE_ROLL: u64 = 10 * CALLERS as u64;

/// What the callers share: when to stop, and how many calls they have finished.
#[derive(Default)]
struct Traffic {
    stop: AtomicBool,
    calls: AtomicU64,
}

impl Traffic {
    /// Until the callers have finished `calls` calls in all.
    async fn wait_for(&self, calls: u64) {
        let made = || async {
            let made = self.calls.load(Ordering::SeqCst);
            if made >= calls { Ok(()) } else { Err(made) }
        };
        eventually(&format!("the callers make {calls} calls"), Duration::from_secs(60), made).await;
    }
}

/// One caller: GetAuthorization in a loop, each call under the standard retry policy.
async fn caller(index: usize, channel: Channel, traffic: Arc<Traffic>) -> Tally {
    let mut client = CredentialBrokerClient::new(channel);
    let mut tally = Tally { latency: Some(Histogram::new(3).unwrap()), ..Tally::default() };
    let mut n = index;
    while !traffic.stop.load(Ordering::SeqCst) {
        n += 1;
        let started = Instant::now();
        let (ok, attempts) = call_with_retries(&mut client, &subject(n % CREDENTIALS)).await;
        tally.rpcs += 1;
        tally.failed += u64::from(!ok);
        tally.retries += attempts - 1;
        tally.latency.as_mut().unwrap().record(started.elapsed().as_micros() as u64).unwrap();
        traffic.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tally
}

/// gRPC's retry policy as a client's service config states it: `maxAttempts: 5`,
/// `initialBackoff: 0.1s`, `maxBackoff: 1s`, `backoffMultiplier: 2`,
/// `retryableStatusCodes: [UNAVAILABLE]` (tonic has no service-config retries).
async fn call_with_retries(client: &mut CredentialBrokerClient<Channel>, subject: &str) -> (bool, u64) {
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=5 {
        let request = pb::GetAuthorizationRequest {
            provider: "passolution".into(),
            subject: subject.into(),
            min_validity: secs(1),
        };
        let mut request = tonic::Request::new(request);
        request.set_timeout(Duration::from_secs(15));
        match client.get_authorization(request).await {
            Ok(_) => return (true, attempt),
            Err(status) if status.code() == tonic::Code::Unavailable && attempt < 5 => {
                // Full jitter, as the policy specifies.
                tokio::time::sleep(backoff.mul_f64(rand::random::<f64>())).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(status) => {
                eprintln!("caller failed for {subject}: {status:?}");
                return (false, attempt);
            }
        }
    }
    unreachable!("the last attempt returns")
}

async fn serving(port: u16) {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
    let health = HealthClient::new(channel);
    let ready = || async {
        let request = HealthCheckRequest { service: "credbroker.v1.CredentialBroker".into() };
        let answer = health.clone().check(request).await;
        answer.is_ok_and(|answer| answer.into_inner().status() == ServingStatus::Serving)
    };
    eventually(&format!("the replica on {port} becomes ready"), Duration::from_secs(20), ready).await;
}

/// Each credential's state once no refresh is under way (tokens rotate every 6 s, so one may
/// be REFRESHING at any moment: that is transient, not a failure).
async fn final_states(channel: &Channel) -> Vec<CredentialState> {
    let clients = Clients::over(channel.clone());
    let mut states = Vec::new();
    for n in 0..CREDENTIALS {
        let settled = || async {
            let state = clients.status("passolution", &subject(n)).await.unwrap().state();
            if state != CredentialState::Refreshing { Ok(state) } else { Err(state) }
        };
        // Still REFRESHING after 10 s: kept as it is, and the caller's check reports it.
        states.push(poll(Duration::from_secs(10), settled).await.unwrap_or_else(|state| state));
    }
    states
}

/// Follows each credential's chain of refresh tokens through the fake's ledger: how many
/// refreshes in all, and the shortest time between two refreshes of one credential.
fn refresh_spacing(fleet: &Fleet, first_tokens: &[String]) -> (usize, Duration) {
    let entries = fleet.fake.ledger().entries();
    let issued: HashMap<&str, (SystemTime, &str)> = entries
        .iter()
        .filter(|e| e.operation == Operation::RefreshTokenGrant && e.outcome == Outcome::Issued)
        .filter_map(|e| Some((e.presented_token.as_deref()?, (e.at, e.issued_token.as_deref()?))))
        .collect();
    let (mut refreshes, mut shortest) = (0, Duration::MAX);
    for first in first_tokens {
        let (mut current, mut previous) = (first.as_str(), None::<SystemTime>);
        while let Some((at, next)) = issued.get(current) {
            refreshes += 1;
            if let Some(previous) = previous {
                shortest = shortest.min(at.duration_since(previous).unwrap_or_default());
            }
            (current, previous) = (next, Some(*at));
        }
    }
    (refreshes, shortest)
}

/// nginx from Debian's package, running deploy/nginx/nginx.conf with loopback addresses.
struct Nginx {
    port: u16,
    dir: tempfile::TempDir,
    _child: Child,
}

impl Nginx {
    async fn start(replicas: &[u16]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = loopback_config(dir.path(), port, replicas);
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx on PATH (Debian: apt-get install nginx-light or nginx)");
        wait_for_port(port).await;
        Self { port, dir, _child: child }
    }

    /// The end of nginx's error log (why it answered 502/504), for a failure message.
    fn errors(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        let lines: Vec<&str> =
            log.lines().filter(|l| !l.contains("[notice]") && !l.contains("no live upstreams")).collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// The shipped configuration, with its container paths and names swapped for loopback.
fn loopback_config(dir: &Path, port: u16, replicas: &[u16]) -> String {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/nginx.conf")).unwrap();
    let mut config = shipped
        .replace("/tmp/", &format!("{}/", dir.display()))
        .replace("listen 50051 http2;", &format!("listen 127.0.0.1:{port} http2;"))
        .replace("access_log /dev/stdout grpc;", "access_log off;")
        .replace("error_log stderr notice;", &format!("error_log {}/error.log notice;", dir.display()))
        .replace("worker_processes auto;", "worker_processes 1;");
    for (n, replica) in replicas.iter().enumerate() {
        config = config.replace(&format!("server credbroker-{}:50051", n + 1), &format!("server 127.0.0.1:{replica}"));
    }
    assert!(!config.contains("credbroker-1:"), "the shipped upstream block changed:\n{config}");
    // Running as root here: workers would switch to `nobody`, which cannot use the temp dir.
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    if uid == 0 {
        config = format!("user root;\n{config}");
    }
    config
}

//! A real scrape of the binary: every metric the alerting rules and the dashboard use (the
//! metrics contract) is exported with data, the text passes `promtool check metrics`, and no
//! subject reaches a label.
//!
//! The binary runs on a real Redis with the fake upstream, and the test drives each signal:
//! Passolution rotations (renewals, transitions, budget waits — a burst of eight must queue
//! for the default budget), a lease held by "another replica" (a lease wait), a proxied call, a
//! cache hit, and last a 429 from the token endpoint.

use super::contract::METRICS;
use super::support::{required_tool, run_ok};
use crate::helpers::TEST_KEY;
use crate::shutdown::{free_port, wait_for_port};
use crate::upstream::{issue_aged_tokens, secs};
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{self};
use fake_upstream::{FailureMode, FakeUpstream, Operation, Provider, Times};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;
use tonic::transport::Channel;

/// Contract metrics this scrape cannot drive (they count refusals at the trust boundary and
/// Redis replication trouble; `trust::mtls` and the failover tests drive them). The test
/// insists they are absent here (nothing in this run causes them): a counter that shows up
/// without a cause would be a bug.
const NOT_YET: [&str; 3] = [
    "credbroker_auth_denials_total",
    "credbroker_audit_write_failures_total",
    "credbroker_journal_not_replicated_total",
];
const SUBJECT: &str = "scrape-subject";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_contract_metric_is_exported_and_promtool_accepts_the_scrape() {
    let fleet = Single::start().await;
    let (mut broker, mut admin) = (fleet.broker(), fleet.admin());
    // Eight rotations at once: the budget (240/min, bursts of 4) makes the later ones queue.
    for n in 0..8 {
        let (_, _, tokens) = issue_aged_tokens(&fleet.fake, Duration::from_secs(60), Duration::from_secs(50));
        admin.put_credential(put(&format!("{SUBJECT}-{n}"), tokens)).await.unwrap();
    }
    let calls = (0..8).map(|n| {
        let mut broker = broker.clone();
        async move { broker.get_authorization(get(&format!("{SUBJECT}-{n}"))).await }
    });
    for answer in futures::future::join_all(calls).await {
        answer.expect("each credential is renewed");
    }
    broker.get_authorization(get(&format!("{SUBJECT}-0"))).await.expect("a cache hit");
    fleet.lease_wait(&mut admin, &mut broker).await;
    let proxied = pb::ProxyCallRequest {
        provider: "passolution".into(),
        subject: format!("{SUBJECT}-0"),
        method: "GET".into(),
        path: "data/echo".into(),
        ..Default::default()
    };
    broker.proxy_call(proxied).await.expect("a proxied call");
    fleet.fake.knobs().fail_only(
        Provider::Passolution,
        Operation::ClientCredentialsGrant,
        FailureMode::Status(429),
        Times::Next(1),
    );
    let own = pb::GetAuthorizationRequest { provider: "passolution".into(), ..Default::default() };
    broker.get_authorization(own).await.expect_err("the token endpoint said 429");

    let text = fleet.scrape().await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let promtool = required_tool("promtool", "apt-get install --no-install-recommends prometheus");
    run_ok(
        std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(file.path()).unwrap()),
    );
    for metric in METRICS {
        let exported = text.contains(&format!("# TYPE {metric} "));
        assert_eq!(exported, !NOT_YET.contains(&metric), "{metric}: exported = {exported}\n{text}");
    }
    assert!(!text.contains(SUBJECT), "a subject reached a label:\n{text}");
    for signal in [
        "credbroker_credential_transitions_total{provider=\"passolution\",to=\"REFRESHING\"}",
        "credbroker_renewals_total{kind=\"rotation\",outcome=\"success\",provider=\"passolution\"}",
        "credbroker_upstream_rate_limited_total{provider=\"passolution\"} 1",
        "credbroker_cache_requests_total{result=\"hit\"}",
        "credbroker_ready 1",
        "credbroker_draining 0",
        "rpc_grpc_status_code=\"0\",rpc_method=\"GetAuthorization\",rpc_service=\"credbroker.v1.CredentialBroker\"",
    ] {
        assert!(text.contains(signal), "{signal} missing from\n{text}");
    }
}

/// One credbroker process on a real Redis, with `/metrics` on.
struct Single {
    fake: FakeUpstream,
    redis_port: u16,
    prefix: String,
    channel: Channel,
    metrics_port: u16,
    _redis: tokio::process::Child,
    _broker: tokio::process::Child,
}

impl Single {
    async fn start() -> Self {
        let fake = crate::upstream::fake_with_client().await;
        let (port, metrics_port, redis_port) = (free_port(), free_port(), free_port());
        let redis = crate::readiness::redis_server(redis_port);
        wait_for_port(redis_port).await;
        let prefix = crate::helpers::random_prefix();
        let passolution = fake.url(Provider::Passolution);
        let broker = Command::new(env!("CARGO_BIN_EXE_credbroker"))
            .arg("serve")
            .env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("CREDBROKER__METRICS__LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env("CREDBROKER__STORE__REDIS_URL", format!("redis://127.0.0.1:{redis_port}"))
            .env("CREDBROKER__STORE__KEY_PREFIX", &prefix)
            .env("CREDBROKER__STORE__LEASE_TTL", "1s")
            .env("CREDBROKER__ENCRYPTION__KEY", TEST_KEY)
            .env("CREDBROKER__PROVIDERS__PASSOLUTION__API_BASE_URL", format!("{passolution}api/v2/"))
            .env("CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL", format!("{passolution}oauth/token"))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_for_port(port).await;
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
        Self { fake, redis_port, prefix, channel, metrics_port, _redis: redis, _broker: broker }
    }

    fn broker(&self) -> CredentialBrokerClient<Channel> {
        CredentialBrokerClient::new(self.channel.clone())
    }

    fn admin(&self) -> CredentialAdminClient<Channel> {
        CredentialAdminClient::new(self.channel.clone())
    }

    /// A credential due for renewal whose lease "another replica" holds for 500 ms (taken
    /// before the credential exists, so nothing here renews it first): the caller waits for
    /// it, then is served.
    async fn lease_wait(
        &self,
        admin: &mut CredentialAdminClient<Channel>,
        broker: &mut CredentialBrokerClient<Channel>,
    ) {
        let subject = format!("{SUBJECT}-leased");
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.redis_port)).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let key = format!("{}:{{passolution:{subject}}}:lease", self.prefix);
        let _: () =
            redis::cmd("SET").arg(&key).arg("another-replica").arg("PX").arg(500).query_async(&mut conn).await.unwrap();
        let (_, _, tokens) = issue_aged_tokens(&self.fake, Duration::from_secs(60), Duration::from_secs(50));
        admin.put_credential(put(&subject, tokens)).await.unwrap();
        broker.get_authorization(get(&subject)).await.expect("served once the lease lapsed");
    }

    /// `/metrics`, once the fleet-wide credential count has been published.
    async fn scrape(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response = reqwest::get(&url).await.expect("the metrics listener answers");
            assert_eq!(response.status(), 200);
            let text = response.text().await.unwrap();
            if text.contains("# TYPE credbroker_credentials ") {
                return text;
            }
            assert!(Instant::now() < deadline, "credbroker_credentials never published:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn put(subject: &str, tokens: pb::put_credential_request::Secret) -> pb::PutCredentialRequest {
    pb::PutCredentialRequest { provider: "passolution".into(), subject: subject.into(), secret: Some(tokens) }
}

fn get(subject: &str) -> pb::GetAuthorizationRequest {
    pb::GetAuthorizationRequest { provider: "passolution".into(), subject: subject.into(), min_validity: secs(20) }
}

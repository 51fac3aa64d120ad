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
use crate::harness::{
    Process, RedisNode, Serve, TEST_KEY, eventually, free_port, issue_aged_tokens, random_prefix, secs, start_fake,
    wait_for_port,
};
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{self};
use fake_upstream::{FailureMode, FakeUpstream, Operation, Provider, Times};
use std::time::Duration;
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
    redis: RedisNode,
    prefix: String,
    metrics_port: u16,
    process: Process,
}

impl Single {
    async fn start() -> Self {
        let fake = start_fake().await;
        let redis = RedisNode::ephemeral_on(free_port());
        wait_for_port(redis.port).await;
        let (prefix, metrics_port) = (random_prefix(), free_port());
        let process = Serve::new()
            .env("CREDBROKER__METRICS__LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env("CREDBROKER__STORE__REDIS_URL", redis.url())
            .env("CREDBROKER__STORE__KEY_PREFIX", &prefix)
            .env("CREDBROKER__STORE__LEASE_TTL", "1s")
            .env("CREDBROKER__ENCRYPTION__KEY", TEST_KEY)
            .passolution_at(&fake.url(Provider::Passolution))
            .start()
            .await;
        Self { fake, redis, prefix, metrics_port, process }
    }

    fn broker(&self) -> CredentialBrokerClient<Channel> {
        self.process.broker.clone()
    }

    fn admin(&self) -> CredentialAdminClient<Channel> {
        self.process.admin.clone()
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
        let mut conn = self.redis.connection().await;
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
        let published = || async {
            let response = reqwest::get(&url).await.expect("the metrics listener answers");
            assert_eq!(response.status(), 200);
            let text = response.text().await.unwrap();
            if text.contains("# TYPE credbroker_credentials ") { Ok(text) } else { Err(text) }
        };
        eventually("credbroker_credentials is published", Duration::from_secs(10), published).await
    }
}

fn put(subject: &str, tokens: pb::put_credential_request::Secret) -> pb::PutCredentialRequest {
    pb::PutCredentialRequest { provider: "passolution".into(), subject: subject.into(), secret: Some(tokens) }
}

fn get(subject: &str) -> pb::GetAuthorizationRequest {
    pb::GetAuthorizationRequest { provider: "passolution".into(), subject: subject.into(), min_validity: secs(20) }
}

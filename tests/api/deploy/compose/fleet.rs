//! The compose fleet for real: images built from the test binaries, `compose up`, calls
//! through nginx, then `compose stop` and `down`.

use super::{REPLICAS, compose};
use crate::deploy::docker::{
    ImageGuard, docker, dockerfile_config, image_config, logs, published, serving_channel, unique,
};
use crate::deploy::support::{key_file, read, repo, run_ok, stdout, without_pending_keys};
use crate::harness::eventually;
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{self, put_credential_request::Secret};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tonic::transport::Channel;

/// A compose project from freshly built local images; taken down with its volumes and
/// images when the test ends.
struct Fleet {
    project: String,
    env: Vec<(String, String)>,
    /// Publishes Redis on loopback too, so the test can read its settings.
    redis_port: tempfile::NamedTempFile,
    _images: Vec<ImageGuard>,
    _files: [tempfile::NamedTempFile; 2],
}

impl Fleet {
    fn build() -> Self {
        let tag = unique("fleet");
        let images = [
            ("CREDBROKER_IMAGE", format!("credbroker:{tag}")),
            ("FAKE_UPSTREAM_IMAGE", format!("credbroker-fake-upstream:{tag}")),
            ("NGINX_IMAGE", format!("credbroker-nginx:{tag}")),
        ];
        // Guards first: a failed build still removes what it made.
        let guards = images.iter().map(|(_, image)| ImageGuard(image.clone())).collect();
        let [key, config] = mounted_files();
        let mut env: Vec<(String, String)> = images.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        env.extend([
            ("CREDBROKER_KEY_FILE".to_owned(), key.path().display().to_string()),
            ("CREDBROKER_CONFIG".to_owned(), config.path().display().to_string()),
            ("CREDBROKER_LB_PORT".to_owned(), "0".to_owned()),
        ]);
        let binaries = PathBuf::from(env!("CARGO_BIN_EXE_credbroker")).parent().unwrap().to_owned();
        run_ok(Command::new(repo().join("scripts/fleet-images.sh")).arg(&binaries).envs(env.iter().cloned()));
        let redis_port = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(redis_port.path(), "services:\n  redis:\n    ports: [\"127.0.0.1:0:6379\"]\n").unwrap();
        Fleet { project: unique("credbroker-fleet"), env, redis_port, _images: guards, _files: [key, config] }
    }

    fn image(&self, variable: &str) -> &str {
        &self.env.iter().find(|(k, _)| k == variable).unwrap().1
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = compose();
        command.arg("-f").arg(self.redis_port.path()).args(["-p", &self.project, "--profile", "demo"]);
        command.args(args).envs(self.env.iter().cloned());
        command
    }

    fn compose(&self, args: &[&str]) -> String {
        stdout(&run_ok(&mut self.command(args)))
    }

    fn published(&self, service: &str, port: u16) -> String {
        published(&self.container(service), port)
    }

    /// The container of a service, found by the labels compose (v1 and v2) puts on it; the
    /// docker CLI answers much faster than compose v1.
    fn container(&self, service: &str) -> String {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let service = format!("label=com.docker.compose.service={service}");
        docker(&["ps", "-a", "-q", "--filter", &project, "--filter", &service]).trim().to_owned()
    }

    fn logs(&self, service: &str) -> String {
        logs(&self.container(service))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // No panic here: this may run while a failed assertion unwinds.
        let _ = self.command(&["down", "-v", "--remove-orphans", "-t", "30"]).output();
    }
}

/// The shared key and the replicas' configuration (without keys this binary does not know
/// yet). Compose bind-mounts them as they are, and the replicas run as 65532: world-readable.
fn mounted_files() -> [tempfile::NamedTempFile; 2] {
    use std::os::unix::fs::PermissionsExt;
    let key = key_file();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), without_pending_keys(&read("deploy/config/credbroker.toml"))).unwrap();
    for file in [&key, &config] {
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    [key, config]
}

#[tokio::test]
async fn compose_fleet_serves_through_the_balancer() {
    let started = std::time::Instant::now();
    let fleet = Fleet::build();
    eprintln!("fleet: images built after {:?}", started.elapsed());
    let fake = fleet.image("FAKE_UPSTREAM_IMAGE");
    assert_eq!(image_config(fake), dockerfile_config("deploy/Dockerfile", Some("fake-upstream")));
    assert_eq!(image_config(fleet.image("NGINX_IMAGE")), dockerfile_config("deploy/nginx/Dockerfile", None));
    fleet.compose(&["up", "-d"]);

    let redis = redis::Client::open(format!("redis://{}", fleet.published("redis", 6379))).unwrap();
    assert_redis_is_durable(&redis).await;
    let channel = serving_channel(&fleet.published("lb", 50051), "credbroker.v1.CredentialBroker").await;
    eprintln!("fleet: serving through the balancer after {:?}", started.elapsed());
    let status = put_until_served(&channel).await;
    assert_eq!(status.state(), pb::CredentialState::Active, "the PASS login at the fake upstream succeeded");

    let token = calls_spread_over_every_replica(&fleet, channel).await;
    for service in REPLICAS.into_iter().chain(["lb"]) {
        let logs = fleet.logs(service);
        for secret in [crate::harness::TEST_KEY, "demo-password-1", token.as_str()] {
            assert!(!logs.contains(secret), "{service} logged a secret");
        }
    }
    eprintln!("fleet: checks done after {:?}", started.elapsed());

    fleet.compose(&["stop", "-t", "60"]);
    eprintln!("fleet: stopped after {:?}", started.elapsed());
    for service in REPLICAS.into_iter().chain(["lb", "redis", "fake-upstream"]) {
        let exit = docker(&["inspect", "--format", "{{.State.ExitCode}}", &fleet.container(service)]);
        assert_eq!(exit.trim(), "0", "{service} did not stop cleanly:\n{}", fleet.logs(service));
    }
}

/// 30 calls over one HTTP/2 connection to nginx: every replica serves some (L7 balancing),
/// all with the same header (one store, one key). Returns the bearer token.
async fn calls_spread_over_every_replica(fleet: &Fleet, channel: Channel) -> String {
    let mut broker = CredentialBrokerClient::new(channel);
    let mut headers = BTreeSet::new();
    for _ in 0..30 {
        let request =
            pb::GetAuthorizationRequest { provider: "pass".into(), subject: "jan".into(), ..Default::default() };
        let answer = broker.get_authorization(request).await.expect("served through the balancer").into_inner();
        headers.insert(answer.headers.iter().map(|h| format!("{}: {}", h.name, h.value)).collect::<Vec<_>>());
    }
    assert_eq!(headers.len(), 1, "every replica serves the same stored session");
    let served_by = replicas_that_served(fleet).await;
    assert_eq!(served_by.len(), 3, "calls spread over every replica: {served_by:?}");
    let authorization = headers.first().unwrap()[0].strip_prefix("authorization: Bearer ");
    authorization.expect("a PASS bearer token").to_owned()
}

async fn assert_redis_is_durable(client: &redis::Client) {
    let mut connection = client.get_multiplexed_async_connection().await.expect("redis reachable");
    for (setting, expected) in [("appendonly", "yes"), ("appendfsync", "always"), ("maxmemory-policy", "noeviction")] {
        let (_, value): (String, String) =
            redis::cmd("CONFIG").arg("GET").arg(setting).query_async(&mut connection).await.unwrap();
        assert_eq!(value, expected, "Redis {setting}");
    }
}

/// Stores the demo PASS login through the balancer. A replica that has not reached Redis yet
/// answers UNAVAILABLE, which a caller retries.
async fn put_until_served(channel: &Channel) -> pb::CredentialStatus {
    let login = pb::UsernamePassword { username: "demo.pashouder".into(), password: "demo-password-1".into() };
    let request = pb::PutCredentialRequest {
        provider: "pass".into(),
        subject: "jan".into(),
        secret: Some(Secret::UsernamePassword(login)),
    };
    let admin = CredentialAdminClient::new(channel.clone());
    let stored = || async {
        match admin.clone().put_credential(request.clone()).await {
            Ok(answer) => Ok(answer.into_inner()),
            Err(status) if status.code() == tonic::Code::Unavailable => Err(status),
            Err(status) => panic!("PutCredential through the balancer: {status:?}"),
        }
    };
    eventually("PutCredential through the balancer is served", Duration::from_secs(60), stored).await
}

/// The upstream addresses nginx logged for GetAuthorization calls (its access log reaches
/// `docker logs` shortly after each call).
async fn replicas_that_served(fleet: &Fleet) -> BTreeSet<String> {
    let logged = || async {
        let logs = fleet.logs("lb");
        let calls = logs.lines().filter(|l| l.contains("/credbroker.v1.CredentialBroker/GetAuthorization"));
        let upstreams: BTreeSet<String> = calls
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("upstream=")).map(str::to_owned))
            .collect();
        if upstreams.len() >= 3 { Ok(upstreams) } else { Err(upstreams) }
    };
    eventually("nginx logged calls served by every replica", Duration::from_secs(20), logged).await
}

//! Readiness vs liveness, through the real binary: the services report NOT_SERVING until the
//! store was reached and again from SIGTERM on (while the replica still serves for
//! `server.drain_delay`); the plain check `""` is SERVING throughout.

use crate::helpers::TEST_KEY;
use crate::shutdown::{free_port, wait_for_port};
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

const BROKER: &str = "credbroker.v1.CredentialBroker";
const ADMIN: &str = "credbroker.v1.CredentialAdmin";

#[tokio::test]
async fn readiness_waits_for_the_store_and_ends_when_draining_begins() {
    let (port, redis_port) = (free_port(), free_port());
    let mut broker = Command::new(env!("CARGO_BIN_EXE_credbroker"))
        .arg("serve")
        .env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("CREDBROKER__SERVER__DRAIN_DELAY", "3s")
        .env("CREDBROKER__STORE__REDIS_URL", format!("redis://127.0.0.1:{redis_port}"))
        .env("CREDBROKER__STORE__CONNECT_TIMEOUT", "200ms")
        .env("CREDBROKER__ENCRYPTION__KEY", TEST_KEY)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel.clone());
    // Redis is not there yet: alive, not ready.
    assert_eq!(status(&mut health, "").await, ServingStatus::Serving);
    assert_eq!(status(&mut health, BROKER).await, ServingStatus::NotServing);
    assert_eq!(status(&mut health, ADMIN).await, ServingStatus::NotServing);

    let _redis = redis_server(redis_port);
    wait_for_status(&mut health, BROKER, ServingStatus::Serving).await;
    assert_eq!(status(&mut health, ADMIN).await, ServingStatus::Serving);

    let pid = nix::unistd::Pid::from_raw(broker.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_for_status(&mut health, BROKER, ServingStatus::NotServing).await;
    assert_eq!(status(&mut health, ADMIN).await, ServingStatus::NotServing);
    assert_eq!(status(&mut health, "").await, ServingStatus::Serving, "liveness does not drain");
    // Still serving during the drain delay: an RPC gets its answer, not a transport error.
    let request = credbroker::grpc::pb::GetAuthorizationRequest {
        provider: "bro".into(),
        subject: "nobody".into(),
        min_validity: None,
    };
    let answer = CredentialBrokerClient::new(channel).get_authorization(request).await.unwrap_err();
    assert_eq!(answer.code(), tonic::Code::NotFound, "{answer:?}");
    let exit = tokio::time::timeout(Duration::from_secs(20), broker.wait()).await.expect("exits after the drain");
    assert!(exit.unwrap().success());
}

async fn status(health: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let request = HealthCheckRequest { service: service.into() };
    health.check(request).await.unwrap_or_else(|e| panic!("{service:?}: {e:?}")).into_inner().status()
}

async fn wait_for_status(health: &mut HealthClient<Channel>, service: &str, expected: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(health, service).await != expected {
        assert!(Instant::now() < deadline, "{service} never became {expected:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A throw-away redis-server on loopback `port` (no persistence), killed when dropped.
pub fn redis_server(port: u16) -> tokio::process::Child {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server on PATH (Debian: apt-get install redis-server)")
}

//! Readiness vs liveness, through the real binary: the services report NOT_SERVING until the
//! store was reached and again from SIGTERM on (while the replica still serves for
//! `server.drain_delay`); the plain check `""` is SERVING throughout.

use crate::harness::{RedisNode, Serve, TEST_KEY, eventually, free_port};
use nix::sys::signal::Signal;
use std::time::Duration;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

const BROKER: &str = "credbroker.v1.CredentialBroker";
const ADMIN: &str = "credbroker.v1.CredentialAdmin";

#[tokio::test]
async fn readiness_waits_for_the_store_and_ends_when_draining_begins() {
    let redis_port = free_port();
    let mut broker = Serve::new()
        .env("CREDBROKER__SERVER__DRAIN_DELAY", "3s")
        .env("CREDBROKER__STORE__REDIS_URL", format!("redis://127.0.0.1:{redis_port}"))
        .env("CREDBROKER__STORE__CONNECT_TIMEOUT", "200ms")
        .env("CREDBROKER__ENCRYPTION__KEY", TEST_KEY)
        .start()
        .await;
    let mut health = HealthClient::new(broker.channel.clone());
    // Redis is not there yet: alive, not ready.
    assert_eq!(status(&mut health, "").await, ServingStatus::Serving);
    assert_eq!(status(&mut health, BROKER).await, ServingStatus::NotServing);
    assert_eq!(status(&mut health, ADMIN).await, ServingStatus::NotServing);

    let _redis = RedisNode::ephemeral_on(redis_port);
    wait_for_status(&health, BROKER, ServingStatus::Serving).await;
    assert_eq!(status(&mut health, ADMIN).await, ServingStatus::Serving);

    broker.signal(Signal::SIGTERM);
    wait_for_status(&health, BROKER, ServingStatus::NotServing).await;
    assert_eq!(status(&mut health, ADMIN).await, ServingStatus::NotServing);
    assert_eq!(status(&mut health, "").await, ServingStatus::Serving, "liveness does not drain");
    // Still serving during the drain delay: an RPC gets its answer, not a transport error.
    let answer = broker.get("bro", "nobody").await.unwrap_err();
    assert_eq!(answer.code(), tonic::Code::NotFound, "{answer:?}");
    let exit = broker.exited(Duration::from_secs(20)).await.expect("exits after the drain");
    assert!(exit.success());
}

async fn status(health: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let request = HealthCheckRequest { service: service.into() };
    health.check(request).await.unwrap_or_else(|e| panic!("{service:?}: {e:?}")).into_inner().status()
}

async fn wait_for_status(health: &HealthClient<Channel>, service: &str, expected: ServingStatus) {
    let reported = || async {
        let status = status(&mut health.clone(), service).await;
        if status == expected { Ok(()) } else { Err(status) }
    };
    eventually(&format!("{service} reports {expected:?}"), Duration::from_secs(10), reported).await;
}

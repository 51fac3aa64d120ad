//! The runtime image, built without a registry by scripts/credbroker-image.sh from the
//! test binary, run the way the deployments run it: read-only root filesystem, every
//! capability dropped, no privilege escalation, an unprivileged user.

use super::docker::{ContainerGuard, ImageGuard, docker, dockerfile_config, image_config, serving_channel, unique};
use super::support::{pending_keys_unknown, repo, run_ok};
use credbroker::grpc::pb::{GetAuthorizationRequest, credential_broker_client::CredentialBrokerClient};
use std::process::Command;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// The image of the test binary; removed at the end.
pub fn build_credbroker_image() -> ImageGuard {
    let image = ImageGuard(format!("{}:test", unique("credbroker-image")));
    run_ok(
        Command::new(repo().join("scripts/credbroker-image.sh"))
            .arg(env!("CARGO_BIN_EXE_credbroker"))
            .env("CREDBROKER_IMAGE", &image.0),
    );
    image
}

/// `-e` arguments for a container listening on all its interfaces, as in compose and
/// Kubernetes. A non-loopback listener without TLS and a policy must be allowed explicitly
/// (`server.allow_insecure`); here the only network is Docker's, published on 127.0.0.1.
fn listen_on_all_interfaces() -> Vec<String> {
    let mut env = vec!["CREDBROKER__SERVER__LISTEN=0.0.0.0:50051".to_owned()];
    if !pending_keys_unknown().contains(&"allow_insecure") {
        env.push("CREDBROKER__SERVER__ALLOW_INSECURE=true".to_owned());
    }
    env.into_iter().flat_map(|e| ["-e".to_owned(), e]).collect()
}

#[tokio::test]
async fn runtime_image_serves_grpc_unprivileged_on_a_read_only_root() {
    let image = build_credbroker_image();
    assert_eq!(image_config(&image.0), dockerfile_config("deploy/Dockerfile", Some("runtime")), "script vs Dockerfile");

    let mut args: Vec<String> = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        .into_iter()
        .chain(["-p", "127.0.0.1::50051"])
        .map(str::to_owned)
        .collect();
    args.extend(listen_on_all_interfaces());
    args.push(image.0.clone());
    let container =
        ContainerGuard::run(&unique("credbroker-image"), &args.iter().map(String::as_str).collect::<Vec<_>>());

    let addr = container.published(50051);
    let channel = serving_channel(&addr, "credbroker.v1.CredentialBroker").await;
    for service in ["", "credbroker.v1.CredentialAdmin"] {
        let answer = HealthClient::new(channel.clone()).check(HealthCheckRequest { service: service.into() }).await;
        assert_eq!(answer.unwrap().into_inner().status(), ServingStatus::Serving, "{service:?}");
    }
    // PASS's own credential on the embedded default: the instance's API key, no upstream call.
    let request = GetAuthorizationRequest { provider: "pass".into(), ..Default::default() };
    let answer = CredentialBrokerClient::new(channel).get_authorization(request).await.unwrap().into_inner();
    let header = answer.headers.iter().find(|h| h.name == "api-key").expect("api-key header");
    assert_eq!(header.value, "fake-pass-api-key");

    let processes = docker(&["top", &container.0, "-o", "uid,pid"]);
    let uids: Vec<&str> = processes.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(uids, ["65532"], "one process, as 65532");

    // docker stop sends the image's stop signal to PID 1: credbroker itself, which drains and
    // exits 0 (137 would mean Docker had to SIGKILL it).
    docker(&["stop", "--time", "60", &container.0]);
    let exit = docker(&["inspect", "--format", "{{.State.ExitCode}}", &container.0]);
    assert_eq!(exit.trim(), "0", "exit code after docker stop; logs:\n{}", container.logs());
}

//! Docker for the deploy checks: images and containers that remove themselves, an image's
//! configuration compared with a Dockerfile stage, and a gRPC channel to a container.

use super::support::{read, run, run_ok, stdout};
use crate::harness::eventually;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

pub fn docker(args: &[&str]) -> String {
    stdout(&run_ok(Command::new("docker").args(args)))
}

/// A name no other test run uses (images, containers, compose projects).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// An image tag that is removed when the test ends, passed or failed.
pub struct ImageGuard(pub String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = run(Command::new("docker").args(["rmi", "-f", &self.0]));
    }
}

/// A container that is removed (with its anonymous volumes) when the test ends.
pub struct ContainerGuard(pub String);

impl ContainerGuard {
    pub fn run(name: &str, args: &[&str]) -> Self {
        let mut all = vec!["run", "-d", "--name", name];
        all.extend_from_slice(args);
        docker(&all);
        Self(name.to_owned())
    }

    pub fn published(&self, port: u16) -> String {
        published(&self.0, port)
    }

    pub fn logs(&self) -> String {
        logs(&self.0)
    }
}

/// The loopback address Docker published a container's `port` on.
pub fn published(container: &str, port: u16) -> String {
    let answer = docker(&["port", container, &format!("{port}/tcp")]);
    answer.lines().find(|l| l.starts_with("127.0.0.1:")).expect("published on 127.0.0.1").trim().to_owned()
}

/// A container's output, stdout and stderr.
pub fn logs(container: &str) -> String {
    let output = run(Command::new("docker").args(["logs", container]));
    format!("{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr))
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = run(Command::new("docker").args(["rm", "-f", "-v", &self.0]));
    }
}

/// What an image runs as: the instructions a Dockerfile stage and a script must agree on.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct RunConfig {
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub exposed: BTreeSet<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub stop_signal: Option<String>,
}

/// The run configuration of a built image (`docker image inspect`).
pub fn image_config(image: &str) -> RunConfig {
    let inspected: Value = serde_json::from_str(&docker(&["image", "inspect", image])).unwrap();
    let config = &inspected[0]["Config"];
    let strings = |v: &Value| v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect());
    let non_empty = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    RunConfig {
        user: non_empty(&config["User"]),
        workdir: non_empty(&config["WorkingDir"]),
        exposed: config["ExposedPorts"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default(),
        entrypoint: strings(&config["Entrypoint"]),
        cmd: strings(&config["Cmd"]),
        stop_signal: non_empty(&config["StopSignal"]),
    }
}

/// The run configuration a Dockerfile stage sets (`AS stage`, or the last stage).
pub fn dockerfile_config(path: &str, stage: Option<&str>) -> RunConfig {
    let text = read(path);
    let mut stages: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(from) = line.strip_prefix("FROM ") {
            let name = from.split(" AS ").nth(1).unwrap_or("").trim().to_owned();
            stages.push((name, Vec::new()));
        } else if let Some((_, lines)) = stages.last_mut() {
            lines.push(line);
        }
    }
    let (_, lines) = match stage {
        Some(stage) => {
            stages.iter().find(|(name, _)| name == stage).unwrap_or_else(|| panic!("{path}: no stage {stage}"))
        }
        None => stages.last().unwrap_or_else(|| panic!("{path}: no FROM")),
    };
    let mut config = RunConfig::default();
    for line in lines {
        let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
        let exec_form = || Some(serde_json::from_str::<Vec<String>>(rest).expect("exec form (JSON array)"));
        match instruction {
            "USER" => config.user = Some(rest.to_owned()),
            "WORKDIR" => config.workdir = Some(rest.to_owned()),
            "EXPOSE" => config.exposed.extend(rest.split_whitespace().map(str::to_owned)),
            "ENTRYPOINT" => config.entrypoint = exec_form(),
            "CMD" => config.cmd = exec_form(),
            "STOPSIGNAL" => config.stop_signal = Some(rest.to_owned()),
            _ => {}
        }
    }
    config
}

/// A channel to `addr` once the health service reports `service` SERVING (the container or
/// fleet needs a moment to start; a generous deadline, no fixed sleep).
pub async fn serving_channel(addr: &str, service: &str) -> Channel {
    let serving = || async {
        match health(addr, service).await {
            Ok((channel, ServingStatus::Serving)) => Ok(channel),
            Ok((_, status)) => Err(format!("{status:?}")),
            Err(e) => Err(e),
        }
    };
    eventually(&format!("{addr} reports {service:?} SERVING"), Duration::from_secs(90), serving).await
}

async fn health(addr: &str, service: &str) -> Result<(Channel, ServingStatus), String> {
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.map_err(|e| e.to_string())?;
    let request = HealthCheckRequest { service: service.into() };
    let answer = HealthClient::new(channel.clone()).check(request).await.map_err(|e| e.to_string())?;
    Ok((channel, answer.into_inner().status()))
}

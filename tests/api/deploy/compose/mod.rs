//! deploy/compose.yaml: checked as written (three replicas behind nginx, Redis with
//! deploy/redis.conf, the shared key from a secret, a valid configuration, a stop grace that
//! covers the drain), then brought up from locally built images and called through the
//! balancer (fleet.rs).

mod fleet;

use super::support::{
    check_config, duration, key_file, read, repo, run, run_ok, shutdown_budget, stdout, text, toml_value, yaml_file,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

const COMPOSE: &str = "deploy/compose.yaml";
pub const REPLICAS: [&str; 3] = ["credbroker-1", "credbroker-2", "credbroker-3"];

/// `docker compose` (v2 plugin) where it exists, else `docker-compose` (v1, Debian's package).
pub fn compose() -> Command {
    let plugin = run(Command::new("docker").args(["compose", "version"])).status.success();
    let mut command = if plugin { Command::new("docker") } else { Command::new("docker-compose") };
    if plugin {
        command.arg("compose");
    }
    command.arg("-f").arg(repo().join(COMPOSE));
    command
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose.pointer(&format!("/services/{name}")).unwrap_or_else(|| panic!("{COMPOSE}: no service {name}"))
}

#[test]
fn compose_file_wires_three_replicas_behind_nginx_with_durable_redis() {
    let compose = &yaml_file(COMPOSE)[0];
    let first = service(compose, REPLICAS[0]);
    for replica in REPLICAS {
        assert_eq!(service(compose, replica), first, "{replica} must run exactly like {}", REPLICAS[0]);
    }
    assert_eq!(first["read_only"], true);
    assert_eq!(first["user"], "65532:65532");
    assert_eq!(first["cap_drop"], serde_json::json!(["ALL"]));
    assert_eq!(first["secrets"], serde_json::json!(["encryption-key"]), "the key comes from a secret");
    assert_eq!(service(compose, "fake-upstream")["profiles"], serde_json::json!(["demo"]));

    let upstreams = nginx_upstream_servers(&read("deploy/nginx/nginx.conf"));
    let expected: BTreeSet<String> = REPLICAS.iter().map(|r| format!("{r}:50051")).collect();
    assert_eq!(upstreams, expected, "nginx balances over exactly the three replicas");

    let redis = service(compose, "redis");
    let command: Vec<&str> = redis["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(command[..2], ["redis-server", "/etc/redis/redis.conf"], "Redis runs deploy/redis.conf");
    assert!(redis["volumes"].as_array().unwrap().iter().any(|v| v == "./redis.conf:/etc/redis/redis.conf:ro"));
    for durability in ["appendonly", "appendfsync", "maxmemory-policy", "save"] {
        assert!(!command.iter().any(|a| a.trim_start_matches('-') == durability), "{durability} overridden");
    }
    let conf = read("deploy/redis.conf");
    for line in ["appendonly yes", "appendfsync always", "maxmemory-policy noeviction"] {
        assert!(conf.lines().any(|l| l.trim() == line), "deploy/redis.conf lacks `{line}`");
    }
}

/// `server name:port` lines of nginx's `upstream credbroker` block.
fn nginx_upstream_servers(conf: &str) -> BTreeSet<String> {
    let block = conf.split("upstream credbroker {").nth(1).expect("upstream credbroker block");
    let block = &block[..block.find('}').unwrap()];
    let lines = block.lines().map(str::trim).filter(|l| l.starts_with("server "));
    lines.map(|l| l.split_whitespace().nth(1).unwrap().trim_end_matches(';').to_owned()).collect()
}

#[test]
fn compose_configuration_is_valid_and_its_stop_grace_covers_the_drain() {
    let compose = &yaml_file(COMPOSE)[0];
    let toml = read("deploy/config/credbroker.toml");
    assert_eq!(toml_value(&toml, "encryption.key_file").as_deref(), Some("/run/secrets/encryption-key"));
    assert_eq!(toml_value(&toml, "encryption.key"), None, "never an inline key");
    assert_eq!(toml_value(&toml, "store.redis_url").as_deref(), Some("redis://redis:6379"));
    let key = key_file();
    let local = toml.replace("/run/secrets/encryption-key", key.path().to_str().unwrap());
    check_config(&local, &[]).unwrap_or_else(|e| panic!("deploy/config/credbroker.toml: {e}"));

    let stop_grace = duration(text(service(compose, REPLICAS[0]), "/stop_grace_period"));
    let budget = shutdown_budget(&toml);
    assert!(stop_grace >= budget, "stop_grace_period {stop_grace:?} < drain + grace + renewal patience {budget:?}");
}

/// `compose config` validates the file as compose itself reads it (with the variables'
/// defaults). Which services a profile starts is checked above, from the file: compose v1
/// lists every service here whatever the profile.
#[test]
fn compose_config_accepts_the_file_with_and_without_the_demo_profile() {
    for profile in [None, Some("demo")] {
        let mut command = compose();
        if let Some(profile) = profile {
            command.args(["--profile", profile]);
        }
        let output = run_ok(command.args(["config", "--services"]));
        let services: BTreeSet<String> = stdout(&output).lines().map(str::to_owned).collect();
        let mut expected: BTreeSet<String> = ["redis", "lb"].into_iter().chain(REPLICAS).map(str::to_owned).collect();
        expected.extend(profile.map(|_| "fake-upstream".to_owned()));
        assert!(services.is_superset(&expected), "profile {profile:?}: {services:?}");
    }
}

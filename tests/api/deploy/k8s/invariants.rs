//! What every rendering of the Kubernetes manifests must hold: the requirements
//! (replicas, spread, non-root, read-only, probes, grace, services, PDB, NetworkPolicy,
//! secrets, HPA) and that the pieces agree with each other and with the configuration.

use crate::deploy::support::{check_config, key_file, shutdown_budget, text, toml_value};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const GRPC_PORT: u64 = 50051;
const METRICS_PORT: u64 = 9464;
const CALLER_LABEL: (&str, &str) = ("credbroker/caller", "true");
/// Provider keys that hold secrets; in Kubernetes they come from a Secret, never a value.
const SECRET_KEYS: [&str; 3] = ["__CLIENT_SECRET", "__API_KEY", "__PASSWORD"];

pub fn check(resources: &[Value]) {
    let deployment = one(resources, "Deployment");
    let config = config_toml(resources, deployment);
    deployment_is_hardened(deployment);
    probes_and_ports_match_the_config(deployment, &config);
    grace_covers_the_drain(deployment, &config);
    services_select_the_pods(resources, deployment);
    disruptions_and_scaling_keep_three(resources, deployment);
    network_policy_is_tight(resources, deployment, &config);
    secrets_are_wired(deployment, &config);
}

pub fn one<'a>(resources: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = resources.iter().filter(|r| r["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn pod_spec(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

fn container(deployment: &Value) -> &Value {
    &pod_spec(deployment)["containers"][0]
}

/// Whether a `matchLabels`-style map selects the Deployment's pods.
fn selects_pods(selector: &Value, deployment: &Value) -> bool {
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector = selector.as_object().expect("a label selector");
    !selector.is_empty() && selector.iter().all(|(k, v)| &labels[k] == v)
}

fn config_toml(resources: &[Value], deployment: &Value) -> String {
    let volumes = pod_spec(deployment)["volumes"].as_array().unwrap();
    let name = volumes.iter().find_map(|v| v["configMap"]["name"].as_str()).expect("a ConfigMap volume");
    let map = resources.iter().find(|r| r["kind"] == "ConfigMap" && r["metadata"]["name"] == name);
    text(map.unwrap_or_else(|| panic!("ConfigMap {name} missing")), "/data/credbroker.toml").to_owned()
}

fn deployment_is_hardened(deployment: &Value) {
    let spec = pod_spec(deployment);
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert!(selects_pods(&deployment["spec"]["selector"]["matchLabels"], deployment));
    let spread = spec["topologySpreadConstraints"].as_array().expect("topologySpreadConstraints");
    let by_node = spread.iter().find(|c| c["topologyKey"] == "kubernetes.io/hostname").expect("spread over nodes");
    assert!(selects_pods(&by_node["labelSelector"]["matchLabels"], deployment), "spread counts these pods");
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_ne!(spec["securityContext"]["runAsUser"], 0);
    assert_eq!(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(spec["automountServiceAccountToken"], false);
    let security = &container(deployment)["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    let resources = &container(deployment)["resources"];
    for (field, value) in [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")] {
        assert!(resources[field][value].is_string(), "resources.{field}.{value} missing");
    }
}

/// Readiness asks for the broker service (NOT_SERVING while draining or before Redis was
/// reached); liveness asks the plain check. Both on the port the configuration listens on.
fn probes_and_ports_match_the_config(deployment: &Value, config: &str) {
    let container = container(deployment);
    assert_eq!(port_of(&toml_value(config, "server.listen").unwrap()), GRPC_PORT);
    assert_eq!(port_of(&toml_value(config, "metrics.listen").expect("[metrics] listen")), METRICS_PORT);
    let ports: BTreeSet<(String, u64)> = container["ports"].as_array().unwrap().iter().map(named_port).collect();
    let expected = [("grpc".to_owned(), GRPC_PORT), ("metrics".to_owned(), METRICS_PORT)].into_iter().collect();
    assert_eq!(ports, expected);
    let readiness = &container["readinessProbe"]["grpc"];
    assert_eq!(
        (readiness["port"].as_u64(), readiness["service"].as_str()),
        (Some(GRPC_PORT), Some("credbroker.v1.CredentialBroker"))
    );
    let liveness = &container["livenessProbe"]["grpc"];
    assert_eq!(liveness["port"].as_u64(), Some(GRPC_PORT));
    assert!(liveness["service"].as_str().unwrap_or("").is_empty(), "liveness is the plain check");
}

fn named_port(port: &Value) -> (String, u64) {
    (text(port, "/name").to_owned(), port["containerPort"].as_u64().unwrap())
}

fn port_of(address: &str) -> u64 {
    address.rsplit(':').next().unwrap().parse().unwrap_or_else(|_| panic!("no port in {address}"))
}

fn grace_covers_the_drain(deployment: &Value, config: &str) {
    let grace = pod_spec(deployment)["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    let budget = shutdown_budget(config);
    assert!(grace >= budget.as_secs(), "terminationGracePeriodSeconds {grace} < drain + grace + renewal {budget:?}");
}

/// A normal Service (kube-proxy, per connection) and a headless one (client-side balancing),
/// both on the pods' grpc port.
fn services_select_the_pods(resources: &[Value], deployment: &Value) {
    let services: Vec<&Value> = resources.iter().filter(|r| r["kind"] == "Service").collect();
    let headless = services.iter().filter(|s| s["spec"]["clusterIP"] == "None").count();
    assert_eq!((services.len(), headless), (2, 1), "one normal and one headless Service");
    for service in services {
        assert!(
            selects_pods(&service["spec"]["selector"], deployment),
            "{} selects the pods",
            service["metadata"]["name"]
        );
        let ports = service["spec"]["ports"].as_array().unwrap();
        let grpc = ports.iter().find(|p| p["name"] == "grpc").expect("a grpc port");
        assert_eq!((grpc["port"].as_u64(), grpc["targetPort"].as_str()), (Some(GRPC_PORT), Some("grpc")));
    }
}

fn disruptions_and_scaling_keep_three(resources: &[Value], deployment: &Value) {
    let pdb = one(resources, "PodDisruptionBudget");
    assert!(selects_pods(&pdb["spec"]["selector"]["matchLabels"], deployment));
    assert_eq!(pdb["spec"]["maxUnavailable"], 1, "one replica at a time");
    let hpa = one(resources, "HorizontalPodAutoscaler");
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!((&target["kind"], &target["name"]), (&json!("Deployment"), &deployment["metadata"]["name"]));
    let (min, max) = (hpa["spec"]["minReplicas"].as_u64().unwrap(), hpa["spec"]["maxReplicas"].as_u64().unwrap());
    assert!(min >= 3 && max >= min, "HPA {min}..{max} must keep at least three replicas");
}

/// In: gRPC only from labelled callers, metrics only from Prometheus. Out: DNS, Redis (the
/// configuration's port), HTTPS to non-private addresses; nothing else.
fn network_policy_is_tight(resources: &[Value], deployment: &Value, config: &str) {
    let policy = &one(resources, "NetworkPolicy")["spec"];
    assert!(selects_pods(&policy["podSelector"]["matchLabels"], deployment));
    assert_eq!(policy["policyTypes"], json!(["Ingress", "Egress"]));
    ingress_only_from_callers_and_prometheus(policy);
    egress_only_to_dns_redis_and_https(
        policy,
        port_of(toml_value(config, "store.redis_url").unwrap().trim_end_matches('/')),
    );
}

fn ingress_only_from_callers_and_prometheus(policy: &Value) {
    for rule in policy["ingress"].as_array().unwrap() {
        let port = rule["ports"][0]["port"].as_u64().expect("every ingress rule names its port");
        assert!(port == GRPC_PORT || port == METRICS_PORT, "ingress to port {port}");
        let wanted = if port == GRPC_PORT { CALLER_LABEL } else { ("app.kubernetes.io/name", "prometheus") };
        for peer in rule["from"].as_array().expect("every ingress rule names its peers") {
            assert_eq!(peer["podSelector"]["matchLabels"], json!({wanted.0: wanted.1}), "ingress to {port}");
        }
    }
}

fn egress_only_to_dns_redis_and_https(policy: &Value, redis: u64) {
    let mut ports = BTreeSet::new();
    for rule in policy["egress"].as_array().unwrap() {
        let peers = rule["to"].as_array().expect("every egress rule names its peers");
        for port in rule["ports"].as_array().expect("every egress rule names its ports") {
            let port = port["port"].as_u64().unwrap();
            ports.insert(port);
            assert!(peers.iter().all(|peer| egress_peer_fits(peer, port, redis)), "egress to port {port}: {peers:?}");
        }
    }
    assert_eq!(ports, BTreeSet::from([53, redis, 443]));
}

fn egress_peer_fits(peer: &Value, port: u64, redis: u64) -> bool {
    let selects = |label: &str, value: &str| peer["podSelector"]["matchLabels"] == json!({label: value});
    match port {
        53 => selects("k8s-app", "kube-dns"),
        443 => {
            let except: Vec<&str> =
                peer["ipBlock"]["except"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].iter().all(|private| except.contains(private))
        }
        p if p == redis => selects("app.kubernetes.io/name", "redis"),
        _ => false,
    }
}

/// The key file the configuration names is the mounted Secret; provider secrets come from a
/// Secret as variables naming configured providers; the binary accepts the result.
fn secrets_are_wired(deployment: &Value, config: &str) {
    let key_path = toml_value(config, "encryption.key_file").expect("encryption.key_file");
    assert_eq!(toml_value(config, "encryption.key"), None, "never an inline key");
    let mount = secret_mount(deployment, super::ENCRYPTION_SECRET);
    assert_eq!(key_path, mount, "encryption.key_file is the mounted Secret");

    let providers = provider_variable_names(config);
    let mut env = Vec::new();
    for variable in container(deployment)["env"].as_array().unwrap() {
        let name = text(variable, "/name");
        if let Some(provider) = name.strip_prefix("CREDBROKER__PROVIDERS__") {
            assert!(providers.iter().any(|p| provider.starts_with(&format!("{p}__"))), "{name}: no such provider");
        }
        let secret = &variable["valueFrom"]["secretKeyRef"];
        if SECRET_KEYS.iter().any(|key| name.ends_with(key)) {
            assert_eq!(secret["name"], super::PROVIDER_SECRET, "{name} must come from the provider Secret");
            assert!(super::documented_secret_keys().contains(text(secret, "/key")), "{name}: key not in the docs");
        }
        env.push((name.to_owned(), variable["value"].as_str().unwrap_or("from-a-secret").to_owned()));
    }
    let key = key_file();
    let local = config.replace(&key_path, key.path().to_str().unwrap());
    check_config(&local, &env).unwrap_or_else(|e| panic!("the Kubernetes configuration is refused: {e}"));
}

/// `mountPath/itemPath` of the Secret volume `secret`.
fn secret_mount(deployment: &Value, secret: &str) -> String {
    let volumes = pod_spec(deployment)["volumes"].as_array().unwrap();
    let volume = volumes.iter().find(|v| v["secret"]["secretName"] == secret).expect("the key's Secret volume");
    let mounts = container(deployment)["volumeMounts"].as_array().unwrap();
    let mount = mounts.iter().find(|m| m["name"] == volume["name"]).expect("the key volume is mounted");
    assert_eq!(mount["readOnly"], true);
    let key = text(volume, "/secret/items/0/key");
    assert!(super::documented_secret_keys().contains(key), "Secret {secret} key {key} is not in the docs");
    format!("{}/{}", text(mount, "/mountPath"), text(volume, "/secret/items/0/path"))
}

/// The configured provider instances as `CREDBROKER__PROVIDERS__<NAME>__…` spells them.
fn provider_variable_names(config: &str) -> Vec<String> {
    use figment::providers::{Format, Toml};
    let providers: Vec<figment::value::Dict> =
        figment::Figment::from(Toml::string(config)).extract_inner("providers").expect("[[providers]]");
    let names = providers.iter().map(|p| p["name"].as_str().expect("a provider name").to_owned());
    names.map(|n| n.to_uppercase().replace('-', "_")).collect()
}

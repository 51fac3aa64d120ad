//! deploy/k8s: the base and the production overlay, rendered offline and checked against
//! the invariants; where kubectl is installed, its own rendering must match ours.

mod invariants;
mod render;

use crate::deploy::support::{find_tool, read, run_ok, stdout, text};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const BASE: &str = "deploy/k8s/base";
const PRODUCTION: &str = "deploy/k8s/overlays/production";
pub const ENCRYPTION_SECRET: &str = "credbroker-encryption-key";
pub const PROVIDER_SECRET: &str = "credbroker-provider-secrets";

#[test]
fn kubernetes_base_holds_the_invariants() {
    invariants::check(&render::kustomize(Path::new(BASE)));
}

#[test]
fn kubernetes_production_overlay_holds_them_and_tightens_scheduling() {
    let resources = render::kustomize(Path::new(PRODUCTION));
    invariants::check(&resources);
    let namespace = invariants::one(&resources, "Namespace");
    assert_eq!(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
    for resource in resources.iter().filter(|r| r["kind"] != "Namespace") {
        assert_eq!(resource["metadata"]["namespace"], namespace["metadata"]["name"], "{}", resource["kind"]);
    }
    let deployment = invariants::one(&resources, "Deployment");
    let spread = deployment.pointer("/spec/template/spec/topologySpreadConstraints").unwrap().as_array().unwrap();
    let by_node: Vec<&Value> = spread.iter().filter(|c| c["topologyKey"] == "kubernetes.io/hostname").collect();
    assert_eq!(by_node.len(), 1, "one constraint per topology key");
    assert_eq!(by_node[0]["whenUnsatisfiable"], "DoNotSchedule", "two replicas never share a node");
    let image = text(deployment, "/spec/template/spec/containers/0/image");
    assert_ne!(image, "credbroker:local", "production pulls from a registry");
}

/// kubectl (with its built-in kustomize) is not required in CI; where it is installed, it is
/// the reference this test's renderer must agree with, resource by resource.
#[test]
fn kubectl_kustomize_renders_what_the_checks_checked() {
    let Some(kubectl) = find_tool("kubectl") else {
        eprintln!("kubectl not installed: the offline rendering was checked, kubectl's was not compared");
        return;
    };
    for dir in [BASE, PRODUCTION] {
        let output = run_ok(Command::new(&kubectl).arg("kustomize").arg(crate::deploy::support::repo().join(dir)));
        let theirs = normalized(crate::deploy::support::yaml_text(&stdout(&output)));
        let ours = normalized(render::kustomize(Path::new(dir)));
        assert_eq!(ours.len(), theirs.len(), "{dir}: resource count");
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a, b, "{dir}: {} {} rendered differently", a["kind"], a["metadata"]["name"]);
        }
    }
}

/// Sorted by kind and name, with kustomize's hash suffix on generated ConfigMap names removed
/// (in the ConfigMap and where the Deployment refers to it).
fn normalized(resources: Vec<Value>) -> Vec<Value> {
    let mut text = serde_json::to_string(&resources).unwrap();
    for resource in resources.iter().filter(|r| r["kind"] == "ConfigMap") {
        let name = resource["metadata"]["name"].as_str().unwrap();
        if let Some((base, _hash)) = name.rsplit_once('-').filter(|(base, _)| *base == "credbroker-config") {
            text = text.replace(&format!("\"{name}\""), &format!("\"{base}\""));
        }
    }
    let mut resources: Vec<Value> = serde_json::from_str(&text).unwrap();
    resources.sort_by_key(|r| (r["kind"].to_string(), r["metadata"]["name"].to_string()));
    resources
}

/// The Secret keys docs/deployment.md tells operators to create (`--from-literal=key=` or
/// `--from-file=key=`), so a manifest cannot ask for a key nobody is told about.
pub fn documented_secret_keys() -> BTreeSet<String> {
    let docs = read("docs/deployment.md");
    for secret in [ENCRYPTION_SECRET, PROVIDER_SECRET] {
        assert!(docs.contains(&format!("create secret generic {secret}")), "docs: how to create {secret}");
    }
    let options =
        docs.split_whitespace().filter_map(|w| w.strip_prefix("--from-literal=").or(w.strip_prefix("--from-file=")));
    options.filter_map(|o| o.split_once('=').map(|(key, _)| key.to_owned())).collect()
}

//! deploy/prometheus/alerts.yaml and deploy/grafana/credbroker.json: valid for promtool
//! (rules, their unit tests, and every dashboard query), and built on the metrics contract
//! only.

use super::contract::{METRICS, metric_of, series_in};
use super::support::{read, repo, required_tool, run_ok, text, yaml_file};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

const ALERTS: &str = "deploy/prometheus/alerts.yaml";
const DASHBOARD: &str = "deploy/grafana/credbroker.json";

fn promtool() -> PathBuf {
    required_tool("promtool", "apt-get install --no-install-recommends prometheus (Debian ships promtool with it)")
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    run_ok(Command::new(promtool()).args(["check", "rules"]).arg(repo().join(ALERTS)));
    run_ok(Command::new(promtool()).args(["test", "rules"]).arg(repo().join("deploy/prometheus/alerts_test.yaml")));
}

fn alert_expressions() -> Vec<(String, String)> {
    let groups = yaml_file(ALERTS).remove(0)["groups"].as_array().unwrap().clone();
    let rules = groups.iter().flat_map(|g| g["rules"].as_array().unwrap().clone());
    rules.map(|r| (text(&r, "/alert").to_owned(), text(&r, "/expr").to_owned())).collect()
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON")
}

/// (panel title, query) of every panel's targets.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let panels = dashboard["panels"].as_array().unwrap().iter().filter(|p| p["type"] != "row");
    let targets = panels.flat_map(|p| p["targets"].as_array().unwrap().iter().map(move |t| (p, t)));
    targets.map(|(p, t)| (text(p, "/title").to_owned(), text(t, "/expr").to_owned())).collect()
}

#[test]
fn alerts_and_dashboard_use_only_contract_metrics_and_the_dashboard_shows_them_all() {
    let mut shown = BTreeSet::new();
    for (place, expr) in alert_expressions().into_iter().chain(dashboard_queries(&dashboard())) {
        for series in series_in(&expr) {
            let metric =
                metric_of(series).unwrap_or_else(|| panic!("{place}: {series} is not in the metrics contract"));
            shown.insert(metric);
        }
    }
    let missing: Vec<&&str> = METRICS.iter().filter(|m| !shown.contains(**m)).collect();
    assert!(missing.is_empty(), "no alert or panel shows {missing:?}");

    let alerted: BTreeSet<&str> =
        alert_expressions().iter().flat_map(|(_, e)| series_in(e)).filter_map(metric_of).collect();
    let signals = [
        "credbroker_credential_transitions_total",
        "credbroker_credentials",
        "rpc_server_call_duration_seconds",
        "credbroker_upstream_rate_limited_total",
        "credbroker_audit_write_failures_total",
        "credbroker_ready",
        "credbroker_journal_not_replicated_total",
    ];
    for signal in signals {
        assert!(alerted.contains(signal), "no alert on {signal}");
    }
}

/// Every dashboard query, with Grafana's variables filled in, must parse as PromQL: promtool
/// checks them as recording rules.
#[test]
fn dashboard_queries_are_valid_promql() {
    let queries = dashboard_queries(&dashboard());
    let rules: Vec<serde_json::Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| {
            let expr = expr.replace("$__rate_interval", "5m").replace("$provider", ".*");
            serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr})
        })
        .collect();
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    // JSON is YAML: promtool reads it as a rules file.
    std::fs::write(file.path(), serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string())
        .unwrap();
    run_ok(Command::new(promtool()).args(["check", "rules"]).arg(file.path()));
}

#[test]
fn dashboard_panels_use_the_datasource_variable_and_do_not_overlap() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "credbroker");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource"));
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let mut cells = BTreeSet::new();
    for panel in panels {
        let title = text(panel, "/title");
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
            assert!(!text(panel, "/description").is_empty(), "{title}: say what the panel shows");
        }
        let grid = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64().unwrap());
        assert!(x + w <= 24, "{title} is wider than the dashboard");
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "{title} overlaps another panel at {cell:?}");
        }
    }
}

//! The Grafana dashboard and the Prometheus alert rules in `deploy/dashboards`: both parse,
//! every alert is complete, every query names only metrics the services export, and
//! `promtool` accepts the rules where it is installed.

use std::path::{Path, PathBuf};

use stowage_shared::{
    instruments::{self, Kind},
    rpc_telemetry,
};

fn dashboards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dashboards")
}

/// The metric names (with a histogram's `_bucket`, `_sum` and `_count`) the services export.
fn exported() -> Vec<String> {
    let mut names = Vec::new();
    for metric in [
        migration_svc::metrics::catalog(),
        archive_svc::metrics::catalog(),
        rpc_telemetry::catalog(),
        instruments::pool_catalog("any"),
    ]
    .iter()
    .flatten()
    {
        names.push(metric.name.to_owned());
        if metric.kind == Kind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.push(format!("{}{suffix}", metric.name));
            }
        }
    }
    names
}

/// Names in `expr` that look like ours (by prefix).
fn metric_names(expr: &str) -> Vec<&str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| {
            ["migration_", "archive_", "grpc_server_", "db_pool_"]
                .iter()
                .any(|prefix| word.starts_with(prefix))
        })
        .collect()
}

fn alert_rules() -> Vec<serde_yaml_ng::Value> {
    let text = std::fs::read_to_string(dashboards().join("alerts.yaml")).unwrap();
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("rules").clone())
        .collect()
}

#[test]
fn every_dashboard_and_alert_query_names_only_exported_metrics() {
    let exported = exported();
    let text = std::fs::read_to_string(dashboards().join("stowage.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs: Vec<String> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for wanted in ["errors", "latency", "backlog", "pool"] {
        assert!(
            titles.iter().any(|t| t.to_lowercase().contains(wanted)),
            "no {wanted} panel in {titles:?}"
        );
    }
    let rules = alert_rules();
    assert!(rules.len() >= 5);
    for rule in &rules {
        let name = rule["alert"].as_str().expect("every rule is an alert");
        assert!(
            rule["labels"]["severity"].as_str().is_some(),
            "{name}: severity"
        );
        assert!(
            rule["annotations"]["summary"].as_str().is_some(),
            "{name}: summary"
        );
        assert!(
            rule["annotations"]["description"].as_str().is_some(),
            "{name}: description"
        );
        exprs.push(rule["expr"].as_str().expect("expr").to_owned());
    }
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr} names none of our metrics");
        for name in names {
            assert!(
                exported.iter().any(|e| e == name),
                "{name} in {expr} is not exported"
            );
        }
    }
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let Ok(output) = std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(dashboards().join("alerts.yaml"))
        .output()
    else {
        eprintln!("skipping: promtool is not installed (apt-get install prometheus)");
        return;
    };
    assert!(
        output.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

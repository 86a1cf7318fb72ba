//! manifests/40-grafana-dashboard.yaml against the registry: a renamed or dropped metric must fail
//! here, not leave a panel silently empty in someone's Grafana.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::*;

const DASHBOARD_YAML: &str = include_str!("../manifests/40-grafana-dashboard.yaml");

/// The rows the dashboard is laid out in, each of which must hold at least one panel.
const ROWS: [&str; 5] = [
    "Capacity",
    "Provisioning",
    "Disruption",
    "Interruption",
    "Webhooks",
];

const SAMPLE_SUFFIXES: [&str; 4] = ["_total", "_bucket", "_sum", "_count"];

fn dashboard() -> Value {
    let manifest = serde_saphyr::from_str::<Value>(DASHBOARD_YAML)
        .expect("manifests/40-grafana-dashboard.yaml parses as YAML");
    let json = manifest["data"]["capstan.json"]
        .as_str()
        .expect("the ConfigMap has a string data key capstan.json");
    serde_json::from_str(json).expect("capstan.json parses as JSON")
}

/// Every panel, rows included, with the title of the row it sits under ("" above the first row).
/// An expanded row is followed by its panels; a collapsed one holds them in its own `panels`.
fn panels(dashboard: &Value) -> Vec<(&str, &Value)> {
    let mut out = Vec::new();
    let mut row = "";
    let top = dashboard["panels"]
        .as_array()
        .expect("the dashboard has a panels array");
    for panel in top {
        if is_row(panel) {
            row = panel["title"].as_str().unwrap_or("");
            out.push((row, panel));
            for nested in panel["panels"].as_array().into_iter().flatten() {
                out.push((row, nested));
            }
        } else {
            out.push((row, panel));
        }
    }
    out
}

fn is_row(panel: &Value) -> bool {
    panel["type"] == "row"
}

fn describe(panel: &Value) -> String {
    format!("panel {} {}", panel["id"], panel["title"])
}

/// Every PromQL expression in the dashboard, with where it is: the panels' targets and the
/// template variables' queries.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, panel) in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((describe(panel), expr.to_string()));
            }
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        // Grafana keeps a query variable's query either as a string or as {"query": "..."}.
        let expr = match &var["query"] {
            Value::String(query) => query.as_str(),
            query => query["query"].as_str().unwrap_or(""),
        };
        let name = var["name"].as_str().unwrap_or("?");
        out.push((format!("variable ${name}"), expr.to_string()));
    }
    out
}

/// The metric names an expression reads: whole identifiers starting `karpenter_` or `capstan_`
/// (`regex` is not a dependency of this crate; PromQL identifiers are simple enough).
fn metric_names(expr: &str) -> Vec<&str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("karpenter_") || word.starts_with("capstan_"))
        .collect()
}

/// The sample names a family of this type exposes; a query for any other name matches nothing.
fn sample_names(family: &str, kind: &str) -> Vec<String> {
    match kind {
        "counter" => vec![format!("{family}_total")],
        "histogram" => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|suffix| format!("{family}{suffix}"))
            .collect(),
        _ => vec![family.to_string()],
    }
}

/// `/metrics` leaves out families that have no sample yet (prometheus-client filters them, like the
/// Go client), so each family gets one. No `..` below: a new family fails to compile here until it
/// is recorded too.
fn metrics_with_every_family() -> Metrics {
    let m = Metrics::new();
    let WebhookMetrics { requests, duration } = &m.webhook;
    let endpoint = "/validate/nodepool".to_string();
    requests
        .get_or_create(&WebhookLabels {
            endpoint: endpoint.clone(),
            outcome: "allowed".to_string(),
        })
        .inc();
    duration
        .get_or_create(&EndpointLabel { endpoint })
        .observe(0.0003);

    let ControllerMetrics {
        nodeclaims_created,
        nodeclaims_terminated,
        nodes_created,
        pods_startup_duration,
        scheduling_duration,
        cloudprovider_duration,
        cloudprovider_errors,
        nodepools_usage,
        nodepools_limit,
        nodeclaims_disrupted,
        disruption_decisions,
        disruption_eligible_nodes,
        disruption_evaluation_duration,
        nodepools_allowed_disruptions,
        interruption_received,
        interruption_deleted,
        interruption_queue_duration,
    } = &m.controllers;
    let pool_reason = NodePoolReason {
        nodepool: "default".to_string(),
        reason: "empty".to_string(),
    };
    let cpu = NodePoolResource {
        nodepool: "default".to_string(),
        resource_type: "cpu".to_string(),
    };
    nodeclaims_created.get_or_create(&pool_reason).inc();
    nodeclaims_terminated.get_or_create(&pool_reason).inc();
    nodes_created
        .get_or_create(&NodePoolLabel {
            nodepool: "default".to_string(),
        })
        .inc();
    pods_startup_duration.observe(5.0);
    scheduling_duration
        .get_or_create(&ControllerLabel {
            controller: "provisioner".to_string(),
        })
        .observe(0.01);
    cloudprovider_duration
        .get_or_create(&CloudMethod {
            provider: "aws".to_string(),
            method: "Create".to_string(),
        })
        .observe(1.0);
    cloudprovider_errors
        .get_or_create(&CloudErrorLabels {
            provider: "aws".to_string(),
            method: "Create".to_string(),
            error: "InsufficientCapacity".to_string(),
        })
        .inc();
    nodepools_usage.get_or_create(&cpu).set(4.0);
    nodepools_limit.get_or_create(&cpu).set(100.0);
    nodeclaims_disrupted.get_or_create(&pool_reason).inc();
    disruption_decisions
        .get_or_create(&DecisionLabels {
            decision: "delete".to_string(),
            reason: "empty".to_string(),
            consolidation_type: "empty".to_string(),
        })
        .inc();
    disruption_eligible_nodes
        .get_or_create(&ReasonLabel {
            reason: "empty".to_string(),
        })
        .set(1);
    disruption_evaluation_duration
        .get_or_create(&MethodLabel {
            method: "emptiness".to_string(),
        })
        .observe(0.01);
    nodepools_allowed_disruptions
        .get_or_create(&pool_reason)
        .set(1);
    interruption_received
        .get_or_create(&MessageTypeLabel {
            message_type: "spot_interrupted".to_string(),
        })
        .inc();
    interruption_deleted.inc();
    interruption_queue_duration.observe(1.0);
    m
}

#[test]
fn every_metric_the_dashboard_queries_is_registered() {
    let text = metrics_with_every_family().render();
    // Family name to type, from the exposition's `# TYPE <name> <type>` lines.
    let families: HashMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_once(' '))
        .collect();
    let dashboard = dashboard();
    let exprs = expressions(&dashboard);
    assert!(!exprs.is_empty(), "the dashboard has no queries");
    for (place, expr) in &exprs {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "{place} queries no karpenter_ or capstan_ metric: {expr}"
        );
        for name in names {
            // A gauge may end in a suffix itself; only strip it from names that are not families.
            let family = if families.contains_key(name) {
                name
            } else {
                SAMPLE_SUFFIXES
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(name)
            };
            let Some(kind) = families.get(family) else {
                panic!(
                    "{place} queries {name}, but capstan registers no family {family} \
                     (no `# TYPE {family} ` line in /metrics)\nquery: {expr}"
                );
            };
            let samples = sample_names(family, kind);
            assert!(
                samples.iter().any(|s| s == name),
                "{place} queries {name}, but {kind} {family} has only {samples:?}\nquery: {expr}"
            );
        }
    }
}

#[test]
fn every_row_holds_a_panel() {
    let dashboard = dashboard();
    let all = panels(&dashboard);
    for row in ROWS {
        assert!(
            all.iter().any(|(_, p)| is_row(p) && p["title"] == row),
            "the dashboard has no row {row:?}"
        );
        assert!(
            all.iter().any(|(r, p)| *r == row && !is_row(p)),
            "row {row:?} holds no panel"
        );
    }
}

#[test]
fn panels_have_a_title_targets_and_a_unique_id() {
    let dashboard = dashboard();
    let mut ids = HashSet::new();
    for (_, panel) in panels(&dashboard) {
        let name = describe(panel);
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has no numeric id"));
        assert!(ids.insert(id), "{name}: id {id} is used twice");
        assert!(
            panel["title"]
                .as_str()
                .is_some_and(|t| !t.trim().is_empty()),
            "{name} has no title"
        );
        if is_row(panel) {
            continue;
        }
        let targets = panel["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("{name} has no targets"));
        for target in targets {
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|e| !e.trim().is_empty()),
                "{name}: target {} has no expr",
                target["refId"]
            );
            // The data source is picked in the dashboard's `datasource` variable, not pinned.
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "{name}: target {} does not use the datasource variable",
                target["refId"]
            );
        }
    }
}

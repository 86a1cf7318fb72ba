//! The live node and cost view of `capstan nodes` (like eks-node-viewer): per node its instance
//! type, zone, capacity type, CPU and memory requested against allocatable as bars, pods and
//! $/hour; then cluster totals. Pure: Nodes, Pods and the catalog in, text out.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::apis::labels::{CAPACITY_TYPE, INSTANCE_TYPE, NODEPOOL, ZONE};
use crate::cloud::catalog::{CapacityType, Catalog};
use crate::plan::report::bar;
use crate::scheduling::pod::PodInfo;
use crate::scheduling::resources::{Resources, format_bytes, format_millis};

pub const HOURS_PER_MONTH: f64 = 730.0;

#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub name: String,
    pub nodepool: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
    pub pods: usize,
    pub cpu_requested_millis: i64,
    pub cpu_allocatable_millis: i64,
    pub memory_requested_bytes: i64,
    pub memory_allocatable_bytes: i64,
    /// None when the catalog has no price for the offering (or the node is not an EC2 type).
    pub price_per_hour: Option<f64>,
    pub ready: bool,
}

pub fn rows(nodes: &[Arc<Node>], pods: &[Arc<Pod>], catalog: &Catalog) -> Vec<NodeRow> {
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for p in pods {
        let terminal = matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref())
            && !terminal
        {
            by_node.entry(n).or_default().push(p);
        }
    }
    let mut out: Vec<NodeRow> = nodes
        .iter()
        .map(|node| {
            let name = node.metadata.name.clone().unwrap_or_default();
            let labels = node.metadata.labels.clone().unwrap_or_default();
            let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
            let allocatable = node
                .status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref())
                .and_then(|a| Resources::from_k8s(a).ok())
                .unwrap_or_default();
            let mut requested = Resources::new();
            let on = by_node.get(name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            for p in on {
                if let Ok(info) = PodInfo::from_pod(p) {
                    requested += &info.requests;
                }
            }
            let (it, zone, ct) = (label(INSTANCE_TYPE), label(ZONE), label(CAPACITY_TYPE));
            let price = CapacityType::parse(&ct)
                .and_then(|c| catalog.offering(&it, &zone, c))
                .map(|o| o.price_per_hour);
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            NodeRow {
                name,
                nodepool: label(NODEPOOL),
                instance_type: it,
                zone,
                capacity_type: ct,
                pods: on.len(),
                cpu_requested_millis: requested.cpu_millis,
                cpu_allocatable_millis: allocatable.cpu_millis,
                memory_requested_bytes: requested.memory_bytes,
                memory_allocatable_bytes: allocatable.memory_bytes,
                price_per_hour: price,
                ready,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.nodepool, &a.name).cmp(&(&b.nodepool, &b.name)));
    out
}

pub fn render(rows: &[NodeRow]) -> String {
    let mut out = String::new();
    let header = [
        "NODE", "NODEPOOL", "TYPE", "ZONE", "CAPACITY", "PODS", "CPU", "MEMORY", "$/HOUR",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                format!("{}{}", r.name, if r.ready { "" } else { " (NotReady)" }),
                r.nodepool.clone(),
                r.instance_type.clone(),
                r.zone.clone(),
                r.capacity_type.clone(),
                r.pods.to_string(),
                format!(
                    "{} {}/{}",
                    bar(r.cpu_requested_millis, r.cpu_allocatable_millis),
                    format_millis(r.cpu_requested_millis),
                    format_millis(r.cpu_allocatable_millis)
                ),
                format!(
                    "{} {}/{}",
                    bar(r.memory_requested_bytes, r.memory_allocatable_bytes),
                    format_bytes(r.memory_requested_bytes),
                    format_bytes(r.memory_allocatable_bytes)
                ),
                r.price_per_hour
                    .map(|p| format!("{p:.4}"))
                    .unwrap_or_else(|| "?".into()),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut String, row: &[String]| {
        let text: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut out, &header.map(String::from));
    for row in &cells {
        line(&mut out, row);
    }
    let cpu_req: i64 = rows.iter().map(|r| r.cpu_requested_millis).sum();
    let cpu_all: i64 = rows.iter().map(|r| r.cpu_allocatable_millis).sum();
    let mem_req: i64 = rows.iter().map(|r| r.memory_requested_bytes).sum();
    let mem_all: i64 = rows.iter().map(|r| r.memory_allocatable_bytes).sum();
    let hourly: f64 = rows.iter().filter_map(|r| r.price_per_hour).sum();
    let unpriced = rows.iter().filter(|r| r.price_per_hour.is_none()).count();
    let _ = writeln!(
        out,
        "\n{} nodes, {} pods  cpu {} {}/{}  memory {} {}/{}",
        rows.len(),
        rows.iter().map(|r| r.pods).sum::<usize>(),
        bar(cpu_req, cpu_all),
        format_millis(cpu_req),
        format_millis(cpu_all),
        bar(mem_req, mem_all),
        format_bytes(mem_req),
        format_bytes(mem_all),
    );
    let _ = writeln!(
        out,
        "cost ${hourly:.4}/hour, ${:.2}/month{}",
        hourly * HOURS_PER_MONTH,
        if unpriced > 0 {
            format!(" ({unpriced} nodes without a known price not counted)")
        } else {
            String::new()
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, it: &str, ct: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {
                    INSTANCE_TYPE: it, ZONE: "us-east-1a", CAPACITY_TYPE: ct, NODEPOOL: "default"}},
                "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "29"},
                           "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .expect("node"),
        )
    }

    fn pod(node: &str, cpu: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("p-{cpu}"), "namespace": "default"},
                "spec": {"nodeName": node, "containers": [{"name": "c",
                    "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]},
                "status": {"phase": "Running"}
            }))
            .expect("pod"),
        )
    }

    #[test]
    fn rows_sum_requests_and_price_offerings() {
        let catalog = Catalog::for_region("us-east-1", None);
        let nodes = vec![
            node("a", "m5.large", "on-demand"),
            node("b", "odd.type", "on-demand"),
        ];
        let pods = vec![pod("a", "500m"), pod("a", "1")];
        let r = rows(&nodes, &pods, &catalog);
        assert_eq!(r[0].pods, 2);
        assert_eq!(r[0].cpu_requested_millis, 1500);
        assert_eq!(r[0].memory_requested_bytes, 2 << 30);
        let m5 = catalog
            .offering("m5.large", "us-east-1a", CapacityType::OnDemand)
            .map(|o| o.price_per_hour);
        assert_eq!(r[0].price_per_hour, m5);
        assert_eq!(r[1].price_per_hour, None);
        let text = render(&r);
        assert!(text.contains("m5.large"), "{text}");
        assert!(text.contains("█"), "{text}");
        assert!(text.contains("2 nodes, 2 pods"), "{text}");
        assert!(
            text.contains("/month (1 nodes without a known price not counted)"),
            "{text}"
        );
    }
}

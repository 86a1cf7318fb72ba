//! What `capstan plan` prints: the NodeClaims the simulation would launch, with cost, utilisation
//! and the LP lower bound, as JSON for scripts or as a table a person reads at a glance.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::scheduling::lower_bound::{Candidate, grouped_lower_bound};
use crate::scheduling::resources::{Resources, format_bytes, format_millis};
use crate::scheduling::scheduler::{Outcome, PoolTemplate};

pub const HOURS_PER_MONTH: f64 = 730.0;

#[derive(Debug, Clone, Serialize)]
pub struct PlannedNode {
    pub nodepool: String,
    pub instance_type: String,
    /// Every type the claim may launch, cheapest first.
    pub instance_types: Vec<String>,
    pub zone: String,
    pub capacity_type: String,
    pub price_per_hour: f64,
    pub pods: Vec<String>,
    pub cpu_requested_millis: i64,
    pub cpu_allocatable_millis: i64,
    pub memory_requested_bytes: i64,
    pub memory_allocatable_bytes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnschedulablePod {
    pub pod: String,
    pub reasons: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub region: String,
    /// True when some price in the plan is an estimate: the region has no embedded on-demand
    /// prices (us-east-1's stand in), or a spot price (estimated from on-demand until the AWS
    /// provider reads the spot price history).
    pub estimated_prices: bool,
    pub nodeclaims: Vec<PlannedNode>,
    pub existing: Vec<(String, String)>,
    pub unschedulable: Vec<UnschedulablePod>,
    pub limit_messages: Vec<String>,
    pub total_per_hour: f64,
    pub total_per_month: f64,
    /// The cheapest fractional mix of instance types covering the pods' CPU and memory, per group
    /// of claims with the same NodePool and requirements.
    pub lower_bound_per_hour: Option<f64>,
    /// total_per_hour / lower_bound_per_hour.
    pub cost_ratio: Option<f64>,
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// `region_estimated`: the region's on-demand prices are us-east-1's.
pub fn build(
    region: &str,
    region_estimated: bool,
    outcome: &Outcome,
    pools: &[PoolTemplate],
) -> Plan {
    let mut nodeclaims = Vec::new();
    // Lower bound groups: (pool, requirements) → pod demand.
    let mut groups: BTreeMap<(String, String), (Resources, usize)> = BTreeMap::new();
    for (i, c) in outcome.claims.iter().enumerate() {
        let chosen = c.cheapest();
        let pool = pools.iter().find(|p| p.name == c.nodepool);
        let allocatable = pool
            .and_then(|p| p.instance_types.iter().find(|o| o.name == chosen.name))
            .map(|o| o.allocatable.clone())
            .unwrap_or_default();
        nodeclaims.push(PlannedNode {
            nodepool: c.nodepool.clone(),
            instance_type: chosen.name.clone(),
            instance_types: c.instance_types.iter().map(|t| t.name.clone()).collect(),
            zone: chosen.zone.clone(),
            capacity_type: chosen.capacity_type.clone(),
            price_per_hour: chosen.price_per_hour,
            pods: c.pods.clone(),
            cpu_requested_millis: c.requests.cpu_millis,
            cpu_allocatable_millis: allocatable.cpu_millis,
            memory_requested_bytes: c.requests.memory_bytes,
            memory_allocatable_bytes: allocatable.memory_bytes,
        });
        let entry = groups
            .entry((c.nodepool.clone(), c.requirements_key()))
            .or_insert((Resources::new(), i));
        entry.0 += &c.pod_requests;
    }
    let lb_groups: Vec<(Vec<Candidate>, i64, i64)> = groups
        .values()
        .map(|(demand, first)| {
            let claim = &outcome.claims[*first];
            let candidates = pools
                .iter()
                .find(|p| p.name == claim.nodepool)
                .map(|p| Candidate::all_for(&p.instance_types, &claim.requirements))
                .unwrap_or_default();
            (candidates, demand.cpu_millis, demand.memory_bytes)
        })
        .collect();
    let total: f64 = nodeclaims.iter().map(|n| n.price_per_hour).sum();
    let lower = if lb_groups.is_empty() {
        Some(0.0)
    } else {
        grouped_lower_bound(&lb_groups)
    };
    let ratio = lower.filter(|l| *l > 0.0).map(|l| round(total / l, 3));
    Plan {
        region: region.to_string(),
        estimated_prices: region_estimated || nodeclaims.iter().any(|n| n.capacity_type == "spot"),
        nodeclaims,
        existing: outcome.existing.clone(),
        unschedulable: outcome
            .unschedulable
            .iter()
            .map(|u| UnschedulablePod {
                pod: u.pod.clone(),
                reasons: u.reasons.clone(),
            })
            .collect(),
        limit_messages: outcome.limit_messages.clone(),
        total_per_hour: round(total, 4),
        total_per_month: round(total * HOURS_PER_MONTH, 2),
        lower_bound_per_hour: lower.map(|l| round(l, 4)),
        cost_ratio: ratio,
    }
}

/// `███████░░░ 70%`: ten cells, then the percentage.
pub fn bar(used: i64, total: i64) -> String {
    let frac = if total > 0 {
        (used as f64 / total as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = (frac * 10.0).round() as usize;
    format!(
        "{}{} {:>3}%",
        "█".repeat(filled),
        "░".repeat(10 - filled),
        (frac * 100.0).round() as i64
    )
}

pub fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let rows: Vec<[String; 9]> = plan
        .nodeclaims
        .iter()
        .map(|n| {
            [
                n.nodepool.clone(),
                n.instance_type.clone(),
                n.zone.clone(),
                n.capacity_type.clone(),
                n.pods.len().to_string(),
                format!(
                    "{} {}/{}",
                    bar(n.cpu_requested_millis, n.cpu_allocatable_millis),
                    format_millis(n.cpu_requested_millis),
                    format_millis(n.cpu_allocatable_millis)
                ),
                format!(
                    "{} {}/{}",
                    bar(n.memory_requested_bytes, n.memory_allocatable_bytes),
                    format_bytes(n.memory_requested_bytes),
                    format_bytes(n.memory_allocatable_bytes)
                ),
                format!("{:.4}", n.price_per_hour),
                format!("{:.2}", n.price_per_hour * HOURS_PER_MONTH),
            ]
        })
        .collect();
    let header = [
        "NODEPOOL",
        "INSTANCE TYPE",
        "ZONE",
        "CAPACITY",
        "PODS",
        "CPU",
        "MEMORY",
        "$/HOUR",
        "$/MONTH",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w - c.chars().count();
            // Numbers align right, text left.
            if i >= 7 {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
            s.push_str("  ");
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&header.map(String::from)));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
    let pods: usize = plan.nodeclaims.iter().map(|n| n.pods.len()).sum();
    let _ = writeln!(
        out,
        "\n{} new nodes for {} pods ({} on existing nodes): ${:.4}/hour, ${:.2}/month{}",
        plan.nodeclaims.len(),
        pods,
        plan.existing.len(),
        plan.total_per_hour,
        plan.total_per_month,
        match (plan.lower_bound_per_hour, plan.cost_ratio) {
            (Some(l), Some(r)) => format!("; lower bound ${l:.4}/hour (ratio {r:.3})"),
            _ => String::new(),
        }
    );
    if plan.estimated_prices {
        let _ = writeln!(
            out,
            "prices in {} are estimates (embedded us-east-1 prices; spot estimated from on-demand)",
            plan.region
        );
    }
    for m in &plan.limit_messages {
        let _ = writeln!(out, "limit: {m}");
    }
    if !plan.unschedulable.is_empty() {
        let _ = writeln!(
            out,
            "\n{} pods cannot be scheduled:",
            plan.unschedulable.len()
        );
        for u in &plan.unschedulable {
            let reasons: Vec<String> = u.reasons.iter().map(|(p, r)| format!("{p}: {r}")).collect();
            let _ = writeln!(out, "  {}: {}", u.pod, reasons.join("; "));
        }
    }
    out
}

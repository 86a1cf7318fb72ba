//! Candidates: the NodeClaims disruption may act on, each with its Node, pods, NodePool and
//! price, and the reasons (in words for an Event) one may not be touched.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::apis::common::parse_duration;
use crate::apis::labels::{
    CAPACITY_TYPE, DISRUPTED_TAINT_KEY, DO_NOT_DISRUPT, INSTANCE_TYPE, NODEPOOL, ZONE,
};
use crate::apis::nodeclaim::conditions;
use crate::apis::{NodeClaim, NodePool};
use crate::scheduling::pod::{PodInfo, Selector};

use super::view::ClusterView;
use super::{Blocked, EVENT_DISRUPTION_BLOCKED, time};

#[derive(Debug, Clone)]
pub struct Candidate {
    pub claim: Arc<NodeClaim>,
    /// None until the Node registers.
    pub node: Option<Arc<Node>>,
    /// The pods bound to the node that are still running (not finished, not being deleted).
    pub pods: Vec<Arc<Pod>>,
    /// The pods that need a new home if the node goes: not DaemonSet or static pods.
    pub reschedulable: Vec<PodInfo>,
    pub nodepool: Option<Arc<NodePool>>,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
    /// Hourly price of the node's offering, when known.
    pub price: Option<f64>,
    /// The NodeClaim or the Node is being deleted.
    pub deleting: bool,
    pub tainted_disrupted: bool,
    /// Why the node may not be disrupted by any graceful method.
    pub block: Option<String>,
    /// Why its pods may not be evicted (do-not-disrupt, PDB): every graceful method stops at it,
    /// but drift goes on when the claim has a `terminationGracePeriod` (Karpenter v1).
    pub pod_block: Option<String>,
    /// What moving its pods costs (Karpenter's eviction cost times lifetime remaining): cheapest
    /// candidates are disrupted first.
    pub disruption_cost: f64,
}

impl Candidate {
    /// The NodeClaim's name: commands name NodeClaims.
    pub fn name(&self) -> &str {
        self.claim.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn node_name(&self) -> Option<&str> {
        self.node.as_ref().and_then(|n| n.metadata.name.as_deref())
    }

    pub fn pool_name(&self) -> &str {
        self.claim
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(NODEPOOL))
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.reschedulable.is_empty()
    }

    pub fn has_termination_grace_period(&self) -> bool {
        self.claim.spec.termination_grace_period.is_some()
    }

    pub fn blocked(&self, event_reason: &'static str, message: impl Into<String>) -> Blocked {
        Blocked {
            nodeclaim: self.name().to_string(),
            node: self.node_name().map(str::to_string),
            event_reason,
            message: message.into(),
        }
    }

    /// When the pool's `consolidateAfter` has passed since the pods last changed (the claim's
    /// `lastPodEventTime`, else since it was initialized); None for `Never` or no pool.
    pub fn consolidatable_at(&self) -> Option<SystemTime> {
        let after = self.nodepool.as_ref()?.consolidate_after();
        let after = parse_duration(after)?;
        let status = self.claim.status.as_ref();
        let since = status
            .and_then(|s| s.last_pod_event_time.as_deref())
            .and_then(time::parse_rfc3339)
            .or_else(|| {
                self.claim
                    .condition(conditions::INITIALIZED)
                    .and_then(|c| c.last_transition_time.as_deref())
                    .and_then(time::parse_rfc3339)
            })
            .or_else(|| created(&self.claim))?;
        since.checked_add(after)
    }

    pub fn is_consolidatable(&self, now: SystemTime) -> bool {
        self.consolidatable_at().is_some_and(|t| t <= now)
    }
}

pub fn created(claim: &NodeClaim) -> Option<SystemTime> {
    claim
        .metadata
        .creation_timestamp
        .as_ref()
        .map(time::from_k8s)
}

/// The claim's `expireAfter` (its own, else its pool's); None for `Never`.
pub fn expire_after(claim: &NodeClaim, pool: Option<&NodePool>) -> Option<Duration> {
    let s = claim
        .spec
        .expire_after
        .as_deref()
        .or_else(|| pool.map(NodePool::expire_after))?;
    parse_duration(s)
}

/// PodDisruptionBudgets pre-read: which pods each one covers and whether it allows an eviction.
#[derive(Debug, Clone, Default)]
pub struct Pdbs(Vec<PdbEntry>);

#[derive(Debug, Clone)]
struct PdbEntry {
    key: String,
    namespace: String,
    selector: Selector,
    disruptions_allowed: i32,
}

impl Pdbs {
    pub fn new(pdbs: &[Arc<PodDisruptionBudget>]) -> Self {
        Pdbs(
            pdbs.iter()
                .map(|p| {
                    let namespace = p.metadata.namespace.clone().unwrap_or_default();
                    PdbEntry {
                        key: format!(
                            "{namespace}/{}",
                            p.metadata.name.as_deref().unwrap_or_default()
                        ),
                        namespace,
                        selector: Selector::from_label_selector(
                            p.spec.as_ref().and_then(|s| s.selector.as_ref()),
                        ),
                        // No status yet: the API server refuses evictions until it has one.
                        disruptions_allowed: p
                            .status
                            .as_ref()
                            .and_then(|s| s.disruptions_allowed)
                            .unwrap_or(0),
                    }
                })
                .collect(),
        )
    }

    /// Why evicting `pod` would be refused, if it would.
    pub fn blocks(&self, pod: &Pod) -> Option<String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let empty = BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let matching: Vec<&PdbEntry> = self
            .0
            .iter()
            .filter(|p| p.namespace == ns && p.selector.matches(labels))
            .collect();
        match matching.as_slice() {
            [] => None,
            [one] if one.disruptions_allowed > 0 => None,
            [one] => Some(format!("pdb {} prevents pod evictions", one.key)),
            // The eviction API answers 500 for a pod under several budgets.
            many => Some(format!(
                "pod {} has multiple pdbs ({}), which prevents its eviction",
                pod_key(pod),
                many.iter()
                    .map(|p| p.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn annotated_do_not_disrupt(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(DO_NOT_DISRUPT))
        .is_some_and(|v| v == "true")
}

/// Running: not finished and not being deleted (those neither block nor need a home).
pub fn is_running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// A static (mirror) pod: the kubelet owns it, eviction does not apply.
fn is_static(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
        || pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Node")
}

fn is_daemonset_pod(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true))
}

/// Whether the node's pods need a new home when it goes.
pub fn is_reschedulable(pod: &Pod) -> bool {
    is_running(pod) && !is_daemonset_pod(pod) && !is_static(pod)
}

fn node_block(claim: &NodeClaim, node: Option<&Node>, pool: Option<&NodePool>) -> Option<String> {
    let pool_name = claim.metadata.labels.as_ref().and_then(|l| l.get(NODEPOOL));
    if pool.is_none() {
        return Some(match pool_name {
            Some(p) => format!("nodepool {p} not found"),
            None => "node isn't managed by a nodepool".into(),
        });
    }
    if claim.metadata.deletion_timestamp.is_some()
        || node.is_some_and(|n| n.metadata.deletion_timestamp.is_some())
    {
        return Some("node is marked for deletion".into());
    }
    if node.is_some_and(has_disrupted_taint) {
        return Some("node is already being disrupted".into());
    }
    if node.is_none() || !claim.is_condition_true(conditions::INITIALIZED) {
        return Some("node isn't initialized".into());
    }
    if annotated_do_not_disrupt(&claim.metadata)
        || node.is_some_and(|n| annotated_do_not_disrupt(&n.metadata))
    {
        return Some(format!(
            "disruption is blocked through the \"{DO_NOT_DISRUPT}\" annotation"
        ));
    }
    None
}

fn pods_block(pods: &[&Pod], pdbs: &Pdbs) -> Option<String> {
    for p in pods.iter().filter(|p| is_running(p)) {
        if annotated_do_not_disrupt(&p.metadata) {
            return Some(format!(
                "pod {} has \"{DO_NOT_DISRUPT}\" annotation",
                pod_key(p)
            ));
        }
    }
    pods.iter()
        .filter(|p| is_running(p) && !is_static(p))
        .find_map(|p| pdbs.blocks(p))
}

fn has_disrupted_taint(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == DISRUPTED_TAINT_KEY))
}

/// Why the node of `claim` can't be disrupted, in words for an Event; None when it can.
pub fn why_not_candidate(
    claim: &NodeClaim,
    node: Option<&Node>,
    pods: &[&Pod],
    pool: Option<&NodePool>,
    pdbs: &Pdbs,
) -> Option<String> {
    node_block(claim, node, pool).or_else(|| pods_block(pods, pdbs))
}

/// Eviction cost of one pod (Karpenter's `EvictionCost`): 1, plus its deletion cost and priority
/// scaled down, clamped to [-10, 10].
fn eviction_cost(pod: &Pod) -> f64 {
    let mut cost = 1.0;
    if let Some(c) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|v| v.parse::<f64>().ok())
    {
        cost += c / 2f64.powi(27);
    }
    if let Some(p) = pod.spec.as_ref().and_then(|s| s.priority) {
        cost += f64::from(p) / 2f64.powi(25);
    }
    cost.clamp(-10.0, 10.0)
}

/// The share of its life the claim has left (1 when it never expires).
fn lifetime_remaining(claim: &NodeClaim, pool: Option<&NodePool>, now: SystemTime) -> f64 {
    let (Some(expire), Some(created)) = (expire_after(claim, pool), created(claim)) else {
        return 1.0;
    };
    let age = now.duration_since(created).unwrap_or_default();
    if expire.is_zero() {
        return 0.0;
    }
    (1.0 - age.as_secs_f64() / expire.as_secs_f64()).clamp(0.0, 1.0)
}

/// Every NodeClaim as a candidate, with the blocked ones' reasons as Events (not for those
/// already going away: nothing is blocking them).
pub fn build(view: &ClusterView, now: SystemTime) -> (Vec<Candidate>, Vec<Blocked>) {
    let pdbs = Pdbs::new(&view.pdbs);
    let nodes_by_provider: BTreeMap<&str, &Arc<Node>> = view
        .nodes
        .iter()
        .filter_map(|n| {
            n.spec
                .as_ref()
                .and_then(|s| s.provider_id.as_deref())
                .map(|id| (id, n))
        })
        .collect();
    let mut pods_by_node: BTreeMap<&str, Vec<&Arc<Pod>>> = BTreeMap::new();
    for p in &view.pods {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            pods_by_node.entry(n).or_default().push(p);
        }
    }
    let pools: BTreeMap<&str, &Arc<NodePool>> = view
        .nodepools
        .iter()
        .filter_map(|p| p.metadata.name.as_deref().map(|n| (n, p)))
        .collect();

    let mut out = Vec::new();
    let mut blocked = Vec::new();
    for claim in &view.nodeclaims {
        let node = claim
            .status
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .and_then(|id| nodes_by_provider.get(id))
            .map(|n| Arc::clone(n));
        let pool = claim
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(NODEPOOL))
            .and_then(|p| pools.get(p.as_str()))
            .map(|p| Arc::clone(p));
        let all_pods: Vec<&Arc<Pod>> = node
            .as_ref()
            .and_then(|n| n.metadata.name.as_deref())
            .and_then(|n| pods_by_node.get(n))
            .cloned()
            .unwrap_or_default();
        let pods: Vec<Arc<Pod>> = all_pods
            .iter()
            .filter(|p| is_running(p))
            .map(|p| Arc::clone(p))
            .collect();
        let raw: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();

        let mut block = node_block(claim, node.as_deref(), pool.as_deref());
        let pod_block = pods_block(&raw, &pdbs);
        let mut reschedulable = Vec::new();
        for p in raw.iter().filter(|p| is_reschedulable(p)) {
            match PodInfo::from_pod(p) {
                Ok(info) => reschedulable.push(info),
                // A pod the simulation can't read might not fit anywhere: keep its node.
                Err(e) => {
                    block.get_or_insert_with(|| format!("can't simulate pod: {e}"));
                }
            }
        }
        let label = |k: &str| {
            node.as_ref()
                .and_then(|n| n.metadata.labels.as_ref())
                .or(claim.metadata.labels.as_ref())
                .and_then(|l| l.get(k))
                .cloned()
                .unwrap_or_default()
        };
        let (instance_type, zone, capacity_type) =
            (label(INSTANCE_TYPE), label(ZONE), label(CAPACITY_TYPE));
        let price = view.prices.get(&instance_type, &zone, &capacity_type);
        let deleting = claim.metadata.deletion_timestamp.is_some()
            || node
                .as_ref()
                .is_some_and(|n| n.metadata.deletion_timestamp.is_some());
        let tainted_disrupted = node.as_deref().is_some_and(has_disrupted_taint);
        let disruption_cost = raw
            .iter()
            .filter(|p| is_reschedulable(p))
            .map(|p| eviction_cost(p))
            .sum::<f64>()
            * lifetime_remaining(claim, pool.as_deref(), now);

        let c = Candidate {
            claim: Arc::clone(claim),
            node,
            pods,
            reschedulable,
            nodepool: pool,
            instance_type,
            zone,
            capacity_type,
            price,
            deleting,
            tainted_disrupted,
            block,
            pod_block,
            disruption_cost,
        };
        if !c.deleting && !c.tainted_disrupted {
            if let Some(b) = &c.block {
                blocked.push(c.blocked(EVENT_DISRUPTION_BLOCKED, b.clone()));
            } else if let Some(b) = &c.pod_block
                && !c.has_termination_grace_period()
            {
                blocked.push(c.blocked(EVENT_DISRUPTION_BLOCKED, b.clone()));
            }
        }
        out.push(c);
    }
    (out, blocked)
}

/// Candidates ordered as Karpenter disrupts them: cheapest to move first, then by name.
pub fn by_cost<'a>(candidates: &[&'a Candidate]) -> Vec<&'a Candidate> {
    let mut v = candidates.to_vec();
    v.sort_by(|a, b| {
        a.disruption_cost
            .total_cmp(&b.disruption_cost)
            .then_with(|| a.name().cmp(b.name()))
    });
    v
}

#[cfg(test)]
#[path = "candidates_tests.rs"]
mod tests;

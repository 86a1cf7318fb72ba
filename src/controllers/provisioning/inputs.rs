//! The simulation's input from a snapshot of the cluster: pending pods, nodes (and NodeClaims
//! still on their way) with the room they have left, DaemonSet templates, and NodePools with the
//! capacity they already use. Pure: tested on plain objects.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::apis::labels::{DISRUPTED_TAINT_KEY, NODEPOOL, UNREGISTERED_TAINT_KEY, ZONE};
use crate::apis::{EC2NodeClass, NodeClaim, NodePool, Taint};
use crate::cloud::catalog::Catalog;
use crate::plan::pools::pool_templates;
use crate::scheduling::pod::PodInfo;
use crate::scheduling::requirements::{Requirement, Requirements};
use crate::scheduling::resources::Resources;
use crate::scheduling::scheduler::{ExistingNode, Input};

use super::pending::{is_active, is_provisionable};

/// What the cluster looks like at one moment.
#[derive(Default)]
pub struct Snapshot {
    pub pods: Vec<Arc<Pod>>,
    pub nodes: Vec<Arc<Node>>,
    pub nodeclaims: Vec<Arc<NodeClaim>>,
    pub nodepools: Vec<Arc<NodePool>>,
    pub nodeclasses: Vec<Arc<EC2NodeClass>>,
    pub daemonsets: Vec<Arc<DaemonSet>>,
}

pub struct Prepared {
    pub input: Input,
    /// The pending pods by `namespace/name`, for events.
    pub pending: BTreeMap<String, Arc<Pod>>,
    /// Things the simulation could not read (a pod with a bad quantity, a NodePool without its
    /// EC2NodeClass), to log.
    pub warnings: Vec<String>,
}

pub fn prepare(snap: &Snapshot, catalog: &Catalog, now: SystemTime) -> Prepared {
    let mut warnings = Vec::new();
    let mut pending = BTreeMap::new();
    let mut pods = Vec::new();
    for p in snap.pods.iter().filter(|p| is_provisionable(p)) {
        match PodInfo::from_pod(p) {
            Ok(info) => {
                pending.insert(info.key.clone(), p.clone());
                pods.push(info);
            }
            Err(e) => warnings.push(e.to_string()),
        }
    }
    let daemonsets: Vec<PodInfo> = snap
        .daemonsets
        .iter()
        .filter_map(|ds| match PodInfo::from_pod(&template_pod(ds)) {
            Ok(p) => Some(p),
            Err(e) => {
                warnings.push(e.to_string());
                None
            }
        })
        .collect();

    let existing = existing_nodes(snap, &daemonsets);

    // A NodePool launches only once its EC2NodeClass has resolved (Ready), as Karpenter's do.
    let pools: Vec<NodePool> = snap
        .nodepools
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let class = &p.spec.template.spec.node_class_ref.name;
            let ready = snap.nodeclasses.iter().any(|c| {
                c.metadata.name.as_deref() == Some(class.as_str())
                    && c.condition("Ready").is_some_and(|r| r.is_true())
            });
            if !ready {
                warnings.push(format!(
                    "NodePool {}: EC2NodeClass {class} is not ready; not launching from it",
                    p.metadata.name.as_deref().unwrap_or("")
                ));
            }
            ready
        })
        .map(|p| (**p).clone())
        .collect();
    let classes: Vec<EC2NodeClass> = snap.nodeclasses.iter().map(|c| (**c).clone()).collect();
    let pools = match pool_templates(&pools, &classes, catalog, now) {
        Ok((mut templates, w)) => {
            warnings.extend(w);
            for t in &mut templates {
                t.in_use = in_use(&t.name, &snap.nodeclaims);
                let class = pools
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(t.name.as_str()))
                    .and_then(|p| {
                        let name = &p.spec.template.spec.node_class_ref.name;
                        classes
                            .iter()
                            .find(|c| c.metadata.name.as_deref() == Some(name.as_str()))
                    });
                restrict_to_subnet_zones(&mut t.requirements, class);
            }
            templates
        }
        Err(e) => {
            warnings.push(e);
            Vec::new()
        }
    };
    Prepared {
        input: Input {
            pods,
            daemonsets,
            existing,
            pools,
        },
        pending,
        warnings,
    }
}

/// The nodes pods may land on, with the room they have left: Nodes that are not going away
/// (not deleting, cordoned or tainted `karpenter.sh/disrupted`), then NodeClaims whose Node has
/// not joined yet. Shared with disruption, which removes candidates from it to simulate.
pub fn existing_nodes(snap: &Snapshot, daemonsets: &[PodInfo]) -> Vec<ExistingNode> {
    let mut bound: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for p in &snap.pods {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref())
            && is_active(p)
            && p.metadata.deletion_timestamp.is_none()
        {
            bound.entry(node).or_default().push(p);
        }
    }

    let claims_by_provider: BTreeMap<&str, &NodeClaim> = snap
        .nodeclaims
        .iter()
        .filter_map(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.provider_id.as_deref())
                .map(|id| (id, c.as_ref()))
        })
        .collect();
    let mut existing = Vec::new();
    let mut with_node: BTreeSet<&str> = BTreeSet::new();
    for node in &snap.nodes {
        let provider_id = node.spec.as_ref().and_then(|s| s.provider_id.as_deref());
        let claim = provider_id
            .and_then(|id| claims_by_provider.get(id))
            .copied();
        if let Some(id) = provider_id {
            with_node.insert(id);
        }
        if node.metadata.deletion_timestamp.is_some()
            || node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
            || claim.is_some_and(|c| c.metadata.deletion_timestamp.is_some())
        {
            continue;
        }
        let name = node.metadata.name.clone().unwrap_or_default();
        let taints = node_taints(node, claim);
        if taints.iter().any(|t| t.key == DISRUPTED_TAINT_KEY) {
            continue;
        }
        let allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| Resources::from_k8s(a).ok())
            .unwrap_or_default();
        let mut used = Resources::new();
        let mut infos = Vec::new();
        for p in bound.get(name.as_str()).into_iter().flatten() {
            if let Ok(info) = PodInfo::from_pod(p) {
                used += &info.requests;
                infos.push(info);
            }
        }
        existing.push(ExistingNode {
            name,
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            available: (&allocatable - &used).clamp_non_negative(),
            pods: infos,
        });
    }
    // NodeClaims whose Node has not joined yet: their pods are coming, so they count as room.
    for claim in &snap.nodeclaims {
        if claim.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let provider_id = claim.status.as_ref().and_then(|s| s.provider_id.as_deref());
        if provider_id.is_some_and(|id| with_node.contains(id)) {
            continue;
        }
        existing.push(in_flight(claim, daemonsets));
    }

    existing
}

/// A Node's taints as pods will meet them: Karpenter's own registration taint and the claim's
/// startup taints go away by themselves, so they do not keep pods off.
fn node_taints(node: &Node, claim: Option<&NodeClaim>) -> Vec<Taint> {
    let startup: Vec<&Taint> = claim
        .map(|c| c.spec.startup_taints.iter().collect())
        .unwrap_or_default();
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.key != UNREGISTERED_TAINT_KEY)
        .filter(|t| {
            !startup
                .iter()
                .any(|s| s.key == t.key && s.effect == t.effect)
        })
        .map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            time_added: None,
        })
        .collect()
}

/// A NodeClaim without a Node, as the room it will bring: its allocatable once launched (less
/// the DaemonSets that will land on it), before that the requests it was made for (which
/// already include the DaemonSets).
fn in_flight(claim: &NodeClaim, daemonsets: &[PodInfo]) -> ExistingNode {
    let mut labels = claim.metadata.labels.clone().unwrap_or_default();
    if let Ok(reqs) = Requirements::from_nodepool(&claim.spec.requirements) {
        for r in reqs.iter() {
            if let Some(values) = r.values()
                && values.len() == 1
                && let Some(v) = values.iter().next()
            {
                labels.entry(r.key.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    let status_allocatable = claim
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| Resources::from_k8s(a).ok());
    let available = match status_allocatable {
        Some(a) => {
            let mut overhead = Resources::new();
            for ds in daemonsets {
                if crate::scheduling::taints::first_untolerated(&ds.tolerations, &claim.spec.taints)
                    .is_none()
                    && ds.node_selector.matches_labels(&labels).is_ok()
                {
                    overhead += &ds.requests;
                }
            }
            (&a - &overhead).clamp_non_negative()
        }
        None => claim
            .spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| Resources::from_k8s(r).ok())
            .unwrap_or_default(),
    };
    ExistingNode {
        name: claim.metadata.name.clone().unwrap_or_default(),
        labels,
        taints: claim.spec.taints.clone(),
        available,
        pods: Vec::new(),
    }
}

/// Capacity of the pool's NodeClaims (what `spec.limits` counts): launched ones by their
/// capacity, the others by what they were made for.
pub fn in_use(pool: &str, claims: &[Arc<NodeClaim>]) -> Resources {
    let mut total = Resources::new();
    for c in claims {
        let of_pool = c
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(NODEPOOL))
            .is_some_and(|p| p == pool);
        if !of_pool {
            continue;
        }
        let status = c.status.as_ref().and_then(|s| s.capacity.as_ref());
        let requests = c.spec.resources.as_ref().and_then(|r| r.requests.as_ref());
        if let Some(r) = status
            .or(requests)
            .and_then(|q| Resources::from_k8s(q).ok())
        {
            total += &r;
        }
    }
    total
}

/// Only zones the EC2NodeClass has subnets in can be launched into.
fn restrict_to_subnet_zones(reqs: &mut Requirements, class: Option<&EC2NodeClass>) {
    let zones: Vec<String> = class
        .and_then(|c| c.status.as_ref())
        .map(|s| s.subnets.iter().map(|s| s.zone.clone()).collect())
        .unwrap_or_default();
    if zones.is_empty() {
        return;
    }
    if let Ok(r) = Requirement::new(ZONE, "In", &zones) {
        reqs.add(r);
    }
}

/// The pod a DaemonSet would put on a new node.
fn template_pod(ds: &DaemonSet) -> Pod {
    let template = ds.spec.template.clone();
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name: ds.metadata.name.clone(),
            namespace: ds.metadata.namespace.clone(),
            labels: meta.labels,
            ..Default::default()
        },
        spec: Some(template.spec.unwrap_or_default()),
        status: None,
    }
}

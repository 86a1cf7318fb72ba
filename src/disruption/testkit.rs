//! Small clusters built in code for the disruption tests: two instance types, one zone, NodePools,
//! NodeClaims with their Nodes, pods and PDBs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use crate::apis::labels::{CAPACITY_TYPE, HOSTNAME, INSTANCE_TYPE, NODEPOOL, ZONE};
use crate::apis::nodeclaim::conditions;
use crate::apis::{Budget, NodeClaim, NodePool};
use crate::controllers::provisioning::inputs::{Snapshot, existing_nodes};
use crate::scheduling::instance::{InstanceOption, OfferingOption};
use crate::scheduling::requirements::Requirements;
use crate::scheduling::resources::Resources;
use crate::scheduling::scheduler::{Input, PoolTemplate};

use super::view::{ClusterView, PriceBook};

pub const SMALL: &str = "m.large";
pub const LARGE: &str = "m.xlarge";
pub const HUGE: &str = "m.4xlarge";
pub const OD: &str = "on-demand";
pub const SPOT: &str = "spot";
const GI: i64 = 1 << 30;
const T0_SECS: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z, a Thursday

/// When every claim in these clusters was created and initialized.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0_SECS)
}

pub fn at(secs_after_t0: u64) -> SystemTime {
    t0() + Duration::from_secs(secs_after_t0)
}

fn rfc3339(t: SystemTime) -> String {
    k8s_openapi::jiff::Timestamp::try_from(t)
        .expect("time")
        .to_string()
}

/// (name, cpu, memory GiB, on-demand price); spot is 40% of it.
const TYPES: &[(&str, i64, i64, f64)] = &[
    (SMALL, 2, 8, 0.10),
    (LARGE, 4, 16, 0.20),
    (HUGE, 16, 64, 0.80),
];

pub fn instance_types() -> Vec<Arc<InstanceOption>> {
    TYPES
        .iter()
        .map(|&(name, cpu, mem, price)| {
            let res = Resources {
                cpu_millis: cpu * 1000,
                memory_bytes: mem * GI,
                pods: 110,
                ..Default::default()
            };
            let labels = BTreeMap::from([(INSTANCE_TYPE.to_string(), name.to_string())]);
            let offerings = [(OD, price), (SPOT, price * 0.4)]
                .map(|(ct, p)| OfferingOption {
                    zone: "zone-a".into(),
                    capacity_type: ct.into(),
                    price_per_hour: p,
                })
                .to_vec();
            Arc::new(InstanceOption::new(
                name,
                labels,
                res.clone(),
                res,
                offerings,
            ))
        })
        .collect()
}

pub fn budget(
    nodes: &str,
    schedule: Option<&str>,
    duration: Option<&str>,
    reasons: Option<Vec<crate::apis::nodepool::DisruptionReason>>,
) -> Budget {
    Budget {
        nodes: nodes.into(),
        schedule: schedule.map(Into::into),
        duration: duration.map(Into::into),
        reasons,
    }
}

pub fn nodepool(name: &str) -> NodePool {
    serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
            "requirements": [{"key": CAPACITY_TYPE, "operator": "In", "values": [OD]}]
        }}}
    }))
    .expect("nodepool")
}

#[derive(Default)]
pub struct Cluster {
    pub pools: Vec<NodePool>,
    pub nodes: Vec<Node>,
    pub claims: Vec<NodeClaim>,
    pub pods: Vec<Pod>,
    pub pdbs: Vec<PodDisruptionBudget>,
}

impl Cluster {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn pool(&mut self, name: &str, f: impl FnOnce(&mut NodePool)) {
        let mut p = nodepool(name);
        f(&mut p);
        self.pools.push(p);
    }

    /// A launched, registered and initialized NodeClaim `claim-{name}` with its Node `node-{name}`.
    pub fn node(&mut self, name: &str, pool: &str, ty: &str, ct: &str) {
        let &(_, cpu, mem, _) = TYPES.iter().find(|t| t.0 == ty).expect("type");
        let labels = json!({NODEPOOL: pool, INSTANCE_TYPE: ty, ZONE: "zone-a", CAPACITY_TYPE: ct});
        let provider = format!("sim:///zone-a/{name}");
        let created = rfc3339(t0());
        let alloc = json!({"cpu": cpu.to_string(), "memory": format!("{mem}Gi"), "pods": "110"});
        self.claims.push(
            serde_json::from_value(json!({
                "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
                "metadata": {"name": format!("claim-{name}"), "labels": labels, "creationTimestamp": created},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                    "requirements": []
                },
                "status": {
                    "providerID": provider, "nodeName": format!("node-{name}"),
                    "capacity": alloc, "allocatable": alloc,
                    "conditions": [{"type": conditions::INITIALIZED, "status": "True", "lastTransitionTime": created}]
                }
            }))
            .expect("nodeclaim"),
        );
        let mut node_labels = labels;
        node_labels[HOSTNAME] = json!(format!("node-{name}"));
        self.nodes.push(
            serde_json::from_value(json!({
                "metadata": {"name": format!("node-{name}"), "labels": node_labels, "creationTimestamp": created},
                "spec": {"providerID": provider},
                "status": {"allocatable": alloc, "capacity": alloc,
                           "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .expect("node"),
        );
    }

    pub fn claim_mut(&mut self, name: &str) -> &mut NodeClaim {
        let n = format!("claim-{name}");
        self.claims
            .iter_mut()
            .find(|c| c.metadata.name.as_deref() == Some(n.as_str()))
            .expect("claim")
    }

    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        let n = format!("node-{name}");
        self.nodes
            .iter_mut()
            .find(|c| c.metadata.name.as_deref() == Some(n.as_str()))
            .expect("node")
    }

    /// A running pod `default/{name}` labelled `app: {name}` on `node-{node}`.
    pub fn pod(&mut self, node: &str, name: &str, cpu: &str, mem: &str) -> &mut Pod {
        self.pods.push(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
                "spec": {"nodeName": format!("node-{node}"), "containers": [
                    {"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]},
                "status": {"phase": "Running"}
            }))
            .expect("pod"),
        );
        self.pods.last_mut().expect("pushed")
    }

    pub fn pdb(&mut self, name: &str, app: &str, allowed: i32) {
        self.pdbs.push(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": app}}, "minAvailable": 1},
                "status": {"disruptionsAllowed": allowed, "currentHealthy": 1, "desiredHealthy": 1,
                           "expectedPods": 1}
            }))
            .expect("pdb"),
        );
    }

    pub fn view(&self) -> ClusterView {
        let snap = Snapshot {
            pods: self.pods.iter().cloned().map(Arc::new).collect(),
            nodes: self.nodes.iter().cloned().map(Arc::new).collect(),
            nodeclaims: self.claims.iter().cloned().map(Arc::new).collect(),
            nodepools: self.pools.iter().cloned().map(Arc::new).collect(),
            ..Default::default()
        };
        let pools: Vec<PoolTemplate> = self
            .pools
            .iter()
            .map(|p| {
                let name = p.metadata.name.clone().unwrap_or_default();
                let mut requirements =
                    Requirements::from_nodepool(&p.spec.template.spec.requirements).expect("reqs");
                requirements.add(crate::scheduling::requirements::Requirement::single(
                    NODEPOOL, &name,
                ));
                PoolTemplate {
                    name,
                    weight: p.weight(),
                    requirements,
                    taints: Vec::new(),
                    instance_types: instance_types(),
                    limits: None,
                    in_use: Resources::new(),
                }
            })
            .collect();
        let existing = existing_nodes(&snap, &[]);
        ClusterView {
            prices: PriceBook::from_pools(&pools),
            simulation: Input {
                pods: Vec::new(),
                daemonsets: Vec::new(),
                existing,
                pools,
            },
            nodes: snap.nodes,
            nodeclaims: snap.nodeclaims,
            nodepools: snap.nodepools,
            pods: snap.pods,
            pdbs: self.pdbs.iter().cloned().map(Arc::new).collect(),
        }
    }
}

/// Sets a NodeClaim's last pod event (when consolidateAfter counts from).
pub fn set_last_pod_event(claim: &mut NodeClaim, t: SystemTime) {
    if let Some(s) = claim.status.as_mut() {
        s.last_pod_event_time = Some(rfc3339(t));
    }
}

pub fn annotate(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    k: &str,
    v: &str,
) {
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(k.into(), v.into());
}

pub fn deletion(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    meta.deletion_timestamp = Some(Time(
        k8s_openapi::jiff::Timestamp::try_from(t0()).expect("t"),
    ));
}

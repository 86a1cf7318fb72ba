//! A kube-scheduler stand-in: binds pending, unbound pods to nodes that fit, or marks them
//! `PodScheduled=False` (`Unschedulable`) with the real scheduler's kind of message
//! (`0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {…}.`).
//!
//! Filters, as the default plugins do: the node is schedulable (`spec.unschedulable` unless the
//! pod tolerates `node.kubernetes.io/unschedulable`), Ready (a node that is not counts as
//! tainted `node.kubernetes.io/not-ready:NoSchedule`, as the node lifecycle controller does),
//! `nodeSelector` and required node affinity (`matchExpressions` on labels with
//! In/NotIn/Exists/DoesNotExist/Gt/Lt, `matchFields` on `metadata.name`), NoSchedule/NoExecute
//! taints against tolerations, and requests (cpu, memory, pod count) against
//! `status.allocatable` minus the requests of the pods already bound there. Among the nodes
//! that fit, the least allocated wins (the default `LeastAllocated` score), then the name.
//!
//! Not modelled: preemption, pod (anti-)affinity, topology spread, preferred affinity, ports,
//! volumes, extended resources.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::api::{Api, Sub};
use crate::errors::ApiError;
use crate::object::{deletion_timestamp, labels, name, namespace, now_rfc3339};
use crate::quantity;
use crate::registry::ResourceType;

/// kubelet's default `maxPods`, used when a node does not say.
const DEFAULT_MAX_PODS: f64 = 110.0;

/// cpu (cores), memory (bytes), pods.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resources {
    pub cpu: f64,
    pub memory: f64,
    pub pods: f64,
}

impl Resources {
    fn add(&mut self, other: &Resources) {
        self.cpu += other.cpu;
        self.memory += other.memory;
        self.pods += other.pods;
    }
}

/// A node as the scheduler sees it during one pass.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub labels: Map<String, Value>,
    pub taints: Vec<Value>,
    pub unschedulable: bool,
    pub ready: bool,
    pub allocatable: Resources,
    pub used: Resources,
}

impl NodeInfo {
    pub fn from_node(node: &Value) -> Self {
        let alloc = node
            .pointer("/status/allocatable")
            .or_else(|| node.pointer("/status/capacity"));
        let amount = |k: &str| alloc.and_then(|a| a.get(k)).and_then(quantity::of);
        Self {
            name: name(node).to_string(),
            labels: labels(node).cloned().unwrap_or_default(),
            taints: node
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            unschedulable: node
                .pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            ready: is_ready(node),
            allocatable: Resources {
                cpu: amount("cpu").unwrap_or(0.0),
                memory: amount("memory").unwrap_or(0.0),
                pods: amount("pods").unwrap_or(DEFAULT_MAX_PODS),
            },
            used: Resources::default(),
        }
    }
}

/// Whether a node's `Ready` condition is `True`.
pub fn is_ready(node: &Value) -> bool {
    condition_is(node, "Ready", "True")
}

/// Whether an object's `status.conditions` has `type` with `status`.
pub fn condition_is(obj: &Value, type_: &str, status: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(type_)
                    && c.get("status").and_then(Value::as_str) == Some(status)
            })
        })
}

/// Whether a pod has finished (its resources are free again).
pub fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// What a pod asks for: the sum over its containers (a limit stands in for a missing request,
/// as API defaulting does), at least the largest init container, plus overhead, plus one pod.
pub fn pod_requests(pod: &Value) -> Resources {
    fn container(c: &Value) -> Resources {
        let get = |k: &str| {
            c.pointer(&format!("/resources/requests/{k}"))
                .or_else(|| c.pointer(&format!("/resources/limits/{k}")))
                .and_then(quantity::of)
                .unwrap_or(0.0)
        };
        Resources {
            cpu: get("cpu"),
            memory: get("memory"),
            pods: 0.0,
        }
    }
    let list = |k: &str| {
        pod.pointer(&format!("/spec/{k}"))
            .and_then(Value::as_array)
            .map(|a| a.iter().map(container).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut total = Resources::default();
    for c in list("containers") {
        total.add(&c);
    }
    for c in list("initContainers") {
        total.cpu = total.cpu.max(c.cpu);
        total.memory = total.memory.max(c.memory);
    }
    if let Some(overhead) = pod.pointer("/spec/overhead") {
        let get = |k: &str| overhead.get(k).and_then(quantity::of).unwrap_or(0.0);
        total.cpu += get("cpu");
        total.memory += get("memory");
    }
    total.pods = 1.0;
    total
}

/// Whether one toleration covers one taint (`v1.Toleration.ToleratesTaint`).
fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (t_key, t_value, t_effect) = (s(taint, "key"), s(taint, "value"), s(taint, "effect"));
    let effect = s(toleration, "effect");
    if !effect.is_empty() && effect != t_effect {
        return false;
    }
    let key = s(toleration, "key");
    let exists = s(toleration, "operator") == "Exists";
    if key.is_empty() {
        return exists;
    }
    key == t_key && (exists || s(toleration, "value") == t_value)
}

/// The first NoSchedule/NoExecute taint of `taints` that no toleration of the pod covers.
pub fn untolerated<'a>(pod: &Value, taints: &'a [Value]) -> Option<&'a Value> {
    let tolerations = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    taints.iter().find(|taint| {
        let effect = taint.get("effect").and_then(Value::as_str).unwrap_or("");
        matches!(effect, "NoSchedule" | "NoExecute")
            && !tolerations.iter().any(|t| tolerates(t, taint))
    })
}

fn requirement_holds(req: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = req
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    let bound = values.first().and_then(|v| number(v));
    match req.get("operator").and_then(Value::as_str) {
        Some("In") => value.is_some_and(|v| values.contains(&v)),
        Some("NotIn") => value.is_none_or(|v| !values.contains(&v)),
        Some("Exists") => value.is_some(),
        Some("DoesNotExist") => value.is_none(),
        Some("Gt") => matches!((value.and_then(number), bound), (Some(v), Some(b)) if v > b),
        Some("Lt") => matches!((value.and_then(number), bound), (Some(v), Some(b)) if v < b),
        _ => false,
    }
}

/// `nodeSelector` and required node affinity (terms ORed, requirements within a term ANDed;
/// a term with no requirement matches nothing).
pub fn matches_node(pod: &Value, node_name: &str, node_labels: &Map<String, Value>) -> bool {
    let label = |k: &str| node_labels.get(k).and_then(Value::as_str);
    let selector_ok = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| sel.iter().all(|(k, v)| label(k) == v.as_str()));
    if !selector_ok {
        return false;
    }
    let Some(terms) = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    terms.iter().any(|term| {
        let exprs = term
            .get("matchExpressions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let fields = term
            .get("matchFields")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        (!exprs.is_empty() || !fields.is_empty())
            && exprs.iter().all(|e| {
                requirement_holds(e, label(e.get("key").and_then(Value::as_str).unwrap_or("")))
            })
            && fields.iter().all(|f| {
                f.get("key").and_then(Value::as_str) == Some("metadata.name")
                    && requirement_holds(f, Some(node_name))
            })
    })
}

/// Why `node` cannot take `pod` (empty: it can), in the scheduler's words.
pub fn misfits(pod: &Value, req: &Resources, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    let unschedulable_taint =
        json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
    if node.unschedulable && untolerated(pod, std::slice::from_ref(&unschedulable_taint)).is_some()
    {
        reasons.push("node(s) were unschedulable".to_string());
    }
    if !matches_node(pod, &node.name, &node.labels) {
        reasons.push("node(s) didn't match Pod's node affinity/selector".to_string());
    }
    let mut taints = node.taints.clone();
    if !node.ready {
        taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}));
    }
    if let Some(taint) = untolerated(pod, &taints) {
        let s = |k: &str| taint.get(k).and_then(Value::as_str).unwrap_or("");
        reasons.push(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            s("key"),
            s("value")
        ));
    }
    let free = |alloc: f64, used: f64| alloc - used;
    if req.pods > free(node.allocatable.pods, node.used.pods) {
        reasons.push("Too many pods".to_string());
    }
    if req.cpu > 0.0 && req.cpu > free(node.allocatable.cpu, node.used.cpu) + 1e-9 {
        reasons.push("Insufficient cpu".to_string());
    }
    if req.memory > 0.0 && req.memory > free(node.allocatable.memory, node.used.memory) + 0.5 {
        reasons.push("Insufficient memory".to_string());
    }
    reasons
}

/// `LeastAllocated`: the mean share of cpu and memory left after placing `req`.
fn score(req: &Resources, node: &NodeInfo) -> f64 {
    let left = |alloc: f64, used: f64, want: f64| {
        if alloc <= 0.0 {
            0.0
        } else {
            (alloc - used - want) / alloc
        }
    };
    (left(node.allocatable.cpu, node.used.cpu, req.cpu)
        + left(node.allocatable.memory, node.used.memory, req.memory))
        / 2.0
}

/// `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were unschedulable.`
pub fn unschedulable_message(nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    if nodes == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    // Sorted as formatted, as the real scheduler sorts them.
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{nodes} nodes are available: {}.", parts.join(", "))
}

/// Pods this scheduler is responsible for: pending, unbound, not being deleted.
fn wants_scheduling(pod: &Value) -> bool {
    let bound = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let scheduler = pod
        .pointer("/spec/schedulerName")
        .and_then(Value::as_str)
        .unwrap_or("default-scheduler");
    !bound
        && deletion_timestamp(pod).is_none()
        && scheduler == "default-scheduler"
        && pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending")
            == "Pending"
}

/// One scheduling pass over every unbound pod.
pub fn schedule(api: &Api, pods_rt: &ResourceType, nodes_rt: &ResourceType) {
    let (nodes, _) = api.store.list(&nodes_rt.gr(), None, |_| true);
    let (pods, _) = api.store.list(&pods_rt.gr(), None, |_| true);
    let mut infos: BTreeMap<String, NodeInfo> = nodes
        .iter()
        .map(|n| (name(n).to_string(), NodeInfo::from_node(n)))
        .collect();
    for pod in &pods {
        let node = pod.pointer("/spec/nodeName").and_then(Value::as_str);
        if let Some(info) = node.and_then(|n| infos.get_mut(n))
            && !is_terminal(pod)
        {
            info.used.add(&pod_requests(pod));
        }
    }
    let mut pending: Vec<&Arc<Value>> = pods.iter().filter(|p| wants_scheduling(p)).collect();
    // Higher priority first, then first come first served.
    pending.sort_by_key(|p| {
        (
            -p.pointer("/spec/priority")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            p.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            name(p).to_string(),
        )
    });
    for pod in pending {
        let req = pod_requests(pod);
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut best: Option<(f64, &str)> = None;
        for info in infos.values() {
            let why = misfits(pod, &req, info);
            if why.is_empty() {
                let s = score(&req, info);
                if best.is_none_or(|(b, _)| s > b) {
                    best = Some((s, &info.name));
                }
            }
            for r in why {
                *reasons.entry(r).or_default() += 1;
            }
        }
        let outcome = match best.map(|(_, n)| n.to_string()) {
            Some(node) => {
                let binding = json!({"target": {"kind": "Node", "name": node}});
                let bound = api.bind_pod(pods_rt, namespace(pod), name(pod), &binding);
                if bound.is_ok()
                    && let Some(info) = infos.get_mut(&node)
                {
                    info.used.add(&req);
                }
                bound
            }
            None => mark_unschedulable(
                api,
                pods_rt,
                pod,
                &unschedulable_message(infos.len(), &reasons),
            ),
        };
        if let Err(e) = outcome {
            tracing::debug!(pod = name(pod), error = %e, "scheduling");
        }
    }
}

/// Set `PodScheduled=False/Unschedulable` unless it already says the same.
fn mark_unschedulable(
    api: &Api,
    pods_rt: &ResourceType,
    pod: &Value,
    message: &str,
) -> Result<(), ApiError> {
    let current = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"))
        });
    let same = current.is_some_and(|c| {
        c.get("status").and_then(Value::as_str) == Some("False")
            && c.get("reason").and_then(Value::as_str) == Some("Unschedulable")
            && c.get("message").and_then(Value::as_str) == Some(message)
    });
    if same {
        return Ok(());
    }
    let mut new = pod.clone();
    let status = new
        .as_object_mut()
        .map(|o| o.entry("status").or_insert_with(|| json!({})));
    if let Some(Value::Object(status)) = status {
        let conds = status.entry("conditions").or_insert_with(|| json!([]));
        if let Value::Array(conds) = conds {
            conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
            conds.push(json!({
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": now_rfc3339(),
            }));
        }
    }
    api.update(pods_rt, namespace(pod), name(pod), new, Sub::Status)
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v: Value) -> NodeInfo {
        NodeInfo::from_node(&v)
    }

    #[test]
    fn filters_and_messages() {
        let ready = json!([{"type": "Ready", "status": "True"}]);
        let n = node(
            json!({"metadata": {"name": "a", "labels": {"zone": "z1", "gen": "5"}},
            "spec": {"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]},
            "status": {"conditions": ready, "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"}}}),
        );
        let pod = |spec: Value| json!({"spec": spec});
        let small = pod(
            json!({"containers": [{"resources": {"requests": {"cpu": "500m"}}}],
            "tolerations": [{"key": "gpu", "operator": "Exists"}]}),
        );
        assert!(misfits(&small, &pod_requests(&small), &n).is_empty());

        let big = pod(
            json!({"containers": [{"resources": {"limits": {"cpu": "3", "memory": "8Gi"}}}],
            "nodeSelector": {"zone": "z2"}}),
        );
        assert_eq!(
            misfits(&big, &pod_requests(&big), &n),
            vec![
                "node(s) didn't match Pod's node affinity/selector",
                "node(s) had untolerated taint {gpu: yes}",
                "Insufficient cpu",
                "Insufficient memory"
            ]
        );
        let affinity = |op: &str, values: Value| {
            pod(
                json!({"tolerations": [{"operator": "Exists"}], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gen", "operator": op, "values": values}]}]}}}}),
            )
        };
        for (op, values, fits) in [
            ("In", json!(["5"]), true),
            ("NotIn", json!(["5"]), false),
            ("Gt", json!(["4"]), true),
            ("Lt", json!(["4"]), false),
            ("Exists", json!([]), true),
            ("DoesNotExist", json!([]), false),
        ] {
            let p = affinity(op, values);
            assert_eq!(misfits(&p, &pod_requests(&p), &n).is_empty(), fits, "{op}");
        }

        let mut reasons = BTreeMap::new();
        reasons.insert("Insufficient cpu".to_string(), 3);
        assert_eq!(
            unschedulable_message(3, &reasons),
            "0/3 nodes are available: 3 Insufficient cpu."
        );
        assert_eq!(
            unschedulable_message(0, &reasons),
            "no nodes available to schedule pods"
        );
    }
}

//! The workload controllers of kube-controller-manager, reduced to what autoscaling tests need:
//! - Deployment → one ReplicaSet per pod template (`<deployment>-<template hash>`, labelled
//!   `pod-template-hash`, owned by the Deployment); the current one gets `spec.replicas`, older
//!   ones are scaled to 0 at once (no surge/unavailability pacing). Status: replicas, updated,
//!   ready, available, `Available` and `Progressing` conditions.
//! - ReplicaSet (also when created directly) → pods from its template (`generateName:
//!   <rs>-`, owned by it), created through the admission chain as the real controller's are;
//!   surplus pods go unbound first, then pending, then not ready, then newest.
//! - DaemonSet → one pod per node whose labels and taints admit it, pinned to the node by a
//!   `matchFields metadata.name` affinity and carrying the tolerations the real controller
//!   adds; the scheduler binds it.
//!
//! Each sync is level-triggered and idempotent: it compares with what is stored and writes
//! only differences, so a pass with nothing to do writes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::admission::controller_user;
use crate::api::{Api, DeleteOptions, Sub};
use crate::object::{deletion_timestamp, labels, name, namespace, now_rfc3339, uid};
use crate::registry::ResourceType;
use crate::scheduler::{NodeInfo, condition_is, is_terminal, matches_node, untolerated};
use crate::validation::WriteChecks;

const TEMPLATE_HASH: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// The resource types the controllers work on.
#[derive(Debug, Clone)]
pub struct Kinds {
    pub pods: Arc<ResourceType>,
    pub nodes: Arc<ResourceType>,
    pub deployments: Arc<ResourceType>,
    pub replicasets: Arc<ResourceType>,
    pub daemonsets: Arc<ResourceType>,
    pub jobs: Arc<ResourceType>,
}

impl Kinds {
    pub fn lookup(api: &Api) -> Option<Self> {
        let r = &api.registry;
        Some(Self {
            pods: r.lookup("", "v1", "pods")?,
            nodes: r.lookup("", "v1", "nodes")?,
            deployments: r.lookup("apps", "v1", "deployments")?,
            replicasets: r.lookup("apps", "v1", "replicasets")?,
            daemonsets: r.lookup("apps", "v1", "daemonsets")?,
            jobs: r.lookup("batch", "v1", "jobs")?,
        })
    }
}

/// The uid of the object's controlling owner.
pub(crate) fn controller_uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid").and_then(Value::as_str))
}

fn owner_ref(owner: &Value, kind: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// `pod-template-hash`: FNV-32a of the template, printed and mapped onto the alphabet of
/// `rand.SafeEncodeString`, as the real controller does (over a different serialisation).
pub fn template_hash(template: &Value) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let hash = bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    hash.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0)
}

fn status_count(obj: &Value, key: &str) -> i64 {
    obj.pointer(&format!("/status/{key}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn generation(obj: &Value) -> Value {
    obj.pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1))
}

/// A condition, keeping the old transition time when its status did not change.
fn condition(
    old_status: Option<&Value>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
) -> Value {
    let status = if status { "True" } else { "False" };
    let old = old_status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        });
    let same = old.is_some_and(|c| {
        c.get("status").and_then(Value::as_str) == Some(status)
            && c.get("reason").and_then(Value::as_str) == Some(reason)
    });
    let time = |k: &str| {
        old.filter(|_| same)
            .and_then(|c| c.get(k).cloned())
            .unwrap_or_else(|| json!(now_rfc3339()))
    };
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": time("lastUpdateTime"),
        "lastTransitionTime": time("lastTransitionTime"),
    })
}

/// Write `status` unless it is what is stored.
pub(crate) fn write_status(api: &Api, rt: &ResourceType, obj: &Value, status: Value) {
    if obj.get("status") == Some(&status) {
        return;
    }
    let mut new = obj.clone();
    if let Some(o) = new.as_object_mut() {
        o.insert("status".into(), status);
    }
    if let Err(e) = api.update(rt, namespace(obj), name(obj), new, Sub::Status) {
        tracing::debug!(kind = %rt.kind, name = name(obj), error = %e, "status update");
    }
}

/// Set `spec.replicas` unless it already has that value.
fn scale(api: &Api, rt: &ResourceType, obj: &Value, want: i64) {
    if obj.pointer("/spec/replicas").and_then(Value::as_i64) == Some(want) {
        return;
    }
    let mut new = obj.clone();
    if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("replicas".into(), json!(want));
    }
    if let Err(e) = api.update(rt, namespace(obj), name(obj), new, Sub::Main) {
        tracing::debug!(kind = %rt.kind, name = name(obj), error = %e, "scaling");
    }
}

/// The template with `key: value` added to its labels.
fn labelled(template: &Value, key: &str, value: &str) -> Value {
    let mut t = template.clone();
    if let Some(o) = t.as_object_mut() {
        let meta = o.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            let labels = m.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert(key.into(), json!(value));
            }
        }
    }
    t
}

pub fn sync_deployments(api: &Api, k: &Kinds) {
    let (deployments, _) = api.store.list(&k.deployments.gr(), None, |_| true);
    for d in deployments {
        if deletion_timestamp(&d).is_some() {
            continue;
        }
        let Some(template) = d.pointer("/spec/template") else {
            continue;
        };
        let ns = namespace(&d);
        let want = replicas(&d);
        let hash = template_hash(template);
        let (owned, _) = api.store.list(&k.replicasets.gr(), Some(ns), |rs| {
            controller_uid(rs) == Some(uid(&d))
        });
        let is_current = |rs: &Value| {
            labels(rs)
                .and_then(|l| l.get(TEMPLATE_HASH))
                .and_then(Value::as_str)
                == Some(hash.as_str())
        };
        let current = owned.iter().find(|rs| is_current(rs)).cloned();
        match &current {
            Some(rs) => scale(api, &k.replicasets, rs, want),
            None => {
                let revision = owned
                    .iter()
                    .filter_map(|rs| {
                        rs.pointer(&format!(
                            "/metadata/annotations/{}",
                            REVISION.replace('/', "~1")
                        ))
                        .and_then(Value::as_str)
                        .and_then(|r| r.parse::<u64>().ok())
                    })
                    .max()
                    .unwrap_or(0)
                    + 1;
                let template = labelled(template, TEMPLATE_HASH, &hash);
                let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
                if let Some(s) = selector.as_object_mut() {
                    let ml = s.entry("matchLabels").or_insert_with(|| json!({}));
                    if let Some(ml) = ml.as_object_mut() {
                        ml.insert(TEMPLATE_HASH.into(), json!(hash));
                    }
                }
                let rs = json!({
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": format!("{}-{hash}", name(&d)),
                        "namespace": ns,
                        "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                        "annotations": {
                            REVISION: revision.to_string(),
                            "deployment.kubernetes.io/desired-replicas": want.to_string(),
                        },
                        "ownerReferences": [owner_ref(&d, "Deployment")],
                    },
                    "spec": {"replicas": want, "selector": selector, "template": template},
                });
                if let Err(e) = api.create(&k.replicasets, ns, rs) {
                    tracing::debug!(deployment = name(&d), error = %e, "creating replica set");
                }
            }
        }
        for old in owned.iter().filter(|rs| !is_current(rs)) {
            scale(api, &k.replicasets, old, 0);
        }
        if let Some(rev) = current.as_ref().and_then(|rs| {
            rs.pointer(&format!(
                "/metadata/annotations/{}",
                REVISION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
        }) && d
            .pointer(&format!(
                "/metadata/annotations/{}",
                REVISION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            != Some(rev)
        {
            let mut new = (*d).clone();
            if let Ok(m) = crate::object::meta_mut(&mut new) {
                let a = m.entry("annotations").or_insert_with(|| json!({}));
                if let Some(a) = a.as_object_mut() {
                    a.insert(REVISION.into(), json!(rev));
                }
            }
            let _ = api.update(&k.deployments, ns, name(&d), new, Sub::Main);
            continue; // The status follows in the pass this write triggers.
        }
        let sum = |key: &str| owned.iter().map(|rs| status_count(rs, key)).sum::<i64>();
        let updated = current
            .as_ref()
            .map_or(0, |rs| status_count(rs, "replicas"));
        let (total, ready, available) = (
            sum("replicas"),
            sum("readyReplicas"),
            sum("availableReplicas"),
        );
        let rs_name = current
            .as_ref()
            .map_or_else(String::new, |rs| name(rs).to_string());
        let old_status = d.get("status");
        let is_available = available >= want;
        let complete = updated == want && total == want && available == want;
        let mut status = json!({
            "observedGeneration": generation(&d),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": [
                condition(old_status, "Available", is_available,
                    if is_available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    if is_available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." }),
                condition(old_status, "Progressing", true,
                    if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                    &if complete { format!("ReplicaSet \"{rs_name}\" has successfully progressed.") } else { format!("ReplicaSet \"{rs_name}\" is progressing.") }),
            ],
        });
        if want > available {
            status["unavailableReplicas"] = json!(want - available);
        }
        strip_zeros(
            &mut status,
            &[
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
            ],
        );
        write_status(api, &k.deployments, &d, status);
    }
}

/// Counters that are 0 are omitted, as the real (omitempty) status is.
fn strip_zeros(status: &mut Value, keys: &[&str]) {
    if let Some(o) = status.as_object_mut() {
        for key in keys {
            if o.get(*key).and_then(Value::as_i64) == Some(0) {
                o.remove(*key);
            }
        }
    }
}

/// A new pod of `owner` from `template`.
fn pod_from(owner: &Value, kind: &str, template: &Value) -> Value {
    let meta = template.get("metadata");
    let mut metadata = Map::new();
    metadata.insert("generateName".into(), json!(format!("{}-", name(owner))));
    metadata.insert("namespace".into(), json!(namespace(owner)));
    for key in ["labels", "annotations"] {
        if let Some(v) = meta.and_then(|m| m.get(key)) {
            metadata.insert(key.into(), v.clone());
        }
    }
    metadata.insert("ownerReferences".into(), json!([owner_ref(owner, kind)]));
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    })
}

/// Create a controller's pod through the admission chain; false when that failed.
pub(crate) async fn create_pod(api: &Api, k: &Kinds, pod: Value, controller: &str) -> bool {
    let mut checks = WriteChecks {
        user: Some(controller_user(controller)),
        ..WriteChecks::default()
    };
    let ns = namespace(&pod).to_string();
    match api.create_admitted(&k.pods, &ns, pod, &mut checks).await {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(%controller, error = %e, "creating pod");
            false
        }
    }
}

fn delete_pod(api: &Api, k: &Kinds, pod: &Value) {
    if let Err(e) = api.delete(
        &k.pods,
        namespace(pod),
        name(pod),
        &DeleteOptions::default(),
    ) {
        tracing::debug!(pod = name(pod), error = %e, "deleting pod");
    }
}

fn is_pod_ready(pod: &Value) -> bool {
    condition_is(pod, "Ready", "True")
}

/// Pods a controller counts: its own, alive, not being deleted.
fn active_pods(api: &Api, k: &Kinds, owner: &Value) -> Vec<Arc<Value>> {
    let owner_uid = uid(owner);
    api.store
        .list(&k.pods.gr(), Some(namespace(owner)), |p| {
            controller_uid(p) == Some(owner_uid)
                && deletion_timestamp(p).is_none()
                && !is_terminal(p)
        })
        .0
}

pub async fn sync_replicasets(api: &Api, k: &Kinds) {
    let (sets, _) = api.store.list(&k.replicasets.gr(), None, |_| true);
    for rs in sets {
        if deletion_timestamp(&rs).is_some() {
            continue;
        }
        let Some(template) = rs.pointer("/spec/template") else {
            continue;
        };
        let want = replicas(&rs);
        let mut pods = active_pods(api, k, &rs);
        let have = i64::try_from(pods.len()).unwrap_or(i64::MAX);
        if have < want {
            for _ in have..want {
                if !create_pod(
                    api,
                    k,
                    pod_from(&rs, "ReplicaSet", template),
                    "replicaset-controller",
                )
                .await
                {
                    break;
                }
            }
        } else if have > want {
            // The real controller's preference: unbound, pending, not ready, then newest.
            pods.sort_by_key(|p| {
                let bound = p
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty());
                let running = p.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
                let created = p
                    .pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                (bound, running, is_pod_ready(p), std::cmp::Reverse(created))
            });
            let surplus = usize::try_from(have - want).unwrap_or(0);
            for pod in pods.drain(..surplus) {
                delete_pod(api, k, &pod);
            }
        }
        let ready = pods.iter().filter(|p| is_pod_ready(p)).count();
        let mut status = json!({
            "replicas": pods.len(),
            "fullyLabeledReplicas": pods.len(),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": generation(&rs),
        });
        strip_zeros(
            &mut status,
            &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
        );
        write_status(api, &k.replicasets, &rs, status);
    }
}

/// The tolerations the real DaemonSet controller adds to its pods.
fn daemon_tolerations(spec: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let mut add = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        add.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    for (key, effect) in add {
        let present = out.iter().any(|t| {
            t.get("key").and_then(Value::as_str) == Some(key)
                && t.get("effect").and_then(Value::as_str) == Some(effect)
        });
        if !present {
            out.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
    out
}

/// The node a daemon pod is for: where it is bound, else the node its affinity pins.
fn daemon_pod_node(pod: &Value) -> Option<String> {
    if let Some(n) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Some(n.to_string());
    }
    pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
        .and_then(Value::as_str)
        .map(str::to_string)
}

pub async fn sync_daemonsets(api: &Api, k: &Kinds) {
    let (sets, _) = api.store.list(&k.daemonsets.gr(), None, |_| true);
    if sets.is_empty() {
        return;
    }
    let (nodes, _) = api.store.list(&k.nodes.gr(), None, |_| true);
    for ds in sets {
        if deletion_timestamp(&ds).is_some() {
            continue;
        }
        let Some(template) = ds.pointer("/spec/template") else {
            continue;
        };
        let mut template = template.clone();
        let tolerations = daemon_tolerations(template.get("spec").unwrap_or(&Value::Null));
        if let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("tolerations".into(), json!(tolerations));
        }
        let eligible: Vec<&Arc<Value>> = nodes
            .iter()
            .filter(|n| {
                let info = NodeInfo::from_node(n);
                matches_node(&template, &info.name, &info.labels)
                    && untolerated(&template, &info.taints).is_none()
            })
            .collect();
        let mut by_node: BTreeMap<String, Vec<Arc<Value>>> = BTreeMap::new();
        for pod in active_pods(api, k, &ds) {
            by_node
                .entry(daemon_pod_node(&pod).unwrap_or_default())
                .or_default()
                .push(pod);
        }
        let mut scheduled = 0;
        let mut ready = 0;
        for node in &eligible {
            match by_node.remove(name(node)) {
                Some(mut pods) => {
                    // One per node; extras go.
                    for extra in pods.drain(1..) {
                        delete_pod(api, k, &extra);
                    }
                    let pod = &pods[0];
                    if pod
                        .pointer("/spec/nodeName")
                        .and_then(Value::as_str)
                        .is_some_and(|n| !n.is_empty())
                    {
                        scheduled += 1;
                    }
                    if is_pod_ready(pod) {
                        ready += 1;
                    }
                }
                None => {
                    let mut t = template.clone();
                    if let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.insert("affinity".into(), json!({"nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [name(node)]}]}]}}}));
                    }
                    create_pod(
                        api,
                        k,
                        pod_from(&ds, "DaemonSet", &t),
                        "daemon-set-controller",
                    )
                    .await;
                }
            }
        }
        // Pods for nodes that are gone or no longer admit them.
        for pod in by_node.into_values().flatten() {
            delete_pod(api, k, &pod);
        }
        let desired = eligible.len();
        let status = json!({
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": scheduled,
            "updatedNumberScheduled": scheduled,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": desired.saturating_sub(ready),
            "observedGeneration": generation(&ds),
        });
        write_status(api, &k.daemonsets, &ds, status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hashes_are_stable_and_safe() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}});
        let h = template_hash(&t);
        assert_eq!(h, template_hash(&t.clone()));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_ne!(
            h,
            template_hash(&json!({"metadata": {"labels": {"app": "db"}}}))
        );
    }

    #[test]
    fn daemon_pods_tolerate_node_conditions() {
        let tolerations =
            daemon_tolerations(&json!({"tolerations": [{"key": "x", "operator": "Exists"}]}));
        assert_eq!(tolerations.len(), 7);
        let pod = json!({"spec": {"tolerations": tolerations}});
        let cordoned = [json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})];
        assert!(untolerated(&pod, &cordoned).is_none());
        let other = [json!({"key": "gpu", "effect": "NoSchedule"})];
        assert!(untolerated(&pod, &other).is_some());
    }
}

//! Manifests to the pods a cluster would run, as `capstan plan` needs them.
//!
//! Controllers are simulated only as far as scheduling sees them: replica counts expanded into
//! pods named `<name>-<index>` with the template's labels and spec, an ownerReference so selectors
//! and the DaemonSet rule apply, and a deterministic uid so plans are reproducible.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::manifest::Object;

const DEFAULT_NAMESPACE: &str = "default";

/// Kubernetes' documented scale limit (150,000 pods per cluster). Every pod is simulated, so a
/// typo like `replicas: 2147483647` is refused here instead of allocating terabytes.
pub const MAX_PODS: usize = 150_000;

/// Pods to place, and one template pod per DaemonSet (their requests land on every new node).
#[derive(Debug, Clone, Default)]
pub struct Workloads {
    pub pods: Vec<Pod>,
    pub daemonsets: Vec<Pod>,
}

/// Expands workload objects into pods, in input order; other objects are ignored. More than
/// [`MAX_PODS`] pods in all is an error naming the object that went over.
pub fn expand(objects: &[Object]) -> Result<Workloads, String> {
    let mut out = Workloads::default();
    for object in objects {
        check_room(&out, object)?;
        match object {
            Object::Pod(pod) => {
                let mut pod = (**pod).clone();
                let namespace = namespace_of(&pod.metadata);
                // Pods are created, not applied, from generateName: give it the first suffix.
                let name = pod.metadata.name.clone().unwrap_or_else(|| {
                    format!(
                        "{}0",
                        pod.metadata.generate_name.as_deref().unwrap_or("pod-")
                    )
                });
                pod.metadata.uid = Some(uid(&namespace, &name));
                pod.metadata.name = Some(name);
                pod.metadata.namespace = Some(namespace);
                out.pods.push(pod);
            }
            Object::Deployment(d) => {
                let replicas = d.spec.replicas.unwrap_or(1);
                let template = Some(&d.spec.template);
                out.pods.extend(replicas_of(
                    &d.metadata,
                    "apps/v1",
                    "Deployment",
                    template,
                    replicas,
                    |_| BTreeMap::new(),
                ));
            }
            Object::ReplicaSet(r) => {
                let replicas = r.spec.replicas.unwrap_or(1);
                let template = r.spec.template.as_ref();
                out.pods.extend(replicas_of(
                    &r.metadata,
                    "apps/v1",
                    "ReplicaSet",
                    template,
                    replicas,
                    |_| BTreeMap::new(),
                ));
            }
            Object::StatefulSet(s) => {
                let replicas = s.spec.replicas.unwrap_or(1);
                let template = Some(&s.spec.template);
                // The labels the StatefulSet controller adds, so per-pod selectors match.
                let pods = replicas_of(
                    &s.metadata,
                    "apps/v1",
                    "StatefulSet",
                    template,
                    replicas,
                    |pod| {
                        BTreeMap::from([
                            (
                                "statefulset.kubernetes.io/pod-name".to_string(),
                                pod.name.clone(),
                            ),
                            (
                                "apps.kubernetes.io/pod-index".to_string(),
                                pod.index.to_string(),
                            ),
                        ])
                    },
                );
                out.pods.extend(pods);
            }
            Object::Job(j) => {
                let spec = j.spec.as_ref();
                // A suspended Job runs nothing; otherwise `parallelism` pods at once, never more
                // than the completions still needed.
                let running = if spec.and_then(|s| s.suspend).unwrap_or(false) {
                    0
                } else {
                    let parallelism = spec.and_then(|s| s.parallelism).unwrap_or(1);
                    spec.and_then(|s| s.completions)
                        .map_or(parallelism, |c| parallelism.min(c))
                };
                let job = j.metadata.name.clone().unwrap_or_default();
                let pods = replicas_of(
                    &j.metadata,
                    "batch/v1",
                    "Job",
                    spec.map(|s| &s.template),
                    running,
                    |_| {
                        BTreeMap::from([
                            ("batch.kubernetes.io/job-name".to_string(), job.clone()),
                            ("job-name".to_string(), job.clone()),
                        ])
                    },
                );
                out.pods.extend(pods);
            }
            Object::DaemonSet(ds) => {
                let namespace = namespace_of(&ds.metadata);
                let name = ds.metadata.name.clone().unwrap_or_default();
                let template = Some(&ds.spec.template);
                let owner = owner(&ds.metadata, &namespace, "apps/v1", "DaemonSet");
                out.daemonsets
                    .push(pod_from(template, namespace, name, owner, BTreeMap::new()));
            }
            Object::NodePool(_)
            | Object::NodeClaim(_)
            | Object::EC2NodeClass(_)
            | Object::RequestPolicy(_)
            | Object::Other { .. } => {}
        }
    }
    Ok(out)
}

/// Fails when `object`'s pods would take the plan past [`MAX_PODS`], before any is made.
fn check_room(out: &Workloads, object: &Object) -> Result<(), String> {
    let (kind, meta, replicas) = match object {
        Object::Deployment(d) => ("Deployment", &d.metadata, d.spec.replicas),
        Object::ReplicaSet(r) => ("ReplicaSet", &r.metadata, r.spec.replicas),
        Object::StatefulSet(s) => ("StatefulSet", &s.metadata, s.spec.replicas),
        Object::Job(j) => (
            "Job",
            &j.metadata,
            j.spec.as_ref().and_then(|s| s.parallelism),
        ),
        _ => return Ok(()),
    };
    let wanted = usize::try_from(replicas.unwrap_or(1)).unwrap_or(0);
    let total = out.pods.len().saturating_add(wanted);
    if total > MAX_PODS {
        return Err(format!(
            "{kind} {}/{} asks for {wanted} pods ({total} in all): capstan plan simulates at most {MAX_PODS}, Kubernetes' limit per cluster",
            namespace_of(meta),
            meta.name.as_deref().unwrap_or_default()
        ));
    }
    Ok(())
}

/// Which replica a pod is, for controller-specific labels.
struct Replica {
    name: String,
    index: i32,
}

fn replicas_of(
    meta: &ObjectMeta,
    api_version: &str,
    kind: &str,
    template: Option<&PodTemplateSpec>,
    replicas: i32,
    extra_labels: impl Fn(&Replica) -> BTreeMap<String, String>,
) -> Vec<Pod> {
    let namespace = namespace_of(meta);
    let base = meta.name.as_deref().unwrap_or_default();
    let owner = owner(meta, &namespace, api_version, kind);
    (0..replicas.max(0))
        .map(|index| {
            let replica = Replica {
                name: format!("{base}-{index}"),
                index,
            };
            let labels = extra_labels(&replica);
            pod_from(
                template,
                namespace.clone(),
                replica.name,
                owner.clone(),
                labels,
            )
        })
        .collect()
}

fn pod_from(
    template: Option<&PodTemplateSpec>,
    namespace: String,
    name: String,
    owner: OwnerReference,
    extra_labels: BTreeMap<String, String>,
) -> Pod {
    let meta = template.and_then(|t| t.metadata.as_ref());
    let mut labels = meta.and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.extend(extra_labels);
    Pod {
        metadata: ObjectMeta {
            uid: Some(uid(&namespace, &name)),
            name: Some(name),
            namespace: Some(namespace),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: meta.and_then(|m| m.annotations.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    }
}

fn owner(meta: &ObjectMeta, namespace: &str, api_version: &str, kind: &str) -> OwnerReference {
    let name = meta.name.clone().unwrap_or_default();
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        uid: meta
            .uid
            .clone()
            .unwrap_or_else(|| format!("{kind}/{namespace}/{name}")),
        name,
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

fn uid(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;

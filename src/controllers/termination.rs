//! The Node side of termination (`karpenter.sh/termination` finalizer on Nodes): taint
//! `karpenter.sh/disrupted:NoSchedule`, evict the pods through the Eviction API (PDBs answer 429
//! and are retried), leave pods that tolerate the taint, DaemonSet and static pods, keep
//! `do-not-disrupt` pods until the NodeClaim's terminationGracePeriod forces them, then terminate
//! the instance, delete the NodeClaim if it still exists, and drop the finalizer. Events say what
//! blocks a drain.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, EvictParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use serde_json::json;

use crate::apis::NodeClaim;
use crate::apis::common::parse_duration;
use crate::apis::labels::{DISRUPTED_TAINT_KEY, DO_NOT_DISRUPT, TERMINATION_FINALIZER};
use crate::cloud::CloudError;

use super::Context;
use super::provisioning::pending::{is_active, owned_by_daemonset};

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("{0}")]
    Draining(String),
}

/// What to do with each pod of a node being drained.
#[derive(Debug, Default, PartialEq)]
pub struct DrainPlan {
    /// `namespace/name` to evict now.
    pub evict: Vec<(String, String)>,
    /// Deleted without the Eviction API: the grace period is over.
    pub force: Vec<(String, String)>,
    /// Still running and why they hold the node (`do-not-disrupt`, already terminating).
    pub waiting: Vec<String>,
}

impl DrainPlan {
    pub fn is_done(&self) -> bool {
        self.evict.is_empty() && self.force.is_empty() && self.waiting.is_empty()
    }
}

/// Pure: the drain step for `pods` (those bound to the node). `forced` is true once the claim's
/// terminationGracePeriod since the deletion has passed.
pub fn plan_drain(pods: &[Arc<Pod>], forced: bool) -> DrainPlan {
    let mut plan = DrainPlan::default();
    for p in pods {
        if !is_active(p) || owned_by_daemonset(p) || is_static(p) || tolerates_disrupted(p) {
            continue;
        }
        let ns = p
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = p.metadata.name.clone().unwrap_or_default();
        if p.metadata.deletion_timestamp.is_some() {
            if forced {
                plan.force.push((ns, name));
            } else {
                plan.waiting.push(format!("{ns}/{name} is terminating"));
            }
            continue;
        }
        let do_not_disrupt = p
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DO_NOT_DISRUPT))
            .is_some_and(|v| v == "true");
        if forced {
            plan.force.push((ns, name));
        } else if do_not_disrupt {
            plan.waiting
                .push(format!("{ns}/{name} has {DO_NOT_DISRUPT}: \"true\""));
        } else {
            plan.evict.push((ns, name));
        }
    }
    plan
}

fn is_static(p: &Pod) -> bool {
    p.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
        || p.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Node")
}

fn tolerates_disrupted(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .into_iter()
        .flatten()
        .any(|t| {
            let key_ok = match t.key.as_deref() {
                None | Some("") => t.operator.as_deref() == Some("Exists"),
                Some(k) => k == DISRUPTED_TAINT_KEY,
            };
            let effect_ok = t
                .effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "NoSchedule");
            key_ok && effect_ok
        })
}

pub async fn run(ctx: Context) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    Controller::new(nodes, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|_| async {})
        .await;
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ours = node
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TERMINATION_FINALIZER);
    if node.metadata.deletion_timestamp.is_none() || !ours {
        return Ok(Action::await_change());
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let provider_id = node.spec.as_ref().and_then(|s| s.provider_id.clone());
    let claim = provider_id
        .as_deref()
        .and_then(|id| ctx.state.nodeclaim_by_provider_id(id));

    taint_disrupted(&nodes, &node).await?;

    let forced = claim
        .as_ref()
        .and_then(|c| c.spec.termination_grace_period.as_deref())
        .and_then(parse_duration)
        .zip(deleted_at(&node))
        .is_some_and(|(grace, at)| at + grace <= SystemTime::now());
    let plan = plan_drain(&ctx.state.pods_on(&name), forced);
    if !plan.is_done() {
        let mut blocked = Vec::new();
        let pods_api = |ns: &str| Api::<Pod>::namespaced(ctx.eviction_client.clone(), ns);
        for (ns, pod) in &plan.evict {
            match pods_api(ns).evict(pod, &EvictParams::default()).await {
                Ok(_) => tracing::info!(node = %name, pod = %format!("{ns}/{pod}"), "evicted pod"),
                Err(kube::Error::Api(e)) if e.code == 429 => {
                    blocked.push(format!("{ns}/{pod}: {}", e.message));
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        for (ns, pod) in &plan.force {
            match pods_api(ns)
                .delete(pod, &DeleteParams::default().grace_period(0))
                .await
            {
                Ok(_) => {}
                Err(e) if crate::controllers::is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
            tracing::info!(node = %name, pod = %format!("{ns}/{pod}"), "deleted pod: termination grace period over");
        }
        let mut why = plan.waiting.clone();
        why.extend(
            blocked
                .iter()
                .map(|b| format!("eviction blocked by a PodDisruptionBudget: {b}")),
        );
        if !why.is_empty() {
            let note = format!("Draining node {name}: waiting on {}", why.join("; "));
            if let Some(c) = &claim {
                ctx.events
                    .warning(c.as_ref(), "DisruptionBlocked", note.clone())
                    .await;
            }
            ctx.events
                .warning(node.as_ref(), "DisruptionBlocked", note)
                .await;
        }
        return Err(Error::Draining(format!(
            "node {name}: {} to evict, {} waiting",
            plan.evict.len() + plan.force.len(),
            plan.waiting.len() + blocked.len()
        )));
    }

    if let Some(pid) = &provider_id {
        ctx.cloud_delete(pid).await?;
    }
    // A Node deleted by hand takes its NodeClaim with it.
    if let Some(c) = &claim
        && c.metadata.deletion_timestamp.is_none()
    {
        let claims: Api<NodeClaim> = Api::all(ctx.client.clone());
        match claims
            .delete(
                c.metadata.name.as_deref().unwrap_or(""),
                &DeleteParams::default(),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if crate::controllers::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let finalizers: Vec<String> = node
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != TERMINATION_FINALIZER)
        .cloned()
        .collect();
    nodes
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": finalizers}})),
        )
        .await?;
    tracing::info!(node = %name, "drained and terminated node");
    Ok(Action::await_change())
}

async fn taint_disrupted(nodes: &Api<Node>, node: &Node) -> Result<(), kube::Error> {
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if taints.iter().any(|t| t.key == DISRUPTED_TAINT_KEY) {
        return Ok(());
    }
    taints.push(k8s_openapi::api::core::v1::Taint {
        key: DISRUPTED_TAINT_KEY.into(),
        value: None,
        effect: "NoSchedule".into(),
        time_added: None,
    });
    nodes
        .patch(
            node.metadata.name.as_deref().unwrap_or(""),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": taints}})),
        )
        .await?;
    Ok(())
}

fn deleted_at(node: &Node) -> Option<SystemTime> {
    let t = node.metadata.deletion_timestamp.as_ref()?;
    Some(SystemTime::from(t.0))
}

fn error_policy(node: Arc<Node>, error: &Error, _ctx: Arc<Context>) -> Action {
    let name = node.metadata.name.as_deref().unwrap_or("");
    match error {
        Error::Draining(why) => {
            tracing::debug!(node = name, "{why}");
            Action::requeue(Duration::from_secs(1))
        }
        _ => {
            tracing::warn!(node = name, "termination: {error}");
            Action::requeue(Duration::from_secs(5))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Arc<Pod> {
        Arc::new(serde_json::from_value(v).expect("pod"))
    }

    fn running(name: &str) -> serde_json::Value {
        json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"containers": [], "nodeName": "n"},
               "status": {"phase": "Running"}})
    }

    #[test]
    fn drain_evicts_workloads_and_leaves_daemonsets_static_tolerating_and_finished_pods() {
        let mut ds = running("ds");
        ds["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u", "controller": true}]);
        let mut mirror = running("static");
        mirror["metadata"]["annotations"] = json!({MIRROR_ANNOTATION: "x"});
        let mut tolerating = running("tol");
        tolerating["spec"]["tolerations"] =
            json!([{"key": DISRUPTED_TAINT_KEY, "operator": "Exists"}]);
        let mut done = running("done");
        done["status"]["phase"] = json!("Succeeded");
        let pods = vec![
            pod(running("web")),
            pod(ds),
            pod(mirror),
            pod(tolerating),
            pod(done),
        ];
        let plan = plan_drain(&pods, false);
        assert_eq!(plan.evict, vec![("ns".to_string(), "web".to_string())]);
        assert!(plan.force.is_empty() && plan.waiting.is_empty());
    }

    #[test]
    fn do_not_disrupt_waits_until_the_grace_period_forces_it() {
        let mut p = running("db");
        p["metadata"]["annotations"] = json!({DO_NOT_DISRUPT: "true"});
        let pods = vec![pod(p)];
        let plan = plan_drain(&pods, false);
        assert!(plan.evict.is_empty());
        assert_eq!(plan.waiting.len(), 1);
        assert!(
            plan.waiting[0].contains("do-not-disrupt"),
            "{:?}",
            plan.waiting
        );
        let forced = plan_drain(&pods, true);
        assert_eq!(forced.force, vec![("ns".to_string(), "db".to_string())]);
    }

    #[test]
    fn an_empty_node_is_drained() {
        assert!(plan_drain(&[], false).is_done());
    }
}

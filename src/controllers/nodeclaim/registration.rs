//! Registered: the Node with the claim's providerID has joined; it gets the claim's labels and
//! taints, the termination finalizer and an owner reference, and loses
//! `karpenter.sh/unregistered`. Initialized: the Node is Ready, its startup taints are gone and
//! the extended resources the claim asked for are allocatable. A launched claim whose Node does
//! not join within the registration TTL is deleted (its instance with it).

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use crate::apis::NodeClaim;
use crate::apis::common::set_condition;
use crate::apis::labels::{
    INITIALIZED, NODEPOOL, REGISTERED, TERMINATION_FINALIZER, UNREGISTERED_TAINT_KEY,
};
use crate::apis::nodeclaim::conditions::{self, LAUNCHED};
use crate::metrics::NodePoolLabel;

use super::{Context, Error, now_rfc3339, patch_status};

pub async fn register(claim: &NodeClaim, ctx: &Context) -> Result<Action, Error> {
    let name = claim.metadata.name.clone().unwrap_or_default();
    let status = claim.status.clone().unwrap_or_default();
    let provider_id = status.provider_id.clone().unwrap_or_default();
    let Some(node) = ctx.state.node_by_provider_id(&provider_id) else {
        let launched_for = status
            .condition(LAUNCHED)
            .and_then(|c| c.last_transition_time.as_deref())
            .and_then(age);
        if launched_for.is_some_and(|a| a > ctx.settings.registration_ttl) {
            tracing::warn!(nodeclaim = %name, %provider_id, "node did not register in time, deleting the nodeclaim");
            ctx.events
                .warning(
                    claim,
                    "RegistrationTimeout",
                    format!(
                        "Node for {provider_id} did not register within {:?}; deleting the NodeClaim and its instance",
                        ctx.settings.registration_ttl
                    ),
                )
                .await;
            let api: Api<NodeClaim> = Api::all(ctx.client.clone());
            api.delete(&name, &DeleteParams::default()).await?;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(Duration::from_secs(2)));
    };
    let node_name = node.metadata.name.clone().unwrap_or_default();
    // A reconcile from a cache that has not seen our last status write yet finds the node
    // registered already: redo the (idempotent) writes but count the node once.
    let first_time = node
        .metadata
        .labels
        .as_ref()
        .is_none_or(|l| !l.contains_key(REGISTERED));

    // The node as the claim wants it.
    let mut labels = claim.metadata.labels.clone().unwrap_or_default();
    labels.insert(REGISTERED.into(), "true".into());
    let mut finalizers = node.metadata.finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == TERMINATION_FINALIZER) {
        finalizers.push(TERMINATION_FINALIZER.into());
    }
    let mut taints: Vec<k8s_openapi::api::core::v1::Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.key != UNREGISTERED_TAINT_KEY)
        .collect();
    for t in &claim.spec.taints {
        if !taints
            .iter()
            .any(|n| n.key == t.key && n.effect == t.effect)
        {
            taints.push(k8s_openapi::api::core::v1::Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect.clone(),
                time_added: None,
            });
        }
    }
    let owner = json!([{
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "name": name,
        "uid": claim.metadata.uid.clone().unwrap_or_default(),
        "blockOwnerDeletion": true,
    }]);
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    nodes
        .patch(
            &node_name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"labels": labels, "finalizers": finalizers, "ownerReferences": owner},
                "spec": {"taints": taints},
            })),
        )
        .await?;

    let mut status = status;
    status.node_name = Some(node_name.clone());
    set_condition(
        &mut status.conditions,
        conditions::REGISTERED,
        "True",
        "Registered",
        "",
        &now_rfc3339(),
    );
    patch_status(ctx, &name, &status).await?;
    let nodepool = claim
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(NODEPOOL))
        .cloned()
        .unwrap_or_default();
    if first_time {
        ctx.metrics
            .nodes_created
            .get_or_create(&NodePoolLabel { nodepool })
            .inc();
        tracing::info!(nodeclaim = %name, node = %node_name, "registered nodeclaim");
    }
    Ok(Action::requeue(Duration::from_millis(500)))
}

pub async fn initialize(claim: &NodeClaim, ctx: &Context) -> Result<Action, Error> {
    let name = claim.metadata.name.clone().unwrap_or_default();
    let status = claim.status.clone().unwrap_or_default();
    let provider_id = status.provider_id.clone().unwrap_or_default();
    let Some(node) = ctx.state.node_by_provider_id(&provider_id) else {
        return Ok(Action::requeue(Duration::from_secs(2)));
    };
    if let Some(waiting) = not_initialized(claim, &node) {
        tracing::debug!(nodeclaim = %name, "not initialized: {waiting}");
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let node_name = node.metadata.name.clone().unwrap_or_default();
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    nodes
        .patch(
            &node_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {INITIALIZED: "true"}}})),
        )
        .await?;
    let mut status = status;
    let now = now_rfc3339();
    set_condition(
        &mut status.conditions,
        conditions::INITIALIZED,
        "True",
        "Initialized",
        "",
        &now,
    );
    set_condition(
        &mut status.conditions,
        conditions::READY,
        "True",
        "Ready",
        "",
        &now,
    );
    patch_status(ctx, &name, &status).await?;
    tracing::info!(nodeclaim = %name, node = %node_name, "initialized nodeclaim");
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Why the node is not initialized yet, or `None` when it is.
pub fn not_initialized(claim: &NodeClaim, node: &Node) -> Option<String> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return Some("node is not Ready".into());
    }
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref());
    for st in &claim.spec.startup_taints {
        if taints
            .into_iter()
            .flatten()
            .any(|t| t.key == st.key && t.effect == st.effect)
        {
            return Some(format!(
                "startup taint {}:{} still present",
                st.key, st.effect
            ));
        }
    }
    let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let requests = claim
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    for (res, q) in requests.into_iter().flatten() {
        let extended = res.contains('/') && q.0 != "0";
        if extended && allocatable.is_none_or(|a| a.get(res).is_none_or(|v| v.0 == "0")) {
            return Some(format!("extended resource {res} not registered"));
        }
    }
    None
}

/// How long ago an RFC 3339 time was.
fn age(rfc3339: &str) -> Option<Duration> {
    let t: k8s_openapi::jiff::Timestamp = rfc3339.parse().ok()?;
    let then = SystemTime::from(t);
    SystemTime::now().duration_since(then).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(startup: bool, gpu: bool) -> NodeClaim {
        let mut spec = json!({"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "d"},
                              "requirements": []});
        if startup {
            spec["startupTaints"] =
                json!([{"key": "cilium/agent-not-ready", "effect": "NoExecute"}]);
        }
        if gpu {
            spec["resources"] = json!({"requests": {"cpu": "1", "nvidia.com/gpu": "1"}});
        }
        serde_json::from_value(json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": {"name": "c"}, "spec": spec}))
        .expect("claim")
    }

    fn node(ready: bool, taint: bool, gpus: Option<&str>) -> Node {
        let mut n = json!({"metadata": {"name": "n"}, "spec": {}, "status": {
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "allocatable": {"cpu": "2"}}});
        if taint {
            n["spec"]["taints"] = json!([{"key": "cilium/agent-not-ready", "effect": "NoExecute"}]);
        }
        if let Some(g) = gpus {
            n["status"]["allocatable"]["nvidia.com/gpu"] = json!(g);
        }
        serde_json::from_value(n).expect("node")
    }

    #[test]
    fn initialized_when_ready_startup_taints_gone_and_extended_resources_registered() {
        assert!(
            not_initialized(&claim(false, false), &node(false, false, None))
                .is_some_and(|w| w.contains("not Ready"))
        );
        assert!(
            not_initialized(&claim(true, false), &node(true, true, None))
                .is_some_and(|w| w.contains("startup taint cilium/agent-not-ready"))
        );
        assert_eq!(
            not_initialized(&claim(true, false), &node(true, false, None)),
            None
        );
        assert!(
            not_initialized(&claim(false, true), &node(true, false, Some("0")))
                .is_some_and(|w| w.contains("nvidia.com/gpu"))
        );
        assert_eq!(
            not_initialized(&claim(false, true), &node(true, false, Some("1"))),
            None
        );
    }
}

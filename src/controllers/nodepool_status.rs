//! NodePool status: the capacity its NodeClaims bring (`status.resources`, `status.nodes`, what
//! `spec.limits` is checked against), readiness (its EC2NodeClass exists and is Ready), and the
//! template hash annotation that drift compares NodeClaims with. Also the
//! `karpenter_nodepools_usage` / `_limit` gauges.

use std::collections::BTreeMap;

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::apis::common::set_condition;
use crate::apis::labels::{NODEPOOL, NODEPOOL_HASH, NODEPOOL_HASH_VERSION};
use crate::apis::{NodeClaim, NodePool};
use crate::cloud::launch::to_quantities;
use crate::metrics::NodePoolResource;
use crate::scheduling::resources::Resources;

use super::Context;
use super::nodeclaim::now_rfc3339;
use super::provisioning::inputs::in_use;

/// Bumped when the hash's input changes, so that drift never fires on an upgrade alone.
pub const HASH_VERSION: &str = "v3";

pub async fn run(ctx: Context) {
    loop {
        if let Err(e) = update_all(&ctx).await {
            tracing::warn!("nodepool status: {e}");
        }
        tokio::time::sleep(ctx.settings.resync.min(std::time::Duration::from_secs(2))).await;
    }
}

/// The hash of what a NodeClaim inherits from its NodePool's template.
pub fn template_hash(pool: &NodePool) -> String {
    let text = serde_json::to_string(&pool.spec.template).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

async fn update_all(ctx: &Context) -> Result<(), kube::Error> {
    let api: Api<NodePool> = Api::all(ctx.client.clone());
    let claims = ctx.state.nodeclaims.state();
    for pool in ctx.state.nodepools.state() {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let hash = template_hash(&pool);
        let annotations = pool.metadata.annotations.clone().unwrap_or_default();
        if annotations.get(NODEPOOL_HASH) != Some(&hash)
            || annotations.get(NODEPOOL_HASH_VERSION).map(String::as_str) != Some(HASH_VERSION)
        {
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                    NODEPOOL_HASH: hash, NODEPOOL_HASH_VERSION: HASH_VERSION}}})),
            )
            .await?;
        }

        let used = in_use(&name, &claims);
        let nodes = count_nodes(&name, &claims);
        record_gauges(ctx, &name, &used, pool.spec.limits.as_ref());
        let mut status = pool.status.clone().unwrap_or_default();
        let resources = to_quantities(&used);
        let class = ctx
            .state
            .nodeclass(&pool.spec.template.spec.node_class_ref.name);
        let class_ready = class
            .as_ref()
            .and_then(|c| c.condition("Ready"))
            .map(|c| c.is_true());
        let (ready, reason, message) = match (class.is_some(), class_ready) {
            (false, _) => (
                "False",
                "NodeClassNotFound",
                format!(
                    "EC2NodeClass {} not found",
                    pool.spec.template.spec.node_class_ref.name
                ),
            ),
            (true, Some(true)) => ("True", "Ready", String::new()),
            _ => (
                "False",
                "NodeClassNotReady",
                format!(
                    "EC2NodeClass {} is not ready",
                    pool.spec.template.spec.node_class_ref.name
                ),
            ),
        };
        let now = now_rfc3339();
        let mut changed = set_condition(
            &mut status.conditions,
            "NodeClassReady",
            ready,
            reason,
            &message,
            &now,
        );
        changed |= set_condition(
            &mut status.conditions,
            "Ready",
            ready,
            reason,
            &message,
            &now,
        );
        if status.resources.as_ref() != Some(&resources) || status.nodes != Some(nodes) {
            status.resources = Some(resources);
            status.nodes = Some(nodes);
            changed = true;
        }
        if changed {
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
        }
    }
    Ok(())
}

fn count_nodes(pool: &str, claims: &[std::sync::Arc<NodeClaim>]) -> i64 {
    claims
        .iter()
        .filter(|c| {
            c.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(NODEPOOL))
                .is_some_and(|p| p == pool)
        })
        .filter(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some()
        })
        .count() as i64
}

fn record_gauges(
    ctx: &Context,
    pool: &str,
    used: &Resources,
    limits: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) {
    for (resource, _) in used.to_strings() {
        let value = used.get(&resource) as f64 / if resource == "cpu" { 1000.0 } else { 1.0 };
        ctx.metrics
            .nodepools_usage
            .get_or_create(&NodePoolResource {
                nodepool: pool.into(),
                resource_type: resource.clone(),
            })
            .set(value);
    }
    if let Some(limits) = limits
        && let Ok(l) = Resources::from_k8s(limits)
    {
        for resource in limits.keys() {
            let value = l.get(resource) as f64 / if resource == "cpu" { 1000.0 } else { 1.0 };
            ctx.metrics
                .nodepools_limit
                .get_or_create(&NodePoolResource {
                    nodepool: pool.into(),
                    resource_type: resource.clone(),
                })
                .set(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_changes_with_the_template_only() {
        let a: NodePool = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "a"},
            "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}, "requirements": []}}}
        })).expect("pool");
        let mut b = a.clone();
        b.spec.weight = Some(10);
        assert_eq!(
            template_hash(&a),
            template_hash(&b),
            "weight is not inherited by claims"
        );
        b.spec.template.spec.expire_after = Some("24h".into());
        assert_ne!(template_hash(&a), template_hash(&b));
    }
}

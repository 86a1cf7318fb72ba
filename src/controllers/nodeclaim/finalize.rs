//! A NodeClaim being deleted: its Node is deleted first (the Node's own finalizer taints and
//! drains it), then the instance is terminated, then the finalizer goes. A claim that never
//! recorded its instance (the controller died between launch and status write) still has it
//! found by its tag and terminated: nothing leaks.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;

use crate::apis::NodeClaim;
use crate::apis::labels::NODEPOOL;
use crate::metrics::NodePoolReason;

use super::{Context, Error};

pub async fn cleanup(claim: &NodeClaim, ctx: &Context) -> Result<Action, Error> {
    let name = claim.metadata.name.clone().unwrap_or_default();
    let provider_id = claim.status.as_ref().and_then(|s| s.provider_id.clone());

    if let Some(pid) = &provider_id
        && let Some(node) = ctx.state.node_by_provider_id(pid)
    {
        let node_name = node.metadata.name.clone().unwrap_or_default();
        if node.metadata.deletion_timestamp.is_none() {
            let nodes: Api<Node> = Api::all(ctx.client.clone());
            match nodes.delete(&node_name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if crate::controllers::is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Err(Error::Waiting(format!(
            "nodeclaim {name}: waiting for node {node_name} to drain"
        )));
    }

    let mut targets: Vec<String> = provider_id.into_iter().collect();
    if targets.is_empty() {
        targets = ctx
            .cloud_list()
            .await?
            .into_iter()
            .filter(|i| i.nodeclaim() == Some(name.as_str()))
            .map(|i| i.provider_id)
            .collect();
    }
    for pid in &targets {
        ctx.cloud_delete(pid).await?;
        tracing::info!(nodeclaim = %name, provider_id = %pid, "terminated instance");
    }
    let nodepool = claim
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(NODEPOOL))
        .cloned()
        .unwrap_or_default();
    ctx.metrics
        .nodeclaims_terminated
        .get_or_create(&NodePoolReason {
            nodepool,
            reason: "deleted".into(),
        })
        .inc();
    tracing::info!(nodeclaim = %name, "deleted nodeclaim");
    Ok(Action::await_change())
}

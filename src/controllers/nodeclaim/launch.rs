//! Launched: the cloud provider creates the instance; the claim records its providerID, image,
//! capacity and allocatable, and takes the instance's labels (type, zone, capacity type). A
//! claim that cannot launch anywhere is deleted, so the next provisioning round plans around
//! the offerings that just failed.

use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use crate::apis::NodeClaim;
use crate::apis::common::set_condition;
use crate::apis::labels::{CAPACITY_TYPE, INSTANCE_TYPE, ZONE};
use crate::apis::nodeclaim::conditions::LAUNCHED;
use crate::cloud::CloudError;
use crate::cloud::launch::node_resources;

use super::{Context, Error, now_rfc3339, patch_status};

pub async fn launch(claim: &NodeClaim, ctx: &Context) -> Result<Action, Error> {
    let name = claim.metadata.name.clone().unwrap_or_default();
    let class_name = &claim.spec.node_class_ref.name;
    let Some(class) = ctx.state.nodeclass(class_name) else {
        let mut status = claim.status.clone().unwrap_or_default();
        if set_condition(
            &mut status.conditions,
            LAUNCHED,
            "False",
            "NodeClassNotFound",
            &format!("EC2NodeClass {class_name} does not exist"),
            &now_rfc3339(),
        ) {
            patch_status(ctx, &name, &status).await?;
        }
        return Ok(Action::requeue(Duration::from_secs(10)));
    };

    let started = Instant::now();
    let result = ctx.cloud.create(claim, &class).await;
    ctx.metrics.observe_cloud(
        ctx.cloud.name(),
        "Create",
        started.elapsed(),
        result.as_ref().err().map(CloudError::kind),
    );
    let instance = match result {
        Ok(i) => i,
        Err(
            e @ (CloudError::InsufficientCapacity { .. } | CloudError::NoCompatibleOffering(_)),
        ) => {
            tracing::warn!(nodeclaim = %name, "launch failed, deleting the nodeclaim: {e}");
            ctx.events
                .warning(
                    claim,
                    "InsufficientCapacityError",
                    format!("NodeClaim {name} event: {e}"),
                )
                .await;
            let api: Api<NodeClaim> = Api::all(ctx.client.clone());
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if crate::controllers::is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(Action::await_change());
        }
        Err(e @ CloudError::NodeClassNotReady { .. }) => {
            let mut status = claim.status.clone().unwrap_or_default();
            if set_condition(
                &mut status.conditions,
                LAUNCHED,
                "False",
                "NodeClassNotReady",
                &e.to_string(),
                &now_rfc3339(),
            ) {
                patch_status(ctx, &name, &status).await?;
            }
            return Ok(Action::requeue(Duration::from_secs(10)));
        }
        Err(e) => return Err(e.into()),
    };

    // Labels first: a restart between the two writes relaunches idempotently and rewrites both.
    let catalog = ctx.cloud.catalog();
    let mut labels = catalog
        .instance_type(&instance.instance_type)
        .map(|it| crate::cloud::catalog::labels(it))
        .unwrap_or_default();
    labels.insert(INSTANCE_TYPE.into(), instance.instance_type.clone());
    labels.insert(ZONE.into(), instance.zone.clone());
    labels.insert(CAPACITY_TYPE.into(), instance.capacity_type.as_str().into());
    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": labels}})),
    )
    .await?;

    let mut status = claim.status.clone().unwrap_or_default();
    status.provider_id = Some(instance.provider_id.clone());
    status.image_id = instance.image_id.clone();
    if let Some((capacity, allocatable)) = node_resources(&instance.instance_type, &class, &catalog)
    {
        status.capacity = Some(capacity);
        status.allocatable = Some(allocatable);
    }
    set_condition(
        &mut status.conditions,
        LAUNCHED,
        "True",
        "Launched",
        "",
        &now_rfc3339(),
    );
    patch_status(ctx, &name, &status).await?;
    tracing::info!(
        nodeclaim = %name,
        provider_id = %instance.provider_id,
        instance_type = %instance.instance_type,
        zone = %instance.zone,
        capacity_type = instance.capacity_type.as_str(),
        "launched nodeclaim"
    );
    ctx.events
        .normal(
            claim,
            "Launched",
            format!(
                "Launched {} {} in {} ({})",
                instance.capacity_type.as_str(),
                instance.instance_type,
                instance.zone,
                instance.provider_id
            ),
        )
        .await;
    Ok(Action::requeue(Duration::from_secs(1)))
}

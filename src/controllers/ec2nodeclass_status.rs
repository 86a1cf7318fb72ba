//! EC2NodeClass status: its subnet, security group and AMI selector terms resolved by the cloud
//! provider on a period, with a Ready condition that says what did not resolve. A NodePool is
//! not Ready until its class is.

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::apis::EC2NodeClass;
use crate::apis::common::set_condition;

use super::Context;
use super::nodeclaim::now_rfc3339;

pub async fn run(ctx: Context) {
    loop {
        resolve_all(&ctx).await;
        tokio::time::sleep(ctx.settings.resync.min(std::time::Duration::from_secs(2))).await;
    }
}

async fn resolve_all(ctx: &Context) {
    let api: Api<EC2NodeClass> = Api::all(ctx.client.clone());
    for class in ctx.state.nodeclasses.state() {
        if class.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = class.metadata.name.clone().unwrap_or_default();
        let current = class.status.clone().unwrap_or_default();
        let mut status = match ctx.cloud.resolve_node_class(&class).await {
            Ok(mut s) => {
                s.conditions = current.conditions.clone();
                set_condition(
                    &mut s.conditions,
                    "Ready",
                    "True",
                    "Ready",
                    "",
                    &now_rfc3339(),
                );
                s
            }
            Err(e) => {
                let mut s = current.clone();
                set_condition(
                    &mut s.conditions,
                    "Ready",
                    "False",
                    "NodeClassNotReady",
                    &e.to_string(),
                    &now_rfc3339(),
                );
                s
            }
        };
        // Keep transition times when nothing but time would change.
        if status == current {
            continue;
        }
        status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
        let ready = |s: &crate::apis::EC2NodeClassStatus| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.is_true())
        };
        let became_ready = ready(&status) && !ready(&current);
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
        {
            // Pods may have been waiting for this class's NodePools.
            Ok(_) if became_ready => ctx.state.provision.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::warn!(ec2nodeclass = %name, "writing status: {e}"),
        }
    }
}

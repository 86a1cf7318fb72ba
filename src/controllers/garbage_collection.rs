//! Nothing leaks: instances tagged as this cluster's that no NodeClaim owns (by providerID or by
//! their `karpenter.sh/nodeclaim` tag) for longer than the grace period are terminated; launched
//! NodeClaims whose instance is gone are deleted.

use std::collections::BTreeSet;
use std::time::SystemTime;

use kube::api::{Api, DeleteParams};

use crate::apis::NodeClaim;
use crate::apis::nodeclaim::conditions::LAUNCHED;
use crate::cloud::{CloudError, Instance};
use crate::metrics::NodePoolReason;

use super::Context;

pub async fn run(ctx: Context) {
    loop {
        tokio::time::sleep(ctx.settings.resync).await;
        if let Err(e) = collect(&ctx).await {
            tracing::warn!("garbage collection: {e}");
        }
    }
}

/// Pure: the instances to terminate. `claims` are the NodeClaims that exist now.
pub fn orphans<'a>(
    instances: &'a [Instance],
    claims: &[std::sync::Arc<NodeClaim>],
    grace: std::time::Duration,
    now: SystemTime,
) -> Vec<&'a Instance> {
    let names: BTreeSet<&str> = claims
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    let ids: BTreeSet<&str> = claims
        .iter()
        .filter_map(|c| c.status.as_ref()?.provider_id.as_deref())
        .collect();
    instances
        .iter()
        .filter(|i| !i.state.is_terminating())
        .filter(|i| !ids.contains(i.provider_id.as_str()))
        .filter(|i| i.nodeclaim().is_none_or(|n| !names.contains(n)))
        .filter(|i| {
            now.duration_since(i.launch_time)
                .is_ok_and(|age| age >= grace)
        })
        .collect()
}

pub async fn collect(ctx: &Context) -> Result<(), CloudError> {
    let instances = ctx.cloud_list().await?;
    let claims = ctx.state.nodeclaims.state();
    for i in orphans(
        &instances,
        &claims,
        ctx.settings.gc_grace,
        SystemTime::now(),
    ) {
        match ctx.cloud_delete(&i.provider_id).await {
            Ok(()) => {
                tracing::info!(
                    provider_id = %i.provider_id,
                    nodeclaim = i.nodeclaim().unwrap_or(""),
                    "garbage collected an instance no NodeClaim owns"
                );
                ctx.metrics
                    .nodeclaims_terminated
                    .get_or_create(&NodePoolReason {
                        nodepool: i
                            .tags
                            .get(crate::cloud::provider::tags::NODEPOOL)
                            .cloned()
                            .unwrap_or_default(),
                        reason: "garbage_collected".into(),
                    })
                    .inc();
            }
            Err(e) => tracing::warn!(provider_id = %i.provider_id, "terminating an orphan: {e}"),
        }
    }

    // Claims whose instance went away (terminated from the console, reclaimed spot).
    let live: BTreeSet<&str> = instances.iter().map(|i| i.provider_id.as_str()).collect();
    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    for c in &claims {
        let Some(pid) = c.status.as_ref().and_then(|s| s.provider_id.as_deref()) else {
            continue;
        };
        let launched = c
            .status
            .as_ref()
            .is_some_and(|s| s.is_condition_true(LAUNCHED));
        if !launched || c.metadata.deletion_timestamp.is_some() || live.contains(pid) {
            continue;
        }
        // Lists can lag a launch; ask for this one.
        if !matches!(ctx.cloud.get(pid).await, Err(CloudError::NotFound(_))) {
            continue;
        }
        let name = c.metadata.name.clone().unwrap_or_default();
        tracing::info!(nodeclaim = %name, provider_id = pid, "instance is gone, deleting the nodeclaim");
        ctx.events
            .warning(
                c.as_ref(),
                "InstanceTerminated",
                format!("Instance {pid} no longer exists"),
            )
            .await;
        if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
            tracing::warn!(nodeclaim = %name, "deleting: {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::{NodeClaimSpec, NodeClaimStatus};
    use crate::cloud::InstanceState;
    use crate::cloud::catalog::CapacityType;
    use crate::cloud::provider::tags;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    fn instance(id: &str, claim: &str, age: u64, now: SystemTime) -> Instance {
        Instance {
            provider_id: format!("aws:///z/{id}"),
            id: id.into(),
            instance_type: "m5.large".into(),
            zone: "z".into(),
            capacity_type: CapacityType::OnDemand,
            image_id: None,
            state: InstanceState::Running,
            tags: BTreeMap::from([(tags::NODECLAIM.to_string(), claim.to_string())]),
            launch_time: now - Duration::from_secs(age),
        }
    }

    #[test]
    fn only_old_instances_of_missing_claims_are_orphans() {
        let now = SystemTime::now();
        let mut owned = NodeClaim::new("a", NodeClaimSpec::default());
        owned.status = Some(NodeClaimStatus {
            provider_id: Some("aws:///z/i-1".into()),
            ..Default::default()
        });
        let launching = NodeClaim::new("b", NodeClaimSpec::default());
        let claims = vec![Arc::new(owned), Arc::new(launching)];
        let instances = vec![
            instance("i-1", "a", 600, now),    // owned by providerID
            instance("i-2", "b", 600, now),    // status not written yet: owned by tag
            instance("i-3", "gone", 600, now), // orphan
            instance("i-4", "gone", 5, now),   // too young to tell
        ];
        let o = orphans(&instances, &claims, Duration::from_secs(30), now);
        assert_eq!(
            o.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            vec!["i-3"]
        );
    }
}

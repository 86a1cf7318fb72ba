//! Provisioning: pending pods are batched (a batch closes after `batch_idle` without a new pod,
//! or `batch_max` in all), the simulation packs them onto nodes, NodeClaims in flight and new
//! NodeClaims, and the new NodeClaims are created. Pods that fit nowhere get an Event saying why,
//! per NodePool.

pub mod batcher;
pub mod claims;
pub mod inputs;
pub mod pending;

use std::time::{Instant, SystemTime};

use kube::api::{Api, PostParams};

use crate::apis::NodeClaim;
use crate::metrics::{ControllerLabel, NodePoolReason};
use crate::scheduling::scheduler::schedule;

use super::Context;

/// A round also runs this often while pods stay pending (a claim that failed to launch, an
/// offering that came back), as Karpenter re-checks.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn run(ctx: Context) {
    let mut batcher = batcher::Batcher::new(
        ctx.state.provision.clone(),
        ctx.settings.batch_idle,
        ctx.settings.batch_max,
        RECHECK,
    );
    loop {
        batcher.wait().await;
        if let Err(e) = provision(&ctx).await {
            tracing::warn!("provisioning: {e}");
        }
    }
}

/// One round; returns the names of the NodeClaims created.
pub async fn provision(ctx: &Context) -> Result<Vec<String>, kube::Error> {
    let snap = ctx.state.snapshot();
    let catalog = ctx.cloud.catalog();
    let prepared = inputs::prepare(&snap, &catalog, SystemTime::now());
    if prepared.input.pods.is_empty() {
        return Ok(Vec::new());
    }
    for w in &prepared.warnings {
        tracing::warn!("provisioning: {w}");
    }
    let started = Instant::now();
    let outcome = schedule(&prepared.input);
    ctx.metrics
        .scheduling_duration
        .get_or_create(&ControllerLabel {
            controller: "provisioner".into(),
        })
        .observe(started.elapsed().as_secs_f64());
    tracing::info!(
        pods = prepared.input.pods.len(),
        nodeclaims = outcome.claims.len(),
        unschedulable = outcome.unschedulable.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "computed new nodeclaim(s) to fit pod(s)"
    );
    for m in &outcome.limit_messages {
        tracing::warn!("{m}");
    }

    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    let mut created = Vec::new();
    for planned in &outcome.claims {
        let Some(pool) = ctx.state.nodepool(&planned.nodepool) else {
            continue;
        };
        let claim = claims::nodeclaim_for(planned, &pool);
        match api.create(&PostParams::default(), &claim).await {
            Ok(c) => {
                let name = c.metadata.name.clone().unwrap_or_default();
                let cheapest = planned.cheapest();
                tracing::info!(
                    nodepool = %planned.nodepool,
                    nodeclaim = %name,
                    pods = planned.pods.len(),
                    requests = %planned.requests,
                    instance_types = planned.instance_types.len(),
                    cheapest = %format!("{} {} {} ${:.4}/h", cheapest.name, cheapest.zone, cheapest.capacity_type, cheapest.price_per_hour),
                    "created nodeclaim"
                );
                ctx.metrics
                    .nodeclaims_created
                    .get_or_create(&NodePoolReason {
                        nodepool: planned.nodepool.clone(),
                        reason: "provisioning".into(),
                    })
                    .inc();
                created.push(name);
            }
            Err(e) => {
                tracing::warn!(nodepool = %planned.nodepool, "creating a nodeclaim: {e}");
            }
        }
    }
    for u in &outcome.unschedulable {
        let Some(pod) = prepared.pending.get(&u.pod) else {
            continue;
        };
        let reasons: Vec<String> = u
            .reasons
            .iter()
            .map(|(pool, why)| format!("{pool}: {why}"))
            .collect();
        let note = format!(
            "Failed to schedule pod, incompatible with nodepools: {}",
            reasons.join("; ")
        );
        ctx.events
            .warning(pod.as_ref(), "FailedScheduling", note)
            .await;
    }
    Ok(created)
}

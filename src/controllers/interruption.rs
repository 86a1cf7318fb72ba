//! Interruption: receives EventBridge messages from the queue and acts on the NodeClaims they
//! name. Parsing and the action per kind are pure (`crate::interruption`); here: look the
//! NodeClaim up by instance id, post Events, and for cordon-and-drain kinds mark the spot
//! offering unavailable, taint the Node, launch replacements, then delete the NodeClaim
//! (termination drains it). Replacements are created first but not waited for: a spot
//! interruption leaves two minutes, less than a node takes to initialize, so the pods get the
//! most of it by draining at once while the new capacity boots (Karpenter does the same).
//!
//! A message is deleted once handled, and so is a malformed one (logged: it would only come
//! back); one whose handling failed on the API server stays for SQS to deliver again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams};

use crate::apis::NodeClaim;
use crate::apis::labels::{INSTANCE_TYPE, NODEPOOL, ZONE};
use crate::cloud::catalog::CapacityType;
use crate::cloud::provider::OfferingKey;
use crate::cloud::queue::{InterruptionQueue, QueueMessage};
use crate::interruption::{Action, Kind, Message, parse};
use crate::metrics::{MessageTypeLabel, NodePoolReason};

use super::Context;
use super::disruption::{launch_replacements, set_disrupted_taint, view};

pub async fn run(ctx: Context, queue: Arc<dyn InterruptionQueue>) {
    tracing::info!(queue = queue.name(), "interruption: receiving");
    loop {
        let messages = match queue.receive().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("interruption: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        for m in &messages {
            handle(&ctx, queue.as_ref(), m).await;
        }
    }
}

async fn handle(ctx: &Context, queue: &dyn InterruptionQueue, m: &QueueMessage) {
    match parse(&m.body) {
        Err(e) => {
            tracing::warn!(message_id = %m.id, "interruption: dropping a message: {e}");
        }
        Ok(msg) => {
            ctx.metrics
                .interruption_received
                .get_or_create(&MessageTypeLabel {
                    message_type: msg.kind.metric_label().into(),
                })
                .inc();
            if let Some(age) = age(&msg) {
                ctx.metrics
                    .interruption_queue_duration
                    .observe(age.as_secs_f64());
            }
            for id in &msg.instance_ids {
                if let Err(e) = act(ctx, &msg.kind, id).await {
                    tracing::warn!(message_id = %m.id, instance = %id, "interruption: {e}; the message stays for another try");
                    return;
                }
            }
        }
    }
    match queue.delete(&m.receipt).await {
        Ok(()) => {
            ctx.metrics.interruption_deleted.inc();
        }
        Err(e) => tracing::warn!(message_id = %m.id, "interruption: {e}"),
    }
}

/// How long ago the event happened.
fn age(msg: &Message) -> Option<Duration> {
    let t: k8s_openapi::jiff::Timestamp = msg.time.as_deref()?.parse().ok()?;
    let now = k8s_openapi::jiff::Timestamp::now();
    let secs = now.duration_since(t).as_secs_f64();
    (secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The NodeClaim whose instance this is (`status.providerID` = `aws:///<zone>/<id>`).
fn nodeclaim_for_instance(ctx: &Context, instance_id: &str) -> Option<Arc<NodeClaim>> {
    let suffix = format!("/{instance_id}");
    ctx.state.nodeclaims.state().into_iter().find(|c| {
        c.status
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .is_some_and(|p| p.ends_with(&suffix))
    })
}

async fn act(ctx: &Context, kind: &Kind, instance_id: &str) -> Result<(), kube::Error> {
    let Some(claim) = nodeclaim_for_instance(ctx, instance_id) else {
        tracing::debug!(
            instance = instance_id,
            "interruption: no NodeClaim for the instance"
        );
        return Ok(());
    };
    let name = claim.metadata.name.clone().unwrap_or_default();
    let node = claim
        .status
        .as_ref()
        .and_then(|s| s.provider_id.as_deref())
        .and_then(|p| ctx.state.node_by_provider_id(p));
    let (reason, note) = kind.event();
    ctx.events
        .warning(claim.as_ref(), reason, note.to_string())
        .await;
    if let Some(n) = &node {
        ctx.events
            .warning(n.as_ref(), reason, note.to_string())
            .await;
    }
    if kind.action() != Action::CordonAndDrain || claim.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    // A redelivered message (SQS is at-least-once) may come before the cache has seen the first
    // delivery's delete: ask the API server, so that one warning never launches twice.
    let claims: Api<NodeClaim> = Api::all(ctx.client.clone());
    match claims.get_opt(&name).await? {
        Some(c) if c.metadata.deletion_timestamp.is_none() => {}
        _ => return Ok(()),
    }
    let label = |k: &str| {
        claim
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .cloned()
    };
    // The pool the warning came from is being reclaimed: launching into it again would only be
    // interrupted in turn. Hidden before the simulation, so replacements go elsewhere.
    if *kind == Kind::SpotInterruption
        && let (Some(instance_type), Some(zone)) = (label(INSTANCE_TYPE), label(ZONE))
    {
        ctx.cloud.mark_unavailable(&OfferingKey {
            instance_type,
            zone,
            capacity_type: CapacityType::Spot,
        });
    }
    if let Some(n) = node.as_ref().and_then(|n| n.metadata.name.clone()) {
        let nodes: Api<Node> = Api::all(ctx.client.clone());
        set_disrupted_taint(&nodes, &n, true).await?;
    }
    let planned = crate::disruption::replacements_for(&view(ctx), &name, SystemTime::now())
        .unwrap_or_default();
    let launched: Vec<String> = launch_replacements(ctx, &planned, "interruption")
        .await?
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    tracing::info!(
        nodeclaim = %name,
        instance = instance_id,
        kind = kind.metric_label(),
        replacements = ?launched,
        "interruption: deleting the NodeClaim"
    );
    match claims.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if super::is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    ctx.metrics
        .nodeclaims_disrupted
        .get_or_create(&NodePoolReason {
            nodepool: label(NODEPOOL).unwrap_or_default(),
            reason: kind.metric_label().to_string(),
        })
        .inc();
    Ok(())
}

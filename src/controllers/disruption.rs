//! Disruption, the thin controller around `crate::disruption::decide`: every poll it gathers a
//! [`ClusterView`] from the reflectors, asks for a decision, posts why blocked NodeClaims stay
//! (Events, only when the words change), and carries out the commands: replacements launched
//! and initialized first, candidates tainted `karpenter.sh/disrupted:NoSchedule`, then their
//! NodeClaims deleted (termination drains them). A replacement that never initializes aborts the
//! command: the candidates are untainted and the replacements deleted.
//!
//! After a restart, taints left on Nodes whose NodeClaim is not being deleted are removed (a
//! command cut short); replacements already launched stay and count as capacity.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::apis::NodeClaim;
use crate::apis::labels::{DISRUPTED_TAINT_KEY, NODEPOOL};
use crate::apis::nodeclaim::conditions::INITIALIZED;
use crate::disruption::{ClusterView, Command, Options, PriceBook, decide};
use crate::metrics::{DecisionLabels, NodePoolReason};
use crate::scheduling::scheduler::PlannedClaim;

use super::Context;
use super::provisioning::claims::nodeclaim_for;
use super::provisioning::inputs::prepare;

pub async fn run(ctx: Context) {
    if let Err(e) = untaint_stranded(&ctx).await {
        tracing::warn!("disruption: removing stranded taints: {e}");
    }
    let mut posted: BTreeMap<String, String> = BTreeMap::new();
    loop {
        tokio::time::sleep(ctx.settings.disruption_poll).await;
        if let Err(e) = round(&ctx, &mut posted).await {
            tracing::warn!("disruption: {e}");
        }
    }
}

/// The view decisions are made on.
pub fn view(ctx: &Context) -> ClusterView {
    let snap = ctx.state.snapshot();
    let catalog = ctx.cloud.catalog();
    let prepared = prepare(&snap, &catalog, SystemTime::now());
    let prices = PriceBook::from_catalog(&catalog);
    ClusterView {
        nodes: snap.nodes,
        nodeclaims: snap.nodeclaims,
        nodepools: snap.nodepools,
        pods: snap.pods,
        pdbs: ctx.state.pdbs.state(),
        simulation: prepared.input,
        prices,
    }
}

async fn round(ctx: &Context, posted: &mut BTreeMap<String, String>) -> Result<(), kube::Error> {
    let view = view(ctx);
    let started = Instant::now();
    let decision = decide(
        &view,
        SystemTime::now(),
        &Options {
            spot_to_spot_consolidation: ctx.settings.spot_to_spot_consolidation,
        },
    );
    tracing::debug!(
        commands = decision.commands.len(),
        blocked = decision.blocked.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "disruption decided"
    );
    for b in &decision.blocked {
        if posted.get(&b.nodeclaim) == Some(&b.message) {
            continue;
        }
        posted.insert(b.nodeclaim.clone(), b.message.clone());
        if let Some(claim) = view
            .nodeclaims
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(b.nodeclaim.as_str()))
        {
            ctx.events
                .normal(claim.as_ref(), b.event_reason, b.message.clone())
                .await;
        }
        if let Some(node) = b.node.as_ref().and_then(|n| {
            view.nodes
                .iter()
                .find(|x| x.metadata.name.as_ref() == Some(n))
        }) {
            ctx.events
                .normal(node.as_ref(), b.event_reason, b.message.clone())
                .await;
        }
    }
    for command in &decision.commands {
        execute(ctx, &view, command).await?;
    }
    Ok(())
}

async fn execute(ctx: &Context, view: &ClusterView, command: &Command) -> Result<(), kube::Error> {
    let claims_api: Api<NodeClaim> = Api::all(ctx.client.clone());
    let candidates: Vec<&NodeClaim> = command
        .candidates
        .iter()
        .filter_map(|n| {
            view.nodeclaims
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(n.as_str()))
                .map(|c| c.as_ref())
        })
        .collect();
    let pool_of = |c: &NodeClaim| {
        c.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(NODEPOOL))
            .cloned()
            .unwrap_or_default()
    };
    tracing::info!(
        reason = command.reason.as_str(),
        decision = command.decision(),
        nodeclaims = ?command.candidates,
        replacements = command.replacements.len(),
        "disrupting"
    );

    // Replacements first, and only go on once they are initialized.
    let launched = launch_replacements(
        ctx,
        &command.replacements,
        &command.reason.as_str().to_lowercase(),
    )
    .await?;
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    let candidate_nodes: Vec<String> = candidates
        .iter()
        .filter_map(|c| c.status.as_ref().and_then(|s| s.node_name.clone()))
        .collect();
    for n in &candidate_nodes {
        set_disrupted_taint(&nodes_api, n, true).await?;
    }
    if !launched.is_empty() && !wait_initialized(ctx, &launched).await {
        tracing::warn!(replacements = ?launched, "replacements did not initialize; aborting the disruption");
        for n in &candidate_nodes {
            set_disrupted_taint(&nodes_api, n, false).await?;
        }
        for r in &launched {
            let _ = claims_api.delete(r, &DeleteParams::default()).await;
        }
        return Ok(());
    }
    for c in &candidates {
        let name = c.metadata.name.clone().unwrap_or_default();
        ctx.events
            .normal(
                *c,
                "DisruptionTerminating",
                format!(
                    "Disrupting NodeClaim: {}/{}{}",
                    command.reason.as_str(),
                    command.decision(),
                    if launched.is_empty() {
                        String::new()
                    } else {
                        format!(", replaced by {}", launched.join(", "))
                    }
                ),
            )
            .await;
        match claims_api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if super::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        ctx.metrics
            .nodeclaims_disrupted
            .get_or_create(&NodePoolReason {
                nodepool: pool_of(c),
                reason: command.reason.as_str().to_string(),
            })
            .inc();
    }
    ctx.metrics
        .disruption_decisions
        .get_or_create(&DecisionLabels {
            decision: command.decision().into(),
            reason: command.reason.as_str().into(),
        })
        .inc();
    Ok(())
}

/// Creates a NodeClaim for each planned replacement (skipping those whose pool is gone);
/// returns their names. `reason` labels `karpenter_nodeclaims_created`.
pub(crate) async fn launch_replacements(
    ctx: &Context,
    planned: &[PlannedClaim],
    reason: &str,
) -> Result<Vec<String>, kube::Error> {
    let claims_api: Api<NodeClaim> = Api::all(ctx.client.clone());
    let mut launched = Vec::new();
    for planned in planned {
        let Some(pool) = ctx.state.nodepool(&planned.nodepool) else {
            continue;
        };
        let created = claims_api
            .create(&PostParams::default(), &nodeclaim_for(planned, &pool))
            .await?;
        ctx.metrics
            .nodeclaims_created
            .get_or_create(&NodePoolReason {
                nodepool: planned.nodepool.clone(),
                reason: reason.to_string(),
            })
            .inc();
        launched.push(created.metadata.name.unwrap_or_default());
    }
    Ok(launched)
}

/// Waits (up to the registration TTL) until every named claim is Initialized; false if one
/// never is or disappears.
async fn wait_initialized(ctx: &Context, names: &[String]) -> bool {
    let deadline = Instant::now() + ctx.settings.registration_ttl;
    while Instant::now() < deadline {
        let claims = ctx.state.nodeclaims.state();
        let mut all = true;
        for n in names {
            match claims
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(n.as_str()))
            {
                Some(c)
                    if c.status
                        .as_ref()
                        .is_some_and(|s| s.is_condition_true(INITIALIZED)) => {}
                Some(_) => all = false,
                None => return false,
            }
        }
        if all {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

pub(crate) async fn set_disrupted_taint(
    nodes: &Api<Node>,
    name: &str,
    on: bool,
) -> Result<(), kube::Error> {
    let node = match nodes.get(name).await {
        Ok(n) => n,
        Err(e) if super::is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
    let has = taints.iter().any(|t| t.key == DISRUPTED_TAINT_KEY);
    if has == on {
        return Ok(());
    }
    if on {
        taints.push(k8s_openapi::api::core::v1::Taint {
            key: DISRUPTED_TAINT_KEY.into(),
            value: None,
            effect: "NoSchedule".into(),
            time_added: None,
        });
    } else {
        taints.retain(|t| t.key != DISRUPTED_TAINT_KEY);
    }
    nodes
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": taints}})),
        )
        .await?;
    Ok(())
}

/// A restart in the middle of a command leaves candidates tainted but not deleted: untaint them.
async fn untaint_stranded(ctx: &Context) -> Result<(), kube::Error> {
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    for node in ctx.state.nodes.state() {
        let tainted = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.key == DISRUPTED_TAINT_KEY));
        if !tainted || node.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let pid = node.spec.as_ref().and_then(|s| s.provider_id.clone());
        let claim = pid.and_then(|p| ctx.state.nodeclaim_by_provider_id(&p));
        if claim.is_some_and(|c| c.metadata.deletion_timestamp.is_some()) {
            continue;
        }
        let name = node.metadata.name.clone().unwrap_or_default();
        tracing::info!(node = %name, "removing a disruption taint left by an interrupted command");
        set_disrupted_taint(&nodes_api, &name, false).await?;
    }
    Ok(())
}

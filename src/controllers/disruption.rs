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
use crate::disruption::{
    ClusterView, Command, Decision, EVENT_UNCONSOLIDATABLE, Options, PriceBook, candidates, decide,
    validation,
};
use crate::metrics::{DecisionLabels, MethodLabel, NodePoolReason, ReasonLabel};
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
    let decided_at = SystemTime::now();
    let decision = decide(
        &view,
        decided_at,
        &Options {
            spot_to_spot_consolidation: ctx.settings.spot_to_spot_consolidation,
        },
    );
    record(ctx, &decision, started.elapsed());
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
        post(
            ctx,
            &view,
            &b.nodeclaim,
            b.node.as_deref(),
            b.event_reason,
            &b.message,
        )
        .await;
    }
    // The candidates as decided, once for every command (each records the pods it moves).
    let decided = if decision.commands.is_empty() {
        Vec::new()
    } else {
        candidates::build(&view, decided_at).0
    };
    for command in &decision.commands {
        let moved = validation::moved(&decided, command);
        execute(ctx, &view, command, &moved, started).await?;
    }
    Ok(())
}

/// The decision's gauges and its evaluation time.
fn record(ctx: &Context, decision: &Decision, took: Duration) {
    let m = &ctx.metrics;
    m.disruption_evaluation_duration
        .get_or_create(&MethodLabel {
            method: "all".into(),
        })
        .observe(took.as_secs_f64());
    for (reason, n) in &decision.eligible {
        m.disruption_eligible_nodes
            .get_or_create(&ReasonLabel {
                reason: reason.as_str().to_lowercase(),
            })
            .set(*n as i64);
    }
    for (pool, reason, n) in &decision.allowed {
        m.nodepools_allowed_disruptions
            .get_or_create(&NodePoolReason {
                nodepool: pool.clone(),
                reason: reason.as_str().to_string(),
            })
            .set(*n as i64);
    }
}

/// An Event on the NodeClaim and, when it has one, its Node.
async fn post(
    ctx: &Context,
    view: &ClusterView,
    nodeclaim: &str,
    node: Option<&str>,
    reason: &str,
    message: &str,
) {
    if let Some(claim) = view
        .nodeclaims
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(nodeclaim))
    {
        ctx.events
            .normal(claim.as_ref(), reason, message.to_string())
            .await;
    }
    if let Some(node) = node.and_then(|n| {
        view.nodes
            .iter()
            .find(|x| x.metadata.name.as_deref() == Some(n))
    }) {
        ctx.events
            .normal(node.as_ref(), reason, message.to_string())
            .await;
    }
}

async fn execute(
    ctx: &Context,
    view: &ClusterView,
    command: &Command,
    moved: &validation::Moved,
    decided: Instant,
) -> Result<(), kube::Error> {
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
    for r in &launched {
        ctx.events
            .normal(
                r,
                "DisruptionLaunching",
                format!(
                    "Launching NodeClaim: {}/{} of {}",
                    command.reason.as_str(),
                    command.decision(),
                    command.candidates.join(", ")
                ),
            )
            .await;
    }
    let launched: Vec<String> = launched
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
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
        return abort(ctx, &candidate_nodes, &launched).await;
    }
    // Emptiness and consolidation act on a cluster that has settled: the pods the decision moved
    // must still be the ones there, and nothing new may block (Karpenter waits 15 s).
    if validation::needs_validation(command.reason) {
        let settle = ctx.settings.disruption_validation;
        if let Some(rest) = settle.checked_sub(decided.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        if let Err(why) = validation::validate(&self::view(ctx), command, moved, SystemTime::now())
        {
            tracing::info!(
                reason = command.reason.as_str(),
                nodeclaims = ?command.candidates,
                "abandoning the disruption: {why}"
            );
            for c in &candidates {
                let name = c.metadata.name.as_deref().unwrap_or_default();
                let node = c.status.as_ref().and_then(|s| s.node_name.as_deref());
                let note = format!("Disruption abandoned: {why}");
                post(ctx, view, name, node, EVENT_UNCONSOLIDATABLE, &note).await;
            }
            return abort(ctx, &candidate_nodes, &launched).await;
        }
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
            reason: command.reason.as_str().to_lowercase(),
            consolidation_type: command.consolidation_type().into(),
        })
        .inc();
    Ok(())
}

/// A command that may not go on: its candidates untainted, its replacements deleted.
async fn abort(
    ctx: &Context,
    candidate_nodes: &[String],
    launched: &[String],
) -> Result<(), kube::Error> {
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    for n in candidate_nodes {
        set_disrupted_taint(&nodes_api, n, false).await?;
    }
    let claims_api: Api<NodeClaim> = Api::all(ctx.client.clone());
    for r in launched {
        match claims_api.delete(r, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if super::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates a NodeClaim for each planned replacement (skipping those whose pool is gone);
/// returns them as created. `reason` labels `karpenter_nodeclaims_created`.
pub(crate) async fn launch_replacements(
    ctx: &Context,
    planned: &[PlannedClaim],
    reason: &str,
) -> Result<Vec<NodeClaim>, kube::Error> {
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
        launched.push(created);
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

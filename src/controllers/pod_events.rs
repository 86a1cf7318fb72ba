//! `status.lastPodEventTime` on NodeClaims: when a pod was last bound to or removed from the
//! claim's node. Emptiness and consolidation wait `consolidateAfter` from it. Changes are
//! coalesced and written once a second per node, so a burst of pod churn is one write.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::mpsc;

use crate::apis::NodeClaim;

use super::Context;
use super::nodeclaim::now_rfc3339;

const FLUSH: Duration = Duration::from_secs(1);

pub async fn run(ctx: Context, mut nodes: mpsc::UnboundedReceiver<String>) {
    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    let mut pending: BTreeSet<String> = BTreeSet::new();
    loop {
        tokio::select! {
            n = nodes.recv() => match n {
                Some(n) => { pending.insert(n); continue; }
                None => return,
            },
            _ = tokio::time::sleep(FLUSH), if !pending.is_empty() => {}
        }
        let now = now_rfc3339();
        let claims = ctx.state.nodeclaims.state();
        for node in std::mem::take(&mut pending) {
            let Some(claim) = claims.iter().find(|c| {
                c.status.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())
            }) else {
                continue;
            };
            let name = claim.metadata.name.clone().unwrap_or_default();
            if let Err(e) = api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"lastPodEventTime": now}})),
                )
                .await
            {
                tracing::debug!(nodeclaim = %name, "recording the last pod event: {e}");
            }
        }
    }
}

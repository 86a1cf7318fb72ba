//! Re-validation of a command after it has settled (Karpenter waits 15 s before it acts on an
//! emptiness or consolidation decision): the cluster may have moved meanwhile. A command still
//! holds when each candidate is there, not going away, not newly blocked (do-not-disrupt on the
//! node, the claim or a pod; a PDB that would refuse an eviction), and carries exactly the pods
//! the decision moved. The controller's own `karpenter.sh/disrupted` taint is not a block here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::apis::labels::DO_NOT_DISRUPT;

use super::candidates::{self, Candidate};
use super::view::ClusterView;
use super::{Command, Reason};

/// The pods each candidate of a command had to move when it was decided (NodeClaim name →
/// pod keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Moved(BTreeMap<String, BTreeSet<String>>);

fn pods_of(c: &Candidate) -> BTreeSet<String> {
    c.reschedulable.iter().map(|p| p.key.clone()).collect()
}

/// What `command`'s candidates hold among `all` (the candidates the decision was made from),
/// to compare against after settling.
pub fn moved(all: &[Candidate], command: &Command) -> Moved {
    Moved(
        all.iter()
            .filter(|c| command.candidates.iter().any(|n| n == c.name()))
            .map(|c| (c.name().to_string(), pods_of(c)))
            .collect(),
    )
}

/// Whether a command of this reason waits and is re-checked before it deletes anything.
/// Expiration is forceful and drift replaces what no longer matches whatever the pods do.
pub fn needs_validation(reason: Reason) -> bool {
    matches!(reason, Reason::Empty | Reason::Underutilized)
}

/// Ok when `command` still holds on the fresh `view`; otherwise why it is dropped.
pub fn validate(
    view: &ClusterView,
    command: &Command,
    before: &Moved,
    now: SystemTime,
) -> Result<(), String> {
    let (all, _) = candidates::build(view, now);
    for name in &command.candidates {
        let Some(c) = all.iter().find(|c| c.name() == name) else {
            return Err(format!("nodeclaim {name} is gone"));
        };
        if c.deleting {
            return Err(format!("nodeclaim {name} is already being deleted"));
        }
        let annotated = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.annotations
                .as_ref()
                .and_then(|a| a.get(DO_NOT_DISRUPT))
                .is_some_and(|v| v == "true")
        };
        if annotated(&c.claim.metadata) || c.node.as_ref().is_some_and(|n| annotated(&n.metadata)) {
            return Err(format!(
                "nodeclaim {name}: disruption is blocked through the \"{DO_NOT_DISRUPT}\" annotation"
            ));
        }
        if let Some(why) = &c.pod_block {
            return Err(format!("nodeclaim {name}: {why}"));
        }
        let was = before.0.get(name).cloned().unwrap_or_default();
        let now_pods = pods_of(c);
        if was != now_pods {
            let added = now_pods.difference(&was).count();
            let removed = was.difference(&now_pods).count();
            return Err(format!(
                "pods on nodeclaim {name} changed since the decision ({added} added, {removed} gone)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;

//! The proof behind every graceful decision: remove candidates from the simulation's cluster and
//! ask the scheduler where their pods would go (the remaining nodes, then new claims).

use std::collections::BTreeSet;

use crate::scheduling::pod::PodKey;
use crate::scheduling::resources::Resources;
use crate::scheduling::scheduler::{Input, PlannedClaim, schedule_limited};

use super::candidates::Candidate;
use super::view::ClusterView;

pub struct Simulated {
    /// Candidates' pods that would fit nowhere, with why (the first pool's reason).
    pub unscheduled: Vec<(PodKey, String)>,
    /// New claims that would hold a candidate's pod. Claims that only pending pods need are the
    /// provisioner's business and left out.
    pub replacements: Vec<PlannedClaim>,
}

impl Simulated {
    /// Karpenter's words for the first pod left without a home.
    pub fn failure(&self) -> Option<String> {
        self.unscheduled
            .first()
            .map(|(pod, why)| format!("not all pods would schedule, {pod} => {why}"))
    }
}

/// `max_new_claims`: give up once more new claims than that would be needed (see
/// [`schedule_limited`]); None for a full plan.
pub fn simulate(
    view: &ClusterView,
    remove: &[&Candidate],
    max_new_claims: Option<usize>,
) -> Simulated {
    let gone: BTreeSet<&str> = remove
        .iter()
        .flat_map(|c| [Some(c.name()), c.node_name()])
        .flatten()
        .collect();
    let evicted: BTreeSet<&str> = remove
        .iter()
        .flat_map(|c| c.reschedulable.iter().map(|p| p.key.as_str()))
        .collect();
    let sim = &view.simulation;
    // Pending pods take part so that consolidation does not count room they are waiting for.
    let mut input = Input {
        pods: sim
            .pods
            .iter()
            .chain(remove.iter().flat_map(|c| c.reschedulable.iter()))
            .cloned()
            .collect(),
        daemonsets: sim.daemonsets.clone(),
        existing: sim
            .existing
            .iter()
            .filter(|n| !gone.contains(n.name.as_str()))
            .cloned()
            .collect(),
        pools: sim.pools.clone(),
    };
    // The removed claims' capacity no longer counts against their pools' limits, so a pool at
    // its limit can still replace a node with a smaller one.
    for c in remove {
        let capacity = c
            .claim
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|q| Resources::from_k8s(q).ok());
        if let Some(cap) = capacity
            && let Some(pool) = input.pools.iter_mut().find(|p| p.name == c.pool_name())
        {
            pool.in_use = (&pool.in_use - &cap).clamp_non_negative();
        }
    }
    let out = schedule_limited(&input, max_new_claims);
    let unscheduled = out
        .unschedulable
        .into_iter()
        .filter(|u| evicted.contains(u.pod.as_str()))
        .map(|u| {
            let why = u
                .reasons
                .iter()
                .next()
                .map(|(pool, r)| format!("{pool}: {r}"))
                .unwrap_or_else(|| "no nodepool can take it".into());
            (u.pod, why)
        })
        .collect();
    let replacements = out
        .claims
        .into_iter()
        .filter(|c| c.pods.iter().any(|p| evicted.contains(p.as_str())))
        .collect();
    Simulated {
        unscheduled,
        replacements,
    }
}

//! Drift: a NodeClaim made from an older NodePool template (its `karpenter.sh/nodepool-hash`
//! differs from the pool's, same hash version) or marked `Drifted` is replaced, under the
//! `Drifted` budget. Empty drifted nodes go together; otherwise one at a time, once the
//! simulation has found a home for every pod.

use crate::apis::labels::{NODEPOOL_HASH, NODEPOOL_HASH_VERSION};
use crate::apis::nodeclaim::conditions;
use crate::apis::{NodeClaim, NodePool};

use super::budgets::Budgets;
use super::candidates::{Candidate, by_cost};
use super::simulate::simulate;
use super::view::ClusterView;
use super::{Blocked, Command, EVENT_DISRUPTION_BLOCKED, Reason};

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Whether `claim` no longer matches `pool`. Hashes of different versions are not compared: the
/// nodepool controller rewrites claims' hashes when the hashing changes.
pub fn is_drifted(claim: &NodeClaim, pool: &NodePool) -> bool {
    if claim.is_condition_true(conditions::DRIFTED) {
        return true;
    }
    let (c, p) = (&claim.metadata, &pool.metadata);
    match (
        annotation(c, NODEPOOL_HASH),
        annotation(p, NODEPOOL_HASH),
        annotation(c, NODEPOOL_HASH_VERSION),
        annotation(p, NODEPOOL_HASH_VERSION),
    ) {
        (Some(ch), Some(ph), Some(cv), Some(pv)) => cv == pv && ch != ph,
        _ => false,
    }
}

/// The candidates drift may replace, budgets aside.
pub fn eligible<'a>(usable: &[&'a Candidate]) -> Vec<&'a Candidate> {
    usable
        .iter()
        .copied()
        .filter(|c| c.nodepool.as_ref().is_some_and(|p| is_drifted(&c.claim, p)))
        // Karpenter v1: a claim with a terminationGracePeriod drifts even through blocking pods.
        .filter(|c| c.pod_block.is_none() || c.has_termination_grace_period())
        .collect()
}

pub fn drifted(
    view: &ClusterView,
    usable: &[&Candidate],
    budgets: &mut Budgets,
    blocked: &mut Vec<Blocked>,
) -> Option<Command> {
    let drifted = by_cost(&eligible(usable));
    let (empty, busy): (Vec<&Candidate>, Vec<&Candidate>) =
        drifted.into_iter().partition(|c| c.is_empty());
    let taken = budgets.take(empty, Reason::Drifted, blocked);
    if !taken.is_empty() {
        return Some(Command {
            reason: Reason::Drifted,
            candidates: taken.iter().map(|c| c.name().to_string()).collect(),
            replacements: Vec::new(),
        });
    }
    for c in busy {
        let a = budgets.allowance(c.pool_name(), Reason::Drifted);
        if a.allowed == 0 {
            blocked.push(
                c.blocked(
                    EVENT_DISRUPTION_BLOCKED,
                    a.limiting
                        .unwrap_or_else(|| "no disruption budget left".into()),
                ),
            );
            continue;
        }
        let sim = simulate(view, &[c], None);
        if let Some(why) = sim.failure() {
            blocked.push(c.blocked(EVENT_DISRUPTION_BLOCKED, format!("drifted, but {why}")));
            continue;
        }
        budgets.spend(c.pool_name(), Reason::Drifted);
        return Some(Command {
            reason: Reason::Drifted,
            candidates: vec![c.name().to_string()],
            replacements: sim.replacements,
        });
    }
    None
}

#[cfg(test)]
#[path = "drift_tests.rs"]
mod tests;

//! Consolidation (policy `WhenEmptyOrUnderutilized`, reason `Underutilized`): remove nodes whose
//! pods fit elsewhere, or replace them with one cheaper node. Multi-node first (the largest
//! prefix of candidates, cheapest to move first, found by binary search as Karpenter does), then
//! single-node. Every command is proven by the simulation: all the removed nodes' pods schedule
//! on the remaining nodes plus at most one new claim.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::apis::labels::{CAPACITY_TYPE, CAPACITY_TYPE_SPOT};
use crate::apis::nodepool::CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED;
use crate::scheduling::requirements::Requirement;
use crate::scheduling::scheduler::{InstanceChoice, PlannedClaim, PoolTemplate};

use super::budgets::Budgets;
use super::candidates::{Candidate, by_cost};
use super::simulate::simulate;
use super::view::ClusterView;
use super::{Blocked, Command, EVENT_DISRUPTION_BLOCKED, EVENT_UNCONSOLIDATABLE, Options, Reason};

/// A single spot node is replaced by a spot node only if the replacement keeps at least this many
/// cheaper instance types: otherwise it would likely land on the same capacity pool and be
/// interrupted or replaced again (Karpenter's `MinInstanceTypesForSpotToSpotConsolidation`).
pub const MIN_SPOT_TO_SPOT_TYPES: usize = 15;

/// Candidates consolidation may consider, cheapest to move first.
pub fn eligible<'a>(
    usable: &[&'a Candidate],
    now: SystemTime,
    blocked: &mut Vec<Blocked>,
) -> Vec<&'a Candidate> {
    let mut out = Vec::new();
    for c in usable.iter().copied() {
        let policy = c.nodepool.as_ref().map(|p| p.consolidation_policy());
        // Empty nodes are emptiness's, under the `Empty` budget: taking them here would walk
        // around a budget that keeps them.
        if policy != Some(CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED)
            || c.is_empty()
            || c.pod_block.is_some()
            || !c.is_consolidatable(now)
        {
            continue;
        }
        if c.price.is_none() {
            blocked.push(c.blocked(
                EVENT_UNCONSOLIDATABLE,
                format!(
                    "no price known for {} {} in {}",
                    c.capacity_type, c.instance_type, c.zone
                ),
            ));
            continue;
        }
        out.push(c);
    }
    by_cost(&out)
}

/// The largest set of candidates (a prefix, within budgets) that can go at once.
pub fn multi_node(
    view: &ClusterView,
    eligible: &[&Candidate],
    budgets: &Budgets,
    opts: &Options,
) -> Option<Command> {
    let mut left: BTreeMap<&str, usize> = BTreeMap::new();
    let mut within = Vec::new();
    for c in eligible.iter().copied() {
        let l = left
            .entry(c.pool_name())
            .or_insert_with(|| budgets.left(c.pool_name(), Reason::Underutilized));
        if *l > 0 {
            *l -= 1;
            within.push(c);
        }
    }
    // Single candidates are single-node consolidation's.
    if within.len() < 2 {
        return None;
    }
    let (mut lo, mut hi) = (1, within.len() - 1);
    let mut best = None;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        match compute(view, &within[..=mid], opts) {
            Ok(cmd) => {
                best = Some(cmd);
                lo = mid + 1;
            }
            Err(_) => hi = mid - 1,
        }
    }
    best
}

/// The first candidate that can go alone, deleted or replaced by a cheaper node; the others are
/// told why not.
pub fn single_node(
    view: &ClusterView,
    eligible: &[&Candidate],
    budgets: &Budgets,
    opts: &Options,
    blocked: &mut Vec<Blocked>,
) -> Option<Command> {
    for c in eligible.iter().copied() {
        let a = budgets.allowance(c.pool_name(), Reason::Underutilized);
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
        match compute(view, &[c], opts) {
            Ok(cmd) => return Some(cmd),
            Err(why) => blocked.push(c.blocked(EVENT_UNCONSOLIDATABLE, why)),
        }
    }
    None
}

/// Whether removing `cands` is proven worth it, and how: delete, or replace with one cheaper
/// claim. The error says why not, in words for an Event.
pub fn compute(
    view: &ClusterView,
    cands: &[&Candidate],
    opts: &Options,
) -> Result<Command, String> {
    // One replacement at most: a plan needing a second is refused, so stop simulating there.
    let sim = simulate(view, cands, Some(1));
    if let Some(why) = sim.failure() {
        return Err(why);
    }
    let names = cands.iter().map(|c| c.name().to_string()).collect();
    let claim = match sim.replacements.as_slice() {
        [] => {
            return Ok(Command {
                reason: Reason::Underutilized,
                candidates: names,
                replacements: Vec::new(),
            });
        }
        [one] => one,
        many => {
            return Err(format!(
                "can't remove without creating {} nodes",
                many.len()
            ));
        }
    };
    let mut total = 0.0;
    for c in cands {
        total += c
            .price
            .ok_or_else(|| format!("no price known for {}", c.instance_type))?;
    }
    let spot = |c: &&Candidate| c.capacity_type == CAPACITY_TYPE_SPOT;
    let (any_spot, all_spot) = (cands.iter().any(spot), cands.iter().all(spot));
    let allows_spot = claim
        .requirements
        .get(CAPACITY_TYPE)
        .is_none_or(|r| r.has(CAPACITY_TYPE_SPOT));
    let mut replacement = if allows_spot {
        // Prices below assume spot; the launch must not fall back to pricier on-demand.
        restrict_capacity(claim, &view.simulation.pools, CAPACITY_TYPE_SPOT)
            .ok_or("can't replace with a lower-priced node")?
    } else if any_spot {
        return Err("can't replace a spot node with an on-demand node".into());
    } else {
        claim.clone()
    };
    if all_spot && !opts.spot_to_spot_consolidation {
        return Err(
            "can't replace a spot node with a spot node: SpotToSpotConsolidation is disabled"
                .into(),
        );
    }
    let mut max_price = total;
    if cands.len() > 1 {
        // Replacing several nodes by one of their own types: deleting the others alone would do
        // with fewer pods moved, unless the new node is cheaper than that type.
        for c in cands {
            if replacement
                .instance_types
                .iter()
                .any(|t| t.name == c.instance_type)
                && let Some(p) = c.price
            {
                max_price = max_price.min(p);
            }
        }
    }
    replacement
        .instance_types
        .retain(|t| t.price_per_hour < max_price);
    if replacement.instance_types.is_empty() {
        return Err("can't replace with a lower-priced node".into());
    }
    if all_spot && cands.len() == 1 {
        let n = replacement.instance_types.len();
        if n < MIN_SPOT_TO_SPOT_TYPES {
            return Err(format!(
                "can't replace a spot node with a spot node: {n} cheaper instance types, {MIN_SPOT_TO_SPOT_TYPES} needed"
            ));
        }
        replacement.instance_types.truncate(MIN_SPOT_TO_SPOT_TYPES);
    }
    Ok(Command {
        reason: Reason::Underutilized,
        candidates: names,
        replacements: vec![replacement],
    })
}

/// `claim` allowed only `capacity_type`, its instance types priced again under that; None when
/// none of them offers it.
fn restrict_capacity(
    claim: &PlannedClaim,
    pools: &[PoolTemplate],
    capacity_type: &str,
) -> Option<PlannedClaim> {
    let pool = pools.iter().find(|p| p.name == claim.nodepool)?;
    let mut reqs = claim.requirements.clone();
    reqs.add(Requirement::single(CAPACITY_TYPE, capacity_type));
    let mut choices: Vec<InstanceChoice> = claim
        .instance_types
        .iter()
        .filter_map(|t| pool.instance_types.iter().find(|o| o.name == t.name))
        .filter_map(|o| {
            o.cheapest_offering(&reqs).map(|of| InstanceChoice {
                name: o.name.clone(),
                zone: of.zone.clone(),
                capacity_type: of.capacity_type.clone(),
                price_per_hour: of.price_per_hour,
            })
        })
        .collect();
    if choices.is_empty() {
        return None;
    }
    choices.sort_by(|a, b| {
        a.price_per_hour
            .total_cmp(&b.price_per_hour)
            .then_with(|| a.name.cmp(&b.name))
    });
    Some(PlannedClaim {
        requirements: reqs,
        instance_types: choices,
        ..claim.clone()
    })
}

#[cfg(test)]
#[path = "consolidation_tests.rs"]
mod tests;

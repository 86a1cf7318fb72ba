//! Disruption decisions, pure: which NodeClaims to remove (and what to launch in their place),
//! and why the others may not be touched. No kube client, no tokio, no clock: the controller
//! gathers a [`ClusterView`], passes `now`, and carries out the [`Command`]s.
//!
//! Karpenter v1's order: expiration (forceful, outside budgets), then the first of drift,
//! emptiness, multi-node and single-node consolidation that finds something. Only that method's
//! commands are returned: once they run the cluster has changed, and the next round decides on
//! fresh state.

pub mod budgets;
pub mod candidates;
pub mod consolidation;
pub mod drift;
pub mod emptiness;
pub mod expiration;
mod simulate;
pub mod time;
pub mod validation;
pub mod view;

#[cfg(test)]
mod testkit;

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::apis::nodepool::DisruptionReason;
use crate::scheduling::scheduler::PlannedClaim;

pub use budgets::{Budgets, allowed_disruptions};
pub use candidates::{Candidate, why_not_candidate};
pub use view::{ClusterView, PriceBook};

/// The claims to launch for an interrupted NodeClaim's pods (the cloud takes the node back, so
/// no budget or block applies: its pods must go somewhere). None when the claim is unknown.
pub fn replacements_for(
    view: &ClusterView,
    nodeclaim: &str,
    now: SystemTime,
) -> Option<Vec<PlannedClaim>> {
    let (candidates, _) = candidates::build(view, now);
    let c = candidates.iter().find(|c| c.name() == nodeclaim)?;
    Some(simulate::simulate(view, &[c], None).replacements)
}

/// Why a command disrupts its NodeClaims (the `reason` label of Karpenter's metrics and events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Empty,
    Underutilized,
    Drifted,
    Expired,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Empty => "Empty",
            Reason::Underutilized => "Underutilized",
            Reason::Drifted => "Drifted",
            Reason::Expired => "Expired",
        }
    }

    /// The budget reason limiting it; expiration is forceful and no budget names it.
    pub fn budget_reason(self) -> Option<DisruptionReason> {
        match self {
            Reason::Empty => Some(DisruptionReason::Empty),
            Reason::Underutilized => Some(DisruptionReason::Underutilized),
            Reason::Drifted => Some(DisruptionReason::Drifted),
            Reason::Expired => None,
        }
    }
}

/// One decision: delete `candidates` (NodeClaim names) once `replacements` are up.
#[derive(Debug, Clone)]
pub struct Command {
    pub reason: Reason,
    pub candidates: Vec<String>,
    pub replacements: Vec<PlannedClaim>,
}

impl Command {
    /// `delete` or `replace`, as Karpenter's `decision` metric label has it.
    pub fn decision(&self) -> &'static str {
        if self.replacements.is_empty() {
            "delete"
        } else {
            "replace"
        }
    }

    /// Karpenter's `consolidation_type` label: `empty`, `single` or `multi` for consolidation,
    /// empty for the other reasons.
    pub fn consolidation_type(&self) -> &'static str {
        match self.reason {
            Reason::Empty => "empty",
            Reason::Underutilized if self.candidates.len() > 1 => "multi",
            Reason::Underutilized => "single",
            Reason::Drifted | Reason::Expired => "",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Feature gate `SpotToSpotConsolidation` (off by default, as in Karpenter).
    pub spot_to_spot_consolidation: bool,
}

/// Event reason for a candidate that may not be disrupted at all.
pub const EVENT_DISRUPTION_BLOCKED: &str = "DisruptionBlocked";
/// Event reason for a candidate consolidation looked at and could not act on.
pub const EVENT_UNCONSOLIDATABLE: &str = "Unconsolidatable";

/// A NodeClaim left alone, with the words for an Event on it and its Node.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocked {
    pub nodeclaim: String,
    pub node: Option<String>,
    /// [`EVENT_DISRUPTION_BLOCKED`] or [`EVENT_UNCONSOLIDATABLE`].
    pub event_reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub commands: Vec<Command>,
    pub blocked: Vec<Blocked>,
    /// Nodes each graceful method could act on now, budgets aside
    /// (`karpenter_voluntary_disruption_eligible_nodes`).
    pub eligible: BTreeMap<Reason, usize>,
    /// Per (NodePool, reason): how many nodes the budgets allow to disrupt now, at most the pool's
    /// node count (`karpenter_nodepools_allowed_disruptions`).
    pub allowed: Vec<(String, Reason, usize)>,
}

/// Everything disruption would do now, in Karpenter's order (see the module documentation).
pub fn decide(view: &ClusterView, now: SystemTime, opts: &Options) -> Decision {
    let (all, mut blocked) = candidates::build(view, now);
    let mut commands = expiration::expired(view, &all, now);
    let expiring: BTreeSet<&str> = commands
        .iter()
        .flat_map(|c| c.candidates.iter().map(String::as_str))
        .collect();
    let mut budgets = Budgets::new(view, &all, &expiring, now);
    let usable: Vec<&Candidate> = all
        .iter()
        .filter(|c| c.block.is_none() && !expiring.contains(c.name()))
        .collect();
    let graceful_reasons = [Reason::Drifted, Reason::Empty, Reason::Underutilized];
    let allowed = budgets
        .pools()
        .flat_map(|(pool, total)| {
            let budgets = &budgets;
            graceful_reasons
                .iter()
                .map(move |&r| (pool.to_string(), r, budgets.left(pool, r).min(total)))
        })
        .collect();
    let mut eligible = BTreeMap::from([
        (Reason::Drifted, drift::eligible(&usable).len()),
        (Reason::Empty, emptiness::eligible(&usable, now).len()),
    ]);
    let consolidatable = consolidation::eligible(&usable, now, &mut blocked);
    eligible.insert(Reason::Underutilized, consolidatable.len());

    let graceful = drift::drifted(view, &usable, &mut budgets, &mut blocked)
        .or_else(|| emptiness::empty(&usable, now, &mut budgets, &mut blocked))
        .or_else(|| {
            consolidation::multi_node(view, &consolidatable, &budgets, opts).or_else(|| {
                consolidation::single_node(view, &consolidatable, &budgets, opts, &mut blocked)
            })
        });
    commands.extend(graceful);
    Decision {
        commands,
        blocked,
        eligible,
        allowed,
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

//! Emptiness: nodes with nothing but DaemonSet and static pods, `consolidateAfter` after their
//! pods last changed, are deleted together under the `Empty` budget, whatever the consolidation
//! policy (`consolidateAfter: Never` keeps them).

use std::time::SystemTime;

use super::budgets::Budgets;
use super::candidates::{Candidate, by_cost};
use super::{Blocked, Command, Reason};

/// The candidates emptiness may take, budgets aside.
pub fn eligible<'a>(usable: &[&'a Candidate], now: SystemTime) -> Vec<&'a Candidate> {
    usable
        .iter()
        .copied()
        .filter(|c| c.is_empty() && c.pod_block.is_none() && c.is_consolidatable(now))
        .collect()
}

pub fn empty(
    usable: &[&Candidate],
    now: SystemTime,
    budgets: &mut Budgets,
    blocked: &mut Vec<Blocked>,
) -> Option<Command> {
    let taken = budgets.take(by_cost(&eligible(usable, now)), Reason::Empty, blocked);
    (!taken.is_empty()).then(|| Command {
        reason: Reason::Empty,
        candidates: taken.iter().map(|c| c.name().to_string()).collect(),
        replacements: Vec::new(),
    })
}

#[cfg(test)]
#[path = "emptiness_tests.rs"]
mod tests;

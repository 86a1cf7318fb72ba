//! Disruption budgets (Karpenter v1): per NodePool and reason, the most restrictive active budget
//! wins; `nodes` is a count or a percent of the pool's nodes (rounded up); a budget with a
//! `schedule` is active for `duration` after each firing (5-field cron, UTC); a budget that
//! cannot be read allows nothing; nodes being disrupted already count against it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use croner::parser::CronParser;
use k8s_openapi::jiff::civil::DateTime;
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::apis::common::parse_duration;
use crate::apis::nodeclaim::conditions;
use crate::apis::{Budget, NodePool};
use crate::webhook::budgets::check_schedule;

use super::candidates::Candidate;
use super::view::ClusterView;
use super::{Blocked, EVENT_DISRUPTION_BLOCKED, Reason};

/// How many more nodes of `pool` may be disrupted for `reason` now.
pub fn allowed_disruptions(
    pool: &NodePool,
    total_nodes: usize,
    disrupting_now: usize,
    now: SystemTime,
    reason: Reason,
) -> usize {
    allowance(pool, total_nodes, disrupting_now, now, reason).allowed
}

/// The allowance and, when a budget limits it, which one (for the Event).
#[derive(Debug, Clone, PartialEq)]
pub struct Allowance {
    pub allowed: usize,
    pub limiting: Option<String>,
}

pub fn allowance(
    pool: &NodePool,
    total_nodes: usize,
    disrupting_now: usize,
    now: SystemTime,
    reason: Reason,
) -> Allowance {
    let Some(reason) = reason.budget_reason() else {
        return Allowance {
            allowed: usize::MAX,
            limiting: None,
        };
    };
    let budgets = pool.budgets();
    let mut best: Option<(usize, &Budget)> = None;
    for b in &budgets {
        if b.reasons.as_ref().is_some_and(|r| !r.contains(&reason)) {
            continue;
        }
        let n = match is_active(b, now) {
            Ok(false) => continue,
            Ok(true) => scaled_nodes(&b.nodes, total_nodes).unwrap_or(0),
            // Fail closed: a budget we cannot read might be the freeze its author meant.
            Err(_) => 0,
        };
        if best.is_none_or(|(m, _)| n < m) {
            best = Some((n, b));
        }
    }
    // No budget in force (all scheduled ones outside their windows): nothing limits, as in
    // Karpenter, where the minimum starts at MaxInt32.
    let Some((n, b)) = best else {
        return Allowance {
            allowed: usize::MAX,
            limiting: None,
        };
    };
    let allowed = n.saturating_sub(disrupting_now);
    let schedule = b
        .schedule
        .as_deref()
        .map(|s| format!(" (schedule {s})"))
        .unwrap_or_default();
    Allowance {
        allowed,
        limiting: Some(format!(
            "budget {allowed} of {total_nodes} for {} (nodes {}{schedule}, {disrupting_now} disrupting)",
            reason.as_str(),
            b.nodes
        )),
    }
}

/// `nodes` as a count, or a percent of `total` rounded up (Karpenter's
/// `GetScaledValueFromIntOrPercent(.., roundUp=true)`). The webhook keeps percents within 100%,
/// but a pool stored without it may say anything: the product is taken in u128 (a percent near
/// `usize::MAX` overflowed, found by `capstan fuzz budget`).
fn scaled_nodes(nodes: &str, total: usize) -> Option<usize> {
    match nodes.strip_suffix('%') {
        Some(p) => {
            let p: usize = p.parse().ok()?;
            let scaled = (p as u128 * total as u128).div_ceil(100);
            Some(usize::try_from(scaled).unwrap_or(usize::MAX))
        }
        None => nodes.parse().ok(),
    }
}

/// Whether `b` is in force at `now`: always without a schedule; with one, when a firing fell in
/// `(now - duration, now]` (Karpenter: `!schedule.Next(now - duration).After(now)`).
pub fn is_active(b: &Budget, now: SystemTime) -> Result<bool, String> {
    let (schedule, duration) = match (&b.schedule, &b.duration) {
        (None, None) => return Ok(true),
        (Some(s), Some(d)) => (s, d),
        _ => return Err("schedule and duration must be set together".into()),
    };
    let duration =
        parse_duration(duration).ok_or_else(|| format!("invalid duration {duration:?}"))?;
    let cron = parse_schedule(schedule)?;
    let now = Timestamp::try_from(now).map_err(|e| e.to_string())?;
    let duration = SignedDuration::try_from(duration).map_err(|e| e.to_string())?;
    let from = now.checked_sub(duration).map_err(|e| e.to_string())?;
    let civil = |t: Timestamp| t.to_zoned(TimeZone::UTC).datetime();
    let next: DateTime = cron
        .find_next_occurrence(&civil(from), false)
        .map_err(|e| e.to_string())?;
    Ok(next <= civil(now))
}

/// A schedule as Kubernetes reads it (the webhook's rules), macros spelled out.
fn parse_schedule(s: &str) -> Result<croner::Cron, String> {
    check_schedule(s)?;
    let pattern = match s.trim().to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
        "@monthly" => "0 0 1 * *".to_string(),
        "@weekly" => "0 0 * * 0".to_string(),
        "@daily" | "@midnight" => "0 0 * * *".to_string(),
        "@hourly" => "0 * * * *".to_string(),
        _ => s.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    CronParser::new()
        .parse(&pattern)
        .map_err(|e| format!("invalid schedule {s:?}: {e}"))
}

/// What is left of every pool's budgets during one decision: counted once from the cluster,
/// then spent by the commands taken.
pub struct Budgets<'a> {
    pools: BTreeMap<&'a str, (&'a NodePool, usize, usize)>,
    spent: BTreeMap<(String, Reason), usize>,
    now: SystemTime,
}

impl<'a> Budgets<'a> {
    /// Counts, per pool, its initialized nodes and those being disrupted (deleting, tainted
    /// `karpenter.sh/disrupted`, not Ready, or about to expire), as Karpenter's
    /// `BuildDisruptionBudgetMapping` does.
    pub fn new(
        view: &'a ClusterView,
        candidates: &[Candidate],
        expiring: &BTreeSet<&str>,
        now: SystemTime,
    ) -> Self {
        let mut pools: BTreeMap<&'a str, (&'a NodePool, usize, usize)> = view
            .nodepools
            .iter()
            .filter_map(|p| p.metadata.name.as_deref().map(|n| (n, (p.as_ref(), 0, 0))))
            .collect();
        for c in candidates {
            let Some(node) = &c.node else { continue };
            if !c.claim.is_condition_true(conditions::INITIALIZED) {
                continue;
            }
            let Some(entry) = pools.get_mut(c.pool_name()) else {
                continue;
            };
            entry.1 += 1;
            if c.deleting || c.tainted_disrupted || !node_ready(node) || expiring.contains(c.name())
            {
                entry.2 += 1;
            }
        }
        Budgets {
            pools,
            spent: BTreeMap::new(),
            now,
        }
    }

    pub fn allowance(&self, pool: &str, reason: Reason) -> Allowance {
        let Some((p, total, disrupting)) = self.pools.get(pool) else {
            return Allowance {
                allowed: 0,
                limiting: Some(format!("nodepool {pool} not found")),
            };
        };
        let spent = self
            .spent
            .get(&(pool.to_string(), reason))
            .copied()
            .unwrap_or(0);
        let mut a = allowance(p, *total, disrupting + spent, self.now, reason);
        if a.allowed == usize::MAX {
            a.limiting = None;
        }
        a
    }

    /// Every NodePool with its count of initialized nodes.
    pub fn pools(&self) -> impl Iterator<Item = (&'a str, usize)> + '_ {
        self.pools
            .iter()
            .map(|(name, (_, total, _))| (*name, *total))
    }

    pub fn left(&self, pool: &str, reason: Reason) -> usize {
        self.allowance(pool, reason).allowed
    }

    pub fn spend(&mut self, pool: &str, reason: Reason) {
        *self.spent.entry((pool.to_string(), reason)).or_default() += 1;
    }

    /// Takes `candidates` in order while their pools' budgets for `reason` last; the others get
    /// a blocked entry naming the budget.
    pub fn take<'c>(
        &mut self,
        candidates: impl IntoIterator<Item = &'c Candidate>,
        reason: Reason,
        blocked: &mut Vec<Blocked>,
    ) -> Vec<&'c Candidate> {
        let mut out = Vec::new();
        for c in candidates {
            let a = self.allowance(c.pool_name(), reason);
            if a.allowed > 0 {
                self.spend(c.pool_name(), reason);
                out.push(c);
            } else {
                blocked.push(
                    c.blocked(
                        EVENT_DISRUPTION_BLOCKED,
                        a.limiting
                            .unwrap_or_else(|| "no disruption budget left".into()),
                    ),
                );
            }
        }
        out
    }
}

fn node_ready(node: &k8s_openapi::api::core::v1::Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

#[cfg(test)]
#[path = "budgets_tests.rs"]
mod tests;

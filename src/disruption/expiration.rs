//! Expiration: a NodeClaim older than its `expireAfter` goes, whatever the budgets say
//! (forceful, as in Karpenter v1; termination still drains politely within
//! `terminationGracePeriod`). Replacements are the simulation's best effort for its pods.

use std::time::SystemTime;

use super::candidates::{Candidate, created, expire_after};
use super::simulate::simulate;
use super::view::ClusterView;
use super::{Command, Reason};

/// When the claim expires; None when it never does.
pub fn expires_at(c: &Candidate) -> Option<SystemTime> {
    let after = expire_after(&c.claim, c.nodepool.as_deref())?;
    created(&c.claim)?.checked_add(after)
}

/// One command per expired NodeClaim that is not already going away.
pub fn expired(view: &ClusterView, candidates: &[Candidate], now: SystemTime) -> Vec<Command> {
    candidates
        .iter()
        .filter(|c| !c.deleting && !c.tainted_disrupted)
        .filter(|c| expires_at(c).is_some_and(|t| t <= now))
        .map(|c| Command {
            reason: Reason::Expired,
            candidates: vec![c.name().to_string()],
            replacements: if c.is_empty() {
                Vec::new()
            } else {
                simulate(view, &[c]).replacements
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disruption::testkit::*;
    use crate::disruption::{Options, decide};

    #[test]
    fn expires_after_expire_after_and_ignores_budgets() {
        let mut cl = Cluster::new();
        cl.pool("default", |p| {
            p.spec.template.spec.expire_after = Some("24h".into());
            p.spec.disruption = Some(crate::apis::Disruption {
                budgets: Some(vec![budget("0", None, None, None)]),
                ..Default::default()
            });
        });
        cl.node("a", "default", LARGE, OD);
        cl.pod("a", "web-1", "1", "1Gi");
        let before = cl.view();
        let young = decide(&before, at(23 * 3600), &Options::default());
        assert!(young.commands.is_empty(), "{:?}", young.commands);
        let old = decide(&before, at(24 * 3600), &Options::default());
        assert_eq!(old.commands.len(), 1);
        let cmd = &old.commands[0];
        assert_eq!(cmd.reason, Reason::Expired);
        assert_eq!(cmd.candidates, vec!["claim-a"]);
        // Its pod needs a home: a replacement is planned.
        assert_eq!(cmd.replacements.len(), 1);
    }

    #[test]
    fn never_does_not_expire() {
        let mut cl = Cluster::new();
        cl.pool("default", |p| {
            p.spec.template.spec.expire_after = Some("Never".into());
        });
        cl.node("a", "default", LARGE, OD);
        cl.pod("a", "web-1", "1", "1Gi");
        let d = decide(&cl.view(), at(10_000 * 3600), &Options::default());
        assert!(d.commands.iter().all(|c| c.reason != Reason::Expired));
    }
}

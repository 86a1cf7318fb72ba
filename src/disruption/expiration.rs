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

/// One command for every expired NodeClaim not already going away. Their pods are simulated
/// together: the room left on other nodes is counted once (one simulation per claim would offer
/// the same free space to each, and cost a simulation of the whole cluster per claim).
pub fn expired(view: &ClusterView, candidates: &[Candidate], now: SystemTime) -> Vec<Command> {
    let expired: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !c.deleting && !c.tainted_disrupted)
        .filter(|c| expires_at(c).is_some_and(|t| t <= now))
        .collect();
    if expired.is_empty() {
        return Vec::new();
    }
    let replacements = if expired.iter().all(|c| c.is_empty()) {
        Vec::new()
    } else {
        simulate(view, &expired, None).replacements
    };
    vec![Command {
        reason: Reason::Expired,
        candidates: expired.iter().map(|c| c.name().to_string()).collect(),
        replacements,
    }]
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
    fn expired_claims_go_together_and_share_the_room_left() {
        let mut cl = Cluster::new();
        cl.pool("default", |p| {
            p.spec.template.spec.expire_after = Some("24h".into());
        });
        // a and b expire; c is young (made later) with room for one of their pods, not both.
        cl.node("a", "default", LARGE, OD);
        cl.node("b", "default", LARGE, OD);
        cl.node("c", "default", LARGE, OD);
        cl.claim_mut("c").metadata.creation_timestamp = cl
            .claim_mut("a")
            .metadata
            .creation_timestamp
            .clone()
            .map(|t| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    t.0 + k8s_openapi::jiff::SignedDuration::from_hours(12),
                )
            });
        cl.pod("a", "web-a", "3", "1Gi");
        cl.pod("b", "web-b", "3", "1Gi");
        let d = decide(&cl.view(), at(24 * 3600), &Options::default());
        let expired: Vec<_> = d
            .commands
            .iter()
            .filter(|c| c.reason == Reason::Expired)
            .collect();
        assert_eq!(expired.len(), 1, "{:?}", d.commands);
        assert_eq!(expired[0].candidates, vec!["claim-a", "claim-b"]);
        // c takes one 3-CPU pod; the other needs a new node (counted once, not offered c twice).
        assert_eq!(
            expired[0].replacements.len(),
            1,
            "{:?}",
            expired[0].replacements
        );
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

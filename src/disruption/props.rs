//! Property tests over random small clusters: whatever `decide` returns never takes more
//! NodeClaims of a pool than its budget allows for the reason, never takes the node of a running
//! `do-not-disrupt` pod, and never takes a node whose pods a PodDisruptionBudget protects
//! (expiration, forceful by design, is exempt from the budget rule only).

use std::collections::BTreeSet;

use proptest::prelude::*;

use crate::apis::Disruption;
use crate::apis::labels::DO_NOT_DISRUPT;
use crate::disruption::budgets::allowed_disruptions;
use crate::disruption::testkit::*;
use crate::disruption::{Options, Reason, decide};

#[derive(Debug, Clone)]
struct PodSpec {
    cpu: &'static str,
    do_not_disrupt: bool,
    protected: bool,
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        prop::sample::select(vec!["100m", "250m", "500m", "1", "1500m"]),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(cpu, do_not_disrupt, protected)| PodSpec {
            cpu,
            do_not_disrupt,
            protected,
        })
}

fn node_spec() -> impl Strategy<Value = (&'static str, Vec<PodSpec>)> {
    (
        prop::sample::select(vec![SMALL, LARGE, HUGE]),
        prop::collection::vec(pod_spec(), 0..4),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn decisions_respect_budgets_do_not_disrupt_and_pdbs(
        nodes in prop::collection::vec(node_spec(), 1..8),
        budget in prop::sample::select(vec!["0", "1", "2", "20%", "100%"]),
        policy in prop::sample::select(vec!["WhenEmpty", "WhenEmptyOrUnderutilized"]),
    ) {
        let mut cl = Cluster::new();
        cl.pool("default", |p| {
            p.spec.disruption = Some(Disruption {
                consolidation_policy: Some(policy.into()),
                consolidate_after: Some("0s".into()),
                budgets: Some(vec![budget_of(budget)]),
            });
        });
        let mut held = BTreeSet::new();
        for (i, (ty, pods)) in nodes.iter().enumerate() {
            let n = format!("n{i}");
            cl.node(&n, "default", ty, OD);
            for (j, p) in pods.iter().enumerate() {
                let name = format!("p{i}-{j}");
                let pod = cl.pod(&n, &name, p.cpu, "256Mi");
                if p.do_not_disrupt {
                    annotate(&mut pod.metadata, DO_NOT_DISRUPT, "true");
                    held.insert(format!("claim-{n}"));
                }
                if p.protected {
                    held.insert(format!("claim-{n}"));
                }
            }
            for (j, p) in pods.iter().enumerate() {
                if p.protected {
                    cl.pdb(&format!("pdb-{i}-{j}"), &format!("p{i}-{j}"), 0);
                }
            }
        }
        let now = at(3600);
        let view = cl.view();
        let decision = decide(&view, now, &Options::default());
        let pool = &cl.pools[0];
        // Not vacuous: with room in the budget an empty node is always removed.
        if budget == "100%" && nodes.iter().any(|(_, pods)| pods.is_empty()) {
            prop_assert!(!decision.commands.is_empty(), "an empty node stayed: {:?}", decision.blocked);
        }
        for cmd in &decision.commands {
            for c in &cmd.candidates {
                prop_assert!(!held.contains(c), "{c} holds a do-not-disrupt or PDB-protected pod: {cmd:?}");
            }
            if cmd.reason != Reason::Expired {
                let allowed = allowed_disruptions(pool, nodes.len(), 0, now, cmd.reason);
                prop_assert!(
                    cmd.candidates.len() <= allowed,
                    "{} candidates for {:?} under budget {budget} ({allowed} allowed)",
                    cmd.candidates.len(), cmd.reason
                );
            }
        }
    }
}

fn budget_of(nodes: &str) -> crate::apis::Budget {
    budget(nodes, None, None, None)
}

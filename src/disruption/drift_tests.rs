use super::*;
use crate::apis::labels::NODEPOOL_HASH;
use crate::disruption::testkit::*;
use crate::disruption::{Options, decide};

fn hashed(cl: &mut Cluster, pool_hash: &str, pool_version: &str) {
    let (h, v) = (pool_hash.to_string(), pool_version.to_string());
    cl.pool("default", move |p| {
        annotate(&mut p.metadata, NODEPOOL_HASH, &h);
        annotate(&mut p.metadata, NODEPOOL_HASH_VERSION, &v);
        p.spec.disruption = Some(crate::apis::Disruption {
            consolidation_policy: Some("WhenEmpty".into()),
            ..Default::default()
        });
    });
}

fn claim_hash(cl: &mut Cluster, node: &str, hash: &str, version: &str) {
    let m = &mut cl.claim_mut(node).metadata;
    annotate(m, NODEPOOL_HASH, hash);
    annotate(m, NODEPOOL_HASH_VERSION, version);
}

#[test]
fn hash_comparison() {
    let mut cl = Cluster::new();
    hashed(&mut cl, "new", "v3");
    cl.node("a", "default", LARGE, OD);
    let pool = cl.pools[0].clone();
    claim_hash(&mut cl, "a", "new", "v3");
    assert!(!is_drifted(&cl.claims[0], &pool));
    claim_hash(&mut cl, "a", "old", "v3");
    assert!(is_drifted(&cl.claims[0], &pool));
    // Another hash version: not comparable.
    claim_hash(&mut cl, "a", "old", "v2");
    assert!(!is_drifted(&cl.claims[0], &pool));
    // The condition says so by itself.
    cl.claims[0]
        .status
        .as_mut()
        .expect("status")
        .conditions
        .push(crate::apis::Condition {
            type_: conditions::DRIFTED.into(),
            status: "True".into(),
            ..Default::default()
        });
    assert!(is_drifted(&cl.claims[0], &pool));
}

#[test]
fn drifted_node_is_replaced() {
    let mut cl = Cluster::new();
    hashed(&mut cl, "new", "v3");
    cl.node("a", "default", LARGE, OD);
    cl.node("b", "default", LARGE, OD);
    claim_hash(&mut cl, "a", "old", "v3");
    claim_hash(&mut cl, "b", "new", "v3");
    cl.pod("a", "web-1", "3", "1Gi");
    cl.pod("b", "web-2", "3", "1Gi");
    let d = decide(&cl.view(), t0(), &Options::default());
    assert_eq!(d.commands.len(), 1, "{:?}", d.blocked);
    let cmd = &d.commands[0];
    assert_eq!(cmd.reason, Reason::Drifted);
    assert_eq!(cmd.candidates, vec!["claim-a"]);
    // web-1 does not fit on b: a new node is launched for it.
    assert_eq!(cmd.replacements.len(), 1);
    assert_eq!(cmd.replacements[0].pods, vec!["default/web-1".to_string()]);
}

#[test]
fn drift_respects_its_budget_and_blocking_pods() {
    let mut cl = Cluster::new();
    hashed(&mut cl, "new", "v3");
    cl.node("a", "default", LARGE, OD);
    claim_hash(&mut cl, "a", "old", "v3");
    let p = cl.pod("a", "batch-1", "1", "1Gi");
    annotate(&mut p.metadata, crate::apis::labels::DO_NOT_DISRUPT, "true");
    assert!(
        decide(&cl.view(), t0(), &Options::default())
            .commands
            .is_empty()
    );
    // With a terminationGracePeriod, drift goes on: the pod gets until then.
    cl.claim_mut("a").spec.termination_grace_period = Some("1h".into());
    let d = decide(&cl.view(), t0(), &Options::default());
    assert_eq!(d.commands[0].reason, Reason::Drifted);

    cl.pools[0].spec.disruption.as_mut().expect("d").budgets = Some(vec![budget(
        "0",
        None,
        None,
        Some(vec![crate::apis::nodepool::DisruptionReason::Drifted]),
    )]);
    let d = decide(&cl.view(), t0(), &Options::default());
    assert!(d.commands.is_empty());
}

use crate::apis::Disruption;
use crate::apis::nodepool::DisruptionReason;
use crate::disruption::testkit::*;
use crate::disruption::{EVENT_DISRUPTION_BLOCKED, Options, Reason, decide};

fn cluster(policy: &str, after: &str) -> Cluster {
    let mut cl = Cluster::new();
    let (policy, after) = (policy.to_string(), after.to_string());
    cl.pool("default", move |p| {
        p.spec.disruption = Some(Disruption {
            consolidation_policy: Some(policy),
            consolidate_after: Some(after),
            budgets: None,
        });
    });
    cl.node("a", "default", LARGE, OD);
    cl.node("b", "default", LARGE, OD);
    // Too big for anything cheaper: b stays whatever consolidation thinks.
    cl.pod("b", "web-1", "3", "1Gi");
    cl
}

#[test]
fn empty_node_goes_after_consolidate_after_not_before() {
    for policy in ["WhenEmpty", "WhenEmptyOrUnderutilized"] {
        let cl = cluster(policy, "10m");
        let view = cl.view();
        let early = decide(&view, at(9 * 60), &Options::default());
        assert!(early.commands.is_empty(), "{policy}: {:?}", early.commands);
        let later = decide(&view, at(10 * 60), &Options::default());
        assert_eq!(later.commands.len(), 1, "{policy}");
        assert_eq!(later.commands[0].reason, Reason::Empty);
        assert_eq!(later.commands[0].candidates, vec!["claim-a"]);
        assert!(later.commands[0].replacements.is_empty());
    }
}

#[test]
fn consolidate_after_counts_from_the_last_pod_event() {
    let mut cl = cluster("WhenEmpty", "10m");
    set_last_pod_event(cl.claim_mut("a"), at(30 * 60));
    let view = cl.view();
    assert!(
        decide(&view, at(39 * 60), &Options::default())
            .commands
            .is_empty()
    );
    assert_eq!(
        decide(&view, at(40 * 60), &Options::default())
            .commands
            .len(),
        1
    );
}

#[test]
fn never_keeps_empty_nodes() {
    let cl = cluster("WhenEmpty", "Never");
    let d = decide(&cl.view(), at(1_000_000), &Options::default());
    assert!(d.commands.is_empty(), "{:?}", d.commands);
}

#[test]
fn daemonset_pods_do_not_make_a_node_busy() {
    let mut cl = cluster("WhenEmpty", "0s");
    let ds = cl.pod("a", "ds-a", "100m", "100Mi");
    ds.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            kind: "DaemonSet".into(),
            name: "ds".into(),
            controller: Some(true),
            api_version: "apps/v1".into(),
            uid: "u".into(),
            ..Default::default()
        },
    ]);
    let d = decide(&cl.view(), t0(), &Options::default());
    assert_eq!(d.commands[0].candidates, vec!["claim-a"]);
}

#[test]
fn budgets_limit_and_filter_by_reason() {
    let mut cl = Cluster::new();
    let set = |nodes: &'static str, reasons: Vec<DisruptionReason>| {
        move |p: &mut crate::apis::NodePool| {
            p.spec.disruption = Some(Disruption {
                consolidate_after: Some("0s".into()),
                budgets: Some(vec![budget(nodes, None, None, Some(reasons))]),
                ..Default::default()
            });
        }
    };
    cl.pool("default", set("0", vec![DisruptionReason::Empty]));
    for n in ["a", "b", "c"] {
        cl.node(n, "default", LARGE, OD);
    }
    let d = decide(&cl.view(), t0(), &Options::default());
    assert!(d.commands.is_empty(), "{:?}", d.commands);
    assert_eq!(
        d.blocked
            .iter()
            .filter(|b| b.event_reason == EVENT_DISRUPTION_BLOCKED
                && b.message.starts_with("budget 0 of 3"))
            .count(),
        3,
        "{:?}",
        d.blocked
    );

    cl.pools.clear();
    cl.pool("default", set("1", vec![DisruptionReason::Empty]));
    let d = decide(&cl.view(), t0(), &Options::default());
    assert_eq!(d.commands.len(), 1);
    assert_eq!(d.commands[0].candidates.len(), 1);

    // A budget for another reason leaves emptiness unlimited.
    cl.pools.clear();
    cl.pool("default", set("0", vec![DisruptionReason::Drifted]));
    let d = decide(&cl.view(), t0(), &Options::default());
    assert_eq!(d.commands[0].candidates.len(), 3);
}

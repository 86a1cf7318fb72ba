use crate::apis::Disruption;
use crate::disruption::testkit::*;
use crate::disruption::{Decision, EVENT_UNCONSOLIDATABLE, Options, Reason, decide};

fn pool(cl: &mut Cluster, capacity_types: &[&str]) {
    let cts: Vec<String> = capacity_types.iter().map(|s| s.to_string()).collect();
    cl.pool("default", move |p| {
        p.spec.template.spec.requirements[0].values = Some(cts);
        p.spec.disruption = Some(Disruption {
            consolidation_policy: Some("WhenEmptyOrUnderutilized".into()),
            consolidate_after: Some("0s".into()),
            budgets: None,
        });
    });
}

fn run(cl: &Cluster, opts: &Options) -> Decision {
    decide(&cl.view(), t0(), opts)
}

fn unconsolidatable<'a>(d: &'a Decision, claim: &str) -> Vec<&'a str> {
    d.blocked
        .iter()
        .filter(|b| b.nodeclaim == claim && b.event_reason == EVENT_UNCONSOLIDATABLE)
        .map(|b| b.message.as_str())
        .collect()
}

#[test]
fn half_empty_nodes_merge_into_one() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[OD]);
    cl.node("a", "default", LARGE, OD);
    cl.node("b", "default", LARGE, OD);
    cl.pod("a", "web-1", "1500m", "1Gi");
    cl.pod("b", "web-2", "1500m", "1Gi");
    let d = run(&cl, &Options::default());
    assert_eq!(d.commands.len(), 1, "{:?}", d.blocked);
    let cmd = &d.commands[0];
    assert_eq!(cmd.reason, Reason::Underutilized);
    assert_eq!(cmd.candidates, vec!["claim-a"]);
    assert!(cmd.replacements.is_empty());
}

#[test]
fn multi_node_deletes_several_at_once() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[OD]);
    // Ten nodes' budget (10%) would allow one: raise it.
    cl.pools[0].spec.disruption.as_mut().expect("d").budgets =
        Some(vec![budget("100%", None, None, None)]);
    for n in ["a", "b", "c"] {
        cl.node(n, "default", LARGE, OD);
        cl.pod(n, &format!("web-{n}"), "1", "1Gi");
    }
    let d = run(&cl, &Options::default());
    assert_eq!(d.commands.len(), 1);
    let cmd = &d.commands[0];
    assert_eq!(cmd.candidates, vec!["claim-a", "claim-b"]);
    assert!(cmd.replacements.is_empty());
}

#[test]
fn multi_node_replaces_with_one_cheaper_node() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[OD]);
    cl.pools[0].spec.disruption.as_mut().expect("d").budgets =
        Some(vec![budget("100%", None, None, None)]);
    // Three huge nodes with a 1-CPU pod each: one large node (4 CPUs) holds all three.
    for n in ["a", "b", "c"] {
        cl.node(n, "default", HUGE, OD);
        cl.pod(n, &format!("web-{n}"), "1", "1Gi");
    }
    let d = run(&cl, &Options::default());
    let cmd = &d.commands[0];
    // Two could go onto the third, but all three for one cheaper node saves more: the binary
    // search keeps the largest set that works.
    assert_eq!(cmd.candidates.len(), 3, "{cmd:?}");
    assert_eq!(cmd.replacements.len(), 1);
    assert_eq!(cmd.replacements[0].cheapest().name, LARGE);
    assert!(
        cmd.replacements[0]
            .instance_types
            .iter()
            .all(|t| t.price_per_hour < 2.4)
    );
}

#[test]
fn single_node_replaced_by_a_cheaper_smaller_type() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[OD]);
    cl.node("a", "default", LARGE, OD);
    cl.pod("a", "web-1", "1", "1Gi");
    let d = run(&cl, &Options::default());
    assert_eq!(d.commands.len(), 1, "{:?}", d.blocked);
    let cmd = &d.commands[0];
    assert_eq!(cmd.candidates, vec!["claim-a"]);
    assert_eq!(cmd.replacements.len(), 1);
    let r = &cmd.replacements[0];
    assert_eq!(r.cheapest().name, SMALL);
    assert_eq!(r.cheapest().capacity_type, OD);
    assert!(r.instance_types.iter().all(|t| t.price_per_hour < 0.20));
}

#[test]
fn no_replacement_unless_strictly_cheaper() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[OD]);
    cl.node("a", "default", SMALL, OD);
    cl.pod("a", "web-1", "1", "1Gi");
    let d = run(&cl, &Options::default());
    assert!(d.commands.is_empty(), "{:?}", d.commands);
    assert_eq!(
        unconsolidatable(&d, "claim-a"),
        vec!["can't replace with a lower-priced node"]
    );
}

#[test]
fn pods_that_fit_nowhere_keep_their_node() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[OD]);
    cl.pools[0].spec.template.spec.requirements.push(
        crate::apis::NodeSelectorRequirementWithMinValues {
            key: crate::apis::labels::INSTANCE_TYPE.into(),
            operator: "In".into(),
            values: Some(vec![LARGE.into()]),
            min_values: None,
        },
    );
    cl.node("a", "default", LARGE, OD);
    // Needs a node to itself, and the pool can only make another large one.
    cl.pod("a", "web-1", "3", "1Gi");
    cl.pod("a", "web-2", "500m", "1Gi");
    let d = run(&cl, &Options::default());
    assert!(d.commands.is_empty(), "{:?}", d.commands);
    let why = unconsolidatable(&d, "claim-a");
    assert_eq!(why, vec!["can't replace with a lower-priced node"]);
}

#[test]
fn spot_is_never_replaced_by_on_demand() {
    let mut cl = Cluster::new();
    // The pool launches on-demand only now; a spot node from before is still running.
    pool(&mut cl, &[OD]);
    cl.node("a", "default", HUGE, SPOT); // $0.32 spot; a small on-demand would be $0.10
    cl.pod("a", "web-1", "1", "1Gi");
    let d = run(&cl, &Options::default());
    assert!(d.commands.is_empty(), "{:?}", d.commands);
    assert_eq!(
        unconsolidatable(&d, "claim-a"),
        vec!["can't replace a spot node with an on-demand node"]
    );
}

#[test]
fn spot_to_spot_needs_the_feature_gate_and_fifteen_cheaper_types() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[SPOT, OD]);
    cl.node("a", "default", HUGE, SPOT);
    cl.pod("a", "web-1", "1", "1Gi");
    let d = run(&cl, &Options::default());
    assert!(d.commands.is_empty());
    assert!(unconsolidatable(&d, "claim-a")[0].contains("SpotToSpotConsolidation is disabled"));
    let gate = Options {
        spot_to_spot_consolidation: true,
    };
    let d = run(&cl, &gate);
    assert!(d.commands.is_empty());
    assert!(
        unconsolidatable(&d, "claim-a")[0].contains("2 cheaper instance types, 15 needed"),
        "{:?}",
        d.blocked
    );
}

#[test]
fn on_demand_may_go_to_spot_and_then_stays_spot() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[SPOT, OD]);
    cl.node("a", "default", LARGE, OD);
    cl.pod("a", "web-1", "1", "1Gi");
    let d = run(&cl, &Options::default());
    let r = &d.commands[0].replacements[0];
    assert!(r.instance_types.iter().all(|t| t.capacity_type == SPOT));
    let ct = r
        .requirements
        .get(crate::apis::labels::CAPACITY_TYPE)
        .expect("capacity type");
    assert!(ct.has(SPOT) && !ct.has(OD));
}

#[test]
fn budget_zero_blocks_consolidation() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[OD]);
    cl.pools[0].spec.disruption.as_mut().expect("d").budgets =
        Some(vec![budget("0", None, None, None)]);
    cl.node("a", "default", LARGE, OD);
    cl.pod("a", "web-1", "1", "1Gi");
    let d = run(&cl, &Options::default());
    assert!(d.commands.is_empty());
    assert!(
        d.blocked
            .iter()
            .any(|b| b.message.starts_with("budget 0 of 1"))
    );
}

#[test]
fn when_empty_policy_does_not_consolidate() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[OD]);
    cl.pools[0]
        .spec
        .disruption
        .as_mut()
        .expect("d")
        .consolidation_policy = Some("WhenEmpty".into());
    cl.node("a", "default", LARGE, OD);
    cl.pod("a", "web-1", "1", "1Gi");
    assert!(run(&cl, &Options::default()).commands.is_empty());
}

#[test]
fn do_not_disrupt_pod_keeps_its_node_but_not_the_others() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[OD]);
    cl.node("a", "default", LARGE, OD);
    cl.node("b", "default", LARGE, OD);
    let p = cl.pod("a", "batch-1", "500m", "1Gi");
    annotate(&mut p.metadata, crate::apis::labels::DO_NOT_DISRUPT, "true");
    cl.pod("b", "web-1", "500m", "1Gi");
    let d = run(&cl, &Options::default());
    assert!(
        d.commands
            .iter()
            .all(|c| !c.candidates.contains(&"claim-a".to_string()))
    );
    assert_eq!(d.commands[0].candidates, vec!["claim-b"]);
    assert!(
        d.blocked
            .iter()
            .any(|b| b.nodeclaim == "claim-a" && b.message.contains("batch-1"))
    );
}

#[test]
fn pdb_keeps_its_node() {
    let mut cl = Cluster::new();
    pool(&mut cl, &[OD]);
    cl.node("a", "default", LARGE, OD);
    cl.pod("a", "web-1", "500m", "1Gi");
    cl.pdb("web", "web-1", 0);
    let d = run(&cl, &Options::default());
    assert!(d.commands.is_empty(), "{:?}", d.commands);
    assert_eq!(
        d.blocked[0].message,
        "pdb default/web prevents pod evictions"
    );
}

use k8s_openapi::api::core::v1::Taint;

use crate::apis::Disruption;
use crate::apis::labels::{DISRUPTED_TAINT_KEY, DO_NOT_DISRUPT};
use crate::disruption::candidates;
use crate::disruption::testkit::*;
use crate::disruption::validation::{moved, needs_validation, validate};
use crate::disruption::{Command, Options, Reason, decide};

/// Two large nodes, a small pod on each: consolidation deletes one (or replaces one).
fn cluster() -> Cluster {
    let mut cl = Cluster::new();
    cl.pool("default", |p| {
        p.spec.disruption = Some(Disruption {
            consolidation_policy: Some("WhenEmptyOrUnderutilized".into()),
            consolidate_after: Some("0s".into()),
            budgets: None,
        });
    });
    cl.node("a", "default", LARGE, OD);
    cl.node("b", "default", LARGE, OD);
    cl.pod("a", "web-a", "500m", "1Gi");
    cl.pod("b", "web-b", "500m", "1Gi");
    cl
}

fn command(cl: &Cluster) -> Command {
    let d = decide(&cl.view(), t0(), &Options::default());
    assert_eq!(d.commands.len(), 1, "{:?}", d.commands);
    assert_eq!(d.commands[0].reason, Reason::Underutilized);
    d.commands[0].clone()
}

/// The controller taints its candidates before it re-validates.
fn taint(cl: &mut Cluster, cmd: &Command) {
    for name in &cmd.candidates {
        let node = name.trim_start_matches("claim-").to_string();
        let n = cl.node_mut(&node);
        n.spec
            .get_or_insert_with(Default::default)
            .taints
            .get_or_insert_with(Vec::new)
            .push(Taint {
                key: DISRUPTED_TAINT_KEY.into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
    }
}

#[test]
fn an_unchanged_cluster_keeps_the_command_even_with_its_own_taint() {
    let mut cl = cluster();
    let cmd = command(&cl);
    let before = moved(&candidates::build(&cl.view(), t0()).0, &cmd);
    taint(&mut cl, &cmd);
    assert_eq!(validate(&cl.view(), &cmd, &before, at(15)), Ok(()));
}

#[test]
fn a_pod_arriving_or_leaving_drops_the_command() {
    let cl = cluster();
    let cmd = command(&cl);
    let before = moved(&candidates::build(&cl.view(), t0()).0, &cmd);
    let node = cmd.candidates[0].trim_start_matches("claim-").to_string();

    let mut more = cluster();
    more.pod(&node, "late", "100m", "100Mi");
    let err = validate(&more.view(), &cmd, &before, at(15)).expect_err("pods changed");
    assert!(
        err.contains("changed since the decision (1 added, 0 gone)"),
        "{err}"
    );

    let mut fewer = cluster();
    fewer.pods.retain(|p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(&*format!("node-{node}"))
    });
    let err = validate(&fewer.view(), &cmd, &before, at(15)).expect_err("pods changed");
    assert!(err.contains("(0 added, 1 gone)"), "{err}");
}

#[test]
fn a_new_block_drops_the_command() {
    let cl = cluster();
    let cmd = command(&cl);
    let before = moved(&candidates::build(&cl.view(), t0()).0, &cmd);
    let node = cmd.candidates[0].trim_start_matches("claim-").to_string();
    let pod = format!("web-{node}");

    let mut pdb = cluster();
    pdb.pdb("all", &pod, 0);
    let err = validate(&pdb.view(), &cmd, &before, at(15)).expect_err("pdb");
    assert!(
        err.contains("pdb default/all prevents pod evictions"),
        "{err}"
    );

    let mut annotated = cluster();
    annotate(
        &mut annotated.node_mut(&node).metadata,
        DO_NOT_DISRUPT,
        "true",
    );
    let err = validate(&annotated.view(), &cmd, &before, at(15)).expect_err("annotation");
    assert!(err.contains("do-not-disrupt"), "{err}");

    let mut gone = cluster();
    gone.claims
        .retain(|c| c.metadata.name.as_deref() != Some(cmd.candidates[0].as_str()));
    let err = validate(&gone.view(), &cmd, &before, at(15)).expect_err("gone");
    assert!(err.contains("is gone"), "{err}");

    let mut deleting = cluster();
    deletion(&mut deleting.claim_mut(&node).metadata);
    let err = validate(&deleting.view(), &cmd, &before, at(15)).expect_err("deleting");
    assert!(err.contains("already being deleted"), "{err}");
}

#[test]
fn only_emptiness_and_consolidation_wait_to_be_validated() {
    assert!(needs_validation(Reason::Empty));
    assert!(needs_validation(Reason::Underutilized));
    assert!(!needs_validation(Reason::Drifted));
    assert!(!needs_validation(Reason::Expired));
}

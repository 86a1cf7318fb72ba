use super::*;
use crate::disruption::testkit::*;

fn why(cl: &Cluster, name: &str) -> Option<String> {
    let view = cl.view();
    let (all, _) = build(&view, t0());
    let c = all
        .iter()
        .find(|c| c.name() == format!("claim-{name}"))
        .expect("candidate");
    let pods: Vec<&Pod> = cl
        .pods
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == c.node_name())
        .collect();
    let direct = why_not_candidate(
        &c.claim,
        c.node.as_deref(),
        &pods,
        c.nodepool.as_deref(),
        &Pdbs::new(&view.pdbs),
    );
    // The candidate's own fields agree with the one-shot function.
    assert_eq!(direct, c.block.clone().or(c.pod_block.clone()));
    direct
}

fn base() -> Cluster {
    let mut cl = Cluster::new();
    cl.pool("default", |_| {});
    cl.node("a", "default", LARGE, OD);
    cl.pod("a", "web-1", "1", "1Gi");
    cl
}

#[test]
fn a_plain_node_is_a_candidate() {
    let cl = base();
    assert_eq!(why(&cl, "a"), None);
    let view = cl.view();
    let (all, blocked) = build(&view, t0());
    assert!(blocked.is_empty());
    let c = &all[0];
    assert_eq!(c.price, Some(0.20));
    assert_eq!(c.reschedulable.len(), 1);
    assert_eq!(c.pool_name(), "default");
}

#[test]
fn not_initialized() {
    let mut cl = base();
    cl.claim_mut("a")
        .status
        .as_mut()
        .expect("status")
        .conditions
        .clear();
    assert_eq!(why(&cl, "a").as_deref(), Some("node isn't initialized"));
}

#[test]
fn do_not_disrupt_on_node_or_claim() {
    let mut cl = base();
    annotate(&mut cl.node_mut("a").metadata, DO_NOT_DISRUPT, "true");
    assert!(why(&cl, "a").expect("blocked").contains("do-not-disrupt"));
    let mut cl = base();
    annotate(&mut cl.claim_mut("a").metadata, DO_NOT_DISRUPT, "true");
    assert!(why(&cl, "a").expect("blocked").contains("do-not-disrupt"));
    let mut cl = base();
    annotate(&mut cl.claim_mut("a").metadata, DO_NOT_DISRUPT, "false");
    assert_eq!(why(&cl, "a"), None);
}

#[test]
fn do_not_disrupt_pod_blocks_while_running() {
    let mut cl = base();
    let p = cl.pod("a", "batch-1", "100m", "100Mi");
    annotate(&mut p.metadata, DO_NOT_DISRUPT, "true");
    assert_eq!(
        why(&cl, "a").as_deref(),
        Some("pod default/batch-1 has \"karpenter.sh/do-not-disrupt\" annotation")
    );
    // Completed: it no longer holds the node.
    cl.pods
        .last_mut()
        .expect("pod")
        .status
        .as_mut()
        .expect("status")
        .phase = Some("Succeeded".into());
    assert_eq!(why(&cl, "a"), None);
}

#[test]
fn pdbs() {
    let mut cl = base();
    cl.pdb("pdb-web", "web-1", 0);
    assert_eq!(
        why(&cl, "a").as_deref(),
        Some("pdb default/pdb-web prevents pod evictions")
    );
    let mut cl = base();
    cl.pdb("pdb-web", "web-1", 1);
    assert_eq!(why(&cl, "a"), None);
    cl.pdb("pdb-web-2", "web-1", 1);
    assert!(why(&cl, "a").expect("blocked").contains("multiple pdbs"));
    // A PDB of another namespace or app does not matter.
    let mut cl = base();
    cl.pdb("pdb-other", "other", 0);
    assert_eq!(why(&cl, "a"), None);
}

#[test]
fn deleting_disrupted_or_without_pool() {
    let mut cl = base();
    deletion(&mut cl.claim_mut("a").metadata);
    assert_eq!(
        why(&cl, "a").as_deref(),
        Some("node is marked for deletion")
    );

    let mut cl = base();
    cl.node_mut("a").spec.as_mut().expect("spec").taints =
        Some(vec![k8s_openapi::api::core::v1::Taint {
            key: DISRUPTED_TAINT_KEY.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        }]);
    assert_eq!(
        why(&cl, "a").as_deref(),
        Some("node is already being disrupted")
    );
    // Nodes already going away are not reported as blocked.
    assert!(build(&cl.view(), t0()).1.is_empty());

    let mut cl = base();
    cl.pools.clear();
    assert_eq!(why(&cl, "a").as_deref(), Some("nodepool default not found"));
}

#[test]
fn daemonset_and_static_pods_need_no_home() {
    let mut cl = Cluster::new();
    cl.pool("default", |_| {});
    cl.node("a", "default", LARGE, OD);
    let ds = cl.pod("a", "ds-1", "100m", "100Mi");
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
    let st = cl.pod("a", "static-1", "100m", "100Mi");
    annotate(&mut st.metadata, "kubernetes.io/config.mirror", "x");
    let view = cl.view();
    let (all, _) = build(&view, t0());
    assert!(all[0].is_empty());
    assert_eq!(all[0].pods.len(), 2);
}

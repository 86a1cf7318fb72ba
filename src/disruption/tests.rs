//! `decide` as a whole: the order of the methods.

use super::testkit::*;
use super::*;
use crate::apis::labels::{NODEPOOL_HASH, NODEPOOL_HASH_VERSION};

#[test]
fn expiration_then_drift_before_emptiness_and_consolidation() {
    let mut cl = Cluster::new();
    cl.pool("default", |p| {
        p.spec.template.spec.expire_after = Some("1h".into());
        annotate(&mut p.metadata, NODEPOOL_HASH, "new");
        annotate(&mut p.metadata, NODEPOOL_HASH_VERSION, "v3");
        p.spec.disruption = Some(crate::apis::Disruption {
            budgets: Some(vec![budget("100%", None, None, None)]),
            ..Default::default()
        });
    });
    cl.node("old", "default", LARGE, OD);
    for n in ["drifted", "empty", "busy"] {
        cl.node(n, "default", LARGE, OD);
        let c = cl.claim_mut(n);
        c.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::try_from(at(30 * 60)).expect("t"),
        ));
        annotate(&mut c.metadata, NODEPOOL_HASH_VERSION, "v3");
        annotate(
            &mut c.metadata,
            NODEPOOL_HASH,
            if n == "drifted" { "old" } else { "new" },
        );
    }
    cl.pod("drifted", "web-1", "1", "1Gi");
    cl.pod("busy", "web-2", "1", "1Gi");
    let view = cl.view();
    let d = decide(&view, at(60 * 60), &Options::default());
    let got: Vec<(Reason, Vec<String>)> = d
        .commands
        .iter()
        .map(|c| (c.reason, c.candidates.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Reason::Expired, vec!["claim-old".to_string()]),
            (Reason::Drifted, vec!["claim-drifted".to_string()]),
        ]
    );
}

#[test]
fn nothing_to_do_in_a_tight_cluster() {
    let mut cl = Cluster::new();
    cl.pool("default", |_| {});
    cl.node("a", "default", SMALL, OD);
    cl.pod("a", "web-1", "1500m", "1Gi");
    let d = decide(&cl.view(), t0(), &Options::default());
    assert!(d.commands.is_empty());
}

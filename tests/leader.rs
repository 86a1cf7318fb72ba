//! Leader election on a Lease in the sandbox: one leader of two candidates; a leader killed
//! without releasing is replaced once its lease expires; a leader that shuts down releases the
//! Lease and the standby takes over at once; never two leaders at a time.

use crate::common;

use std::time::{Duration, Instant};

use capstan::leader::{Election, ElectionConfig};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde_json::json;

fn config(identity: &str) -> ElectionConfig {
    let mut c = ElectionConfig::new("capstan", identity);
    c.lease_duration = Duration::from_secs(2);
    c.renew_deadline = Duration::from_millis(1500);
    c.retry_period = Duration::from_millis(100);
    c
}

/// Waits until exactly one of `electors` leads, checking that never two do; returns its index.
async fn one_leader(electors: &[&Election], within: Duration) -> usize {
    let start = Instant::now();
    loop {
        let leaders: Vec<usize> = electors
            .iter()
            .enumerate()
            .filter(|(_, e)| *e.is_leader.borrow())
            .map(|(i, _)| i)
            .collect();
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        if leaders.len() == 1 {
            return leaders[0];
        }
        assert!(start.elapsed() < within, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_leader_takeover_on_expiry_and_at_once_on_release() {
    let env = common::start().await;
    let ns: Api<Namespace> = Api::all(env.client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "capstan"}})).expect("ns"),
    )
    .await
    .expect("namespace");

    let a = Election::start(env.client.clone(), config("a"));
    let b = Election::start(env.client.clone(), config("b"));
    let first = one_leader(&[&a, &b], Duration::from_secs(5)).await;
    // Stays one leader for a while (renewals keep it).
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) {
        assert_eq!(one_leader(&[&a, &b], Duration::from_secs(1)).await, first);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Killed without releasing: the other waits for the lease to expire (2 s), then leads.
    let (dead, alive) = if first == 0 { (a, b) } else { (b, a) };
    dead.abort();
    let killed = Instant::now();
    one_leader(&[&alive], Duration::from_secs(6)).await;
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(5),
        "takeover after a kill took {took:?}"
    );

    // A graceful stop releases the Lease: a new candidate leads well before the lease duration.
    let c = Election::start(env.client.clone(), config("c"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !*c.is_leader.borrow(),
        "c must follow while the other leads"
    );
    let released = Instant::now();
    alive.shutdown().await;
    one_leader(&[&c], Duration::from_secs(3)).await;
    let took = released.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "takeover after release took {took:?}"
    );
    c.shutdown().await;
    env.sandbox.shutdown().await;
}

//! Disruption end to end in the sandbox with the simulated cloud: empty nodes go after
//! `consolidateAfter` unless a budget (a cron window with `nodes: "0"`) holds them; underutilized
//! nodes are consolidated onto cheaper capacity with every pod still running; a `do-not-disrupt`
//! pod keeps its node, and so does a pod under a PDB with `minAvailable` = all; the Events say
//! why.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use capstan::apis::NodePool;
use capstan::cloud::CloudProvider;
use common::cluster::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// A cluster whose pool consolidates underutilized nodes after 1 s, with no budget in the way.
async fn consolidating_cluster() -> (Cluster, kube::Client) {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    apply_pool_with(
        &client,
        generic_requirements(),
        json!({"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "1s",
               "budgets": [{"nodes": "100%"}]}),
    )
    .await;
    (cluster, client)
}

/// $/hour of the running simulated instances.
fn hourly(cluster: &Cluster) -> f64 {
    let catalog = cluster.cloud.catalog();
    cluster
        .cloud
        .running()
        .iter()
        .filter_map(|n| {
            let i = &n.instance;
            catalog
                .offering(&i.instance_type, &i.zone, i.capacity_type)
                .map(|o| o.price_per_hour)
        })
        .sum()
}

#[tokio::test]
async fn empty_nodes_go_after_consolidate_after_unless_a_budget_holds_them() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    apply_pool_with(
        &client,
        generic_requirements(),
        // A maintenance freeze in force all the time: fires every minute, lasts an hour.
        json!({"consolidationPolicy": "WhenEmpty", "consolidateAfter": "1s",
               "budgets": [{"nodes": "0", "reasons": ["Empty"],
                            "schedule": "* * * * *", "duration": "1h"}]}),
    )
    .await;
    deploy(&client, "web", 4, "1", "1Gi").await;
    wait_for(30, "4 pods running", || async {
        running_pods(&client, "web").await == 4
    })
    .await;
    let before = claims(&client).await.len();
    scale(&client, "web", 0).await;

    // The budget allows no Empty disruption: the nodes stay, and the Events name the budget.
    wait_for(
        20,
        "an event naming the budget on every NodeClaim",
        || async {
            let notes = claim_notes(&client).await;
            notes.len() == before
                && notes.values().all(|n| {
                    n.iter().any(|n| {
                        n.starts_with("budget 0 of") && n.contains("(nodes 0 (schedule * * * * *)")
                    })
                })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(claims(&client).await.len(), before, "held by the budget");
    let text = cluster.metrics.render();
    assert!(
        text.contains(
            "karpenter_nodepools_allowed_disruptions{nodepool=\"default\",reason=\"Empty\"} 0"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "karpenter_voluntary_disruption_eligible_nodes{{reason=\"empty\"}} {before}"
        )),
        "{text}"
    );

    // Lift the budget: the empty nodes go, and their instances with them.
    let pools: Api<NodePool> = Api::all(client.clone());
    pools
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"disruption": {"budgets": [{"nodes": "100%"}]}}})),
        )
        .await
        .expect("patch budget");
    wait_for(30, "empty nodes removed", || async {
        claims(&client).await.is_empty() && nodes(&client).await.is_empty()
    })
    .await;
    assert!(cluster.cloud.running().is_empty(), "instances left running");
    let text = cluster.metrics.render();
    assert!(
        text.contains(
            "karpenter_nodeclaims_disrupted_total{nodepool=\"default\",reason=\"Empty\"}"
        ),
        "{text}"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn underutilized_nodes_are_consolidated_and_every_pod_keeps_running() {
    let (cluster, client) = consolidating_cluster().await;
    deploy(&client, "web", 30, "1", "1Gi").await;
    wait_for(30, "30 pods running", || async {
        running_pods(&client, "web").await == 30
    })
    .await;
    let big = hourly(&cluster);
    scale(&client, "web", 3).await;
    wait_for(60, "cheaper capacity with the 3 pods running", || async {
        running_pods(&client, "web").await == 3 && hourly(&cluster) < big / 2.0
    })
    .await;
    let text = cluster.metrics.render();
    assert!(
        text.contains("karpenter_voluntary_disruption_decisions_total{decision=")
            && text.contains("reason=\"underutilized\",consolidation_type="),
        "{text}"
    );
    assert!(
        text.contains("karpenter_voluntary_disruption_decision_evaluation_duration_seconds_count{method=\"all\"}"),
        "{text}"
    );
    let terminating = event_notes(&client, "DisruptionTerminating").await;
    assert!(
        terminating
            .iter()
            .any(|n| n.starts_with("Disrupting NodeClaim: Underutilized/")),
        "{terminating:?}"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn a_do_not_disrupt_pod_keeps_its_node() {
    let (cluster, client) = consolidating_cluster().await;
    // One claim for both: the pinned pod and ten others, created together.
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pinned: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "pinned", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "pinned"}},
            "template": {"metadata": {"labels": {"app": "pinned"},
                                      "annotations": {"karpenter.sh/do-not-disrupt": "true"}},
                "spec": {"containers": [{"name": "c", "image": "pause",
                    "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}]}}}
    }))
    .expect("deployment");
    api.create(&Default::default(), &pinned)
        .await
        .expect("create pinned");
    deploy(&client, "web", 10, "1", "1Gi").await;
    wait_for(30, "all pods running", || async {
        running_pods(&client, "web").await == 10 && running_pods(&client, "pinned").await == 1
    })
    .await;
    let first: Vec<String> = claims(&client)
        .await
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    scale(&client, "web", 0).await;
    // Consolidation would shrink the pinned pod's node; the annotation forbids it, and says so.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    wait_for(
        20,
        "an event naming do-not-disrupt on the NodeClaim",
        || async {
            events.list(&Default::default()).await.is_ok_and(|l| {
                l.items.iter().any(|e| {
                    e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("NodeClaim")
                        && e.note
                            .as_deref()
                            .is_some_and(|n| n.contains("do-not-disrupt"))
                })
            })
        },
    )
    .await;
    let pinned_node_claims: Vec<String> = claims(&client)
        .await
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert!(
        first.iter().any(|c| pinned_node_claims.contains(c)),
        "the pinned pod's NodeClaim must survive: before {first:?}, after {pinned_node_claims:?}"
    );
    assert_eq!(running_pods(&client, "pinned").await, 1);
    cluster.stop().await;
}

#[tokio::test]
async fn a_pdb_with_min_available_all_keeps_its_pods_nodes_and_the_event_says_so() {
    let (cluster, client) = consolidating_cluster().await;
    deploy(&client, "guarded", 3, "500m", "256Mi").await;
    deploy(&client, "web", 12, "1", "1Gi").await;
    wait_for(30, "all pods running", || async {
        running_pods(&client, "web").await == 12 && running_pods(&client, "guarded").await == 3
    })
    .await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "guarded", "namespace": "default"},
        "spec": {"minAvailable": "100%", "selector": {"matchLabels": {"app": "guarded"}}}
    }))
    .expect("pdb");
    pdbs.create(&Default::default(), &pdb)
        .await
        .expect("create pdb");
    let guarded_before = pod_uids(&client, "guarded").await;
    scale(&client, "web", 0).await;

    // The nodes with only web pods go; those with guarded pods stay, and say why.
    wait_for(30, "an event naming the PDB on a NodeClaim", || async {
        claim_notes(&client).await.values().any(|n| {
            n.iter()
                .any(|n| n == "pdb default/guarded prevents pod evictions")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pod_uids(&client, "guarded").await,
        guarded_before,
        "no guarded pod may be evicted"
    );
    cluster.stop().await;
}

/// The uids of the app's pods (a pod evicted and recreated has a new one).
async fn pod_uids(client: &kube::Client, app: &str) -> BTreeSet<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.uid)
        .collect()
}

/// The notes of the Events on each live NodeClaim, by NodeClaim name.
async fn claim_notes(client: &kube::Client) -> BTreeMap<String, Vec<String>> {
    let live: BTreeSet<String> = claims(client)
        .await
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let mut out: BTreeMap<String, Vec<String>> =
        live.iter().map(|n| (n.clone(), Vec::new())).collect();
    for e in events(client).await {
        let Some(r) = e
            .regarding
            .filter(|r| r.kind.as_deref() == Some("NodeClaim"))
        else {
            continue;
        };
        if let (Some(name), Some(note)) = (r.name, e.note)
            && let Some(notes) = out.get_mut(&name)
        {
            notes.push(note);
        }
    }
    out
}

async fn event_notes(client: &kube::Client, reason: &str) -> Vec<String> {
    events(client)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

async fn events(client: &kube::Client) -> Vec<Event> {
    let api: Api<Event> = Api::all(client.clone());
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

//! Disruption end to end in the sandbox with the simulated cloud: empty nodes go after
//! `consolidateAfter` unless a budget holds them; underutilized nodes are consolidated onto
//! cheaper capacity with every pod still running; a `do-not-disrupt` pod keeps its node.

use crate::common;

use std::time::Duration;

use capstan::apis::NodePool;
use capstan::cloud::CloudProvider;
use common::cluster::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

async fn scale(client: &kube::Client, name: &str, replicas: i32) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .expect("scale");
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
        json!({"consolidationPolicy": "WhenEmpty", "consolidateAfter": "1s",
               "budgets": [{"nodes": "0", "reasons": ["Empty"]}]}),
    )
    .await;
    deploy(&client, "web", 4, "1", "1Gi").await;
    wait_for(30, "4 pods running", || async {
        running_pods(&client, "web").await == 4
    })
    .await;
    let before = claims(&client).await.len();
    scale(&client, "web", 0).await;

    // The budget allows no Empty disruption: the nodes stay.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(claims(&client).await.len(), before, "held by the budget");

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
    let cluster = Cluster::start().await;
    let client = cluster.client();
    apply_pool_with(
        &client,
        generic_requirements(),
        json!({"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "1s",
               "budgets": [{"nodes": "100%"}]}),
    )
    .await;
    deploy(&client, "web", 24, "1", "1Gi").await;
    wait_for(30, "24 pods running", || async {
        running_pods(&client, "web").await == 24
    })
    .await;
    let big = hourly(&cluster);
    scale(&client, "web", 2).await;
    wait_for(45, "cheaper capacity with both pods running", || async {
        running_pods(&client, "web").await == 2 && hourly(&cluster) < big / 2.0
    })
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_do_not_disrupt_pod_keeps_its_node() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    apply_pool_with(
        &client,
        generic_requirements(),
        json!({"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "1s",
               "budgets": [{"nodes": "100%"}]}),
    )
    .await;
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

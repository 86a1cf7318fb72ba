//! Interruption end to end in the sandbox with the simulated cloud and an in-memory queue: a
//! spot interruption warning for a node's instance launches a replacement before the
//! interrupted NodeClaim is deleted, every pod runs again on the new node, the spot offering is
//! hidden, and the message is deleted; a malformed message is deleted and the loop goes on. A
//! rebalance recommendation only posts an Event; a stopping instance is drained without hiding
//! its spot pool.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use capstan::apis::NodeClaim;
use capstan::apis::labels::{INSTANCE_TYPE, ZONE};
use capstan::cloud::CloudProvider;
use capstan::cloud::catalog::CapacityType;
use capstan::cloud::provider::instance_id;
use capstan::cloud::queue::SimQueue;
use common::cluster::*;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use serde_json::json;

pub(crate) fn spot_warning(instance: &str) -> String {
    json!({
        "version": "0",
        "id": "1e5527d7-bb36-4607-3370-4164db56a40e",
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-11-26T03:00:00Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1b:instance/{instance}")],
        "detail": {"instance-id": instance, "instance-action": "terminate"}
    })
    .to_string()
}

/// NodeClaim changes in the order the API server made them: `created <name>` and
/// `deleting <name>`, each once.
fn record_claims(client: kube::Client) -> Arc<Mutex<Vec<String>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let out = log.clone();
    let api: Api<NodeClaim> = Api::all(client);
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(Ok(event)) = stream.next().await {
            let (watcher::Event::Apply(c) | watcher::Event::InitApply(c)) = event else {
                continue;
            };
            let name = c.metadata.name.clone().unwrap_or_default();
            let mut log = out.lock().expect("log");
            for entry in [
                Some(format!("created {name}")),
                c.metadata
                    .deletion_timestamp
                    .is_some()
                    .then(|| format!("deleting {name}")),
            ]
            .into_iter()
            .flatten()
            {
                if !log.contains(&entry) {
                    log.push(entry);
                }
            }
        }
    });
    log
}

/// A running cluster with an interruption queue and 3 `web` pods on spot capacity, and the
/// claim hosting the first pod.
struct Setup {
    cluster: Cluster,
    queue: Arc<SimQueue>,
    before: Vec<NodeClaim>,
    node_name: String,
    victim_name: String,
    instance: String,
    instance_type: String,
    zone: String,
}

async fn setup() -> Setup {
    let queue = Arc::new(SimQueue::new());
    let mut cluster = Cluster::without_controllers().await;
    cluster.interruption_queue = Some(queue.clone());
    cluster.start_controllers().await;
    let client = cluster.client();
    let mut reqs = generic_requirements();
    if let Some(list) = reqs.as_array_mut() {
        list.push(
            json!({"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}),
        );
    }
    apply_pool(&client, reqs).await;
    deploy(&client, "web", 3, "500m", "512Mi").await;
    wait_for(30, "3 pods running", || async {
        running_pods(&client, "web").await == 3
    })
    .await;

    // The node the first pod runs on, and its claim.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod_list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("pods");
    let node_name = pod_list
        .items
        .iter()
        .find_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .expect("a scheduled pod");
    let before = claims(&client).await;
    let victim = before
        .iter()
        .find(|c| c.status.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node_name))
        .expect("the node's claim")
        .clone();
    let victim_name = victim.metadata.name.clone().expect("name");
    let provider_id = victim
        .status
        .as_ref()
        .and_then(|s| s.provider_id.clone())
        .expect("provider id");
    let instance = instance_id(&provider_id).expect("instance id").to_string();
    let labels = victim.metadata.labels.clone().unwrap_or_default();
    let (instance_type, zone) = (labels[INSTANCE_TYPE].clone(), labels[ZONE].clone());

    Setup {
        cluster,
        queue,
        before,
        node_name,
        victim_name,
        instance,
        instance_type,
        zone,
    }
}

#[tokio::test]
async fn spot_interruption_replaces_the_node_before_the_old_one_goes() {
    let Setup {
        cluster,
        queue,
        before,
        node_name,
        victim_name,
        instance,
        instance_type,
        zone,
    } = setup().await;
    let client = cluster.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let log = record_claims(client.clone());
    wait_for(10, "the watch to list the claims", || async {
        log.lock().expect("log").len() >= before.len()
    })
    .await;

    // A malformed message first: it is dropped and the warning behind it still handled.
    queue.push("{not json");
    queue.push(spot_warning(&instance));

    wait_for(30, "the interrupted claim deleted", || async {
        log.lock()
            .expect("log")
            .contains(&format!("deleting {victim_name}"))
    })
    .await;
    let order = log.lock().expect("log").clone();
    let deleting_at = order
        .iter()
        .position(|e| e == &format!("deleting {victim_name}"))
        .expect("deleting");
    let replacement = order[..deleting_at]
        .iter()
        .filter_map(|e| e.strip_prefix("created "))
        .find(|n| {
            before
                .iter()
                .all(|c| c.metadata.name.as_deref() != Some(*n))
        })
        .map(str::to_string);
    assert!(
        replacement.is_some(),
        "no replacement created before the interrupted claim was deleted: {order:?}"
    );

    // The spot pool the warning came from is hidden from launches.
    let catalog = cluster.cloud.catalog();
    let offering = catalog
        .offering(&instance_type, &zone, CapacityType::Spot)
        .expect("offering");
    assert!(
        !offering.is_available(SystemTime::now()),
        "{instance_type}/{zone}/spot still available"
    );

    // Every pod runs again, none on the interrupted node, which is gone.
    wait_for(
        60,
        "pods running elsewhere and the old claim gone",
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            let elsewhere = list
                .iter()
                .filter(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                        && p.spec.as_ref().and_then(|s| s.node_name.as_deref())
                            != Some(node_name.as_str())
                })
                .count();
            elsewhere == 3
                && claims(&client)
                    .await
                    .iter()
                    .all(|c| c.metadata.name.as_deref() != Some(victim_name.as_str()))
        },
    )
    .await;

    // Both messages deleted; only the well-formed one counted as received.
    assert!(
        queue.is_empty(),
        "{} messages left in the queue",
        queue.len()
    );
    let metrics = cluster.metrics.render();
    assert!(
        metrics.contains("karpenter_interruption_deleted_messages_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "karpenter_interruption_received_messages_total{message_type=\"spot_interrupted\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("karpenter_interruption_message_queue_duration_seconds_count 1"),
        "{metrics}"
    );
    cluster.stop().await;
}

fn event(instance: &str, detail_type: &str, detail: serde_json::Value) -> String {
    json!({
        "version": "0",
        "id": "5f0c2a4f-3d0c-4b3f-a3c0-1234567890ab",
        "detail-type": detail_type,
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-11-26T03:00:00Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{instance}")],
        "detail": detail
    })
    .to_string()
}

#[tokio::test]
async fn a_rebalance_recommendation_only_posts_an_event_and_a_stopping_instance_is_drained() {
    let Setup {
        cluster,
        queue,
        before,
        victim_name,
        instance,
        instance_type,
        zone,
        ..
    } = setup().await;
    let client = cluster.client();
    queue.push(event(
        &instance,
        "EC2 Instance Rebalance Recommendation",
        json!({"instance-id": instance}),
    ));
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let posted = |reason: &'static str| {
        let events = events.clone();
        let victim = victim_name.clone();
        async move {
            events.list(&Default::default()).await.is_ok_and(|l| {
                l.items.iter().any(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                            == Some(victim.as_str())
                })
            })
        }
    };
    wait_for(20, "a SpotRebalanceRecommendation event", || {
        posted("SpotRebalanceRecommendation")
    })
    .await;
    wait_for(10, "the message deleted", || async { queue.is_empty() }).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let now: Vec<_> = claims(&client)
        .await
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(
        now.len(),
        before.len(),
        "a rebalance recommendation changed the claims"
    );
    assert!(now.contains(&victim_name));

    // The instance stopping: drained and deleted, but the spot pool stays available (only a
    // spot interruption warning says the pool is being reclaimed).
    queue.push(event(
        &instance,
        "EC2 Instance State-change Notification",
        json!({"instance-id": instance, "state": "stopping"}),
    ));
    wait_for(30, "the stopping instance's claim gone", || async {
        claims(&client)
            .await
            .iter()
            .all(|c| c.metadata.name.as_deref() != Some(victim_name.as_str()))
    })
    .await;
    wait_for(20, "an InstanceStopping event", || {
        posted("InstanceStopping")
    })
    .await;
    let catalog = cluster.cloud.catalog();
    assert!(
        catalog
            .offering(&instance_type, &zone, CapacityType::Spot)
            .is_some_and(|o| o.is_available(SystemTime::now())),
        "a state change hid the spot offering"
    );
    wait_for(60, "3 pods running again", || async {
        running_pods(&client, "web").await == 3
    })
    .await;
    cluster.stop().await;
}

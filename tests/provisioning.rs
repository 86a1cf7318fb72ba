//! The controllers against the sandbox API server and the simulated cloud: pending pods become
//! NodeClaims, instances, Nodes and running pods; deleting a NodeClaim drains its Node through
//! the Eviction API (PDBs respected) and terminates the instance; capacity errors fall back to
//! the next offering; a restart between launch and status write launches no duplicate; nothing
//! leaks.

use crate::common;

use common::cluster::*;

use std::time::Duration;

use capstan::apis::{EC2NodeClass, NodeClaim, NodePool};
use capstan::cloud::catalog::CapacityType;
use capstan::cloud::provider::OfferingKey;
use capstan::cloud::sim::Faults;
use capstan::cloud::{CloudProvider, InstanceState};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn a_deployment_gets_nodes_and_every_pod_runs_then_deleted_claims_leave_nothing() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    apply_pool(&client, generic_requirements()).await;
    deploy(&client, "inflate", 30, "1", "1536Mi").await;

    wait_for(30, "30 pods running", || async {
        running_pods(&client, "inflate").await == 30
    })
    .await;

    let cs = claims(&client).await;
    assert!(!cs.is_empty());
    for c in &cs {
        let status = c.status.clone().expect("status");
        for cond in ["Launched", "Registered", "Initialized", "Ready"] {
            assert!(
                status.is_condition_true(cond),
                "{cond} on {:?}",
                c.metadata.name
            );
        }
        let pid = status.provider_id.expect("providerID");
        assert!(pid.starts_with("aws:///us-east-1"), "{pid}");
        let labels = c.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("karpenter.sh/nodepool").map(String::as_str),
            Some("default")
        );
        assert!(labels.contains_key("node.kubernetes.io/instance-type"));
        assert!(
            c.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == "karpenter.sh/termination")
        );
        let owner = c.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("NodePool"));
    }
    let ns = nodes(&client).await;
    assert_eq!(ns.len(), cs.len());
    for n in &ns {
        let labels = n.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("karpenter.sh/registered").map(String::as_str),
            Some("true")
        );
        assert_eq!(
            labels.get("karpenter.sh/initialized").map(String::as_str),
            Some("true")
        );
        let taints = n
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        assert!(
            taints.iter().all(|t| t.key != "karpenter.sh/unregistered"),
            "{taints:?}"
        );
        assert!(
            n.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == "karpenter.sh/termination")
        );
    }
    // 30 × (1 CPU, 1.5 GiB) is 30 vCPU: a handful of nodes, not 30.
    assert!(cs.len() <= 4, "{} nodeclaims for 30 pods", cs.len());

    // The pool's status counts what its claims bring.
    let pools: Api<NodePool> = Api::all(client.clone());
    wait_for(10, "nodepool status", || async {
        pools
            .get("default")
            .await
            .ok()
            .and_then(|p| p.status)
            .and_then(|s| s.resources)
            .is_some_and(|r| r.contains_key("cpu"))
    })
    .await;

    let text = cluster.metrics.render();
    for family in [
        "karpenter_nodeclaims_created_total{nodepool=\"default\",reason=\"provisioning\"}",
        "karpenter_nodes_created_total{nodepool=\"default\"}",
        "karpenter_scheduler_scheduling_duration_seconds_count",
        "karpenter_cloudprovider_duration_seconds_count{provider=\"sim\",method=\"Create\"}",
        "karpenter_nodepools_usage{nodepool=\"default\",resource_type=\"cpu\"}",
        "karpenter_nodepools_limit{nodepool=\"default\",resource_type=\"cpu\"} 1000",
        "karpenter_pods_startup_duration_seconds_count 30",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
    let created = text
        .lines()
        .find(|l| l.starts_with("karpenter_nodeclaims_created_total{nodepool=\"default\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(created, Some(cs.len() as f64));

    // Scale to zero, then delete the claims: nodes drain, instances terminate, nothing is left.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .patch(
            "inflate",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale to 0");
    delete_all_claims(&client).await;
    wait_for(20, "claims and nodes gone", || async {
        claims(&client).await.is_empty() && nodes(&client).await.is_empty()
    })
    .await;
    assert!(cluster.cloud.running().is_empty(), "instances left running");
    assert_eq!(
        cluster.cloud.all_instances().len(),
        cs.len(),
        "no extra launches"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn draining_waits_for_a_pod_disruption_budget_then_evicts() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    apply_pool(&client, generic_requirements()).await;
    deploy(&client, "guarded", 2, "500m", "512Mi").await;
    wait_for(30, "2 pods running", || async {
        running_pods(&client, "guarded").await == 2
    })
    .await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "guarded", "namespace": "default"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "guarded"}}}
    }))
    .expect("pdb");
    pdbs.create(&PostParams::default(), &pdb)
        .await
        .expect("create pdb");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let before = claims(&client).await;
    let first: Vec<String> = before
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    delete_all_claims(&client).await;

    // The PDB allows no eviction: the pods keep running and the reason is an Event.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    wait_for(15, "a DisruptionBlocked event naming the PDB", || async {
        events.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items.iter().any(|e| {
                e.reason.as_deref() == Some("DisruptionBlocked")
                    && e.note
                        .as_deref()
                        .is_some_and(|n| n.contains("PodDisruptionBudget"))
            })
        })
    })
    .await;
    assert_eq!(running_pods(&client, "guarded").await, 2);
    let tainted = nodes(&client).await.iter().all(|n| {
        n.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.key == "karpenter.sh/disrupted"))
    });
    assert!(tainted, "draining nodes carry karpenter.sh/disrupted");
    assert!(
        !cluster.cloud.running().is_empty(),
        "nothing terminated yet"
    );

    // Without the PDB the drain proceeds; the evicted pods come back on a new node.
    pdbs.delete("guarded", &DeleteParams::default())
        .await
        .expect("delete pdb");
    wait_for(
        30,
        "old claims gone and pods running on a new node",
        || async {
            let now = claims(&client).await;
            now.iter()
                .all(|c| !first.contains(c.metadata.name.as_ref().expect("name")))
                && !now.is_empty()
                && running_pods(&client, "guarded").await == 2
        },
    )
    .await;
    let running = cluster.cloud.running();
    assert_eq!(
        running.len(),
        claims(&client).await.len(),
        "one instance per claim"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn insufficient_capacity_falls_back_to_the_next_offering_and_marks_it() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    cluster.cloud.set_faults(Faults {
        no_capacity: [OfferingKey {
            instance_type: "m5.large".into(),
            zone: "us-east-1a".into(),
            capacity_type: CapacityType::OnDemand,
        }]
        .into(),
        ..Default::default()
    });
    apply_pool(
        &client,
        json!([
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m5.large", "m5.xlarge"]},
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}
        ]),
    )
    .await;
    deploy(&client, "small", 1, "500m", "512Mi").await;
    wait_for(30, "the pod running", || async {
        running_pods(&client, "small").await == 1
    })
    .await;
    let running = cluster.cloud.running();
    assert_eq!(running.len(), 1);
    assert_eq!(
        running[0].instance.instance_type, "m5.xlarge",
        "fell back past the ICE'd m5.large"
    );
    let catalog = cluster.cloud.catalog();
    let offering = catalog
        .offering("m5.large", "us-east-1a", CapacityType::OnDemand)
        .expect("offering");
    assert!(
        !offering.is_available(std::time::SystemTime::now()),
        "m5.large/us-east-1a/on-demand hidden for a while"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn a_restart_between_launch_and_status_write_launches_no_duplicate_and_orphans_are_collected()
{
    let mut cluster = Cluster::without_controllers().await;
    let client = cluster.client();
    apply_pool(&client, generic_requirements()).await;
    let classes: Api<EC2NodeClass> = Api::all(client.clone());
    let class = classes.get("default").await.expect("class");
    let api: Api<NodeClaim> = Api::all(client.clone());
    let claim_for = |name: &str| -> NodeClaim {
        serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": {"name": name, "labels": {"karpenter.sh/nodepool": "default"}},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m5.large"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}
                ]
            }
        }))
        .expect("claim")
    };
    // The controller of a previous life launched for `survivor` and died before writing status.
    let survivor = api
        .create(&PostParams::default(), &claim_for("survivor"))
        .await
        .expect("create survivor");
    let launched = cluster
        .cloud
        .create(&survivor, &class)
        .await
        .expect("launch");
    // ... and for `gone`, whose claim was then deleted: its instance is an orphan.
    let gone = api
        .create(&PostParams::default(), &claim_for("gone"))
        .await
        .expect("create gone");
    let orphan = cluster.cloud.create(&gone, &class).await.expect("launch");
    api.delete("gone", &DeleteParams::default())
        .await
        .expect("delete gone");
    assert_eq!(cluster.cloud.launches(), 2);

    cluster.start_controllers().await;
    wait_for(
        15,
        "survivor launched with the instance it already had",
        || async {
            api.get("survivor")
                .await
                .ok()
                .and_then(|c| c.status)
                .and_then(|s| s.provider_id)
                == Some(launched.provider_id.clone())
        },
    )
    .await;
    wait_for(
        15,
        "the orphan terminated by garbage collection",
        || async {
            matches!(
                cluster.cloud.get(&orphan.provider_id).await,
                Err(capstan::cloud::CloudError::NotFound(_))
            )
        },
    )
    .await;
    assert_eq!(
        cluster.cloud.launches(),
        2,
        "no duplicate launch after the restart"
    );
    let states: Vec<InstanceState> = cluster
        .cloud
        .all_instances()
        .iter()
        .map(|i| i.state)
        .collect();
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == InstanceState::Running)
            .count(),
        1
    );
    cluster.stop().await;
}

#[tokio::test]
async fn a_pod_that_fits_no_nodepool_gets_an_event_saying_why() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    apply_pool(&client, generic_requirements()).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu-job", "namespace": "default"},
        "spec": {"nodeSelector": {"accelerator": "h100"},
                 "containers": [{"name": "c", "image": "pause",
                    "resources": {"requests": {"cpu": "1"}}}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    wait_for(
        15,
        "FailedScheduling naming the NodePool and the reason",
        || async {
            events.list(&ListParams::default()).await.is_ok_and(|l| {
                l.items.iter().any(|e| {
                    e.reason.as_deref() == Some("FailedScheduling")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("gpu-job")
                        && e.note.as_deref().is_some_and(|n| {
                            n.contains("incompatible with nodepools: default:")
                                && n.contains("accelerator")
                        })
                })
            })
        },
    )
    .await;
    assert!(claims(&client).await.is_empty(), "nothing launched for it");
    cluster.stop().await;
}

#[tokio::test]
async fn a_node_that_never_registers_is_given_up_after_the_registration_ttl() {
    // Nodes would take an hour to join; the TTL is 1 s.
    let mut cluster = Cluster::booting_in(Duration::from_secs(3600)).await;
    cluster.registration_ttl = Duration::from_secs(1);
    cluster.start_controllers().await;
    let client = cluster.client();
    apply_pool(&client, generic_requirements()).await;
    deploy(&client, "stuck", 1, "500m", "512Mi").await;
    wait_for(
        20,
        "a launched claim deleted and its instance terminated",
        || async {
            let names: Vec<String> = claims(&client)
                .await
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            cluster.cloud.all_instances().iter().any(|i| {
                i.state == InstanceState::Terminated
                    && i.nodeclaim().is_some_and(|n| !names.iter().any(|c| c == n))
            })
        },
    )
    .await;
    cluster.stop().await;
}

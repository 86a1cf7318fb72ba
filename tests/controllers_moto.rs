//! The controllers on the AWS provider against moto's EC2 server, with the sandbox as the API
//! server: the EC2NodeClass resolves its subnets, security group and image; a pending pod becomes
//! a NodeClaim launched through CreateFleet (tagged, in a resolved subnet); deleting the NodeClaim
//! terminates the instance. No kubelet runs on moto's instances, so the claim never registers;
//! registration is covered with the simulated provider (tests/provisioning.rs).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use capstan::apis::{EC2NodeClass, NodeClaim, NodePool};
use capstan::cloud::aws::AwsProvider;
use capstan::controllers::{Controllers, Settings};
use capstan::metrics::Metrics;
use common::cluster::wait_for;
use common::moto::{CLUSTER, DISCOVERY, Moto, ec2, network, settings};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn a_pending_pod_launches_through_createfleet_and_deleting_the_claim_terminates_it() {
    let Some(moto) = Moto::start() else { return };
    let ec2 = ec2(&moto.url).await;
    let net = network(&ec2).await;
    let env = common::start().await;
    let client = env.client.clone();
    let cloud = Arc::new(AwsProvider::new(settings(&moto.url)).await);
    let mut s = Settings::new(CLUSTER);
    s.batch_idle = Duration::from_millis(200);
    s.resync = Duration::from_millis(500);
    let config = common::config_from(env.sandbox.kubeconfig_path()).await;
    let controllers = Controllers::start(config, cloud, s, &Metrics::new())
        .await
        .expect("controllers");

    let classes: Api<EC2NodeClass> = Api::all(client.clone());
    let class: EC2NodeClass = serde_json::from_value(json!({
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
        "metadata": {"name": "default"},
        "spec": {
            "role": "KarpenterNodeRole-test",
            "amiFamily": "AL2023",
            "amiSelectorTerms": [{"id": net.ami}],
            "subnetSelectorTerms": [{"tags": {DISCOVERY: CLUSTER}}],
            "securityGroupSelectorTerms": [{"tags": {DISCOVERY: CLUSTER}}]
        }
    }))
    .expect("class");
    classes
        .create(&PostParams::default(), &class)
        .await
        .expect("create class");
    wait_for(20, "the EC2NodeClass resolved and Ready", || async {
        classes
            .get("default")
            .await
            .ok()
            .and_then(|c| c.status)
            .is_some_and(|s| {
                s.subnets.len() == 2
                    && s.security_groups.iter().any(|g| g.id == net.sg)
                    && s.amis.iter().any(|a| a.id == net.ami)
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
    })
    .await;

    let pools: Api<NodePool> = Api::all(client.clone());
    let pool: NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "default"},
        "spec": {"template": {"spec": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
            "requirements": [
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c5.large", "m5.large"]},
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}
            ]
        }}}
    }))
    .expect("pool");
    pools
        .create(&PostParams::default(), &pool)
        .await
        .expect("create pool");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "pause",
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");

    let claims: Api<NodeClaim> = Api::all(client.clone());
    let mut launched: Option<NodeClaim> = None;
    for _ in 0..150 {
        let list = claims.list(&ListParams::default()).await.map(|l| l.items);
        launched = list.ok().and_then(|l| {
            l.into_iter().find(|c| {
                c.status
                    .as_ref()
                    .is_some_and(|s| s.is_condition_true("Launched"))
            })
        });
        if launched.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let claim = launched.expect("launched claim");
    let name = claim.metadata.name.clone().expect("name");
    let status = claim.status.clone().expect("status");
    let pid = status.provider_id.clone().expect("providerID");
    let id = capstan::cloud::provider::instance_id(&pid)
        .expect("instance id")
        .to_string();
    assert_eq!(status.image_id.as_deref(), Some(net.ami.as_str()));

    // The instance in moto: tagged for this cluster, pool and claim, in one of the tagged subnets.
    let described = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("describe");
    let instance = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .expect("instance")
        .clone();
    let tag = |k: &str| {
        instance
            .tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(tag("karpenter.sh/nodeclaim"), Some(name.clone()));
    assert_eq!(tag("karpenter.sh/nodepool").as_deref(), Some("default"));
    assert_eq!(
        tag(&format!("kubernetes.io/cluster/{CLUSTER}")).as_deref(),
        Some("owned")
    );
    let subnet = instance.subnet_id().expect("subnet").to_string();
    assert!(
        subnet == net.subnet_a || subnet == net.subnet_b,
        "{subnet} is not a tagged subnet"
    );
    // moto launches the first override; capstan orders them cheapest first: c5.large.
    assert_eq!(
        instance.instance_type().map(|t| t.as_str()),
        Some("c5.large")
    );

    claims
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete claim");
    wait_for(20, "the NodeClaim gone", || async {
        matches!(claims.get(&name).await, Err(kube::Error::Api(e)) if e.code == 404)
    })
    .await;
    let live = ec2
        .describe_instances()
        .filters(
            Filter::builder()
                .name(format!("tag:kubernetes.io/cluster/{CLUSTER}"))
                .values("owned")
                .build(),
        )
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .build(),
        )
        .send()
        .await
        .expect("describe live");
    let left: Vec<String> = live
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    // The pod is still pending, so provisioning may have launched a new claim meanwhile; the
    // deleted claim's instance must not be among the live ones.
    assert!(
        !left.contains(&id),
        "{id} still running after its NodeClaim went"
    );
    controllers.shutdown();
    env.sandbox.shutdown().await;
}

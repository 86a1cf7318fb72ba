//! The AWS provider against moto's EC2 server (`.venv/bin/moto_server`, installed by
//! scripts/venv.sh). Without the binary each test prints why and passes, except under `CI=true`,
//! where it fails.
//!
//! moto is a protocol peer, not EC2. Where it differs, this file asserts only what moto does (the
//! simulated provider and the unit tests in src/cloud/aws/ cover the rest):
//! - CreateFleet takes the first override: no allocation strategy (lowest-price,
//!   price-capacity-optimized), no spreading, never a capacity error.
//! - Launch-template security groups and metadata options are not copied onto instances.
//! - Spot prices are a fixed 0.00001; EKS-optimized AMI SSM paths (aliases) do not exist.
//! - AMI creation dates are all "now", so "newest per architecture" cannot be told apart.

use std::collections::BTreeMap;

use aws_sdk_ec2::Client;
use capstan::apis::ec2nodeclass::{AMISelectorTerm, SecurityGroupSelectorTerm, SubnetSelectorTerm};
use capstan::apis::labels::{CAPACITY_TYPE, INSTANCE_TYPE, NODEPOOL};
use capstan::apis::{
    EC2NodeClass, EC2NodeClassSpec, NodeClaim, NodeClaimSpec, NodeClassReference,
    NodeSelectorRequirementWithMinValues,
};
use capstan::cloud::aws::AwsProvider;
use capstan::cloud::catalog::{CapacityType, PriceSource};
use capstan::cloud::{CloudError, CloudProvider, InstanceState};

use crate::common;
use common::moto::{CLUSTER, DISCOVERY, Moto, ec2, network, settings};

fn tags(kv: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn class_by_tags() -> EC2NodeClass {
    let discovery = tags(&[(DISCOVERY, CLUSTER)]);
    EC2NodeClass::new(
        "default",
        EC2NodeClassSpec {
            subnet_selector_terms: vec![SubnetSelectorTerm {
                tags: discovery.clone(),
                id: None,
            }],
            security_group_selector_terms: vec![SecurityGroupSelectorTerm {
                tags: discovery.clone(),
                ..Default::default()
            }],
            ami_selector_terms: vec![AMISelectorTerm {
                tags: discovery,
                ..Default::default()
            }],
            ami_family: Some("AL2023".into()),
            role: Some("KarpenterNodeRole-moto".into()),
            tags: tags(&[("team", "platform")]),
            ..Default::default()
        },
    )
}

fn claim(name: &str, uid: &str) -> NodeClaim {
    let req = |key: &str, values: &[&str]| NodeSelectorRequirementWithMinValues {
        key: key.into(),
        operator: "In".into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
        min_values: None,
    };
    let mut c = NodeClaim::new(
        name,
        NodeClaimSpec {
            requirements: vec![
                req(INSTANCE_TYPE, &["m5.large", "c5.large"]),
                req(CAPACITY_TYPE, &["on-demand"]),
            ],
            node_class_ref: NodeClassReference {
                kind: "EC2NodeClass".into(),
                name: "default".into(),
                group: "karpenter.k8s.aws".into(),
            },
            ..Default::default()
        },
    );
    c.metadata.uid = Some(uid.into());
    c.metadata.labels = Some([(NODEPOOL.to_string(), "default".to_string())].into());
    c
}

#[tokio::test]
async fn resolves_node_classes_by_tags_ids_and_names() {
    let Some(moto) = Moto::start() else { return };
    let client = ec2(&moto.url).await;
    let net = network(&client).await;
    let provider = AwsProvider::new(settings(&moto.url)).await;

    let status = provider
        .resolve_node_class(&class_by_tags())
        .await
        .expect("resolves by tags");
    let mut subnets: Vec<(&str, &str)> = status
        .subnets
        .iter()
        .map(|s| (s.id.as_str(), s.zone.as_str()))
        .collect();
    subnets.sort();
    let mut want = vec![
        (net.subnet_a.as_str(), "us-west-2a"),
        (net.subnet_b.as_str(), "us-west-2b"),
    ];
    want.sort();
    assert_eq!(subnets, want, "only the tagged subnets, with their zones");
    assert!(status.subnets.iter().all(|s| s.zone_id.is_some()));
    assert_eq!(status.security_groups.len(), 1);
    assert_eq!(status.security_groups[0].id, net.sg);
    assert_eq!(
        status.security_groups[0].name.as_deref(),
        Some("capstan-nodes")
    );
    assert_eq!(
        status
            .amis
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        vec![net.ami.as_str()]
    );
    assert_eq!(status.amis[0].requirements[0].values, vec!["amd64"]);

    // By id (subnets, AMI) and by name (security group); two terms are ORed.
    let mut by_id = class_by_tags();
    by_id.spec.subnet_selector_terms = vec![
        SubnetSelectorTerm {
            id: Some(net.subnet_untagged.clone()),
            tags: None,
        },
        SubnetSelectorTerm {
            id: Some(net.subnet_a.clone()),
            tags: None,
        },
    ];
    by_id.spec.security_group_selector_terms = vec![SecurityGroupSelectorTerm {
        name: Some("capstan-nodes".into()),
        ..Default::default()
    }];
    by_id.spec.ami_selector_terms = vec![AMISelectorTerm {
        id: Some(net.other_ami.clone()),
        ..Default::default()
    }];
    let status = provider
        .resolve_node_class(&by_id)
        .await
        .expect("resolves by id");
    let mut ids: Vec<&str> = status.subnets.iter().map(|s| s.id.as_str()).collect();
    ids.sort();
    let mut want = vec![net.subnet_a.as_str(), net.subnet_untagged.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(status.security_groups[0].id, net.sg);
    assert_eq!(status.amis[0].id, net.other_ami);

    // Nothing matches: the error names what did not resolve.
    let mut none = class_by_tags();
    none.spec.subnet_selector_terms[0].tags = tags(&[(DISCOVERY, "other-cluster")]);
    match provider.resolve_node_class(&none).await {
        Err(CloudError::NodeClassNotReady { name, reason }) => {
            assert_eq!(name, "default");
            assert!(reason.contains("subnetSelectorTerms"), "{reason}");
            assert!(!reason.contains("securityGroupSelectorTerms"), "{reason}");
        }
        other => panic!("expected NodeClassNotReady, got {other:?}"),
    }
    // Aliases need the EKS SSM parameters (absent in moto, and not read yet): a clear error.
    let mut alias = class_by_tags();
    alias.spec.ami_selector_terms = vec![AMISelectorTerm {
        alias: Some("al2023@latest".into()),
        ..Default::default()
    }];
    match provider.resolve_node_class(&alias).await {
        Err(CloudError::NodeClassNotReady { reason, .. }) => {
            assert!(reason.contains("al2023@latest"), "{reason}")
        }
        other => panic!("expected NodeClassNotReady, got {other:?}"),
    }
}

#[tokio::test]
async fn launches_idempotently_lists_gets_and_terminates() {
    let Some(moto) = Moto::start() else { return };
    let client = ec2(&moto.url).await;
    let net = network(&client).await;
    let provider = AwsProvider::new(settings(&moto.url)).await;
    let class = class_by_tags();
    let first = claim("default-abcde", "6f1c2a8e-0000-4000-8000-000000000001");

    let launched = provider.create(&first, &class).await.expect("create");
    assert!(
        ["m5.large", "c5.large"].contains(&launched.instance_type.as_str()),
        "{launched:?}"
    );
    // Zones of the tagged subnets only.
    assert!(
        ["us-west-2a", "us-west-2b"].contains(&launched.zone.as_str()),
        "{launched:?}"
    );
    assert_eq!(
        launched.provider_id,
        format!("aws:///{}/{}", launched.zone, launched.id)
    );
    assert_eq!(launched.image_id.as_deref(), Some(net.ami.as_str()));
    assert_eq!(launched.capacity_type.as_str(), "on-demand");
    let t = &launched.tags;
    assert_eq!(
        t.get("kubernetes.io/cluster/moto-test").map(String::as_str),
        Some("owned")
    );
    assert_eq!(
        t.get("eks:eks-cluster-name").map(String::as_str),
        Some(CLUSTER)
    );
    assert_eq!(
        t.get("karpenter.sh/nodepool").map(String::as_str),
        Some("default")
    );
    assert_eq!(
        t.get("karpenter.sh/nodeclaim").map(String::as_str),
        Some("default-abcde")
    );
    assert_eq!(
        t.get("karpenter.k8s.aws/ec2nodeclass").map(String::as_str),
        Some("default")
    );
    assert_eq!(
        t.get("Name").map(String::as_str),
        Some("default/default-abcde")
    );
    assert_eq!(t.get("team").map(String::as_str), Some("platform"));
    // moto launches the first override, and the overrides are cheapest first: c5.large in the
    // first zone (EC2 would weigh price and capacity across all of them).
    assert_eq!(launched.instance_type, "c5.large");
    assert_eq!(launched.zone, "us-west-2a");
    assert_eq!(describe_subnet(&client, &launched.id).await, net.subnet_a);

    // A second create for the same claim (a controller restarted before its status update)
    // returns the same instance.
    let again = provider.create(&first, &class).await.expect("create again");
    assert_eq!(again.id, launched.id);

    // One launch template, named by its content, with the class's AMI; a second claim and a
    // fresh provider (no cache: found by name) reuse it.
    let second = claim("default-fghij", "6f1c2a8e-0000-4000-8000-000000000002");
    let other = provider
        .create(&second, &class)
        .await
        .expect("second claim");
    assert_ne!(other.id, launched.id);
    let fresh = AwsProvider::new(settings(&moto.url)).await;
    let third = claim("default-klmno", "6f1c2a8e-0000-4000-8000-000000000003");
    let third_instance = fresh.create(&third, &class).await.expect("third claim");
    let templates = client
        .describe_launch_templates()
        .send()
        .await
        .expect("launch templates");
    let names: Vec<&str> = templates
        .launch_templates()
        .iter()
        .filter_map(|t| t.launch_template_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("karpenter.k8s.aws/"), "{names:?}");

    let listed = provider.list().await.expect("list");
    let mut ids: Vec<&str> = listed.iter().map(|i| i.id.as_str()).collect();
    ids.sort();
    let mut want = vec![
        launched.id.as_str(),
        other.id.as_str(),
        third_instance.id.as_str(),
    ];
    want.sort();
    assert_eq!(ids, want);

    let got = provider.get(&launched.provider_id).await.expect("get");
    assert_eq!(got.id, launched.id);
    assert!(matches!(
        got.state,
        InstanceState::Pending | InstanceState::Running
    ));

    // Drift. moto leaves the launch template's security groups off the instance, so even the
    // unchanged class reports SecurityGroupDrift (EC2 would report none); an AMI the class no
    // longer selects is AMIDrift, checked first.
    let mut with_status = first.clone();
    with_status.status = Some(capstan::apis::NodeClaimStatus {
        provider_id: Some(launched.provider_id.clone()),
        ..Default::default()
    });
    let same = provider
        .is_drifted(&with_status, &class)
        .await
        .expect("drift check");
    assert!(
        same.as_deref()
            .is_some_and(|r| r.starts_with("SecurityGroupDrift: instance has []")),
        "{same:?}"
    );
    let mut new_ami = class.clone();
    new_ami.spec.ami_selector_terms = vec![AMISelectorTerm {
        id: Some(net.other_ami.clone()),
        ..Default::default()
    }];
    let drift = provider
        .is_drifted(&with_status, &new_ami)
        .await
        .expect("drift check");
    assert!(
        drift.as_deref().is_some_and(|r| r.starts_with("AMIDrift")),
        "{drift:?}"
    );

    provider
        .delete(&launched.provider_id)
        .await
        .expect("delete");
    match provider.get(&launched.provider_id).await {
        Err(CloudError::NotFound(_)) => {}
        other => panic!("expected NotFound after delete, got {other:?}"),
    }
    match provider.delete(&launched.provider_id).await {
        Err(CloudError::NotFound(_)) => {}
        other => panic!("expected NotFound deleting twice, got {other:?}"),
    }
    let listed = provider.list().await.expect("list");
    assert!(listed.iter().all(|i| i.id != launched.id), "{listed:?}");
    assert_eq!(listed.len(), 2);
    match provider.get("aws:///us-west-2a/i-0123456789abcdef0").await {
        Err(CloudError::NotFound(_)) => {}
        other => panic!("expected NotFound for an unknown id, got {other:?}"),
    }
}

async fn describe_subnet(client: &Client, id: &str) -> String {
    let out = client
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("describe");
    out.reservations()[0].instances()[0]
        .subnet_id()
        .expect("subnet")
        .to_string()
}

#[tokio::test]
async fn refreshes_zone_offerings_and_spot_prices() {
    let Some(moto) = Moto::start() else { return };
    let provider = AwsProvider::new(settings(&moto.url)).await;
    provider.refresh_catalog().await.expect("refresh");
    let catalog = provider.catalog();
    let now = std::time::SystemTime::now();
    let od = catalog
        .offering("c5.large", "us-west-2a", CapacityType::OnDemand)
        .expect("c5.large on-demand in us-west-2a");
    assert!(od.is_available(now));
    // On-demand prices are not refreshed (us-west-2 has no embedded table: us-east-1's stand in).
    assert_eq!(od.price_source, PriceSource::EstimatedFromUsEast1);
    // moto's spot price history is one fixed price for every type and zone.
    let spot = catalog
        .offering("m5.large", "us-west-2a", CapacityType::Spot)
        .expect("m5.large spot in us-west-2a");
    assert_eq!(spot.price_source, PriceSource::Live);
    assert!(
        spot.price_per_hour > 0.0 && spot.price_per_hour < 0.001,
        "{spot:?}"
    );
}

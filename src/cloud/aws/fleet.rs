//! CreateFleet (type `instant`, one instance): the overrides from the claim's launch options,
//! the tags every instance carries, and what the per-override errors mean.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::operation::create_fleet::CreateFleetOutput;
use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest,
    FleetOnDemandAllocationStrategy, FleetType, InstanceLifecycle, InstanceType,
    OnDemandOptionsRequest, ResourceType, SpotAllocationStrategy, SpotOptionsRequest,
    TagSpecification, TargetCapacitySpecificationRequest,
};

use crate::apis::ec2nodeclass::Subnet;
use crate::apis::labels::NODEPOOL;
use crate::apis::{EC2NodeClass, NodeClaim};
use crate::cloud::catalog::{CapacityType, Catalog};
use crate::cloud::launch::LaunchOption;
use crate::cloud::provider::{CloudError, CloudResult, OfferingKey, tags};

use super::errors::{classify, is_capacity_code, is_retryable_code, sdk_error};
use super::launch_template::to_sdk_tags;

/// Karpenter sends at most this many instance types per fleet request (EC2 caps overrides).
pub const MAX_INSTANCE_TYPES: usize = 60;

/// The tags of the instance and its volumes: the class's own, then ours (ours win).
pub fn instance_tags(
    cluster: &str,
    claim: &NodeClaim,
    class: &EC2NodeClass,
) -> BTreeMap<String, String> {
    let claim_name = claim.metadata.name.clone().unwrap_or_default();
    let nodepool = claim
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(NODEPOOL))
        .cloned()
        .unwrap_or_default();
    let mut t = class.spec.tags.clone().unwrap_or_default();
    t.insert(tags::cluster_key(cluster), "owned".into());
    t.insert(tags::EKS_CLUSTER_NAME.into(), cluster.into());
    t.insert(tags::NODEPOOL.into(), nodepool.clone());
    t.insert(tags::NODECLAIM.into(), claim_name.clone());
    t.insert(
        tags::EC2NODECLASS.into(),
        class.metadata.name.clone().unwrap_or_default(),
    );
    t.insert(tags::NAME.into(), format!("{nodepool}/{claim_name}"));
    t
}

/// One override: this type in this subnet (whose zone it launches in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub instance_type: String,
    pub subnet_id: String,
    pub zone: String,
}

/// The overrides of one launch template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateOverrides {
    pub template_id: String,
    pub overrides: Vec<Override>,
}

/// A launch template and the architecture its AMI runs (`None`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: String,
    pub arch: Option<String>,
}

/// One override per (instance type, zone) of `options` (cheapest first, at most
/// [`MAX_INSTANCE_TYPES`] types), in the first subnet of that zone, under the first template
/// whose AMI runs the type's architecture.
pub fn build_overrides(
    options: &[LaunchOption],
    subnets: &[Subnet],
    templates: &[Template],
    catalog: &Catalog,
) -> Vec<TemplateOverrides> {
    let mut subnet_by_zone: HashMap<&str, &str> = HashMap::new();
    for s in subnets {
        subnet_by_zone.entry(&s.zone).or_insert(&s.id);
    }
    let mut types = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut out: Vec<TemplateOverrides> = templates
        .iter()
        .map(|t| TemplateOverrides {
            template_id: t.id.clone(),
            overrides: Vec::new(),
        })
        .collect();
    for o in options {
        if !types.contains(&o.instance_type) && types.len() >= MAX_INSTANCE_TYPES {
            continue;
        }
        let Some(subnet) = subnet_by_zone.get(o.zone.as_str()) else {
            continue;
        };
        let arch = catalog
            .instance_type(&o.instance_type)
            .map(|it| it.arch.as_str());
        let Some(ti) = templates
            .iter()
            .position(|t| t.arch.is_none() || t.arch.as_deref() == arch)
        else {
            continue;
        };
        if !seen.insert((o.instance_type.clone(), o.zone.clone())) {
            continue;
        }
        types.insert(o.instance_type.clone());
        out[ti].overrides.push(Override {
            instance_type: o.instance_type.clone(),
            subnet_id: subnet.to_string(),
            zone: o.zone.clone(),
        });
    }
    out.retain(|t| !t.overrides.is_empty());
    out
}

/// The CreateFleet idempotency token: the claim's uid plus a hash of what is asked. A retry of
/// the same request (a timeout, a restart) returns the first one's fleet; a relaunch after
/// insufficient capacity asks for other overrides and so needs another token (EC2 answers
/// IdempotentParameterMismatch for a reused token with different parameters). At most 64
/// characters, as EC2 allows.
pub fn client_token(
    uid: Option<&str>,
    configs: &[TemplateOverrides],
    capacity_type: CapacityType,
) -> Option<String> {
    use sha2::{Digest, Sha256};
    let uid = uid.filter(|u| !u.is_empty())?;
    let mut h = Sha256::new();
    h.update(capacity_type.as_str());
    for c in configs {
        h.update(b"\0");
        h.update(&c.template_id);
        for o in &c.overrides {
            h.update(b"\0");
            h.update(&o.instance_type);
            h.update(b"/");
            h.update(&o.subnet_id);
        }
    }
    let hex: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let uid: String = uid.chars().take(64 - 1 - hex.len()).collect();
    Some(format!("{uid}-{hex}"))
}

/// What CreateFleet did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FleetOutcome {
    /// (instance id, instance type, zone when the response says) of the launched instance.
    pub launched: Option<(String, Option<String>, Option<String>)>,
    /// Offerings that had no capacity: mark them unavailable.
    pub unavailable: Vec<OfferingKey>,
    /// `code: message` of every error, in order.
    pub errors: Vec<(Option<String>, String)>,
}

impl FleetOutcome {
    /// The error to return when nothing launched.
    pub fn error(&self) -> CloudError {
        let message = self
            .errors
            .iter()
            .map(|(c, m)| format!("{}: {m}", c.as_deref().unwrap_or("error")))
            .collect::<Vec<_>>()
            .join("; ");
        let codes: Vec<&str> = self
            .errors
            .iter()
            .filter_map(|(c, _)| c.as_deref())
            .collect();
        if !codes.is_empty() && codes.iter().all(|c| is_capacity_code(c)) {
            return CloudError::InsufficientCapacity {
                offerings: self.unavailable.clone(),
                message,
            };
        }
        if codes.iter().any(|c| is_retryable_code(c)) {
            return CloudError::Retryable {
                operation: "CreateFleet".into(),
                message,
            };
        }
        if self.errors.is_empty() {
            return classify(
                "CreateFleet",
                None,
                "no instance launched and no error".into(),
            );
        }
        CloudError::Api {
            operation: "CreateFleet".into(),
            message,
        }
    }
}

pub fn parse_outcome(
    out: &CreateFleetOutput,
    subnet_zones: &HashMap<String, String>,
    capacity_type: CapacityType,
) -> FleetOutcome {
    let zone_of = |o: Option<&aws_sdk_ec2::types::FleetLaunchTemplateOverrides>| {
        let o = o?;
        o.availability_zone()
            .map(str::to_string)
            .or_else(|| o.subnet_id().and_then(|s| subnet_zones.get(s).cloned()))
    };
    let mut outcome = FleetOutcome::default();
    for e in out.errors() {
        let code = e.error_code().map(str::to_string);
        let message = e.error_message().unwrap_or_default().to_string();
        let ov = e
            .launch_template_and_overrides()
            .and_then(|l| l.overrides());
        if code.as_deref().is_some_and(is_capacity_code)
            && let (Some(it), Some(zone)) = (ov.and_then(|o| o.instance_type()), zone_of(ov))
        {
            let ct = match e.lifecycle() {
                Some(InstanceLifecycle::Spot) => CapacityType::Spot,
                Some(InstanceLifecycle::OnDemand) => CapacityType::OnDemand,
                _ => capacity_type,
            };
            let key = OfferingKey {
                instance_type: it.as_str().to_string(),
                zone,
                capacity_type: ct,
            };
            if !outcome.unavailable.contains(&key) {
                outcome.unavailable.push(key);
            }
        }
        outcome.errors.push((code, message));
    }
    outcome.launched = out.instances().iter().find_map(|i| {
        let id = i.instance_ids().first()?;
        let ov = i
            .launch_template_and_overrides()
            .and_then(|l| l.overrides());
        let it = i
            .instance_type()
            .or_else(|| ov.and_then(|o| o.instance_type()))
            .map(|t| t.as_str().to_string());
        Some((id.clone(), it, zone_of(ov)))
    });
    outcome
}

/// The CreateFleet call. `client_token` makes a retried request return the first one's result.
pub async fn create_fleet(
    client: &Client,
    configs: &[TemplateOverrides],
    capacity_type: CapacityType,
    client_token: Option<String>,
    instance_tags: &BTreeMap<String, String>,
) -> CloudResult<CreateFleetOutput> {
    let configs: Vec<FleetLaunchTemplateConfigRequest> = configs
        .iter()
        .map(|c| {
            FleetLaunchTemplateConfigRequest::builder()
                .launch_template_specification(
                    FleetLaunchTemplateSpecificationRequest::builder()
                        .launch_template_id(&c.template_id)
                        .version("$Latest")
                        .build(),
                )
                .set_overrides(Some(
                    c.overrides
                        .iter()
                        .map(|o| {
                            FleetLaunchTemplateOverridesRequest::builder()
                                .instance_type(InstanceType::from(o.instance_type.as_str()))
                                .subnet_id(&o.subnet_id)
                                .build()
                        })
                        .collect(),
                ))
                .build()
        })
        .collect();
    let default_type = match capacity_type {
        CapacityType::Spot => DefaultTargetCapacityType::Spot,
        CapacityType::OnDemand => DefaultTargetCapacityType::OnDemand,
    };
    let target = TargetCapacitySpecificationRequest::builder()
        .total_target_capacity(1)
        .default_target_capacity_type(default_type)
        .build();
    let tag_spec = |rt| {
        TagSpecification::builder()
            .resource_type(rt)
            .set_tags(Some(to_sdk_tags(instance_tags)))
            .build()
    };
    client
        .create_fleet()
        .r#type(FleetType::Instant)
        .set_launch_template_configs(Some(configs))
        .target_capacity_specification(target)
        .on_demand_options(
            OnDemandOptionsRequest::builder()
                .allocation_strategy(FleetOnDemandAllocationStrategy::LowestPrice)
                .build(),
        )
        .spot_options(
            SpotOptionsRequest::builder()
                .allocation_strategy(SpotAllocationStrategy::PriceCapacityOptimized)
                .build(),
        )
        .set_client_token(client_token)
        .tag_specifications(tag_spec(ResourceType::Instance))
        .tag_specifications(tag_spec(ResourceType::Volume))
        .send()
        .await
        .map_err(|e| sdk_error("CreateFleet", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::{EC2NodeClassSpec, NodeClaimSpec};
    use aws_sdk_ec2::types::{
        CreateFleetError, CreateFleetInstance, FleetLaunchTemplateOverrides,
        LaunchTemplateAndOverridesResponse,
    };

    fn opt(it: &str, zone: &str, price: f64) -> LaunchOption {
        LaunchOption {
            instance_type: it.into(),
            zone: zone.into(),
            capacity_type: CapacityType::OnDemand,
            price_per_hour: price,
        }
    }

    fn subnet(id: &str, zone: &str) -> Subnet {
        Subnet {
            id: id.into(),
            zone: zone.into(),
            zone_id: None,
        }
    }

    #[test]
    fn one_override_per_type_and_zone_first_subnet_of_the_zone() {
        let catalog = Catalog::for_region("us-west-2", None);
        let options = vec![
            opt("c5.large", "us-west-2a", 0.085),
            opt("c5.large", "us-west-2b", 0.085),
            opt("m5.large", "us-west-2a", 0.096),
            opt("m5.large", "us-west-2c", 0.096),
            opt("m6g.large", "us-west-2a", 0.077),
        ];
        let subnets = vec![
            subnet("subnet-a1", "us-west-2a"),
            subnet("subnet-a2", "us-west-2a"),
            subnet("subnet-b", "us-west-2b"),
        ];
        let templates = vec![Template {
            id: "lt-x86".into(),
            arch: Some("amd64".into()),
        }];
        let out = build_overrides(&options, &subnets, &templates, &catalog);
        assert_eq!(out.len(), 1);
        let got: Vec<(&str, &str)> = out[0]
            .overrides
            .iter()
            .map(|o| (o.instance_type.as_str(), o.subnet_id.as_str()))
            .collect();
        // No subnet in 2c; m6g is arm64 and no template runs it.
        assert_eq!(
            got,
            vec![
                ("c5.large", "subnet-a1"),
                ("c5.large", "subnet-b"),
                ("m5.large", "subnet-a1")
            ]
        );

        let both = vec![
            templates[0].clone(),
            Template {
                id: "lt-arm".into(),
                arch: Some("arm64".into()),
            },
        ];
        let out = build_overrides(&options, &subnets, &both, &catalog);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].template_id, "lt-arm");
        assert_eq!(out[1].overrides[0].instance_type, "m6g.large");
    }

    #[test]
    fn client_token_follows_the_request() {
        let cfg = |types: &[&str]| {
            vec![TemplateOverrides {
                template_id: "lt-1".into(),
                overrides: types
                    .iter()
                    .map(|t| Override {
                        instance_type: t.to_string(),
                        subnet_id: "subnet-a".into(),
                        zone: "us-west-2a".into(),
                    })
                    .collect(),
            }]
        };
        let uid = "6f1c2a8e-0000-4000-8000-000000000001";
        let od = CapacityType::OnDemand;
        let a = client_token(Some(uid), &cfg(&["c5.large", "m5.large"]), od).expect("token");
        assert_eq!(
            a,
            client_token(Some(uid), &cfg(&["c5.large", "m5.large"]), od).expect("token")
        );
        assert!(a.starts_with(uid) && a.len() <= 64, "{a}");
        // After c5.large ran out, the relaunch is another request.
        assert_ne!(
            a,
            client_token(Some(uid), &cfg(&["m5.large"]), od).expect("token")
        );
        assert_ne!(
            a,
            client_token(
                Some(uid),
                &cfg(&["c5.large", "m5.large"]),
                CapacityType::Spot
            )
            .expect("token")
        );
        assert_eq!(client_token(None, &cfg(&["c5.large"]), od), None);
        let long = "x".repeat(100);
        assert_eq!(
            client_token(Some(&long), &cfg(&["c5.large"]), od)
                .expect("token")
                .len(),
            64
        );
    }

    #[test]
    fn at_most_sixty_types() {
        let catalog = Catalog::for_region("us-west-2", None);
        let options: Vec<_> = catalog
            .iter()
            .take(100)
            .map(|e| opt(&e.instance_type.name, "us-west-2a", 1.0))
            .collect();
        let out = build_overrides(
            &options,
            &[subnet("s", "us-west-2a")],
            &[Template {
                id: "lt".into(),
                arch: None,
            }],
            &catalog,
        );
        assert_eq!(out[0].overrides.len(), MAX_INSTANCE_TYPES);
    }

    #[test]
    fn tags_name_the_claim_pool_class_and_cluster() {
        let mut claim = NodeClaim::new("default-abc12", NodeClaimSpec::default());
        claim.metadata.labels = Some([(NODEPOOL.to_string(), "default".to_string())].into());
        let mut class = EC2NodeClass::new("nc", EC2NodeClassSpec::default());
        class.spec.tags = Some(
            [
                ("team".to_string(), "a".to_string()),
                ("Name".to_string(), "theirs".to_string()),
            ]
            .into(),
        );
        let t = instance_tags("demo", &claim, &class);
        assert_eq!(t["kubernetes.io/cluster/demo"], "owned");
        assert_eq!(t["eks:eks-cluster-name"], "demo");
        assert_eq!(t["karpenter.sh/nodepool"], "default");
        assert_eq!(t["karpenter.sh/nodeclaim"], "default-abc12");
        assert_eq!(t["karpenter.k8s.aws/ec2nodeclass"], "nc");
        assert_eq!(t["Name"], "default/default-abc12");
        assert_eq!(t["team"], "a");
    }

    fn fleet_error(code: &str, it: &str, subnet: &str) -> CreateFleetError {
        CreateFleetError::builder()
            .error_code(code)
            .error_message("no capacity")
            .lifecycle(InstanceLifecycle::OnDemand)
            .launch_template_and_overrides(
                LaunchTemplateAndOverridesResponse::builder()
                    .overrides(
                        FleetLaunchTemplateOverrides::builder()
                            .instance_type(InstanceType::from(it))
                            .subnet_id(subnet)
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    #[test]
    fn capacity_errors_name_offerings_and_classify() {
        let zones: HashMap<String, String> =
            [("subnet-a".to_string(), "us-west-2a".to_string())].into();
        let out = CreateFleetOutput::builder()
            .errors(fleet_error(
                "InsufficientInstanceCapacity",
                "c5.large",
                "subnet-a",
            ))
            .errors(fleet_error("UnfulfillableCapacity", "m5.large", "subnet-a"))
            .build();
        let o = parse_outcome(&out, &zones, CapacityType::OnDemand);
        assert!(o.launched.is_none());
        assert_eq!(o.unavailable.len(), 2);
        assert_eq!(
            o.unavailable[0].to_string(),
            "c5.large/us-west-2a/on-demand"
        );
        let err = o.error();
        assert!(
            matches!(err, CloudError::InsufficientCapacity { ref offerings, .. } if offerings.len() == 2),
            "{err:?}"
        );

        let out = CreateFleetOutput::builder()
            .errors(fleet_error("RequestLimitExceeded", "c5.large", "subnet-a"))
            .build();
        let o = parse_outcome(&out, &zones, CapacityType::OnDemand);
        assert!(o.unavailable.is_empty());
        assert!(matches!(o.error(), CloudError::Retryable { .. }));

        let out = CreateFleetOutput::builder()
            .errors(fleet_error("InvalidParameterValue", "c5.large", "subnet-a"))
            .build();
        assert!(matches!(
            parse_outcome(&out, &zones, CapacityType::OnDemand).error(),
            CloudError::Api { .. }
        ));
    }

    #[test]
    fn launched_instance_with_partial_errors_still_marks_them() {
        let zones: HashMap<String, String> =
            [("subnet-a".to_string(), "us-west-2a".to_string())].into();
        let out = CreateFleetOutput::builder()
            .errors(fleet_error(
                "InsufficientInstanceCapacity",
                "c5.large",
                "subnet-a",
            ))
            .instances(
                CreateFleetInstance::builder()
                    .instance_ids("i-1")
                    .instance_type(InstanceType::from("m5.large"))
                    .launch_template_and_overrides(
                        LaunchTemplateAndOverridesResponse::builder()
                            .overrides(
                                FleetLaunchTemplateOverrides::builder()
                                    .subnet_id("subnet-a")
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build();
        let o = parse_outcome(&out, &zones, CapacityType::OnDemand);
        assert_eq!(
            o.launched,
            Some((
                "i-1".to_string(),
                Some("m5.large".to_string()),
                Some("us-west-2a".to_string())
            ))
        );
        assert_eq!(o.unavailable.len(), 1);
    }
}

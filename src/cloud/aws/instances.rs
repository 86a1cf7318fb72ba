//! Instances as capstan sees them: found by their tags, mapped onto `provider::Instance`,
//! terminated by id.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    Filter, Instance as Ec2Instance, InstanceLifecycleType, InstanceStateName,
};

use crate::apis::EC2NodeClassStatus;
use crate::cloud::catalog::CapacityType;
use crate::cloud::provider::{CloudError, CloudResult, Instance, InstanceState, provider_id, tags};

use super::errors::{is_not_found_code, sdk_error};

/// Every state but `terminated`: shutting-down instances still exist (and still cost).
const LIVE_STATES: &[&str] = &["pending", "running", "stopping", "stopped", "shutting-down"];

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

/// This cluster's instances that capstan launched (they carry a NodeClaim tag).
pub fn cluster_filters(cluster: &str) -> Vec<Filter> {
    vec![
        filter("tag-key", &[&tags::cluster_key(cluster)]),
        filter("tag-key", &[tags::NODECLAIM]),
        filter("instance-state-name", LIVE_STATES),
    ]
}

/// The instance launched for one NodeClaim, if it is not gone or going.
pub fn claim_filters(cluster: &str, claim: &str) -> Vec<Filter> {
    vec![
        filter("tag-key", &[&tags::cluster_key(cluster)]),
        filter(&format!("tag:{}", tags::NODECLAIM), &[claim]),
        filter(
            "instance-state-name",
            &["pending", "running", "stopping", "stopped"],
        ),
    ]
}

pub fn state(s: Option<&InstanceStateName>) -> InstanceState {
    match s {
        Some(InstanceStateName::Running) => InstanceState::Running,
        Some(InstanceStateName::ShuttingDown) => InstanceState::ShuttingDown,
        Some(InstanceStateName::Stopping | InstanceStateName::Stopped) => InstanceState::Stopped,
        Some(InstanceStateName::Terminated) => InstanceState::Terminated,
        _ => InstanceState::Pending,
    }
}

/// `None` when EC2 left out the id or the zone (neither happens for a described instance).
pub fn to_instance(i: &Ec2Instance) -> Option<Instance> {
    let id = i.instance_id()?;
    let zone = i.placement()?.availability_zone()?;
    Some(Instance {
        provider_id: provider_id(zone, id),
        id: id.to_string(),
        instance_type: i
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        zone: zone.to_string(),
        capacity_type: match i.instance_lifecycle() {
            Some(InstanceLifecycleType::Spot) => CapacityType::Spot,
            _ => CapacityType::OnDemand,
        },
        image_id: i.image_id().map(str::to_string),
        state: state(i.state().and_then(|s| s.name())),
        tags: i
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect::<BTreeMap<_, _>>(),
        launch_time: i
            .launch_time()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH),
    })
}

/// Why the instance no longer matches what its class resolves to (Karpenter's drift reasons),
/// checked AMI, then subnet, then security groups.
pub fn drift_reason(i: &Ec2Instance, resolved: &EC2NodeClassStatus) -> Option<String> {
    if let Some(image) = i.image_id()
        && !resolved.amis.is_empty()
        && !resolved.amis.iter().any(|a| a.id == image)
    {
        return Some(format!(
            "AMIDrift: instance image {image} is not among the class's AMIs"
        ));
    }
    if let Some(subnet) = i.subnet_id()
        && !resolved.subnets.is_empty()
        && !resolved.subnets.iter().any(|s| s.id == subnet)
    {
        return Some(format!(
            "SubnetDrift: instance subnet {subnet} is not among the class's subnets"
        ));
    }
    let mut have: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    let mut want: Vec<&str> = resolved
        .security_groups
        .iter()
        .map(|g| g.id.as_str())
        .collect();
    have.sort_unstable();
    have.dedup();
    want.sort_unstable();
    want.dedup();
    if !want.is_empty() && have != want {
        return Some(format!(
            "SecurityGroupDrift: instance has [{}], the class resolves [{}]",
            have.join(", "),
            want.join(", ")
        ));
    }
    None
}

/// Every instance matching `filters`, all pages.
pub async fn describe(client: &Client, filters: Vec<Filter>) -> CloudResult<Vec<Ec2Instance>> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let resp = client
            .describe_instances()
            .set_filters(Some(filters.clone()))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeInstances", e))?;
        for r in resp.reservations() {
            out.extend(r.instances().iter().cloned());
        }
        token = resp.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// `NotFound` when EC2 does not know the id, else the mapped SDK error.
fn not_found_or<E, R>(id: &str, operation: &str, e: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match e.code() {
        Some(code) if is_not_found_code(code) => CloudError::NotFound(id.to_string()),
        _ => sdk_error(operation, e),
    }
}

/// The instance with this id, terminated or not; `NotFound` when EC2 does not know it.
pub async fn describe_id(client: &Client, id: &str) -> CloudResult<Ec2Instance> {
    let resp = client
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| not_found_or(id, "DescribeInstances", e))?;
    resp.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
        .cloned()
        .ok_or_else(|| CloudError::NotFound(id.to_string()))
}

pub async fn terminate(client: &Client, id: &str) -> CloudResult<()> {
    client
        .terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| not_found_or(id, "TerminateInstances", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::ec2nodeclass::{AMI, SecurityGroup, Subnet};
    use aws_sdk_ec2::types::{GroupIdentifier, InstanceState as Ec2State, Placement, Tag};

    fn ec2(image: &str, subnet: &str, sgs: &[&str]) -> Ec2Instance {
        let mut b = Ec2Instance::builder()
            .instance_id("i-1")
            .image_id(image)
            .subnet_id(subnet)
            .instance_type(aws_sdk_ec2::types::InstanceType::from("m5.large"))
            .instance_lifecycle(InstanceLifecycleType::Spot)
            .placement(Placement::builder().availability_zone("us-west-2b").build())
            .state(Ec2State::builder().name(InstanceStateName::Running).build())
            .tags(Tag::builder().key(tags::NODECLAIM).value("c1").build());
        for sg in sgs {
            b = b.security_groups(GroupIdentifier::builder().group_id(*sg).build());
        }
        b.build()
    }

    fn resolved() -> EC2NodeClassStatus {
        EC2NodeClassStatus {
            amis: vec![AMI {
                id: "ami-1".into(),
                ..Default::default()
            }],
            subnets: vec![Subnet {
                id: "subnet-1".into(),
                zone: "us-west-2b".into(),
                zone_id: None,
            }],
            security_groups: vec![SecurityGroup {
                id: "sg-1".into(),
                name: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn maps_an_ec2_instance() {
        let i = to_instance(&ec2("ami-1", "subnet-1", &["sg-1"])).expect("instance");
        assert_eq!(i.provider_id, "aws:///us-west-2b/i-1");
        assert_eq!(i.capacity_type, CapacityType::Spot);
        assert_eq!(i.state, InstanceState::Running);
        assert_eq!(i.nodeclaim(), Some("c1"));
        assert_eq!(
            state(Some(&InstanceStateName::ShuttingDown)),
            InstanceState::ShuttingDown
        );
    }

    #[test]
    fn drift_by_ami_subnet_then_security_groups() {
        assert_eq!(
            drift_reason(&ec2("ami-1", "subnet-1", &["sg-1"]), &resolved()),
            None
        );
        let r = drift_reason(&ec2("ami-2", "subnet-9", &["sg-9"]), &resolved()).expect("drift");
        assert!(r.starts_with("AMIDrift"), "{r}");
        let r = drift_reason(&ec2("ami-1", "subnet-9", &["sg-1"]), &resolved()).expect("drift");
        assert!(r.starts_with("SubnetDrift"), "{r}");
        let r =
            drift_reason(&ec2("ami-1", "subnet-1", &["sg-1", "sg-2"]), &resolved()).expect("drift");
        assert!(r.starts_with("SecurityGroupDrift"), "{r}");
    }
}

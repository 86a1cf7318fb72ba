//! What a NodeClaim may launch as: the (instance type, zone, capacity type) offerings its
//! requirements allow, in the zones the EC2NodeClass has subnets in, cheapest first. Pure; both
//! providers call it (the AWS one turns the list into CreateFleet overrides).

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::apis::labels::{CAPACITY_TYPE, CAPACITY_TYPE_ON_DEMAND, ZONE};
use crate::apis::{EC2NodeClass, NodeClaim};
use crate::scheduling::requirements::{Requirement, Requirements};
use crate::scheduling::resources::Resources;

use super::catalog::{AllocatableSettings, CapacityType, Catalog, instance_options};
use super::provider::CloudError;

/// One offering a claim may launch as.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchOption {
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
    pub price_per_hour: f64,
}

/// Karpenter's rule: spot when the claim allows it (its offerings are cheaper), else on-demand.
/// Returns every allowed offering of the chosen capacity type, cheapest first.
pub fn launch_options(
    claim: &NodeClaim,
    class: &EC2NodeClass,
    catalog: &Catalog,
    now: SystemTime,
) -> Result<Vec<LaunchOption>, CloudError> {
    let mut reqs = Requirements::from_nodepool(&claim.spec.requirements)
        .map_err(|e| CloudError::NoCompatibleOffering(format!("requirements: {e}")))?;
    if !reqs.has_key(CAPACITY_TYPE) {
        reqs.add(Requirement::single(CAPACITY_TYPE, CAPACITY_TYPE_ON_DEMAND));
    }
    // Zones come from the subnets the class resolved; with none resolved every zone is allowed
    // (the simulated provider resolves one subnet per zone).
    let subnet_zones: BTreeSet<&str> = class
        .status
        .iter()
        .flat_map(|s| s.subnets.iter())
        .map(|s| s.zone.as_str())
        .collect();
    let settings = AllocatableSettings::from_kubelet(class.spec.kubelet.as_ref())
        .map_err(|e| CloudError::NoCompatibleOffering(format!("kubelet settings: {e}")))?;
    let mut options = Vec::new();
    for it in instance_options(catalog, &settings, now) {
        if !it.compatible(&reqs) || !fits_requests(claim, &it.allocatable) {
            continue;
        }
        for o in &it.offerings {
            let zone_ok = reqs.get(ZONE).is_none_or(|z| z.has(&o.zone))
                && (subnet_zones.is_empty() || subnet_zones.contains(o.zone.as_str()));
            let ct_ok = reqs
                .get(CAPACITY_TYPE)
                .is_none_or(|c| c.has(&o.capacity_type));
            let Some(ct) = CapacityType::parse(&o.capacity_type) else {
                continue;
            };
            if zone_ok && ct_ok {
                options.push(LaunchOption {
                    instance_type: it.name.clone(),
                    zone: o.zone.clone(),
                    capacity_type: ct,
                    price_per_hour: o.price_per_hour,
                });
            }
        }
    }
    if options.is_empty() {
        return Err(CloudError::NoCompatibleOffering(format!(
            "no available offering matches [{}]",
            reqs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let spot = options
        .iter()
        .any(|o| o.capacity_type == CapacityType::Spot);
    options.retain(|o| {
        if spot {
            o.capacity_type == CapacityType::Spot
        } else {
            o.capacity_type != CapacityType::Spot
        }
    });
    options.sort_by(|a, b| {
        a.price_per_hour
            .total_cmp(&b.price_per_hour)
            .then_with(|| a.instance_type.cmp(&b.instance_type))
            .then_with(|| a.zone.cmp(&b.zone))
    });
    Ok(options)
}

fn fits_requests(claim: &NodeClaim, allocatable: &Resources) -> bool {
    let Some(requests) = claim
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
    else {
        return true;
    };
    match Resources::from_k8s(requests) {
        Ok(r) => r.fits(allocatable),
        Err(_) => true,
    }
}

/// Capacity and allocatable of `instance_type` under the class's kubelet settings, as the
/// NodeClaim's status carries them.
pub fn node_resources(
    instance_type: &str,
    class: &EC2NodeClass,
    catalog: &Catalog,
) -> Option<(BTreeMap<String, Quantity>, BTreeMap<String, Quantity>)> {
    let settings = AllocatableSettings::from_kubelet(class.spec.kubelet.as_ref()).ok()?;
    let it = catalog.instance_type(instance_type)?;
    let capacity = super::catalog::capacity(it, &settings);
    let allocatable = super::catalog::allocatable_with(it, &settings);
    Some((to_quantities(&capacity), to_quantities(&allocatable)))
}

pub fn to_quantities(r: &Resources) -> BTreeMap<String, Quantity> {
    r.to_strings()
        .into_iter()
        .map(|(k, v)| (k, Quantity(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::labels::INSTANCE_TYPE;
    use crate::apis::{EC2NodeClassSpec, NodeClaimSpec, NodeSelectorRequirementWithMinValues};

    fn req(key: &str, values: &[&str]) -> NodeSelectorRequirementWithMinValues {
        NodeSelectorRequirementWithMinValues {
            key: key.into(),
            operator: "In".into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
            min_values: None,
        }
    }

    fn claim(reqs: Vec<NodeSelectorRequirementWithMinValues>) -> NodeClaim {
        NodeClaim::new(
            "c",
            NodeClaimSpec {
                requirements: reqs,
                ..Default::default()
            },
        )
    }

    fn class() -> EC2NodeClass {
        EC2NodeClass::new("default", EC2NodeClassSpec::default())
    }

    fn catalog() -> Catalog {
        Catalog::for_region("us-east-1", None)
    }

    #[test]
    fn on_demand_by_default_cheapest_first() {
        let c = claim(vec![req(
            INSTANCE_TYPE,
            &["m5.large", "c5.large", "m5.xlarge"],
        )]);
        let opts = launch_options(&c, &class(), &catalog(), SystemTime::now()).expect("options");
        assert!(
            opts.iter()
                .all(|o| o.capacity_type == CapacityType::OnDemand)
        );
        assert_eq!(opts[0].instance_type, "c5.large");
        assert!(
            opts.windows(2)
                .all(|w| w[0].price_per_hour <= w[1].price_per_hour)
        );
        let types: BTreeSet<_> = opts.iter().map(|o| o.instance_type.as_str()).collect();
        assert_eq!(types.len(), 3);
    }

    #[test]
    fn spot_when_allowed_and_zones_from_subnets() {
        let c = claim(vec![
            req(INSTANCE_TYPE, &["m5.large"]),
            req(CAPACITY_TYPE, &["spot", "on-demand"]),
        ]);
        let mut k = class();
        let zone = catalog().zones()[0].name.clone();
        k.status = Some(crate::apis::EC2NodeClassStatus {
            subnets: vec![crate::apis::ec2nodeclass::Subnet {
                id: "subnet-1".into(),
                zone: zone.clone(),
                zone_id: None,
            }],
            ..Default::default()
        });
        let opts = launch_options(&c, &k, &catalog(), SystemTime::now()).expect("options");
        assert!(opts.iter().all(|o| o.capacity_type == CapacityType::Spot));
        assert!(opts.iter().all(|o| o.zone == zone), "{opts:?}");
    }

    #[test]
    fn nothing_compatible_is_an_error_that_names_the_requirements() {
        let c = claim(vec![req(INSTANCE_TYPE, &["no-such.type"])]);
        let err = launch_options(&c, &class(), &catalog(), SystemTime::now()).expect_err("no type");
        assert!(err.to_string().contains("no-such.type"), "{err}");
    }

    #[test]
    fn status_resources_for_a_type() {
        let (cap, alloc) = node_resources("m5.large", &class(), &catalog()).expect("known type");
        assert_eq!(cap.get("cpu").map(|q| q.0.as_str()), Some("2"));
        assert!(alloc.contains_key("memory") && alloc.contains_key("pods"));
    }
}

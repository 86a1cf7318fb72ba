//! An instance type as the simulation sees it: labels, allocatable resources and the offerings
//! (zone × capacity type × price) that can be launched now. Built by the cloud provider from its
//! catalog; here it is plain data.

use std::collections::BTreeMap;

use crate::apis::labels::{self, CAPACITY_TYPE, ZONE};

use super::requirements::Requirements;
use super::resources::Resources;

#[derive(Debug, Clone, PartialEq)]
pub struct OfferingOption {
    pub zone: String,
    pub capacity_type: String,
    pub price_per_hour: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceOption {
    pub name: String,
    /// The type's well-known labels (not zone or capacity type: those are per offering).
    pub labels: BTreeMap<String, String>,
    pub capacity: Resources,
    pub allocatable: Resources,
    /// Available offerings only, cheapest first.
    pub offerings: Vec<OfferingOption>,
}

/// Keys the provider sets on every node from the instance type: a requirement on one of them that
/// the type has no value for can only be met by the label being absent.
fn is_instance_label(key: &str) -> bool {
    labels::WELL_KNOWN_AWS.contains(&key)
        || key == labels::INSTANCE_TYPE
        || key == labels::ARCH
        || key == labels::OS
}

impl InstanceOption {
    pub fn new(
        name: impl Into<String>,
        labels: BTreeMap<String, String>,
        capacity: Resources,
        allocatable: Resources,
        mut offerings: Vec<OfferingOption>,
    ) -> Self {
        offerings.sort_by(|a, b| a.price_per_hour.total_cmp(&b.price_per_hour));
        InstanceOption {
            name: name.into(),
            labels,
            capacity,
            allocatable,
            offerings,
        }
    }

    /// Why this type cannot satisfy `reqs`, if it cannot.
    pub fn incompatibility(&self, reqs: &Requirements) -> Option<String> {
        for r in reqs.iter() {
            if r.key == ZONE || r.key == CAPACITY_TYPE {
                continue;
            }
            match self.labels.get(&r.key) {
                Some(v) if !r.has(v) => return Some(format!("{}={v} does not satisfy {r}", r.key)),
                None if is_instance_label(&r.key)
                    && !(r.forbids_label() || r.operator() == "NotIn") =>
                {
                    return Some(format!("{} has no {}", self.name, r.key));
                }
                _ => {}
            }
        }
        if self.cheapest_offering(reqs).is_none() {
            return Some(format!(
                "{} has no available offering in the allowed zones and capacity types",
                self.name
            ));
        }
        None
    }

    pub fn compatible(&self, reqs: &Requirements) -> bool {
        self.incompatibility(reqs).is_none()
    }

    /// The cheapest available offering whose zone and capacity type `reqs` allow.
    pub fn cheapest_offering(&self, reqs: &Requirements) -> Option<&OfferingOption> {
        let zone = reqs.get(ZONE);
        let ct = reqs.get(CAPACITY_TYPE);
        self.offerings.iter().find(|o| {
            zone.is_none_or(|z| z.has(&o.zone)) && ct.is_none_or(|c| c.has(&o.capacity_type))
        })
    }

    /// The value this type has for `key`, counting zone / capacity type of any offering.
    pub fn values_for(&self, key: &str, reqs: &Requirements) -> Vec<String> {
        match key {
            ZONE | CAPACITY_TYPE => {
                let mut v: Vec<String> = self
                    .offerings
                    .iter()
                    .filter(|o| reqs.get(ZONE).is_none_or(|z| z.has(&o.zone)))
                    .filter(|o| {
                        reqs.get(CAPACITY_TYPE)
                            .is_none_or(|c| c.has(&o.capacity_type))
                    })
                    .map(|o| {
                        if key == ZONE {
                            o.zone.clone()
                        } else {
                            o.capacity_type.clone()
                        }
                    })
                    .collect();
                v.sort();
                v.dedup();
                v
            }
            _ => self.labels.get(key).cloned().into_iter().collect(),
        }
    }
}

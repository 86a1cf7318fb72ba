//! The catalog as the scheduling simulation reads it: one [`InstanceOption`] per type with its
//! labels, capacity and allocatable under an EC2NodeClass's kubelet settings, and the offerings
//! that can be launched now.

use std::sync::Arc;
use std::time::SystemTime;

use super::{AllocatableSettings, Catalog, allocatable_with, capacity, labels};
use crate::scheduling::instance::{InstanceOption, OfferingOption};

/// Every type of `catalog` with at least one offering available at `now`.
pub fn instance_options(
    catalog: &Catalog,
    settings: &AllocatableSettings,
    now: SystemTime,
) -> Vec<Arc<InstanceOption>> {
    catalog
        .iter()
        .filter_map(|entry| {
            let offerings: Vec<OfferingOption> = entry
                .available_offerings(now)
                .map(|o| OfferingOption {
                    zone: o.zone.clone(),
                    capacity_type: o.capacity_type.as_str().to_string(),
                    price_per_hour: o.price_per_hour,
                })
                .collect();
            if offerings.is_empty() {
                return None;
            }
            let it = &entry.instance_type;
            Some(Arc::new(InstanceOption::new(
                it.name.clone(),
                labels(it),
                capacity(it, settings),
                allocatable_with(it, settings),
                offerings,
            )))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::labels::{ARCH, INSTANCE_TYPE};

    #[test]
    fn options_carry_labels_allocatable_and_offerings() {
        let catalog = Catalog::for_region("us-east-1", None);
        let settings = AllocatableSettings::from_kubelet(None).expect("defaults");
        let options = instance_options(&catalog, &settings, SystemTime::now());
        assert!(options.len() > 500, "{}", options.len());
        let m5 = options
            .iter()
            .find(|o| o.name == "m5.large")
            .expect("m5.large is offered in us-east-1");
        assert_eq!(
            m5.labels.get(INSTANCE_TYPE).map(String::as_str),
            Some("m5.large")
        );
        assert_eq!(m5.labels.get(ARCH).map(String::as_str), Some("amd64"));
        assert_eq!(m5.allocatable.cpu_millis, 1930);
        assert!(m5.offerings.iter().any(|o| o.capacity_type == "spot"));
        assert!(
            m5.offerings
                .windows(2)
                .all(|w| w[0].price_per_hour <= w[1].price_per_hour),
            "cheapest first"
        );
    }
}

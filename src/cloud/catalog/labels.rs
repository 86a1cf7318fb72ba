//! Well-known node labels derived from an instance type, as Karpenter's `computeRequirements`
//! (pkg/providers/instancetype/types.go) sets them, so that NodePool requirements written for
//! Karpenter select the same types here.

use std::collections::BTreeMap;

use crate::apis::labels as wk;

use super::{InstanceType, Offering};

pub const ZONE_ID: &str = "topology.k8s.aws/zone-id";
pub const INSTANCE_NETWORK_BANDWIDTH: &str = "karpenter.k8s.aws/instance-network-bandwidth";
pub const INSTANCE_ACCELERATOR_NAME: &str = "karpenter.k8s.aws/instance-accelerator-name";
pub const INSTANCE_ACCELERATOR_MANUFACTURER: &str =
    "karpenter.k8s.aws/instance-accelerator-manufacturer";
pub const INSTANCE_ACCELERATOR_COUNT: &str = "karpenter.k8s.aws/instance-accelerator-count";
pub const INSTANCE_CAPABILITY_FLEX: &str = "karpenter.k8s.aws/instance-capability-flex";

pub const OS_LINUX: &str = "linux";

/// The labels every node of this type carries, whatever its zone and capacity type.
///
/// Values follow Karpenter: memory in MiB as EC2 reports it (before any overhead), `instance-cpu`
/// the vCPU count, `instance-local-nvme` the NVMe instance storage in GB (only when there is
/// some), GPU and accelerator labels only when the type has them, and `instance-hypervisor` empty
/// on bare metal. `instance-generation` is absent where Karpenter's name pattern finds none (Mac).
pub fn labels(it: &InstanceType) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        l.insert(k.to_string(), v);
    };
    put(wk::INSTANCE_TYPE, it.name.clone());
    put(wk::ARCH, it.arch.clone());
    put(wk::OS, OS_LINUX.to_string());
    put(wk::INSTANCE_CATEGORY, it.category.clone());
    put(wk::INSTANCE_FAMILY, it.family.clone());
    if let Some(generation) = it.generation {
        put(wk::INSTANCE_GENERATION, generation.to_string());
    }
    put(wk::INSTANCE_SIZE, it.size.clone());
    put(wk::INSTANCE_CPU, it.vcpu.to_string());
    put(wk::INSTANCE_MEMORY, it.memory_mib.to_string());
    put(
        wk::INSTANCE_HYPERVISOR,
        it.hypervisor.clone().unwrap_or_default(),
    );
    put(
        INSTANCE_CAPABILITY_FLEX,
        it.family.ends_with("-flex").to_string(),
    );
    if let Some(mbps) = it.network_bandwidth_mbps {
        put(INSTANCE_NETWORK_BANDWIDTH, mbps.to_string());
    }
    if it.local_nvme_gb > 0 {
        put(wk::INSTANCE_LOCAL_NVME, it.local_nvme_gb.to_string());
    }
    if it.gpu_count > 0 {
        put(wk::INSTANCE_GPU_COUNT, it.gpu_count.to_string());
        if let Some(name) = &it.gpu_name {
            put(wk::INSTANCE_GPU_NAME, name.clone());
        }
        if let Some(manufacturer) = &it.gpu_manufacturer {
            put(wk::INSTANCE_GPU_MANUFACTURER, manufacturer.clone());
        }
        if it.gpu_memory_mib > 0 {
            put(wk::INSTANCE_GPU_MEMORY, it.gpu_memory_mib.to_string());
        }
    }
    if it.accelerator_count > 0 {
        put(INSTANCE_ACCELERATOR_COUNT, it.accelerator_count.to_string());
        if let Some(name) = &it.accelerator_name {
            put(INSTANCE_ACCELERATOR_NAME, name.clone());
        }
        if let Some(manufacturer) = &it.accelerator_manufacturer {
            put(INSTANCE_ACCELERATOR_MANUFACTURER, manufacturer.clone());
        }
    }
    l
}

/// The labels that depend on where and how the node was bought.
pub fn offering_labels(offering: &Offering) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(wk::ZONE.to_string(), offering.zone.clone());
    l.insert(
        wk::CAPACITY_TYPE.to_string(),
        offering.capacity_type.as_str().to_string(),
    );
    if let Some(id) = &offering.zone_id {
        l.insert(ZONE_ID.to_string(), id.clone());
    }
    l
}

/// Everything a node launched from this offering is labelled with by the provider (NodePool
/// labels and `karpenter.sh/nodepool` come on top).
pub fn node_labels(
    region: &str,
    it: &InstanceType,
    offering: &Offering,
) -> BTreeMap<String, String> {
    let mut l = labels(it);
    l.extend(offering_labels(offering));
    l.insert(wk::REGION.to_string(), region.to_string());
    l
}

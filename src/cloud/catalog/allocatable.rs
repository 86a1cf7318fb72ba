//! Capacity, overhead and allocatable of an instance type, as Karpenter computes them before a node
//! exists (aws/karpenter-provider-aws @ 1d927085, pkg/providers/instancetype/types.go:
//! `computeCapacity`, `memory`, `pods`, `ENILimitedPods`, `kubeReservedResources`,
//! `systemReservedResources`, `evictionThreshold`). Allocatable = capacity − (kube-reserved +
//! system-reserved + hard eviction thresholds), as Karpenter core's `InstanceType.Allocatable`.
//!
//! What we follow, for the default AMI family (AL2023; AL2 is the same):
//! - memory capacity: EC2 MiB, minus 64 MiB on arm64 (Graviton CMA reservation), minus
//!   `ceil(7.5%)` VM overhead (`VM_MEMORY_OVERHEAD_PERCENT`, default 0.075);
//! - pods: kubelet `maxPods` if set, else the ENI limit `ENIs × (IPv4 per ENI − 1) + 2` (the
//!   dataset's `max_pods`; 110 when unknown), then capped by `podsPerCore × vCPU` when > 0;
//! - kube-reserved CPU: 6% of the first core, 1% of the second, 0.5% of cores 3-4, 0.25% of the
//!   rest (millicores, each tier truncated); memory `11 MiB × pods + 255 MiB`, where AL2/AL2023
//!   count the ENI-limited pods even when `maxPods` is set (Karpenter's
//!   `UsesENILimitedMemoryOverhead`; Bottlerocket counts the real max pods); ephemeral-storage 1Gi.
//!   Keys in kubelet `kubeReserved` replace these one by one;
//! - system-reserved: only what kubelet `systemReserved` says;
//! - eviction: `memory.available` 100Mi and `nodefs.available` 10% unless `evictionHard` sets them
//!   (percentages of capacity, rounded up; `100%` disables). `evictionSoft` does not reduce
//!   allocatable (Karpenter dropped it: soft thresholds only warn);
//! - ephemeral-storage capacity: the root volume (20Gi by default), or with instance-store RAID0
//!   the instance storage in GB.
//!
//! Not modelled: reserved ENIs / EFA-only interfaces, Windows, `vpc.amazonaws.com/efa`,
//! `aws.amazon.com/neuroncore` (the dataset has device counts, not cores).

use thiserror::Error;

use crate::apis::ec2nodeclass::KubeletConfiguration;
use crate::scheduling::resources::{
    CPU, EPHEMERAL_STORAGE, MEMORY, QuantityError, Resources, parse_quantity,
};

use super::InstanceType;

pub const NVIDIA_GPU: &str = "nvidia.com/gpu";
pub const AMD_GPU: &str = "amd.com/gpu";
pub const AWS_NEURON: &str = "aws.amazon.com/neuron";
pub const HABANA_GAUDI: &str = "habana.ai/gaudi";
pub const POD_ENI: &str = "vpc.amazonaws.com/pod-eni";

/// Karpenter's `VM_MEMORY_OVERHEAD_PERCENT` default (a fraction, despite the name).
pub const DEFAULT_VM_MEMORY_OVERHEAD_PERCENT: f64 = 0.075;
/// The root volume Karpenter assumes for AL2023 / Bottlerocket (`DefaultEBS`).
pub const DEFAULT_EPHEMERAL_STORAGE_BYTES: i64 = 20 << 30;
/// kubelet's own default, used when the ENI limit is unknown.
pub const DEFAULT_MAX_PODS: i64 = 110;

const MIB: i64 = 1 << 20;
const GIB: i64 = 1 << 30;
const MEMORY_AVAILABLE: &str = "memory.available";
const NODEFS_AVAILABLE: &str = "nodefs.available";

/// A hard eviction threshold: an amount, or a percentage of capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Bytes(i64),
    Percent(f64),
}

impl Threshold {
    fn of(self, capacity: i64) -> i64 {
        match self {
            Threshold::Bytes(b) => b,
            // kubelet treats 100% as "no threshold"; Karpenter mirrors that.
            Threshold::Percent(p) if p >= 100.0 => 0,
            Threshold::Percent(p) => (capacity as f64 / 100.0 * p).ceil() as i64,
        }
    }
}

/// Reserved amounts from kubelet settings; None keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reserved {
    pub cpu_millis: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub ephemeral_storage_bytes: Option<i64>,
}

/// Everything that turns an instance type into allocatable resources. Parse once per
/// EC2NodeClass ([`AllocatableSettings::from_kubelet`]), then apply to every type.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocatableSettings {
    pub max_pods: Option<i64>,
    pub pods_per_core: Option<i64>,
    pub kube_reserved: Reserved,
    pub system_reserved: Reserved,
    pub eviction_hard_memory: Option<Threshold>,
    pub eviction_hard_nodefs: Option<Threshold>,
    /// Fraction of memory lost to the hypervisor and firmware (0.075 = 7.5%).
    pub vm_memory_overhead_percent: f64,
    /// Root volume size, the node's ephemeral storage.
    pub ephemeral_storage_bytes: i64,
    /// EC2NodeClass `instanceStorePolicy: RAID0`: ephemeral storage is the instance store.
    pub instance_store_raid0: bool,
    /// AL2 / AL2023 size kube-reserved memory from the ENI pod limit even when `maxPods` is set;
    /// Bottlerocket uses the real max pods (false).
    pub kube_reserved_memory_from_eni_pods: bool,
}

impl Default for AllocatableSettings {
    fn default() -> Self {
        AllocatableSettings {
            max_pods: None,
            pods_per_core: None,
            kube_reserved: Reserved::default(),
            system_reserved: Reserved::default(),
            eviction_hard_memory: None,
            eviction_hard_nodefs: None,
            vm_memory_overhead_percent: DEFAULT_VM_MEMORY_OVERHEAD_PERCENT,
            ephemeral_storage_bytes: DEFAULT_EPHEMERAL_STORAGE_BYTES,
            instance_store_raid0: false,
            kube_reserved_memory_from_eni_pods: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum KubeletError {
    #[error("kubelet.{field}[{key:?}]: {source}")]
    Quantity {
        field: &'static str,
        key: String,
        #[source]
        source: QuantityError,
    },
    #[error("kubelet.evictionHard[{key:?}]: invalid percentage {value:?} (expected 0% to 100%)")]
    Percentage { key: String, value: String },
    #[error("kubelet.{field} must not be negative, got {value}")]
    Negative { field: &'static str, value: i64 },
}

impl AllocatableSettings {
    /// EKS defaults overridden by an EC2NodeClass's kubelet settings. Keys that do not change
    /// allocatable (`pid`, inode signals) are ignored.
    pub fn from_kubelet(kubelet: Option<&KubeletConfiguration>) -> Result<Self, KubeletError> {
        let mut s = AllocatableSettings::default();
        let Some(k) = kubelet else {
            return Ok(s);
        };
        s.max_pods = non_negative("maxPods", k.max_pods)?;
        s.pods_per_core = non_negative("podsPerCore", k.pods_per_core)?;
        s.kube_reserved = reserved("kubeReserved", k.kube_reserved.as_ref())?;
        s.system_reserved = reserved("systemReserved", k.system_reserved.as_ref())?;
        if let Some(eviction) = &k.eviction_hard {
            s.eviction_hard_memory = threshold(eviction, MEMORY_AVAILABLE)?;
            s.eviction_hard_nodefs = threshold(eviction, NODEFS_AVAILABLE)?;
        }
        Ok(s)
    }
}

fn non_negative(field: &'static str, v: Option<i32>) -> Result<Option<i64>, KubeletError> {
    match v.map(i64::from) {
        Some(value) if value < 0 => Err(KubeletError::Negative { field, value }),
        other => Ok(other),
    }
}

fn reserved(
    field: &'static str,
    list: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<Reserved, KubeletError> {
    let mut r = Reserved::default();
    for (key, value) in list.into_iter().flatten() {
        let q = parse_quantity(value).map_err(|source| KubeletError::Quantity {
            field,
            key: key.clone(),
            source,
        })?;
        match key.as_str() {
            CPU => r.cpu_millis = Some(q.milli_value()),
            MEMORY => r.memory_bytes = Some(q.value()),
            EPHEMERAL_STORAGE => r.ephemeral_storage_bytes = Some(q.value()),
            _ => {}
        }
    }
    Ok(r)
}

fn threshold(
    list: &std::collections::BTreeMap<String, String>,
    key: &str,
) -> Result<Option<Threshold>, KubeletError> {
    let Some(value) = list.get(key) else {
        return Ok(None);
    };
    if let Some(p) = value.strip_suffix('%') {
        return match p.parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(Some(Threshold::Percent(p))),
            _ => Err(KubeletError::Percentage {
                key: key.to_string(),
                value: value.clone(),
            }),
        };
    }
    let q = parse_quantity(value).map_err(|source| KubeletError::Quantity {
        field: "evictionHard",
        key: key.to_string(),
        source,
    })?;
    Ok(Some(Threshold::Bytes(q.value())))
}

/// The pods a node of this type may run.
pub fn max_pods(it: &InstanceType, s: &AllocatableSettings) -> i64 {
    let mut pods = s.max_pods.unwrap_or_else(|| eni_limited_pods(it));
    if let Some(per_core) = s.pods_per_core.filter(|p| *p > 0) {
        pods = pods.min(per_core * i64::from(it.vcpu));
    }
    pods
}

fn eni_limited_pods(it: &InstanceType) -> i64 {
    it.max_pods_eni.map_or(DEFAULT_MAX_PODS, i64::from)
}

/// Kube-reserved CPU for a vCPU count, in millicores (the EKS AMI / Bottlerocket tiers).
pub fn kube_reserved_cpu_millis(vcpu: u32) -> i64 {
    let cpu = i64::from(vcpu) * 1000;
    // (tier start, tier end, parts per 10,000)
    const TIERS: [(i64, i64, i64); 4] = [
        (0, 1000, 600),
        (1000, 2000, 100),
        (2000, 4000, 50),
        (4000, i64::MAX, 25),
    ];
    TIERS
        .iter()
        .filter(|(start, _, _)| cpu > *start)
        .map(|(start, end, parts)| (cpu.min(*end) - start) * parts / 10_000)
        .sum()
}

/// Node capacity as the kubelet will report it.
pub fn capacity(it: &InstanceType, s: &AllocatableSettings) -> Resources {
    let mut r = Resources {
        cpu_millis: i64::from(it.vcpu) * 1000,
        memory_bytes: memory_capacity_bytes(it, s),
        ephemeral_storage_bytes: if s.instance_store_raid0 && it.instance_storage_gb > 0 {
            it.instance_storage_gb as i64 * 1_000_000_000
        } else {
            s.ephemeral_storage_bytes
        },
        pods: max_pods(it, s),
        ..Resources::default()
    };
    let gpus = i64::from(it.gpu_count);
    match it.gpu_manufacturer.as_deref() {
        Some("nvidia") => r.set_extended(NVIDIA_GPU, gpus),
        Some("amd") => r.set_extended(AMD_GPU, gpus),
        Some("habana") => r.set_extended(HABANA_GAUDI, gpus),
        _ => {}
    }
    if it.accelerator_manufacturer.as_deref() == Some("aws") {
        r.set_extended(AWS_NEURON, i64::from(it.accelerator_count));
    }
    r.set_extended(POD_ENI, i64::from(it.branch_enis));
    r
}

fn memory_capacity_bytes(it: &InstanceType, s: &AllocatableSettings) -> i64 {
    let mut mib = it.memory_mib as i64;
    if it.arch == "arm64" {
        mib -= 64;
    }
    // Karpenter: ceil(bytes × percent / 1024 / 1024) MiB, in this order of float operations.
    let overhead_mib = ((mib * MIB) as f64 * s.vm_memory_overhead_percent / 1024.0 / 1024.0).ceil();
    (mib - overhead_mib as i64) * MIB
}

/// What the kubelet keeps back: kube-reserved + system-reserved + hard eviction thresholds.
pub fn overhead(it: &InstanceType, s: &AllocatableSettings) -> Resources {
    overhead_of(it, s, &capacity(it, s))
}

fn overhead_of(it: &InstanceType, s: &AllocatableSettings, cap: &Resources) -> Resources {
    let memory_pods = if s.kube_reserved_memory_from_eni_pods && it.max_pods_eni.is_some() {
        eni_limited_pods(it)
    } else {
        cap.pods
    };
    let kube = Resources {
        cpu_millis: s
            .kube_reserved
            .cpu_millis
            .unwrap_or_else(|| kube_reserved_cpu_millis(it.vcpu)),
        memory_bytes: s
            .kube_reserved
            .memory_bytes
            .unwrap_or((11 * memory_pods + 255) * MIB),
        ephemeral_storage_bytes: s.kube_reserved.ephemeral_storage_bytes.unwrap_or(GIB),
        ..Resources::default()
    };
    let system = Resources {
        cpu_millis: s.system_reserved.cpu_millis.unwrap_or(0),
        memory_bytes: s.system_reserved.memory_bytes.unwrap_or(0),
        ephemeral_storage_bytes: s.system_reserved.ephemeral_storage_bytes.unwrap_or(0),
        ..Resources::default()
    };
    let eviction = Resources {
        memory_bytes: s
            .eviction_hard_memory
            .unwrap_or(Threshold::Bytes(100 * MIB))
            .of(cap.memory_bytes),
        ephemeral_storage_bytes: s
            .eviction_hard_nodefs
            .unwrap_or(Threshold::Percent(10.0))
            .of(cap.ephemeral_storage_bytes),
        ..Resources::default()
    };
    &(&kube + &system) + &eviction
}

/// Allocatable under parsed settings: capacity − overhead, never below zero.
pub fn allocatable_with(it: &InstanceType, s: &AllocatableSettings) -> Resources {
    let cap = capacity(it, s);
    (&cap - &overhead_of(it, s, &cap)).clamp_non_negative()
}

/// Allocatable for an EC2NodeClass's kubelet settings (EKS defaults when None).
pub fn allocatable(
    it: &InstanceType,
    kubelet: Option<&KubeletConfiguration>,
) -> Result<Resources, KubeletError> {
    Ok(allocatable_with(
        it,
        &AllocatableSettings::from_kubelet(kubelet)?,
    ))
}

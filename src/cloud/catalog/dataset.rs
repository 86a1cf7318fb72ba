//! The embedded dataset (`data/catalog/*.json`), decoded once on first use.
//!
//! Its JSON shapes are described in `data/catalog/README.md`. Entries whose specs are null (types
//! known only by name from a price or ENI table) are skipped and counted, not guessed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use super::InstanceType;

const INSTANCE_TYPES_JSON: &str = include_str!("../../../data/catalog/instance-types.json");
const OFFERINGS_JSON: &str = include_str!("../../../data/catalog/instance-type-offerings.json");
const PRICES_JSON: &str = include_str!("../../../data/catalog/on-demand-prices.json");

/// The region whose prices every other region borrows until live prices arrive.
pub const PRICE_REFERENCE_REGION: &str = "us-east-1";

/// Which types each zone of a region offers (from moto's DescribeInstanceTypeOfferings data).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegionOfferings {
    /// Offered somewhere in the region.
    pub types: BTreeSet<String>,
    /// Zone ID (`usw2-az1`) → types offered there. Zone IDs, not names: names differ per account.
    pub zone_ids: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug)]
pub struct EmbeddedDataset {
    /// Every type with known specs, sorted by name.
    pub types: Vec<Arc<InstanceType>>,
    /// Names of entries skipped because their specs are null.
    pub skipped: Vec<String>,
    /// Commercial regions with per-zone offerings.
    pub offerings: BTreeMap<String, RegionOfferings>,
    /// On-demand USD per hour by region (us-east-1 and GovCloud). The CNY table for cn-north-1 is
    /// left out: mixing currencies would make China's prices look ~7× dearer than estimates.
    pub on_demand: BTreeMap<String, HashMap<String, f64>>,
    /// When each region's price table was generated (RFC 3339).
    pub prices_generated_at: BTreeMap<String, String>,
    index: HashMap<String, usize>,
}

impl EmbeddedDataset {
    pub fn get(&self, name: &str) -> Option<&Arc<InstanceType>> {
        self.index.get(name).map(|&i| &self.types[i])
    }

    pub fn on_demand_price(&self, region: &str, name: &str) -> Option<f64> {
        self.on_demand.get(region)?.get(name).copied()
    }
}

/// The embedded dataset, decoded on first call.
pub fn embedded() -> &'static EmbeddedDataset {
    static DATASET: OnceLock<EmbeddedDataset> = OnceLock::new();
    DATASET.get_or_init(|| {
        decode().expect("embedded data/catalog/*.json does not decode (regenerate it with scripts/refresh-catalog.sh)")
    })
}

/// One entry of instance-types.json; null means not known.
#[derive(Deserialize)]
struct RawInstanceType {
    name: String,
    family: String,
    category: String,
    generation: Option<u32>,
    size: String,
    vcpu: Option<u32>,
    memory_mib: Option<u64>,
    arch: Option<String>,
    gpu_count: Option<u32>,
    gpu_manufacturer: Option<String>,
    gpu_name: Option<String>,
    gpu_memory_mib: Option<u64>,
    accelerator_name: Option<String>,
    accelerator_manufacturer: Option<String>,
    accelerator_count: Option<u32>,
    local_nvme_gb: Option<u64>,
    instance_storage_gb: Option<u64>,
    network_bandwidth_mbps: Option<u64>,
    max_enis: Option<u32>,
    ipv4_per_eni: Option<u32>,
    max_pods: Option<u32>,
    branch_enis: Option<u32>,
    burstable: Option<bool>,
    hypervisor: Option<String>,
    bare_metal: Option<bool>,
    current_generation: Option<bool>,
}

impl RawInstanceType {
    /// None when the specs that sizing depends on are unknown.
    fn into_instance_type(self) -> Result<InstanceType, String> {
        let (Some(vcpu), Some(memory_mib), Some(arch)) = (self.vcpu, self.memory_mib, self.arch)
        else {
            return Err(self.name);
        };
        Ok(InstanceType {
            name: self.name,
            family: self.family,
            category: self.category,
            generation: self.generation,
            size: self.size,
            vcpu,
            memory_mib,
            arch,
            gpu_count: self.gpu_count.unwrap_or(0),
            gpu_name: self.gpu_name,
            gpu_manufacturer: self.gpu_manufacturer,
            gpu_memory_mib: self.gpu_memory_mib.unwrap_or(0),
            accelerator_name: self.accelerator_name,
            accelerator_manufacturer: self.accelerator_manufacturer,
            accelerator_count: self.accelerator_count.unwrap_or(0),
            local_nvme_gb: self.local_nvme_gb.unwrap_or(0),
            instance_storage_gb: self.instance_storage_gb.unwrap_or(0),
            network_bandwidth_mbps: self.network_bandwidth_mbps,
            max_enis: self.max_enis,
            ipv4_per_eni: self.ipv4_per_eni,
            max_pods_eni: self.max_pods,
            branch_enis: self.branch_enis.unwrap_or(0),
            burstable: self.burstable.unwrap_or(false),
            hypervisor: self.hypervisor,
            bare_metal: self.bare_metal.unwrap_or(false),
            current_generation: self.current_generation,
        })
    }
}

#[derive(Deserialize)]
struct RawOfferings {
    regions: BTreeMap<String, RegionOfferings>,
}

#[derive(Deserialize)]
struct RawPrices {
    regions: BTreeMap<String, HashMap<String, f64>>,
    #[serde(default)]
    generated_at: BTreeMap<String, String>,
}

/// Decodes the three embedded files. An error here is a broken build, not a runtime condition.
pub(super) fn decode() -> Result<EmbeddedDataset, String> {
    let raw: Vec<RawInstanceType> = serde_json::from_str(INSTANCE_TYPES_JSON)
        .map_err(|e| format!("instance-types.json: {e}"))?;
    let offerings: RawOfferings = serde_json::from_str(OFFERINGS_JSON)
        .map_err(|e| format!("instance-type-offerings.json: {e}"))?;
    let prices: RawPrices =
        serde_json::from_str(PRICES_JSON).map_err(|e| format!("on-demand-prices.json: {e}"))?;

    let mut types = Vec::with_capacity(raw.len());
    let mut skipped = Vec::new();
    for entry in raw {
        match entry.into_instance_type() {
            Ok(it) => types.push(Arc::new(it)),
            Err(name) => skipped.push(name),
        }
    }
    types.sort_by(|a, b| a.name.cmp(&b.name));
    let index = types
        .iter()
        .enumerate()
        .map(|(i, it)| (it.name.clone(), i))
        .collect();
    Ok(EmbeddedDataset {
        types,
        skipped,
        offerings: offerings.regions,
        on_demand: prices.regions,
        prices_generated_at: prices.generated_at,
        index,
    })
}

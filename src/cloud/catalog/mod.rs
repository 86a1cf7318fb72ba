//! The instance-type catalog: what each EC2 type is (facts), where it can be bought and at what
//! price (offerings: zone × capacity type × price × available), its well-known labels and its
//! allocatable resources.
//!
//! Pure data and logic: the only input is the dataset embedded from `data/catalog/` (the offline
//! fallback, as Karpenter ships initial prices). The AWS provider later replaces prices and
//! availability through [`Catalog::set_price`], [`Catalog::set_available`] and
//! [`Catalog::mark_unavailable`]. Time is always passed in (`now`); nothing here reads a clock.
//!
//! Prices until then: on-demand from the region's embedded table (us-east-1, GovCloud), else
//! us-east-1's marked [`PriceSource::EstimatedFromUsEast1`]; spot estimated from on-demand by the
//! rule in [`pricing`] and marked [`PriceSource::SpotEstimate`]. A type no table prices gets
//! offerings that are not available (as Karpenter does) until a live price arrives.

mod allocatable;
mod dataset;
mod labels;
mod options;
pub mod pricing;
mod zones;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use thiserror::Error;

use crate::apis::labels::{CAPACITY_TYPE_ON_DEMAND, CAPACITY_TYPE_SPOT};

pub use allocatable::{
    AMD_GPU, AWS_NEURON, AllocatableSettings, DEFAULT_EPHEMERAL_STORAGE_BYTES, DEFAULT_MAX_PODS,
    DEFAULT_VM_MEMORY_OVERHEAD_PERCENT, HABANA_GAUDI, KubeletError, NVIDIA_GPU, POD_ENI, Reserved,
    Threshold, allocatable, allocatable_with, capacity, kube_reserved_cpu_millis, max_pods,
    overhead,
};
pub use dataset::{EmbeddedDataset, PRICE_REFERENCE_REGION, RegionOfferings, embedded};
pub use labels::{
    INSTANCE_ACCELERATOR_COUNT, INSTANCE_ACCELERATOR_MANUFACTURER, INSTANCE_ACCELERATOR_NAME,
    INSTANCE_CAPABILITY_FLEX, INSTANCE_NETWORK_BANDWIDTH, OS_LINUX, ZONE_ID, labels, node_labels,
    offering_labels,
};
pub use options::instance_options;
pub use zones::{default_zones, zone_id_for_name, zone_name_for_id};

/// The facts of one EC2 instance type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceType {
    pub name: String,
    /// `m5`, `c7i-flex`, `u-6tb1`.
    pub family: String,
    /// Karpenter's `instance-category`: `m`, `c`, `inf`, `mac`.
    pub category: String,
    /// Karpenter's `instance-generation`; None where its name pattern finds none (Mac).
    pub generation: Option<u32>,
    pub size: String,
    pub vcpu: u32,
    pub memory_mib: u64,
    /// `amd64` or `arm64`.
    pub arch: String,
    pub gpu_count: u32,
    /// Lower-kebab as in Karpenter's labels: `t4`, `a10g`, `radeon-pro-v520`.
    pub gpu_name: Option<String>,
    /// `nvidia`, `amd`, `habana`.
    pub gpu_manufacturer: Option<String>,
    /// Per GPU.
    pub gpu_memory_mib: u64,
    /// Inferentia / Trainium / Qualcomm: `inferentia2`, `trainium`.
    pub accelerator_name: Option<String>,
    /// `aws` (Neuron devices) or `qualcomm`.
    pub accelerator_manufacturer: Option<String>,
    pub accelerator_count: u32,
    /// NVMe instance storage in GB; 0 when none.
    pub local_nvme_gb: u64,
    /// All instance storage (NVMe, SSD, HDD) in GB; 0 when none.
    pub instance_storage_gb: u64,
    /// Baseline network bandwidth.
    pub network_bandwidth_mbps: Option<u64>,
    /// ENIs on the default network card.
    pub max_enis: Option<u32>,
    pub ipv4_per_eni: Option<u32>,
    /// VPC CNI pod limit: `max_enis × (ipv4_per_eni − 1) + 2`.
    pub max_pods_eni: Option<u32>,
    /// Branch ENIs for security groups for pods (`vpc.amazonaws.com/pod-eni`); 0 when none.
    pub branch_enis: u32,
    pub burstable: bool,
    /// `nitro` or `xen`; None on bare metal.
    pub hypervisor: Option<String>,
    pub bare_metal: bool,
    /// As EC2 reports it (merged across regions by the dataset's source; see its README).
    pub current_generation: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    OnDemand,
    Spot,
}

impl CapacityType {
    pub const ALL: [CapacityType; 2] = [CapacityType::OnDemand, CapacityType::Spot];

    /// The `karpenter.sh/capacity-type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityType::OnDemand => CAPACITY_TYPE_ON_DEMAND,
            CapacityType::Spot => CAPACITY_TYPE_SPOT,
        }
    }

    pub fn parse(s: &str) -> Option<CapacityType> {
        match s {
            CAPACITY_TYPE_ON_DEMAND => Some(CapacityType::OnDemand),
            CAPACITY_TYPE_SPOT => Some(CapacityType::Spot),
            _ => None,
        }
    }
}

impl std::fmt::Display for CapacityType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an offering's price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PriceSource {
    /// The embedded on-demand table of this very region.
    Embedded,
    /// us-east-1's embedded price standing in for a region without a table.
    #[serde(rename = "estimated-from-us-east-1")]
    EstimatedFromUsEast1,
    /// Estimated from the on-demand price by [`pricing::spot_estimate`].
    SpotEstimate,
    /// Set by the AWS provider from the pricing API or DescribeSpotPriceHistory.
    Live,
    /// No price known; the offering is not available until one is set.
    Missing,
}

impl PriceSource {
    /// Whether `plan` output and logs should call the price an estimate.
    pub fn is_estimate(self) -> bool {
        matches!(
            self,
            PriceSource::EstimatedFromUsEast1 | PriceSource::SpotEstimate
        )
    }
}

/// An availability zone: its name as the account sees it, and its account-independent ID when
/// known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Zone {
    pub name: String,
    pub id: Option<String>,
}

/// One way to buy an instance type: a zone and a capacity type, at a price.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offering {
    pub zone: String,
    pub zone_id: Option<String>,
    pub capacity_type: CapacityType,
    /// USD per hour; meaningless when `price_source` is `Missing`.
    pub price_per_hour: f64,
    pub price_source: PriceSource,
    /// Offered here and priced, as far as the catalog knows. Temporary insufficient-capacity marks
    /// are kept apart in `unavailable_until`: use [`Offering::is_available`].
    pub available: bool,
    /// Set by [`Catalog::mark_unavailable`] after an insufficient-capacity error.
    pub unavailable_until: Option<SystemTime>,
}

impl Offering {
    pub fn is_available(&self, now: SystemTime) -> bool {
        self.available && self.unavailable_until.is_none_or(|until| now >= until)
    }
}

/// An instance type and its offerings in one region.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    pub instance_type: Arc<InstanceType>,
    pub offerings: Vec<Offering>,
}

impl CatalogEntry {
    pub fn available_offerings(&self, now: SystemTime) -> impl Iterator<Item = &Offering> {
        self.offerings.iter().filter(move |o| o.is_available(now))
    }

    /// The cheapest offering available now (ties: the first in zone order, on-demand first).
    pub fn cheapest_available(&self, now: SystemTime) -> Option<&Offering> {
        self.available_offerings(now)
            .min_by(|a, b| a.price_per_hour.total_cmp(&b.price_per_hour))
    }

    fn offering_mut(&mut self, zone: &str, ct: CapacityType) -> Option<&mut Offering> {
        self.offerings
            .iter_mut()
            .find(|o| o.zone == zone && o.capacity_type == ct)
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum CatalogError {
    #[error("instance type {0:?} is not in the catalog")]
    UnknownInstanceType(String),
    #[error("instance type {instance_type:?} has no {capacity_type} offering in zone {zone:?}")]
    UnknownOffering {
        instance_type: String,
        zone: String,
        capacity_type: CapacityType,
    },
    #[error(
        "invalid price {price} for {instance_type:?}: must be a positive number of USD per hour"
    )]
    InvalidPrice { instance_type: String, price: f64 },
}

/// The instance types of one region with their offerings, sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    region: String,
    zones: Vec<Zone>,
    entries: BTreeMap<String, CatalogEntry>,
}

/// Which types a zone offers, by what the dataset knows about it.
enum ZoneTypes<'a> {
    Listed(&'a BTreeSet<String>),
    Priced(&'a HashMap<String, f64>),
    All,
}

impl ZoneTypes<'_> {
    fn offers(&self, name: &str) -> bool {
        match self {
            ZoneTypes::Listed(set) => set.contains(name),
            ZoneTypes::Priced(prices) => prices.contains_key(name),
            ZoneTypes::All => true,
        }
    }
}

impl Catalog {
    /// The embedded catalog of `region`. `zones` are the zone names to offer in (e.g. from the
    /// EC2NodeClass's subnets); None means every zone the dataset knows, named by the rule of
    /// [`zone_name_for_id`]. Names the data cannot place (local zones, other naming) get the
    /// region-wide set.
    pub fn for_region(region: &str, zones: Option<&[String]>) -> Catalog {
        let data = embedded();
        let zones = match zones {
            None => default_zones(data, region),
            Some(names) => names
                .iter()
                .map(|name| Zone {
                    name: name.clone(),
                    id: zone_id_for_name(data, region, name),
                })
                .collect(),
        };
        Self::for_zones(region, &zones)
    }

    /// The embedded catalog of `region` for zones whose IDs the caller knows (from
    /// DescribeAvailabilityZones or the subnets), so that offerings follow the real zone IDs.
    pub fn for_zones(region: &str, zones: &[Zone]) -> Catalog {
        let data = embedded();
        let mut seen = BTreeSet::new();
        let zones: Vec<Zone> = zones
            .iter()
            .filter(|z| seen.insert(z.name.clone()))
            .cloned()
            .collect();
        let region_offerings = data.offerings.get(region);
        let zone_types: Vec<ZoneTypes> = zones
            .iter()
            .map(|z| {
                let by_id =
                    z.id.as_ref()
                        .and_then(|id| region_offerings?.zone_ids.get(id));
                match (by_id, region_offerings, data.on_demand.get(region)) {
                    (Some(set), _, _) => ZoneTypes::Listed(set),
                    (None, Some(r), _) => ZoneTypes::Listed(&r.types),
                    (None, None, Some(prices)) => ZoneTypes::Priced(prices),
                    (None, None, None) => ZoneTypes::All,
                }
            })
            .collect();

        let mut entries = BTreeMap::new();
        for it in &data.types {
            let on_demand = pricing::on_demand_price(data, region, &it.name);
            let mut offerings = Vec::new();
            for (zone, types) in zones.iter().zip(&zone_types) {
                if types.offers(&it.name) {
                    push_offerings(&mut offerings, it, zone, on_demand);
                }
            }
            if !offerings.is_empty() {
                entries.insert(
                    it.name.clone(),
                    CatalogEntry {
                        instance_type: Arc::clone(it),
                        offerings,
                    },
                );
            }
        }
        Catalog {
            region: region.to_string(),
            zones,
            entries,
        }
    }

    /// A catalog from entries built elsewhere (the AWS provider's DescribeInstanceTypes view).
    pub fn from_entries(
        region: &str,
        zones: Vec<Zone>,
        entries: impl IntoIterator<Item = CatalogEntry>,
    ) -> Catalog {
        Catalog {
            region: region.to_string(),
            zones,
            entries: entries
                .into_iter()
                .map(|e| (e.instance_type.name.clone(), e))
                .collect(),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in name order.
    pub fn iter(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.values()
    }

    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.get(name)
    }

    pub fn instance_type(&self, name: &str) -> Option<&Arc<InstanceType>> {
        self.entries.get(name).map(|e| &e.instance_type)
    }

    pub fn offering(&self, name: &str, zone: &str, ct: CapacityType) -> Option<&Offering> {
        self.entries
            .get(name)?
            .offerings
            .iter()
            .find(|o| o.zone == zone && o.capacity_type == ct)
    }

    /// Offerings of `name` that can be launched at `now`.
    pub fn available_offerings(
        &self,
        name: &str,
        now: SystemTime,
    ) -> impl Iterator<Item = &Offering> {
        self.entries
            .get(name)
            .into_iter()
            .flat_map(move |e| e.available_offerings(now))
    }

    /// How many offerings carry each kind of price (for the "prices are estimated" log line).
    pub fn price_sources(&self) -> BTreeMap<PriceSource, usize> {
        let mut out = BTreeMap::new();
        for o in self.entries.values().flat_map(|e| &e.offerings) {
            *out.entry(o.price_source).or_insert(0) += 1;
        }
        out
    }

    /// Whether any offering's price is still an estimate.
    pub fn has_estimated_prices(&self) -> bool {
        self.entries
            .values()
            .flat_map(|e| &e.offerings)
            .any(|o| o.price_source.is_estimate())
    }

    /// Replaces one offering's price with a live one. Setting an on-demand price also re-derives
    /// that zone's spot estimate (until a live spot price replaces it). A price that was missing
    /// makes the offering available.
    pub fn set_price(
        &mut self,
        name: &str,
        zone: &str,
        ct: CapacityType,
        price: f64,
    ) -> Result<(), CatalogError> {
        if !(price.is_finite() && price > 0.0) {
            return Err(CatalogError::InvalidPrice {
                instance_type: name.to_string(),
                price,
            });
        }
        let entry = self.entry_mut(name)?;
        let offering = entry
            .offering_mut(zone, ct)
            .ok_or_else(|| unknown_offering(name, zone, ct))?;
        set_live(offering, price);
        if ct == CapacityType::OnDemand {
            let it = Arc::clone(&entry.instance_type);
            if let Some(spot) = entry.offering_mut(zone, CapacityType::Spot)
                && matches!(
                    spot.price_source,
                    PriceSource::SpotEstimate | PriceSource::Missing
                )
                && let Some(estimate) = pricing::spot_estimate(&it, price)
            {
                if spot.price_source == PriceSource::Missing {
                    spot.available = true;
                }
                spot.price_per_hour = estimate;
                spot.price_source = PriceSource::SpotEstimate;
            }
        }
        Ok(())
    }

    /// Sets the on-demand price of `name` in every zone (the pricing API is per region). Returns
    /// how many offerings changed.
    pub fn set_on_demand_price(&mut self, name: &str, price: f64) -> Result<usize, CatalogError> {
        let zones: Vec<String> = self
            .entry_mut(name)?
            .offerings
            .iter()
            .filter(|o| o.capacity_type == CapacityType::OnDemand)
            .map(|o| o.zone.clone())
            .collect();
        for zone in &zones {
            self.set_price(name, zone, CapacityType::OnDemand, price)?;
        }
        Ok(zones.len())
    }

    /// Records whether EC2 offers this type here (DescribeInstanceTypeOfferings).
    pub fn set_available(
        &mut self,
        name: &str,
        zone: &str,
        ct: CapacityType,
        available: bool,
    ) -> Result<(), CatalogError> {
        self.entry_mut(name)?
            .offering_mut(zone, ct)
            .ok_or_else(|| unknown_offering(name, zone, ct))?
            .available = available;
        Ok(())
    }

    /// Hides an offering until `until` (insufficient capacity). A later `until` extends the mark;
    /// an earlier one does not shorten it.
    pub fn mark_unavailable(
        &mut self,
        name: &str,
        zone: &str,
        ct: CapacityType,
        until: SystemTime,
    ) -> Result<(), CatalogError> {
        let offering = self
            .entry_mut(name)?
            .offering_mut(zone, ct)
            .ok_or_else(|| unknown_offering(name, zone, ct))?;
        offering.unavailable_until =
            Some(offering.unavailable_until.map_or(until, |u| u.max(until)));
        Ok(())
    }

    /// Forgets insufficient-capacity marks that have expired at `now`. Returns how many.
    pub fn clear_expired(&mut self, now: SystemTime) -> usize {
        let mut cleared = 0;
        for o in self.entries.values_mut().flat_map(|e| &mut e.offerings) {
            if o.unavailable_until.is_some_and(|u| now >= u) {
                o.unavailable_until = None;
                cleared += 1;
            }
        }
        cleared
    }

    fn entry_mut(&mut self, name: &str) -> Result<&mut CatalogEntry, CatalogError> {
        self.entries
            .get_mut(name)
            .ok_or_else(|| CatalogError::UnknownInstanceType(name.to_string()))
    }
}

fn unknown_offering(name: &str, zone: &str, ct: CapacityType) -> CatalogError {
    CatalogError::UnknownOffering {
        instance_type: name.to_string(),
        zone: zone.to_string(),
        capacity_type: ct,
    }
}

fn set_live(offering: &mut Offering, price: f64) {
    if offering.price_source == PriceSource::Missing {
        offering.available = true;
    }
    offering.price_per_hour = price;
    offering.price_source = PriceSource::Live;
}

/// The on-demand offering of `it` in `zone`, and its spot offering where EC2 sells spot.
fn push_offerings(
    out: &mut Vec<Offering>,
    it: &InstanceType,
    zone: &Zone,
    on_demand: Option<(f64, PriceSource)>,
) {
    let offering = |ct, price: Option<(f64, PriceSource)>| {
        let (price_per_hour, price_source) = price.unwrap_or((0.0, PriceSource::Missing));
        Offering {
            zone: zone.name.clone(),
            zone_id: zone.id.clone(),
            capacity_type: ct,
            price_per_hour,
            price_source,
            available: price.is_some(),
            unavailable_until: None,
        }
    };
    out.push(offering(CapacityType::OnDemand, on_demand));
    if pricing::spot_factor(it).is_some() {
        let spot = on_demand
            .and_then(|(od, _)| pricing::spot_estimate(it, od))
            .map(|p| (p, PriceSource::SpotEstimate));
        out.push(offering(CapacityType::Spot, spot));
    }
}

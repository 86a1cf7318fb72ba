//! Zone IDs and zone names.
//!
//! The dataset keys offerings by zone ID (`usw2-az1`), which names the same physical zone in every
//! account. Zone names (`us-west-2a`) are shuffled per account, so no fixed ID → name mapping is
//! right everywhere. Until the AWS provider reads the real pairs (DescribeAvailabilityZones, or
//! the subnets' `AvailabilityZone` / `AvailabilityZoneId`) we use one deterministic rule:
//!
//!   `<prefix>-az<N>` in region `R` ↔ `R` followed by the N-th letter (`az1` → `a`, `az4` → `d`).
//!
//! It is stable (adding a zone to the data renames no other) and invertible; it simply may not be
//! the naming a given account sees. Callers that know their zones pass them to
//! [`super::Catalog::for_region`] (names) or [`super::Catalog::for_zones`] (name + ID pairs).

use super::Zone;
use super::dataset::EmbeddedDataset;

/// `("us-west-2", "usw2-az3")` → `us-west-2c`, by the rule above. None if the ID is not `…-azN`
/// with N in 1..=26.
pub fn zone_name_for_id(region: &str, zone_id: &str) -> Option<String> {
    let letter = zone_letter(zone_id)?;
    Some(format!("{region}{letter}"))
}

fn zone_number(zone_id: &str) -> Option<u32> {
    let (_, n) = zone_id.rsplit_once("-az")?;
    let n: u32 = n.parse().ok()?;
    (1..=26).contains(&n).then_some(n)
}

fn zone_letter(zone_id: &str) -> Option<char> {
    let n = zone_number(zone_id)?;
    char::from_u32('a' as u32 + n - 1)
}

/// The inverse of [`zone_name_for_id`] over the zone IDs the dataset knows for `region`:
/// `us-west-2b` → `usw2-az2`. None for zones outside the data (local zones, unknown regions).
pub fn zone_id_for_name(data: &EmbeddedDataset, region: &str, zone_name: &str) -> Option<String> {
    let suffix = zone_name.strip_prefix(region)?;
    let mut chars = suffix.chars();
    let (Some(letter), None) = (chars.next(), chars.next()) else {
        return None;
    };
    data.offerings
        .get(region)?
        .zone_ids
        .keys()
        .find(|id| zone_letter(id) == Some(letter))
        .cloned()
}

/// The zones a region has when the caller does not say: the dataset's zone IDs named by the rule
/// above, or for regions without offerings data (GovCloud, China, new regions) the placeholder
/// zones `<region>a`, `<region>b`, `<region>c` without IDs.
pub fn default_zones(data: &EmbeddedDataset, region: &str) -> Vec<Zone> {
    match data.offerings.get(region) {
        Some(offerings) => offerings
            .zone_ids
            .keys()
            .filter_map(|id| {
                Some(Zone {
                    name: zone_name_for_id(region, id)?,
                    id: Some(id.clone()),
                })
            })
            .collect(),
        None => ['a', 'b', 'c']
            .iter()
            .map(|l| Zone {
                name: format!("{region}{l}"),
                id: None,
            })
            .collect(),
    }
}

//! Refreshing the embedded catalog from EC2: which types each zone offers
//! (DescribeInstanceTypeOfferings) and current spot prices (DescribeSpotPriceHistory).
//! On-demand prices stay embedded (the Pricing API is another service, and moto answers 500).

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::primitives::DateTime;
use aws_sdk_ec2::types::LocationType;

use crate::cloud::catalog::{CapacityType, Catalog, PriceSource};
use crate::cloud::provider::CloudResult;

use super::errors::sdk_error;

/// Types offered per zone, as EC2 lists them.
pub type ZoneOfferings = BTreeMap<String, BTreeSet<String>>;

/// Marks offerings in zones EC2 reported on: not offered → unavailable; offered and priced →
/// available. Zones EC2 said nothing about are left alone. Returns how many changed.
pub fn apply_offerings(catalog: &mut Catalog, offered: &ZoneOfferings) -> usize {
    let mut changes = Vec::new();
    for e in catalog.iter() {
        for o in &e.offerings {
            let Some(types) = offered.get(&o.zone) else {
                continue;
            };
            // A missing price keeps the offering unavailable (it would launch at "0 USD").
            let available =
                types.contains(&e.instance_type.name) && o.price_source != PriceSource::Missing;
            if available != o.available {
                changes.push((
                    e.instance_type.name.clone(),
                    o.zone.clone(),
                    o.capacity_type,
                    available,
                ));
            }
        }
    }
    let n = changes.len();
    for (name, zone, ct, available) in changes {
        // The offering was just read from this catalog.
        let _ = catalog.set_available(&name, &zone, ct, available);
    }
    n
}

/// Sets live spot prices (type, zone, USD/h). Returns how many offerings took one.
pub fn apply_spot_prices(catalog: &mut Catalog, prices: &[(String, String, f64)]) -> usize {
    prices
        .iter()
        .filter(|(name, zone, price)| {
            catalog
                .set_price(name, zone, CapacityType::Spot, *price)
                .is_ok()
        })
        .count()
}

pub async fn zone_offerings(client: &Client) -> CloudResult<ZoneOfferings> {
    let mut out = ZoneOfferings::new();
    let mut token = None;
    loop {
        let resp = client
            .describe_instance_type_offerings()
            .location_type(LocationType::AvailabilityZone)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeInstanceTypeOfferings", e))?;
        for o in resp.instance_type_offerings() {
            if let (Some(t), Some(zone)) = (o.instance_type(), o.location()) {
                out.entry(zone.to_string())
                    .or_default()
                    .insert(t.as_str().to_string());
            }
        }
        token = resp.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The latest Linux spot price per (type, zone).
pub async fn spot_prices(client: &Client) -> CloudResult<Vec<(String, String, f64)>> {
    let mut latest: BTreeMap<(String, String), (DateTime, f64)> = BTreeMap::new();
    let mut token = None;
    loop {
        let resp = client
            .describe_spot_price_history()
            .product_descriptions("Linux/UNIX")
            .start_time(DateTime::from(SystemTime::now()))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSpotPriceHistory", e))?;
        for p in resp.spot_price_history() {
            let (Some(t), Some(zone), Some(price)) = (
                p.instance_type(),
                p.availability_zone(),
                p.spot_price().and_then(|s| s.parse::<f64>().ok()),
            ) else {
                continue;
            };
            let at = p.timestamp().copied().unwrap_or(DateTime::from_secs(0));
            let key = (t.as_str().to_string(), zone.to_string());
            if latest.get(&key).is_none_or(|(seen, _)| at >= *seen) {
                latest.insert(key, (at, price));
            }
        }
        token = resp
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(latest
        .into_iter()
        .map(|((t, z), (_, p))| (t, z, p))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_ec2_reports_decide_availability() {
        let mut catalog = Catalog::for_region("us-west-2", None);
        let zone = catalog.zones()[0].name.clone();
        let other = catalog.zones()[1].name.clone();
        let offered: ZoneOfferings = [(zone.clone(), ["m5.large".to_string()].into())].into();
        let changed = apply_offerings(&mut catalog, &offered);
        assert!(changed > 0);
        let now = SystemTime::now();
        let avail = |c: &Catalog, t: &str, z: &str| {
            c.offering(t, z, CapacityType::OnDemand)
                .is_some_and(|o| o.is_available(now))
        };
        assert!(avail(&catalog, "m5.large", &zone));
        assert!(
            !avail(&catalog, "c5.large", &zone),
            "not offered in the reported zone"
        );
        assert!(
            avail(&catalog, "c5.large", &other),
            "unreported zone left alone"
        );
    }

    #[test]
    fn live_spot_prices_replace_estimates() {
        let mut catalog = Catalog::for_region("us-west-2", None);
        let zone = catalog.zones()[0].name.clone();
        let n = apply_spot_prices(
            &mut catalog,
            &[
                ("m5.large".into(), zone.clone(), 0.031),
                ("no-such.type".into(), zone.clone(), 0.1),
            ],
        );
        assert_eq!(n, 1);
        let o = catalog
            .offering("m5.large", &zone, CapacityType::Spot)
            .expect("spot offering");
        assert_eq!(o.price_per_hour, 0.031);
        assert_eq!(o.price_source, PriceSource::Live);
    }
}

//! Initial prices: embedded on-demand tables, us-east-1 as the stand-in for other regions, and a
//! stated spot estimate. All of them are placeholders that the AWS provider replaces with live
//! prices ([`super::Catalog::set_price`]); `PriceSource` records which is which so that `plan`
//! output and logs can say "estimated".

use super::dataset::{EmbeddedDataset, PRICE_REFERENCE_REGION};
use super::{InstanceType, PriceSource};

/// Spot price as a fraction of on-demand for most families (65% off).
///
/// Spot prices are not in the dataset. AWS's Spot Instance Advisor reports typical savings of
/// roughly 60-70% for general purpose, compute, memory and storage families, and recent m5/c5/r5
/// spot prices in us-east-1 sit near 35-40% of on-demand, so 0.35 keeps spot the cheaper choice by
/// about the margin Karpenter would usually see.
pub const SPOT_FACTOR_DEFAULT: f64 = 0.35;

/// Spot price as a fraction of on-demand for accelerated families (GPU, Inferentia, Trainium,
/// FPGA, video transcoding): 45% off. Their spot capacity is scarcer and discounts swing more, so
/// the estimate is deliberately less optimistic; that keeps a simulation from leaning on GPU spot
/// that a real fleet request would often not get.
pub const SPOT_FACTOR_ACCELERATED: f64 = 0.55;

/// Categories (Karpenter's `instance-category`) with accelerators.
const ACCELERATED_CATEGORIES: &[&str] = &["p", "g", "gr", "inf", "trn", "dl", "f", "vt"];

/// Categories EC2 does not sell as spot: Mac (Dedicated Hosts only), High Memory `u-*` / `u7*`
/// (On-Demand, Savings Plans and Reserved only) and HPC (On-Demand and Savings Plans only).
const NO_SPOT_CATEGORIES: &[&str] = &["mac", "u", "hpc"];

/// The fraction of on-demand used as the spot estimate, or None when the type has no spot market.
pub fn spot_factor(it: &InstanceType) -> Option<f64> {
    let category = it.category.as_str();
    if NO_SPOT_CATEGORIES.contains(&category) {
        None
    } else if ACCELERATED_CATEGORIES.contains(&category) || it.gpu_count > 0 {
        Some(SPOT_FACTOR_ACCELERATED)
    } else {
        Some(SPOT_FACTOR_DEFAULT)
    }
}

/// The spot estimate for an on-demand price, rounded to a millionth of a dollar so that plans
/// print cleanly.
pub fn spot_estimate(it: &InstanceType, on_demand: f64) -> Option<f64> {
    let factor = spot_factor(it)?;
    Some(((on_demand * factor * 1e6).round() / 1e6).max(1e-6))
}

/// The embedded on-demand price of `name` in `region`: the region's own table (us-east-1,
/// GovCloud), else us-east-1's marked as an estimate. None when no table has the type.
pub fn on_demand_price(
    data: &EmbeddedDataset,
    region: &str,
    name: &str,
) -> Option<(f64, PriceSource)> {
    if let Some(price) = data.on_demand_price(region, name) {
        return Some((price, PriceSource::Embedded));
    }
    if region == PRICE_REFERENCE_REGION {
        return None;
    }
    data.on_demand_price(PRICE_REFERENCE_REGION, name)
        .map(|price| (price, PriceSource::EstimatedFromUsEast1))
}

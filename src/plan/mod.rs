//! `capstan plan`: offline what-if scheduling of manifests onto NodePools.

pub mod workload;

pub mod pools;
pub mod report;

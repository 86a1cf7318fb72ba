//! What disruption decides from: the cluster's objects as reflectors hold them, the simulation's
//! input as provisioning prepares it, and the price of every running offering.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::apis::{NodeClaim, NodePool};
use crate::scheduling::scheduler::{Input, PoolTemplate};

#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: Vec<Arc<Node>>,
    pub nodeclaims: Vec<Arc<NodeClaim>>,
    pub nodepools: Vec<Arc<NodePool>>,
    pub pods: Vec<Arc<Pod>>,
    pub pdbs: Vec<Arc<PodDisruptionBudget>>,
    /// The simulation's input as `controllers::provisioning::inputs::prepare` builds it from the
    /// same snapshot: pending pods, the nodes pods may land on, DaemonSets and NodePool templates.
    /// Disruption removes candidates from it and asks the scheduler where their pods would go.
    pub simulation: Input,
    pub prices: PriceBook,
}

/// Hourly price per (instance type, zone, capacity type).
#[derive(Debug, Clone, Default)]
pub struct PriceBook(HashMap<(String, String, String), f64>);

impl PriceBook {
    /// The prices of every offering the pools' instance types list. Offerings marked unavailable
    /// (after an insufficient-capacity error) are missing there: add them with [`Self::insert`].
    pub fn from_pools(pools: &[PoolTemplate]) -> Self {
        let mut book = PriceBook::default();
        for o in pools.iter().flat_map(|p| &p.instance_types) {
            for of in &o.offerings {
                book.insert(&o.name, &of.zone, &of.capacity_type, of.price_per_hour);
            }
        }
        book
    }

    /// Every offering's price, those hidden after a capacity error included: a running node
    /// still costs what it costs.
    pub fn from_catalog(catalog: &crate::cloud::catalog::Catalog) -> Self {
        let mut book = PriceBook::default();
        for entry in catalog.iter() {
            for o in &entry.offerings {
                book.insert(
                    &entry.instance_type.name,
                    &o.zone,
                    o.capacity_type.as_str(),
                    o.price_per_hour,
                );
            }
        }
        book
    }

    pub fn insert(&mut self, instance_type: &str, zone: &str, capacity_type: &str, price: f64) {
        self.0.insert(
            (
                instance_type.to_string(),
                zone.to_string(),
                capacity_type.to_string(),
            ),
            price,
        );
    }

    pub fn get(&self, instance_type: &str, zone: &str, capacity_type: &str) -> Option<f64> {
        self.0
            .get(&(
                instance_type.to_string(),
                zone.to_string(),
                capacity_type.to_string(),
            ))
            .copied()
    }
}

//! NodePools and EC2NodeClasses (as manifests give them) turned into what the simulation reads,
//! with the instance types of the catalog.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::apis::labels::{CAPACITY_TYPE, CAPACITY_TYPE_ON_DEMAND, NODEPOOL};
use crate::apis::{EC2NodeClass, NodePool};
use crate::cloud::catalog::{AllocatableSettings, Catalog, instance_options};
use crate::scheduling::instance::InstanceOption;
use crate::scheduling::requirements::{Requirement, Requirements};
use crate::scheduling::resources::Resources;
use crate::scheduling::scheduler::{Limits, PoolTemplate};

/// Builds the simulation's view of each NodePool. Warnings (a missing EC2NodeClass) are returned
/// for the caller to print; errors are manifests the simulation cannot read.
pub fn pool_templates(
    pools: &[NodePool],
    classes: &[EC2NodeClass],
    catalog: &Catalog,
    now: SystemTime,
) -> Result<(Vec<PoolTemplate>, Vec<String>), String> {
    let mut warnings = Vec::new();
    let mut by_class: BTreeMap<String, Vec<Arc<InstanceOption>>> = BTreeMap::new();
    let mut out = Vec::new();
    for pool in pools {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let spec = &pool.spec.template.spec;
        let class_name = &spec.node_class_ref.name;
        let class = classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(class_name.as_str()));
        if class.is_none() {
            warnings.push(format!(
                "NodePool {name}: EC2NodeClass {class_name} is not among the manifests; using default kubelet settings"
            ));
        }
        let options = match by_class.get(class_name) {
            Some(o) => o.clone(),
            None => {
                let settings =
                    AllocatableSettings::from_kubelet(class.and_then(|c| c.spec.kubelet.as_ref()))
                        .map_err(|e| format!("EC2NodeClass {class_name}: {e}"))?;
                let o = instance_options(catalog, &settings, now);
                by_class.insert(class_name.clone(), o.clone());
                o
            }
        };
        let mut requirements = Requirements::from_nodepool(&spec.requirements)
            .map_err(|e| format!("NodePool {name}: {e}"))?;
        if let Some(labels) = pool
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
        {
            requirements.add_all(&Requirements::from_labels(labels));
        }
        requirements.add(Requirement::single(NODEPOOL, &name));
        // Karpenter launches on-demand when a pool does not say which capacity type it wants.
        if !requirements.has_key(CAPACITY_TYPE) {
            requirements.add(Requirement::single(CAPACITY_TYPE, CAPACITY_TYPE_ON_DEMAND));
        }
        let limits = match &pool.spec.limits {
            Some(l) => {
                let values = Resources::from_k8s(l)
                    .map_err(|e| format!("NodePool {name}: spec.limits: {e}"))?;
                Some(Limits::from_resources(l.keys().cloned(), &values))
            }
            None => None,
        };
        out.push(PoolTemplate {
            name,
            weight: pool.weight(),
            requirements,
            taints: spec.taints.clone(),
            instance_types: options,
            limits,
            in_use: Resources::new(),
        });
    }
    Ok((out, warnings))
}

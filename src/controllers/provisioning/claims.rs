//! A planned claim as the NodeClaim object to create: owned by its NodePool, labelled with it,
//! carrying the pool's template (taints, startup taints, node class, expiry) and requirements
//! narrowed to the instance types that fit its pods. Pure.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::apis::labels::{INSTANCE_TYPE, NODEPOOL, NODEPOOL_HASH, NODEPOOL_HASH_VERSION};
use crate::apis::nodeclaim::ResourceRequirements;
use crate::apis::{NodeClaim, NodeClaimSpec, NodePool, NodeSelectorRequirementWithMinValues};
use crate::controllers::nodepool_status::{HASH_VERSION, template_hash};
use crate::scheduling::scheduler::PlannedClaim;

pub fn nodeclaim_for(planned: &PlannedClaim, pool: &NodePool) -> NodeClaim {
    let pool_name = pool.metadata.name.clone().unwrap_or_default();
    let template = &pool.spec.template;
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(NODEPOOL.to_string(), pool_name.clone());
    let mut annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    // The template the claim was made from, for drift (computed here, not copied from the
    // pool's annotation, which the status controller may not have written yet).
    annotations.insert(NODEPOOL_HASH.to_string(), template_hash(pool));
    annotations.insert(NODEPOOL_HASH_VERSION.to_string(), HASH_VERSION.to_string());

    let mut requirements: Vec<NodeSelectorRequirementWithMinValues> = planned
        .requirements
        .iter()
        .filter(|r| r.key != INSTANCE_TYPE && r.key != crate::apis::labels::HOSTNAME)
        .flat_map(|r| r.to_node_selector())
        .collect();
    // The types that fit the claim's pods, cheapest first (the order carries no meaning to the
    // API but reads well in `kubectl get -o yaml`).
    let mut types: Vec<String> = Vec::new();
    for t in &planned.instance_types {
        if !types.contains(&t.name) {
            types.push(t.name.clone());
        }
    }
    let min_values = planned
        .requirements
        .get(INSTANCE_TYPE)
        .and_then(|r| r.min_values)
        .and_then(|m| i32::try_from(m).ok());
    requirements.push(NodeSelectorRequirementWithMinValues {
        key: INSTANCE_TYPE.to_string(),
        operator: "In".to_string(),
        values: Some(types),
        min_values,
    });

    let requests: BTreeMap<String, Quantity> = planned
        .requests
        .to_strings()
        .into_iter()
        .filter(|(_, v)| v != "0")
        .map(|(k, v)| (k, Quantity(v)))
        .collect();
    let spec = &template.spec;
    NodeClaim {
        metadata: ObjectMeta {
            generate_name: Some(format!("{pool_name}-")),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: pool.metadata.uid.as_ref().map(|uid| {
                vec![OwnerReference {
                    api_version: "karpenter.sh/v1".into(),
                    kind: "NodePool".into(),
                    name: pool_name.clone(),
                    uid: uid.clone(),
                    block_owner_deletion: Some(true),
                    controller: None,
                }]
            }),
            ..Default::default()
        },
        spec: NodeClaimSpec {
            taints: spec.taints.clone(),
            startup_taints: spec.startup_taints.clone(),
            requirements,
            resources: Some(ResourceRequirements {
                requests: Some(requests),
            }),
            node_class_ref: spec.node_class_ref.clone(),
            termination_grace_period: spec.termination_grace_period.clone(),
            expire_after: spec.expire_after.clone(),
        },
        status: None,
    }
}

//! Custom resource types. Field for field as Karpenter v1 (`karpenter.sh/v1`,
//! `karpenter.k8s.aws/v1`) so that existing manifests decode unchanged, plus our own
//! `capstan.dev/v1alpha1` RequestPolicy.
//!
//! This module imports nothing else of capstan's: it is the vocabulary every other module shares.
//! Optional fields stay `Option` (defaults live in the CRD schema, applied by the API server and by
//! the defaulting webhook) so that decoding and re-encoding a manifest loses and adds nothing.

pub mod common;
pub mod duration;
pub mod ec2nodeclass;
pub mod labels;
pub mod nodeclaim;
pub mod nodepool;
pub mod requestpolicy;

pub use common::{Condition, NodeClassReference, NodeSelectorRequirementWithMinValues, Taint};
pub use ec2nodeclass::{EC2NodeClass, EC2NodeClassSpec, EC2NodeClassStatus};
pub use nodeclaim::{NodeClaim, NodeClaimSpec, NodeClaimStatus};
pub use nodepool::{Budget, Disruption, NodePool, NodePoolSpec, NodePoolStatus};
pub use requestpolicy::{RequestPolicy, RequestPolicySpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Kubernetes' quantity syntax, as the API server's own CRDs carry it.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// Every CRD capstan serves, in a fixed order so that `capstan crds` is deterministic.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    let described = [
        (
            NodePool::crd(),
            "NodePool is the Schema for the NodePools API: what nodes capstan may launch and how they may be disrupted.",
        ),
        (
            NodeClaim::crd(),
            "NodeClaim is the Schema for the NodeClaims API: one unit of capacity, from request to launched instance to Node.",
        ),
        (
            EC2NodeClass::crd(),
            "EC2NodeClass is the Schema for the EC2NodeClass API: how instances are launched on AWS.",
        ),
        (
            RequestPolicy::crd(),
            "RequestPolicy sets LimitRange-style request and limit defaults and bounds for the pods it selects, across namespaces.",
        ),
    ];
    described
        .into_iter()
        .map(|(crd, doc)| tidy(crd, doc))
        .collect()
}

/// Puts the generated schemas in the shape the API server's own CRDs have: a root description, and
/// quantities as `anyOf: [integer, string]` with the quantity pattern instead of a page of prose.
fn tidy(mut crd: CustomResourceDefinition, description: &str) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let mut value = match serde_json::to_value(&*schema) {
            Ok(v) => v,
            Err(_) => continue,
        };
        value["description"] = serde_json::Value::String(description.to_string());
        rewrite_schema(&mut value);
        if let Ok(tidied) = serde_json::from_value(value) {
            *schema = tidied;
        }
    }
    crd
}

fn rewrite_schema(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if map.get("x-kubernetes-int-or-string") == Some(&serde_json::Value::Bool(true))
                && map
                    .get("description")
                    .and_then(|d| d.as_str())
                    .is_some_and(|d| d.starts_with("Quantity is"))
            {
                let nullable = map.get("nullable").cloned();
                *map = serde_json::json!({
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "pattern": QUANTITY_PATTERN,
                    "x-kubernetes-int-or-string": true,
                })
                .as_object()
                .cloned()
                .unwrap_or_default();
                if let Some(n) = nullable {
                    map.insert("nullable".into(), n);
                }
                return;
            }
            map.values_mut().for_each(rewrite_schema);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(rewrite_schema),
        _ => {}
    }
}

/// The CRDs as one YAML stream (what `capstan crds` prints and `manifests/crds/` holds).
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

//! Custom resource types. Field for field as Karpenter v1 (`karpenter.sh/v1`,
//! `karpenter.k8s.aws/v1`) so that existing manifests decode unchanged, plus our own
//! `capstan.dev/v1alpha1` RequestPolicy.
//!
//! This module imports nothing else of capstan's: it is the vocabulary every other module shares.
//! Optional fields stay `Option` (defaults live in the CRD schema, applied by the API server and by
//! the defaulting webhook) so that decoding and re-encoding a manifest loses and adds nothing.

pub mod common;
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

use kube::CustomResourceExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Every CRD capstan serves, in a fixed order so that `capstan crds` is deterministic.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        NodePool::crd(),
        NodeClaim::crd(),
        EC2NodeClass::crd(),
        RequestPolicy::crd(),
    ]
}

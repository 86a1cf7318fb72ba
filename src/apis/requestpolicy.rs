//! `capstan.dev/v1alpha1` RequestPolicy: LimitRange semantics that a platform team writes once for
//! many namespaces, selected by namespace and pod labels. The pod-defaults webhook applies them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub const MODE_ENFORCE: &str = "Enforce";
pub const MODE_WARN: &str = "Warn";
/// The annotation that records which policy set which value.
pub const DEFAULTS_ANNOTATION: &str = "capstan.dev/request-defaults";

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "capstan.dev",
    version = "v1alpha1",
    kind = "RequestPolicy",
    plural = "requestpolicies",
    shortname = "rqp",
    category = "capstan",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Priority","type":"integer","jsonPath":".spec.priority"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RequestPolicySpec {
    /// Namespaces whose pods this policy applies to; empty or unset selects all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Pods this policy applies to; empty or unset selects all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// `Enforce` denies pods that break min / max / ratio; `Warn` admits them with warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Enforce", "Warn"], "default" = "Enforce"))]
    pub mode: Option<String>,
    /// When several policies match, the higher priority wins per resource (ties: name order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 0))]
    pub priority: Option<i32>,
    /// Rules for each container and init container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<ContainerRules>,
    /// Rules for the pod's totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRules>,
}

pub type ResourceList = BTreeMap<String, Quantity>;

/// LimitRange's `Container` item.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRules {
    /// Request set on a container that has none (and no limit to copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_request: Option<ResourceList>,
    /// Limit set on a container that has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ResourceList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<ResourceList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<ResourceList>,
    /// Largest allowed limit / request for each resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_limit_request_ratio: Option<ResourceList>,
    /// Set the memory request equal to the memory limit (no memory overcommit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_requests_equal_limits: Option<bool>,
}

/// LimitRange's `Pod` item: bounds on the sum over the pod's containers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<ResourceList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<ResourceList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_limit_request_ratio: Option<ResourceList>,
}

impl RequestPolicy {
    pub fn mode(&self) -> &str {
        self.spec.mode.as_deref().unwrap_or(MODE_ENFORCE)
    }

    pub fn priority(&self) -> i32 {
        self.spec.priority.unwrap_or(0)
    }
}

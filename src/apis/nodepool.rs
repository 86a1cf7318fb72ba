//! `karpenter.sh/v1` NodePool: what nodes may be launched, and how they may be disrupted.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{Condition, NodeClassReference, NodeSelectorRequirementWithMinValues, Taint};
use super::labels;

pub const DEFAULT_EXPIRE_AFTER: &str = "720h";
pub const DEFAULT_CONSOLIDATE_AFTER: &str = "0s";
pub const DEFAULT_BUDGET_NODES: &str = "10%";
pub const CONSOLIDATION_POLICY_WHEN_EMPTY: &str = "WhenEmpty";
pub const CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED: &str = "WhenEmptyOrUnderutilized";
pub const DISRUPTION_REASONS: &[&str] = &["Underutilized", "Empty", "Drifted"];

/// Go duration with s/m/h units, or `Never`.
pub const NILLABLE_DURATION_PATTERN: &str = r"^(([0-9]+(s|m|h))+|Never)$";
/// Go duration with s/m/h units.
pub const DURATION_PATTERN: &str = r"^([0-9]+(s|m|h))+$";
/// Budget durations: hours and/or minutes, as Karpenter's CRD has it.
pub const BUDGET_DURATION_PATTERN: &str = r"^((([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?)$";
pub const BUDGET_NODES_PATTERN: &str = r"^((100|[0-9]{1,2})%|[0-9]+)$";
pub const BUDGET_SCHEDULE_PATTERN: &str =
    r"^(@(annually|yearly|monthly|weekly|daily|midnight|hourly))|((.+)\s(.+)\s(.+)\s(.+)\s(.+))$";

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "karpenter.sh",
    version = "v1",
    kind = "NodePool",
    plural = "nodepools",
    status = "NodePoolStatus",
    category = "karpenter",
    printcolumn = r#"{"name":"NodeClass","type":"string","jsonPath":".spec.template.spec.nodeClassRef.name"}"#,
    printcolumn = r#"{"name":"Nodes","type":"string","jsonPath":".status.resources.nodes"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".spec.weight","priority":1}"#,
    printcolumn = r#"{"name":"CPU","type":"string","jsonPath":".status.resources.cpu","priority":1}"#,
    printcolumn = r#"{"name":"Memory","type":"string","jsonPath":".status.resources.memory","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolSpec {
    /// The template for the NodeClaims this NodePool creates.
    pub template: NodeClaimTemplate,
    /// How and when nodes of this pool may be disrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {"consolidateAfter": "0s"}))]
    pub disruption: Option<Disruption>,
    /// Caps on the total resources of the nodes this pool owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, Quantity>>,
    /// Priority among NodePools: higher weight is tried first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub weight: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct NodeClaimTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    pub spec: NodeClaimTemplateSpec,
}

/// Labels and annotations put on every NodeClaim and Node of the pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct TemplateMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 100))]
    #[x_kube(validation = labels::rule_labels_not(labels::NODEPOOL))]
    #[x_kube(validation = labels::rule_labels_not(labels::HOSTNAME))]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimTemplateSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Taints present at launch that a daemon removes once the node is ready for work.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub startup_taints: Vec<Taint>,
    #[schemars(length(max = 100))]
    #[x_kube(validation = labels::rule_requirements_not_nodepool())]
    #[x_kube(validation = Rule::new("self.all(x, x.operator == 'In' ? has(x.values) && x.values.size() != 0 : true)").message("requirements operator 'In' must have a value defined"))]
    #[x_kube(validation = Rule::new("self.all(x, (x.operator == 'Gt' || x.operator == 'Lt' || x.operator == 'Gte' || x.operator == 'Lte') ? (has(x.values) && x.values.size() == 1 && int(x.values[0]) >= 0) : true)").message("requirements operator 'Gt', 'Lt', 'Gte' or 'Lte' must have a single positive integer value"))]
    #[x_kube(validation = Rule::new("self.all(x, (has(x.minValues) && x.operator == 'In') ? x.values.size() >= x.minValues : true)").message("requirements with 'minValues' must have at least that many values specified in the 'values' field"))]
    pub requirements: Vec<NodeSelectorRequirementWithMinValues>,
    #[x_kube(validation = Rule::new("self.group == oldSelf.group").message("nodeClassRef.group is immutable"))]
    #[x_kube(validation = Rule::new("self.kind == oldSelf.kind").message("nodeClassRef.kind is immutable"))]
    pub node_class_ref: NodeClassReference,
    /// How long a node may live before it is replaced; `Never` to keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NILLABLE_DURATION_PATTERN), extend("default" = "720h"))]
    pub expire_after: Option<String>,
    /// How long a draining node waits for its pods before they are deleted forcefully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub termination_grace_period: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Disruption {
    /// How long after a pod is added or removed a node may be consolidated; `Never` to disable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NILLABLE_DURATION_PATTERN), extend("default" = "0s"))]
    pub consolidate_after: Option<String>,
    /// WhenEmpty or WhenEmptyOrUnderutilized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["WhenEmpty", "WhenEmptyOrUnderutilized"], "default" = "WhenEmptyOrUnderutilized"))]
    pub consolidation_policy: Option<String>,
    /// How many nodes may be disrupted at once; the most restrictive active budget wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 50), extend("default" = [{"nodes": "10%"}]))]
    #[x_kube(validation = Rule::new("self.all(x, has(x.schedule) == has(x.duration))").message("'schedule' must be set with 'duration'"))]
    pub budgets: Option<Vec<Budget>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct Budget {
    /// Which disruption reasons this budget limits; all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<DisruptionReason>>,
    /// Count (`5`) or percent of the pool's nodes (`10%`).
    #[schemars(regex(pattern = BUDGET_NODES_PATTERN), extend("default" = "10%"))]
    pub nodes: String,
    /// 5-field cron (UTC) or a macro like `@daily`; the budget is active for `duration` after each firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = BUDGET_SCHEDULE_PATTERN))]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = BUDGET_DURATION_PATTERN))]
    pub duration: Option<String>,
}

/// A disruption reason a budget may name.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    schemars::JsonSchema,
)]
pub enum DisruptionReason {
    Underutilized,
    Empty,
    Drifted,
}

impl DisruptionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Underutilized => "Underutilized",
            Self::Empty => "Empty",
            Self::Drifted => "Drifted",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolStatus {
    /// Resources of the nodes this pool owns (plus `nodes`, their count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<BTreeMap<String, Quantity>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_class_observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl NodePool {
    pub fn weight(&self) -> i32 {
        self.spec.weight.unwrap_or(0)
    }

    pub fn consolidation_policy(&self) -> &str {
        self.spec
            .disruption
            .as_ref()
            .and_then(|d| d.consolidation_policy.as_deref())
            .unwrap_or(CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED)
    }

    pub fn consolidate_after(&self) -> &str {
        self.spec
            .disruption
            .as_ref()
            .and_then(|d| d.consolidate_after.as_deref())
            .unwrap_or(DEFAULT_CONSOLIDATE_AFTER)
    }

    pub fn expire_after(&self) -> &str {
        self.spec
            .template
            .spec
            .expire_after
            .as_deref()
            .unwrap_or(DEFAULT_EXPIRE_AFTER)
    }

    /// The budgets in force: the spec's, or Karpenter's default of 10% when none are written.
    pub fn budgets(&self) -> Vec<Budget> {
        match self
            .spec
            .disruption
            .as_ref()
            .and_then(|d| d.budgets.clone())
        {
            Some(b) => b,
            None => vec![Budget {
                nodes: DEFAULT_BUDGET_NODES.into(),
                ..Default::default()
            }],
        }
    }
}

//! Types shared by NodePool templates and NodeClaims.

use super::labels;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Operators a requirement may use. Karpenter v1 has the first six; `Gte` / `Lte` are the
/// inclusive forms newer Karpenter releases accept.
pub const REQUIREMENT_OPERATORS: &[&str] = &[
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "Gt",
    "Lt",
    "Gte",
    "Lte",
];

/// A node selector requirement as Kubernetes has it, plus Karpenter's `minValues`: the least number
/// of distinct values of `key` the launch must keep open (instance-type flexibility).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorRequirementWithMinValues {
    /// The label key that the selector applies to.
    #[schemars(length(max = 316))]
    #[x_kube(validation = labels::rule_not_hostname())]
    #[x_kube(validation = labels::rule_kubernetes_io())]
    #[x_kube(validation = labels::rule_k8s_io())]
    #[x_kube(validation = labels::rule_karpenter_sh())]
    #[x_kube(validation = labels::rule_karpenter_aws())]
    pub key: String,
    /// In, NotIn, Exists, DoesNotExist, Gt, Lt, Gte, Lte.
    #[schemars(extend("enum" = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Gte", "Lte"]))]
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1250))]
    pub values: Option<Vec<String>>,
    /// The least number of unique values this requirement must keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 50))]
    pub min_values: Option<i32>,
}

impl NodeSelectorRequirementWithMinValues {
    pub fn values(&self) -> &[String] {
        self.values.as_deref().unwrap_or_default()
    }
}

/// Which node class a NodePool or NodeClaim launches with.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct NodeClassReference {
    /// Kind of the node class, e.g. `EC2NodeClass`.
    #[schemars(length(min = 1), regex(pattern = r"^[^/]*$"))]
    pub kind: String,
    /// Name of the node class.
    #[schemars(length(min = 1), regex(pattern = r"^[^/]*$"))]
    pub name: String,
    /// API group of the node class, e.g. `karpenter.k8s.aws`.
    #[schemars(length(min = 1), regex(pattern = r"^[^/]*$"))]
    pub group: String,
}

/// A node taint. Kubernetes' own shape, with the key pattern and effect enum in the schema.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    #[schemars(
        length(min = 1),
        regex(
            pattern = r"^([a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
        )
    )]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"))]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    #[schemars(extend("enum" = ["NoSchedule", "PreferNoSchedule", "NoExecute"]))]
    pub effect: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<String>,
}

/// A status condition (the shape of `metav1.Condition`, every field but `type` and `status`
/// optional so that partly-written conditions from other tools still decode).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Condition {
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Sets a condition, keeping its `lastTransitionTime` when the status does not change.
/// Returns whether anything changed. `now` is RFC 3339.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) -> bool {
    let new = |c: &mut Condition| {
        c.status = status.to_string();
        c.reason = Some(reason.to_string());
        c.message = (!message.is_empty()).then(|| message.to_string());
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            let before = c.clone();
            if c.status != status {
                c.last_transition_time = Some(now.to_string());
            }
            new(c);
            *c != before
        }
        None => {
            let mut c = Condition {
                type_: type_.to_string(),
                last_transition_time: Some(now.to_string()),
                ..Default::default()
            };
            new(&mut c);
            conditions.push(c);
            true
        }
    }
}

/// A Go duration as the CRDs carry them (`30s`, `1h30m`, `720h`); `None` for `Never` or
/// anything unreadable (the webhook rejects those before they are stored).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let nanos = super::duration::parse_go_duration(s).ok()?;
    u64::try_from(nanos)
        .ok()
        .map(std::time::Duration::from_nanos)
}

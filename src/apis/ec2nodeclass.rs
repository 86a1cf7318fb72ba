//! `karpenter.k8s.aws/v1` EC2NodeClass: how instances are launched on AWS (network, image,
//! identity, storage, kubelet).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::Condition;

pub const AMI_FAMILIES: &[&str] = &[
    "AL2",
    "AL2023",
    "Bottlerocket",
    "Ubuntu",
    "Custom",
    "Windows2019",
    "Windows2022",
    "Windows2025",
];
/// Families an `alias` (`family@version`) may name.
pub const AMI_ALIAS_FAMILIES: &[&str] = &[
    "al2",
    "al2023",
    "bottlerocket",
    "windows2019",
    "windows2022",
    "windows2025",
];

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "karpenter.k8s.aws",
    version = "v1",
    kind = "EC2NodeClass",
    plural = "ec2nodeclasses",
    status = "EC2NodeClassStatus",
    category = "karpenter",
    shortname = "ec2nc",
    shortname = "ec2ncs",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.role","priority":1}"#
)]
#[x_kube(validation = Rule::new("has(self.role) != has(self.instanceProfile)").message("must specify exactly one of ['role', 'instanceProfile']"))]
#[x_kube(validation = Rule::new("(has(oldSelf.role) && has(self.role)) || (has(oldSelf.instanceProfile) && has(self.instanceProfile))").message("changing from 'instanceProfile' to 'role' is not supported. You must delete and recreate this node class if you want to change this."))]
#[x_kube(validation = Rule::new("self.amiSelectorTerms.exists(x, has(x.alias)) || has(self.amiFamily)").message("amiFamily must be set if amiSelectorTerms does not contain an alias"))]
#[serde(rename_all = "camelCase")]
pub struct EC2NodeClassSpec {
    /// Subnets to launch into, found by tags or id.
    #[schemars(length(min = 1, max = 30))]
    #[x_kube(validation = Rule::new("self.all(x, has(x.tags) || has(x.id))").message("expected at least one, got none, ['tags', 'id']"))]
    #[x_kube(validation = Rule::new("!self.all(x, has(x.id) && has(x.tags))").message("'id' is mutually exclusive, cannot be set with a combination of other fields in subnetSelectorTerms"))]
    pub subnet_selector_terms: Vec<SubnetSelectorTerm>,
    /// Security groups to attach, found by tags, id or name.
    #[schemars(length(min = 1, max = 30))]
    #[x_kube(validation = Rule::new("self.all(x, has(x.tags) || has(x.id) || has(x.name))").message("expected at least one, got none, ['tags', 'id', 'name']"))]
    #[x_kube(validation = Rule::new("!self.exists(x, has(x.id) && (has(x.tags) || has(x.name)))").message("'id' is mutually exclusive, cannot be set with a combination of other fields in securityGroupSelectorTerms"))]
    #[x_kube(validation = Rule::new("!self.exists(x, has(x.name) && (has(x.tags) || has(x.id)))").message("'name' is mutually exclusive, cannot be set with a combination of other fields in securityGroupSelectorTerms"))]
    pub security_group_selector_terms: Vec<SecurityGroupSelectorTerm>,
    /// On-demand capacity reservations to use, found by tags or id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 30))]
    pub capacity_reservation_selector_terms: Option<Vec<CapacityReservationSelectorTerm>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "associatePublicIPAddress"
    )]
    pub associate_public_ip_address: Option<bool>,
    /// Images to launch, found by alias (`al2023@latest`), tags, id, name or SSM parameter.
    #[schemars(length(min = 1, max = 30))]
    #[x_kube(validation = Rule::new("self.all(x, has(x.tags) || has(x.id) || has(x.name) || has(x.alias) || has(x.ssmParameter))").message("expected at least one, got none, ['tags', 'id', 'name', 'alias', 'ssmParameter']"))]
    #[x_kube(validation = Rule::new("!self.exists(x, has(x.id) && (has(x.alias) || has(x.tags) || has(x.name) || has(x.owner)))").message("'id' is mutually exclusive, cannot be set with a combination of other fields in amiSelectorTerms"))]
    #[x_kube(validation = Rule::new("!self.exists(x, has(x.alias) && (has(x.id) || has(x.tags) || has(x.name) || has(x.owner)))").message("'alias' is mutually exclusive, cannot be set with a combination of other fields in amiSelectorTerms"))]
    #[x_kube(validation = Rule::new("!(self.exists(x, has(x.alias)) && self.size() != 1)").message("'alias' is mutually exclusive, cannot be set with a combination of other amiSelectorTerms"))]
    #[serde(rename = "amiSelectorTerms")]
    pub ami_selector_terms: Vec<AMISelectorTerm>,
    /// AL2, AL2023, Bottlerocket, Ubuntu, Custom, Windows2019, Windows2022 or Windows2025.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "amiFamily")]
    #[schemars(extend("enum" = ["AL2", "AL2023", "Bottlerocket", "Ubuntu", "Custom", "Windows2019", "Windows2022", "Windows2025"]))]
    pub ami_family: Option<String>,
    /// Extra user data, merged with what the AMI family needs to join the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// IAM role for the instance profile capstan manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("immutable field changed"))]
    pub role: Option<String>,
    /// An existing instance profile to use instead of `role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile: Option<String>,
    /// Tags put on every instance, volume and launch template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(k, k != '' && self[k] != '')").message("empty tag keys or values aren't supported"))]
    #[x_kube(validation = Rule::new("self.all(k, k != 'karpenter.sh/nodepool')").message("tag contains a restricted tag matching karpenter.sh/nodepool"))]
    #[x_kube(validation = Rule::new("self.all(k, k != 'karpenter.sh/nodeclaim')").message("tag contains a restricted tag matching karpenter.sh/nodeclaim"))]
    #[x_kube(validation = Rule::new("self.all(k, k != 'karpenter.k8s.aws/ec2nodeclass')").message("tag contains a restricted tag matching karpenter.k8s.aws/ec2nodeclass"))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('kubernetes.io/cluster'))").message("tag contains a restricted tag matching kubernetes.io/cluster/"))]
    #[x_kube(validation = Rule::new("self.all(k, k != 'eks:eks-cluster-name')").message("tag contains a restricted tag matching eks:eks-cluster-name"))]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<KubeletConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 50))]
    #[x_kube(validation = Rule::new("self.filter(x, has(x.rootVolume) ? x.rootVolume : false).size() <= 1").message("must have only one blockDeviceMappings with rootVolume"))]
    pub block_device_mappings: Option<Vec<BlockDeviceMapping>>,
    /// How local NVMe instance stores are used: `RAID0` puts them in one array for ephemeral storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["RAID0"]))]
    pub instance_store_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detailed_monitoring: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled", "httpPutResponseHopLimit": 1, "httpTokens": "required"}))]
    pub metadata_options: Option<MetadataOptions>,
    /// Reserved for AWS Outposts / context-specific launch options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct SubnetSelectorTerm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 20))]
    #[x_kube(validation = Rule::new("self.all(k, k != '' && self[k] != '')").message("empty tag keys or values aren't supported"))]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^subnet-[0-9a-z]+$"))]
    pub id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct SecurityGroupSelectorTerm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 20))]
    #[x_kube(validation = Rule::new("self.all(k, k != '' && self[k] != '')").message("empty tag keys or values aren't supported"))]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^sg-[0-9a-z]+$"))]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityReservationSelectorTerm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 20))]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^cr-[0-9a-z]+$"))]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ownerID")]
    #[schemars(regex(pattern = r"^[0-9]{12}$"))]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["open", "targeted"]))]
    pub instance_match_criteria: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AMISelectorTerm {
    /// `family@version`, e.g. `al2023@latest` or `bottlerocket@v1.20.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 30), regex(pattern = r"^[a-zA-Z0-9]+@.+$"))]
    #[x_kube(validation = Rule::new("self.find('^[^@]+') in ['al2', 'al2023', 'bottlerocket', 'windows2019', 'windows2022', 'windows2025']").message("family is not supported, must be one of the following: 'al2', 'al2023', 'bottlerocket', 'windows2019', 'windows2022', 'windows2025'"))]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 20))]
    #[x_kube(validation = Rule::new("self.all(k, k != '' && self[k] != '')").message("empty tag keys or values aren't supported"))]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^ami-[0-9a-z]+$"))]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Account id or alias (`self`, `amazon`) owning the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm_parameter: Option<String>,
}

/// Kubelet settings that change what a node can hold (reserved resources, eviction, max pods).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.imageGCHighThresholdPercent) && has(self.imageGCLowThresholdPercent) ? self.imageGCHighThresholdPercent > self.imageGCLowThresholdPercent : true").message("imageGCHighThresholdPercent must be greater than imageGCLowThresholdPercent"))]
#[x_kube(validation = Rule::new("has(self.evictionSoft) ? has(self.evictionSoftGracePeriod) && self.evictionSoft.all(e, e in self.evictionSoftGracePeriod) : true").message("evictionSoft OwnerKey does not have a matching evictionSoftGracePeriod"))]
#[x_kube(validation = Rule::new("has(self.evictionSoftGracePeriod) ? has(self.evictionSoft) && self.evictionSoftGracePeriod.all(e, e in self.evictionSoft) : true").message("evictionSoftGracePeriod OwnerKey does not have a matching evictionSoft"))]
pub struct KubeletConfiguration {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "clusterDNS"
    )]
    pub cluster_dns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_pods: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub pods_per_core: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(x, x == 'cpu' || x == 'memory' || x == 'ephemeral-storage' || x == 'pid')").message("valid keys for systemReserved are ['cpu','memory','ephemeral-storage','pid']"))]
    pub system_reserved: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(x, x == 'cpu' || x == 'memory' || x == 'ephemeral-storage' || x == 'pid')").message("valid keys for kubeReserved are ['cpu','memory','ephemeral-storage','pid']"))]
    pub kube_reserved: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(x, x in ['memory.available','nodefs.available','nodefs.inodesFree','imagefs.available','imagefs.inodesFree','pid.available'])").message("valid keys for evictionHard are ['memory.available','nodefs.available','nodefs.inodesFree','imagefs.available','imagefs.inodesFree','pid.available']"))]
    pub eviction_hard: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(x, x in ['memory.available','nodefs.available','nodefs.inodesFree','imagefs.available','imagefs.inodesFree','pid.available'])").message("valid keys for evictionSoft are ['memory.available','nodefs.available','nodefs.inodesFree','imagefs.available','imagefs.inodesFree','pid.available']"))]
    pub eviction_soft: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_soft_grace_period: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub eviction_max_pod_grace_period: Option<i32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "imageGCHighThresholdPercent"
    )]
    #[schemars(range(min = 0, max = 100))]
    pub image_gc_high_threshold_percent: Option<i32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "imageGCLowThresholdPercent"
    )]
    #[schemars(range(min = 0, max = 100))]
    pub image_gc_low_threshold_percent: Option<i32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "cpuCFSQuota"
    )]
    pub cpu_cfs_quota: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockDeviceMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs: Option<BlockDevice>,
    /// Whether this is the root volume (at most one may be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_volume: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.snapshotID) || has(self.volumeSize)").message("snapshotID or volumeSize must be defined"))]
pub struct BlockDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_on_termination: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "kmsKeyID")]
    pub kms_key_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "snapshotID"
    )]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_initialization_rate: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<Quantity>,
    /// standard, io1, io2, gp2, sc1, st1 or gp3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"]))]
    pub volume_type: Option<String>,
}

/// Instance metadata service options (IMDS).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct MetadataOptions {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "httpEndpoint"
    )]
    #[schemars(extend("enum" = ["enabled", "disabled"], "default" = "enabled"))]
    pub http_endpoint: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "httpProtocolIPv6"
    )]
    #[schemars(extend("enum" = ["enabled", "disabled"], "default" = "disabled"))]
    pub http_protocol_ipv6: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "httpPutResponseHopLimit"
    )]
    #[schemars(range(min = 1, max = 64), extend("default" = 1))]
    pub http_put_response_hop_limit: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "httpTokens"
    )]
    #[schemars(extend("enum" = ["required", "optional"], "default" = "required"))]
    pub http_tokens: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EC2NodeClassStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<Subnet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<SecurityGroup>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity_reservations: Vec<CapacityReservation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "amis")]
    pub amis: Vec<AMI>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    pub id: String,
    pub zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "zoneID")]
    pub zone_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityReservation {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ownerID")]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_match_criteria: Option<String>,
    /// `default` or `capacity-block`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_type: Option<String>,
    /// `active` or `expiring`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// An image the selectors resolved to, with the node requirements it suits (e.g. its arch).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct AMI {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<AmiRequirement>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct AmiRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl EC2NodeClass {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status
            .as_ref()
            .and_then(|s| super::common::find_condition(&s.conditions, type_))
    }
}

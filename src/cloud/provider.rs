//! The `CloudProvider` trait: the only way controllers reach a cloud. Implemented by the AWS
//! provider (`aws/`, EC2 CreateFleet) and the simulated one (`sim`, in-process, fault injection).
//!
//! Methods return boxed futures so that controllers hold an `Arc<dyn CloudProvider>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use crate::apis::{EC2NodeClass, EC2NodeClassStatus, NodeClaim};

use super::catalog::{CapacityType, Catalog};

/// Tags (EC2) every instance capstan launches carries; the garbage collector and the
/// idempotent launch find instances by them.
pub mod tags {
    /// `kubernetes.io/cluster/<name>` = `owned`, as Karpenter and the AWS cloud controller read it.
    pub fn cluster_key(cluster: &str) -> String {
        format!("kubernetes.io/cluster/{cluster}")
    }
    pub const EKS_CLUSTER_NAME: &str = "eks:eks-cluster-name";
    pub const NODEPOOL: &str = "karpenter.sh/nodepool";
    pub const NODECLAIM: &str = "karpenter.sh/nodeclaim";
    pub const EC2NODECLASS: &str = "karpenter.k8s.aws/ec2nodeclass";
    pub const NAME: &str = "Name";
}

/// An instance as the cloud reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// `aws:///<zone>/<instance-id>`, as the kubelet and the AWS cloud controller write it.
    pub provider_id: String,
    pub id: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
    pub image_id: Option<String>,
    pub state: InstanceState,
    pub tags: BTreeMap<String, String>,
    pub launch_time: SystemTime,
}

impl Instance {
    /// The NodeClaim the instance was launched for (its `karpenter.sh/nodeclaim` tag).
    pub fn nodeclaim(&self) -> Option<&str> {
        self.tags.get(tags::NODECLAIM).map(String::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Stopped,
    Terminated,
}

impl InstanceState {
    /// Gone or going: nothing runs on it any more.
    pub fn is_terminating(self) -> bool {
        matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }
}

/// `aws:///us-east-1a/i-0abc` → `i-0abc`.
pub fn instance_id(provider_id: &str) -> Option<&str> {
    let rest = provider_id.strip_prefix("aws:///")?;
    let (_, id) = rest.rsplit_once('/')?;
    (!id.is_empty()).then_some(id)
}

pub fn provider_id(zone: &str, id: &str) -> String {
    format!("aws:///{zone}/{id}")
}

/// One (instance type, zone, capacity type) that could not be launched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OfferingKey {
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
}

impl std::fmt::Display for OfferingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.instance_type,
            self.zone,
            self.capacity_type.as_str()
        )
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CloudError {
    /// Every offering tried had no capacity; they are marked unavailable for a while and the
    /// claim may be relaunched with what is left.
    #[error("insufficient capacity for {}: {message}", list(.offerings))]
    InsufficientCapacity {
        offerings: Vec<OfferingKey>,
        message: String,
    },
    /// No instance type, zone or capacity type the claim allows can be launched now.
    #[error("no offering can launch this NodeClaim: {0}")]
    NoCompatibleOffering(String),
    #[error("instance {0} not found")]
    NotFound(String),
    /// The EC2NodeClass's subnets, security groups or AMIs have not resolved.
    #[error("EC2NodeClass {name} is not ready: {reason}")]
    NodeClassNotReady { name: String, reason: String },
    /// Retry later (API throttling, a transient failure).
    #[error("{operation}: {message} (will retry)")]
    Retryable { operation: String, message: String },
    #[error("{operation}: {message}")]
    Api { operation: String, message: String },
}

fn list(offerings: &[OfferingKey]) -> String {
    offerings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl CloudError {
    /// The label `karpenter_cloudprovider_errors_total` counts it under.
    pub fn kind(&self) -> &'static str {
        match self {
            CloudError::InsufficientCapacity { .. } => "InsufficientCapacityError",
            CloudError::NoCompatibleOffering(_) => "NoCompatibleOffering",
            CloudError::NotFound(_) => "NodeClaimNotFoundError",
            CloudError::NodeClassNotReady { .. } => "NodeClassNotReadyError",
            CloudError::Retryable { .. } => "RetryableError",
            CloudError::Api { .. } => "ApiError",
        }
    }
}

pub type CloudResult<T> = Result<T, CloudError>;

pub trait CloudProvider: Send + Sync {
    /// `aws` or `sim`, for logs and metrics.
    fn name(&self) -> &'static str;

    /// Launches one instance for `claim`, from the offerings its requirements allow (cheapest
    /// first). Idempotent: an instance already tagged with this claim's name is returned instead
    /// of launching another (a controller killed between launch and status update relaunches).
    fn create<'a>(
        &'a self,
        claim: &'a NodeClaim,
        class: &'a EC2NodeClass,
    ) -> BoxFuture<'a, CloudResult<Instance>>;

    /// Terminates the instance. `NotFound` when it is already gone.
    fn delete<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, CloudResult<()>>;

    /// `NotFound` when the instance does not exist or has terminated.
    fn get<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, CloudResult<Instance>>;

    /// Every instance of this cluster that capstan launched and that is not terminated.
    fn list(&self) -> BoxFuture<'_, CloudResult<Vec<Instance>>>;

    /// The instance types with their offerings and prices, unavailable offerings marked.
    fn catalog(&self) -> Arc<Catalog>;

    /// Resolves the class's subnet, security group and AMI selector terms.
    fn resolve_node_class<'a>(
        &'a self,
        class: &'a EC2NodeClass,
    ) -> BoxFuture<'a, CloudResult<EC2NodeClassStatus>>;

    /// Why the claim's instance no longer matches its EC2NodeClass (AMI, subnet, security
    /// groups), or `None`.
    fn is_drifted<'a>(
        &'a self,
        claim: &'a NodeClaim,
        class: &'a EC2NodeClass,
    ) -> BoxFuture<'a, CloudResult<Option<String>>>;

    /// Hides the offering from launches for a while (3 minutes, as after insufficient capacity):
    /// e.g. the spot pool an interruption warning just came from.
    fn mark_unavailable(&self, offering: &OfferingKey);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_from_provider_id() {
        assert_eq!(
            instance_id("aws:///us-east-1a/i-0abc123"),
            Some("i-0abc123")
        );
        assert_eq!(instance_id("aws:///us-east-1a/"), None);
        assert_eq!(instance_id("gce://p/z/n"), None);
        assert_eq!(
            provider_id("us-west-2b", "i-1"),
            "aws:///us-west-2b/i-1".to_string()
        );
    }
}

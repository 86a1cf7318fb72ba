//! Typed decoding of a document by its apiVersion and kind.

use k8s_openapi::api::admissionregistration::v1 as admission;
use k8s_openapi::api::{apps, batch, core, policy, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use super::{Document, ManifestErrors, PathSeg};
use crate::apis::{EC2NodeClass, NodeClaim, NodePool, RequestPolicy};

/// A manifest object capstan knows how to read.
#[derive(Debug, Clone)]
pub enum Object {
    NodePool(Box<NodePool>),
    NodeClaim(Box<NodeClaim>),
    EC2NodeClass(Box<EC2NodeClass>),
    RequestPolicy(Box<RequestPolicy>),
    Pod(Box<core::v1::Pod>),
    Deployment(Box<apps::v1::Deployment>),
    StatefulSet(Box<apps::v1::StatefulSet>),
    DaemonSet(Box<apps::v1::DaemonSet>),
    ReplicaSet(Box<apps::v1::ReplicaSet>),
    Job(Box<batch::v1::Job>),
    /// Any other built-in kind capstan reads only to check it (Namespace, RBAC, Service, ...).
    Other {
        api_version: String,
        kind: String,
    },
}

/// Older Karpenter APIs that `capstan convert` turns into v1.
const OLDER: &[(&str, &str)] = &[
    ("karpenter.sh/v1alpha5", "Provisioner"),
    ("karpenter.k8s.aws/v1alpha1", "AWSNodeTemplate"),
    ("karpenter.sh/v1beta1", "NodePool"),
    ("karpenter.sh/v1beta1", "NodeClaim"),
    ("karpenter.k8s.aws/v1beta1", "EC2NodeClass"),
];

macro_rules! strict {
    ($doc:expr, $variant:ident, $ty:ty) => {
        $doc.decode_strict::<$ty>()
            .map(|o| Object::$variant(Box::new(o)))
    };
}

macro_rules! check_only {
    ($doc:expr, $ty:ty) => {
        $doc.decode_strict::<$ty>().map(|_| Object::Other {
            api_version: $doc.api_version().to_string(),
            kind: $doc.kind().to_string(),
        })
    };
}

/// Decodes a document strictly into the type its apiVersion and kind name.
pub fn decode_object(doc: &Document) -> Result<Object, ManifestErrors> {
    let (api_version, kind) = (doc.api_version(), doc.kind());
    if api_version.is_empty() || kind.is_empty() {
        let field = if api_version.is_empty() {
            "apiVersion"
        } else {
            "kind"
        };
        return Err(ManifestErrors(vec![doc.error(
            &[],
            format!("missing \"{field}\"; every manifest needs apiVersion and kind"),
        )]));
    }
    if OLDER.contains(&(api_version, kind)) {
        let msg = format!(
            "{api_version} {kind} is an older Karpenter API; run `capstan convert -f {}` to get the v1 form",
            doc.file.display()
        );
        return Err(ManifestErrors(vec![
            doc.error(&[PathSeg::Key("apiVersion".into())], msg),
        ]));
    }
    match (api_version, kind) {
        ("karpenter.sh/v1", "NodePool") => strict!(doc, NodePool, NodePool),
        ("karpenter.sh/v1", "NodeClaim") => strict!(doc, NodeClaim, NodeClaim),
        ("karpenter.k8s.aws/v1", "EC2NodeClass") => strict!(doc, EC2NodeClass, EC2NodeClass),
        ("capstan.dev/v1alpha1", "RequestPolicy") => strict!(doc, RequestPolicy, RequestPolicy),
        ("v1", "Pod") => strict!(doc, Pod, core::v1::Pod),
        ("apps/v1", "Deployment") => strict!(doc, Deployment, apps::v1::Deployment),
        ("apps/v1", "StatefulSet") => strict!(doc, StatefulSet, apps::v1::StatefulSet),
        ("apps/v1", "DaemonSet") => strict!(doc, DaemonSet, apps::v1::DaemonSet),
        ("apps/v1", "ReplicaSet") => strict!(doc, ReplicaSet, apps::v1::ReplicaSet),
        ("batch/v1", "Job") => strict!(doc, Job, batch::v1::Job),
        ("v1", "Namespace") => check_only!(doc, core::v1::Namespace),
        ("v1", "ServiceAccount") => check_only!(doc, core::v1::ServiceAccount),
        ("v1", "Service") => check_only!(doc, core::v1::Service),
        ("v1", "ConfigMap") => check_only!(doc, core::v1::ConfigMap),
        ("v1", "Secret") => check_only!(doc, core::v1::Secret),
        ("v1", "LimitRange") => check_only!(doc, core::v1::LimitRange),
        ("policy/v1", "PodDisruptionBudget") => check_only!(doc, policy::v1::PodDisruptionBudget),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => check_only!(doc, rbac::v1::ClusterRole),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            check_only!(doc, rbac::v1::ClusterRoleBinding)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => check_only!(doc, rbac::v1::Role),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => check_only!(doc, rbac::v1::RoleBinding),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
            check_only!(doc, admission::MutatingWebhookConfiguration)
        }
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
            check_only!(doc, admission::ValidatingWebhookConfiguration)
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            check_only!(doc, CustomResourceDefinition)
        }
        _ => Err(ManifestErrors(vec![doc.error(
            &[PathSeg::Key("kind".into())],
            format!("capstan does not know {api_version} {kind}"),
        )])),
    }
}

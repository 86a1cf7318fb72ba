//! Older Karpenter manifests rewritten as the v1 objects capstan reads: v1alpha5 Provisioner →
//! NodePool, v1alpha1 AWSNodeTemplate → EC2NodeClass, v1beta1 NodePool / EC2NodeClass → v1.
//! Whatever cannot be carried over, or changes meaning on the way, becomes a note; nothing is
//! dropped silently except server-set state.

mod common;
mod fields;
mod v1alpha1;
mod v1alpha5;
mod v1beta1;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use fields::{Ctx, Fields, index, wrong_type};

/// Result of converting one input document.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The v1 objects produced (a v1alpha5 Provisioner gives one NodePool; an AWSNodeTemplate
    /// gives one EC2NodeClass; v1 input passes through unchanged; a `List` gives its items).
    pub objects: Vec<Value>,
    /// What could not be carried over, or was changed in meaning, one human sentence each,
    /// starting with the field path of the input.
    pub notes: Vec<String>,
    /// Paths of input fields the converter does not know (each also has a note). A strict caller
    /// treats them as errors: a misspelled field must not vanish quietly.
    pub unknown_fields: Vec<String>,
}

/// Why a document could not be converted. Every variant names the field path (empty for the
/// document itself).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{}required but missing", at(.path))]
    Missing { path: String },
    #[error("{}expected {expected}, got {found}", at(.path))]
    WrongType {
        path: String,
        expected: &'static str,
        found: String,
    },
    #[error("{}{message}", at(.path))]
    Invalid { path: String, message: String },
    #[error(
        "{}{api_version:?} is not a Karpenter API version capstan can convert (known: \
         karpenter.sh/v1alpha5, karpenter.sh/v1beta1, karpenter.k8s.aws/v1alpha1, \
         karpenter.k8s.aws/v1beta1; v1 passes through)",
        at(.path)
    )]
    UnknownApiVersion { path: String, api_version: String },
    #[error("{}{kind:?} of {api_version} cannot be converted: {reason}", at(.path))]
    UnknownKind {
        path: String,
        api_version: String,
        kind: String,
        reason: &'static str,
    },
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

impl ConvertError {
    /// The field path the error is about (empty for the whole document).
    pub fn path(&self) -> &str {
        match self {
            Self::Missing { path }
            | Self::WrongType { path, .. }
            | Self::Invalid { path, .. }
            | Self::UnknownApiVersion { path, .. }
            | Self::UnknownKind { path, .. } => path,
        }
    }

    fn within(mut self, prefix: &str) -> Self {
        let (Self::Missing { path }
        | Self::WrongType { path, .. }
        | Self::Invalid { path, .. }
        | Self::UnknownApiVersion { path, .. }
        | Self::UnknownKind { path, .. }) = &mut self;
        *path = if path.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{path}")
        };
        self
    }
}

const KARPENTER: &str = "karpenter.sh";
const KARPENTER_AWS: &str = "karpenter.k8s.aws";

/// Converts one parsed YAML/JSON document.
pub fn convert_document(doc: &Value) -> Result<Converted, ConvertError> {
    let Value::Object(map) = doc else {
        return Err(wrong_type("", "a Kubernetes object (a map)", doc));
    };
    let api_version = match map.get("apiVersion") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(wrong_type("apiVersion", "a string", other)),
        None => {
            return Err(ConvertError::Missing {
                path: "apiVersion".into(),
            });
        }
    };
    let kind = match map.get("kind") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(wrong_type("kind", "a string", other)),
        None => {
            return Err(ConvertError::Missing {
                path: "kind".into(),
            });
        }
    };
    let unknown_kind = |reason| {
        Err(ConvertError::UnknownKind {
            path: "kind".into(),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            reason,
        })
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    match (group, version, kind) {
        ("", "v1", "List") => convert_list(map.get("items")),
        // `kubectl get` of one old resource type may also name the list after it.
        (KARPENTER | KARPENTER_AWS, _, k) if k.ends_with("List") => convert_list(map.get("items")),
        (KARPENTER | KARPENTER_AWS, "v1", _) => passthrough(doc),
        (KARPENTER, "v1alpha5", "Provisioner") => v1alpha5::provisioner(doc.clone()),
        (KARPENTER, "v1beta1", "NodePool") => v1beta1::node_pool(doc.clone()),
        (KARPENTER_AWS, "v1alpha1", "AWSNodeTemplate") => v1alpha1::aws_node_template(doc.clone()),
        (KARPENTER_AWS, "v1beta1", "EC2NodeClass") => v1beta1::ec2_node_class(doc.clone()),
        (KARPENTER, "v1alpha5", "Machine") | (KARPENTER, "v1beta1", "NodeClaim") => unknown_kind(
            "node claims are created by the autoscaler, not written by hand; delete it and let \
             capstan launch from the converted NodePool",
        ),
        (KARPENTER, "v1alpha5" | "v1beta1", _) | (KARPENTER_AWS, "v1alpha1" | "v1beta1", _) => {
            unknown_kind("not a kind Karpenter had in that version")
        }
        (KARPENTER | KARPENTER_AWS, _, _) => Err(ConvertError::UnknownApiVersion {
            path: "apiVersion".into(),
            api_version: api_version.to_string(),
        }),
        _ => passthrough(doc),
    }
}

/// Whether a v1 object decodes as its type (other kinds pass): `convert`'s output must, or a
/// conversion bug would surface only at apply.
pub fn check_v1(object: &Value) -> Result<(), serde_json::Error> {
    match (object["apiVersion"].as_str(), object["kind"].as_str()) {
        (Some("karpenter.sh/v1"), Some("NodePool")) => {
            serde_json::from_value::<crate::apis::NodePool>(object.clone()).map(drop)
        }
        (Some("karpenter.k8s.aws/v1"), Some("EC2NodeClass")) => {
            serde_json::from_value::<crate::apis::EC2NodeClass>(object.clone()).map(drop)
        }
        _ => Ok(()),
    }
}

fn passthrough(doc: &Value) -> Result<Converted, ConvertError> {
    Ok(Converted {
        objects: vec![doc.clone()],
        notes: Vec::new(),
        unknown_fields: Vec::new(),
    })
}

/// `kubectl get provisioners -o yaml` gives a `List`: each item is converted on its own.
fn convert_list(items: Option<&Value>) -> Result<Converted, ConvertError> {
    let items = match items {
        None | Some(Value::Null) => {
            return Ok(Converted {
                objects: Vec::new(),
                notes: Vec::new(),
                unknown_fields: Vec::new(),
            });
        }
        Some(Value::Array(items)) => items,
        Some(other) => return Err(wrong_type("items", "a list", other)),
    };
    let mut out = Converted {
        objects: Vec::new(),
        notes: Vec::new(),
        unknown_fields: Vec::new(),
    };
    for (i, item) in items.iter().enumerate() {
        let prefix = index("items", i);
        let converted = convert_document(item).map_err(|e| e.within(&prefix))?;
        out.objects.extend(converted.objects);
        out.notes
            .extend(converted.notes.into_iter().map(|n| format!("{prefix}.{n}")));
        out.unknown_fields.extend(
            converted
                .unknown_fields
                .into_iter()
                .map(|n| format!("{prefix}.{n}")),
        );
    }
    Ok(out)
}

/// Set by the API server or by controllers; meaningless in a manifest to apply.
const SERVER_SET_METADATA: &[&str] = &[
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "managedFields",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
];

/// Annotations written by kubectl or by Karpenter's controllers about the old object.
const SERVER_SET_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "karpenter.sh/provisioner-hash",
    "karpenter.sh/nodepool-hash",
    "karpenter.sh/nodepool-hash-version",
    "karpenter.k8s.aws/nodetemplate-hash",
    "karpenter.k8s.aws/ec2nodeclass-hash",
    "karpenter.k8s.aws/ec2nodeclass-hash-version",
];

/// The top level of a Karpenter object: metadata kept, status dropped, anything else reported.
pub(crate) struct Doc {
    pub(crate) metadata: ObjectMeta,
    pub(crate) spec: Fields,
}

pub(crate) fn split_doc(doc: Value, ctx: &mut Ctx) -> Result<Doc, ConvertError> {
    let mut top = Fields::new(doc, "")?;
    top.take("apiVersion");
    top.take("kind");
    top.take("status");
    let metadata = match top.fields("metadata")? {
        Some(m) => metadata(m, ctx)?,
        None => {
            return Err(ConvertError::Missing {
                path: "metadata.name".into(),
            });
        }
    };
    let spec = match top.take("spec") {
        Some(v) => Fields::new(v, "spec")?,
        None => {
            return Err(ConvertError::Missing {
                path: "spec".into(),
            });
        }
    };
    top.finish(ctx);
    Ok(Doc { metadata, spec })
}

fn metadata(mut m: Fields, ctx: &mut Ctx) -> Result<ObjectMeta, ConvertError> {
    for key in SERVER_SET_METADATA {
        m.take(key);
    }
    let name = m.string("name")?;
    let generate_name = m.string("generateName")?;
    if name.is_none() && generate_name.is_none() {
        return Err(ConvertError::Missing { path: m.at("name") });
    }
    let labels = m
        .string_map("labels")?
        .map(|l| -> BTreeMap<String, String> { l.into_iter().collect() })
        .filter(|l| !l.is_empty());
    let annotations = m
        .string_map("annotations")?
        .map(|a| -> BTreeMap<String, String> {
            a.into_iter()
                .filter(|(k, _)| !SERVER_SET_ANNOTATIONS.contains(&k.as_str()))
                .collect()
        })
        .filter(|a| !a.is_empty());
    if let Some(ns) = m.string("namespace")? {
        ctx.note(format!(
            "metadata.namespace: {ns} dropped; NodePools and EC2NodeClasses are cluster-scoped"
        ));
    }
    m.finish(ctx);
    Ok(ObjectMeta {
        name,
        generate_name,
        labels,
        annotations,
        ..Default::default()
    })
}

pub(crate) fn to_value(object: &impl Serialize) -> Result<Value, ConvertError> {
    serde_json::to_value(object).map_err(|e| ConvertError::Invalid {
        path: String::new(),
        message: e.to_string(),
    })
}

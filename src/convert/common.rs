//! Rules shared by more than one input version.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::ConvertError;
use super::fields::{Ctx, decode, index, join, numbers_to_strings};
use crate::apis::common::{NodeSelectorRequirementWithMinValues, REQUIREMENT_OPERATORS};
use crate::apis::ec2nodeclass::{
    AMI_ALIAS_FAMILIES, AMI_FAMILIES, AMISelectorTerm, KubeletConfiguration, MetadataOptions,
};
use crate::apis::labels;

pub(crate) const PROVISIONER_NAME: &str = "karpenter.sh/provisioner-name";
const DO_NOT_CONSOLIDATE: &str = "karpenter.sh/do-not-consolidate";
/// Hop limit 2 let containers reach IMDS; v1's default of 1 does not.
const OLD_HOP_LIMIT: i64 = 2;

/// `N` seconds as a Go duration.
pub(crate) fn seconds(n: i64, path: &str) -> Result<String, ConvertError> {
    if n < 0 {
        return Err(ConvertError::Invalid {
            path: path.into(),
            message: format!("{n} is negative"),
        });
    }
    Ok(format!("{n}s"))
}

pub(crate) fn weight(w: i64, path: &str) -> Result<i32, ConvertError> {
    match i32::try_from(w) {
        Ok(w) if (1..=100).contains(&w) => Ok(w),
        _ => Err(ConvertError::Invalid {
            path: path.into(),
            message: format!("{w} is out of range (1 to 100)"),
        }),
    }
}

/// Requirements as v1 accepts them: restricted keys (the pool label above all) are dropped.
pub(crate) fn requirements(
    value: Value,
    path: &str,
    ctx: &mut Ctx,
) -> Result<Vec<NodeSelectorRequirementWithMinValues>, ConvertError> {
    let reqs: Vec<NodeSelectorRequirementWithMinValues> = decode(value, path, ctx)?;
    let mut out = Vec::with_capacity(reqs.len());
    for (i, r) in reqs.into_iter().enumerate() {
        let p = index(path, i);
        if !REQUIREMENT_OPERATORS.contains(&r.operator.as_str()) {
            return Err(ConvertError::Invalid {
                path: join(&p, "operator"),
                message: format!("unknown operator {:?}", r.operator),
            });
        }
        if r.key == PROVISIONER_NAME {
            ctx.note(format!(
                "{p}: {PROVISIONER_NAME} is {} in v1, which a NodePool may not name in its \
                 requirements (every node gets it from its pool); dropped. Pods selecting \
                 {PROVISIONER_NAME} must select {} instead",
                labels::NODEPOOL,
                labels::NODEPOOL
            ));
            continue;
        }
        if let Some(reason) = labels::restricted_reason(&r.key) {
            ctx.note(format!("{p}: key {}: {reason} in v1; dropped", r.key));
            continue;
        }
        out.push(r);
    }
    Ok(out)
}

/// Node labels from the template: restricted keys dropped, as v1 would reject them.
pub(crate) fn labels(
    given: Vec<(String, String)>,
    path: &str,
    ctx: &mut Ctx,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in given {
        if let Some(reason) = labels::restricted_reason(&k) {
            ctx.note(format!("{}: {reason} in v1; dropped", join(path, &k)));
        } else {
            out.insert(k, v);
        }
    }
    out
}

/// Node annotations from the template; the old do-not-consolidate became do-not-disrupt.
pub(crate) fn annotations(
    given: Vec<(String, String)>,
    path: &str,
    ctx: &mut Ctx,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in given {
        if k == DO_NOT_CONSOLIDATE {
            ctx.note(format!(
                "{}: became {} (it also blocks drift, but no longer expiry)",
                join(path, &k),
                labels::DO_NOT_DISRUPT
            ));
            out.insert(labels::DO_NOT_DISRUPT.to_string(), v);
        } else {
            out.insert(k, v);
        }
    }
    out
}

/// Kubelet settings cannot stay on a NodePool in v1; the note carries the block to copy.
pub(crate) fn kubelet_note(
    value: Value,
    path: &str,
    node_class: &str,
    ctx: &mut Ctx,
) -> Result<(), ConvertError> {
    let mut value = value;
    if let Value::Object(map) = &mut value {
        if let Some(runtime) = map.remove("containerRuntime").filter(|v| !v.is_null()) {
            ctx.note(format!(
                "{}: {runtime} dropped; v1 nodes always run containerd",
                join(path, "containerRuntime")
            ));
        }
        for key in ["systemReserved", "kubeReserved"] {
            if let Some(v) = map.remove(key) {
                map.insert(key.to_string(), numbers_to_strings(v));
            }
        }
    }
    let kubelet: KubeletConfiguration = decode(value, path, ctx)?;
    if kubelet == KubeletConfiguration::default() {
        return Ok(());
    }
    let block = serde_saphyr::to_string(&json!({ "kubelet": kubelet })).map_err(|e| {
        ConvertError::Invalid {
            path: path.into(),
            message: e.to_string(),
        }
    })?;
    let block: Vec<String> = block.lines().map(|l| format!("  {l}")).collect();
    ctx.note(format!(
        "{path}: kubelet settings live on the EC2NodeClass in v1, not on the NodePool; add this \
         to the spec of EC2NodeClass {node_class:?} (a NodePool with other kubelet settings \
         needs its own EC2NodeClass):\n{}",
        block.join("\n")
    ));
    Ok(())
}

/// `amiFamily` and `amiSelectorTerms` as v1 wants them: without terms, a family that has
/// EKS-optimized images becomes an alias to the latest one (what the old versions used).
pub(crate) fn ami_selection(
    family: Option<String>,
    terms: Vec<AMISelectorTerm>,
    terms_path: &str,
    ctx: &mut Ctx,
) -> Result<(Option<String>, Vec<AMISelectorTerm>), ConvertError> {
    const FAMILY_PATH: &str = "spec.amiFamily";
    let family = match family {
        None => {
            if terms.is_empty() {
                ctx.note(format!(
                    "{FAMILY_PATH}: not set, so AL2 applied; with no {terms_path} it became \
                     amiSelectorTerms: [{{alias: al2@latest}}]"
                ));
                let alias = AMISelectorTerm {
                    alias: Some("al2@latest".into()),
                    ..Default::default()
                };
                return Ok((None, vec![alias]));
            }
            ctx.note(format!(
                "{FAMILY_PATH}: not set, so AL2 applied; written out, as v1 needs it when \
                 amiSelectorTerms has no alias"
            ));
            "AL2".to_string()
        }
        Some(f) if f.starts_with("Ubuntu") && f != "Ubuntu" => {
            ctx.note(format!("{FAMILY_PATH}: {f} became Ubuntu"));
            "Ubuntu".to_string()
        }
        Some(f) if AMI_FAMILIES.contains(&f.as_str()) => f,
        Some(f) => {
            return Err(ConvertError::Invalid {
                path: FAMILY_PATH.into(),
                message: format!(
                    "unknown AMI family {f:?} (known: {})",
                    AMI_FAMILIES.join(", ")
                ),
            });
        }
    };
    if family == "Custom" {
        ctx.note(format!(
            "{FAMILY_PATH}: Custom: in v1 your userData must register the node with the taint \
             {}:NoExecute (capstan removes it once the node is ready)",
            labels::UNREGISTERED_TAINT_KEY
        ));
    }
    if !terms.is_empty() {
        return Ok((Some(family), terms));
    }
    let lower = family.to_lowercase();
    if AMI_ALIAS_FAMILIES.contains(&lower.as_str()) {
        let alias = format!("{lower}@latest");
        ctx.note(format!(
            "{FAMILY_PATH}: {family} with no {terms_path} became amiSelectorTerms: [{{alias: \
             {alias}}}], the latest EKS-optimized image as before; pin a version to stop nodes \
             drifting on every image release"
        ));
        let term = AMISelectorTerm {
            alias: Some(alias),
            ..Default::default()
        };
        return Ok((Some(family), vec![term]));
    }
    ctx.note(format!(
        "{FAMILY_PATH}: {family} has no image alias in v1 and {terms_path} is empty; \
         amiSelectorTerms must be written (id, name or tags) before this EC2NodeClass can \
         launch nodes"
    ));
    Ok((Some(family), Vec::new()))
}

/// The old versions defaulted the IMDS hop limit to 2 (containers could reach IMDS); v1 defaults
/// to 1, so the old value is written out.
pub(crate) fn metadata_options(given: Option<MetadataOptions>, ctx: &mut Ctx) -> MetadataOptions {
    const PATH: &str = "spec.metadataOptions";
    match given {
        None => {
            ctx.note(format!(
                "{PATH}: not set; the old default (httpPutResponseHopLimit: 2, so containers \
                 can reach instance metadata) was written out, as v1 defaults to 1; remove it to \
                 take v1's default"
            ));
            MetadataOptions {
                http_endpoint: Some("enabled".into()),
                http_protocol_ipv6: Some("disabled".into()),
                http_put_response_hop_limit: Some(OLD_HOP_LIMIT),
                http_tokens: Some("required".into()),
            }
        }
        Some(mut m) => {
            if m.http_put_response_hop_limit.is_none() {
                ctx.note(format!(
                    "{PATH}.httpPutResponseHopLimit: not set; the old default 2 was written \
                     out, as v1 defaults to 1"
                ));
                m.http_put_response_hop_limit = Some(OLD_HOP_LIMIT);
            }
            m
        }
    }
}

//! `karpenter.sh/v1beta1` NodePool and `karpenter.k8s.aws/v1beta1` EC2NodeClass → v1. The shapes
//! are close; what moved is expireAfter (into the template), kubelet (onto the EC2NodeClass) and
//! the nodeClassRef (apiVersion became group).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;

use super::common;
use super::fields::{Ctx, Fields};
use super::{ConvertError, Converted, Doc, KARPENTER_AWS, split_doc, to_value};
use crate::apis::common::{NodeClassReference, Taint};
use crate::apis::ec2nodeclass::{
    AMISelectorTerm, BlockDeviceMapping, EC2NodeClass, EC2NodeClassSpec, MetadataOptions,
    SecurityGroupSelectorTerm, SubnetSelectorTerm,
};
use crate::apis::nodepool::{
    Budget, CONSOLIDATION_POLICY_WHEN_EMPTY, CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED,
    Disruption, NodeClaimTemplate, NodeClaimTemplateSpec, NodePool, NodePoolSpec, TemplateMetadata,
};

const WHEN_UNDERUTILIZED: &str = "WhenUnderutilized";

pub(crate) fn node_pool(doc: Value) -> Result<Converted, ConvertError> {
    let mut ctx = Ctx::new("v1beta1 NodePool");
    let Doc { metadata, mut spec } = split_doc(doc, &mut ctx)?;

    let mut template = spec
        .fields("template")?
        .ok_or_else(|| ConvertError::Missing {
            path: "spec.template".into(),
        })?;
    let template_metadata = match template.fields("metadata")? {
        Some(mut m) => {
            let labels = m
                .string_map("labels")?
                .map(|l| common::labels(l, "spec.template.metadata.labels", &mut ctx))
                .filter(|l| !l.is_empty());
            let annotations = m
                .string_map("annotations")?
                .map(|a| common::annotations(a, "spec.template.metadata.annotations", &mut ctx))
                .filter(|a| !a.is_empty());
            m.finish(&mut ctx);
            (labels.is_some() || annotations.is_some()).then_some(TemplateMetadata {
                labels,
                annotations,
            })
        }
        None => None,
    };
    let mut tspec = template
        .fields("spec")?
        .ok_or_else(|| ConvertError::Missing {
            path: "spec.template.spec".into(),
        })?;
    template.finish(&mut ctx);

    let requirements = match tspec.take("requirements") {
        Some(v) => common::requirements(v, "spec.template.spec.requirements", &mut ctx)?,
        None => Vec::new(),
    };
    let taints: Vec<Taint> = tspec.decode("taints", &mut ctx)?.unwrap_or_default();
    let startup_taints: Vec<Taint> = tspec.decode("startupTaints", &mut ctx)?.unwrap_or_default();
    let node_class_ref = node_class_ref(&mut tspec, &mut ctx)?;
    if let Some(kubelet) = tspec.take("kubelet") {
        common::kubelet_note(
            kubelet,
            "spec.template.spec.kubelet",
            &node_class_ref.name,
            &mut ctx,
        )?;
    }
    if tspec.take("resources").is_some() {
        ctx.note("spec.template.spec.resources: dropped; v1 has no resource requests per node");
    }
    let termination_grace_period = tspec.string("terminationGracePeriod")?;
    tspec.finish(&mut ctx);

    let (disruption, expire_after) = match spec.fields("disruption")? {
        Some(d) => disruption(d, &mut ctx)?,
        None => (None, None),
    };
    let limits: Option<BTreeMap<String, Quantity>> = spec.decode("limits", &mut ctx)?;
    let weight = spec
        .integer("weight")?
        .map(|w| common::weight(w, "spec.weight"))
        .transpose()?;
    spec.finish(&mut ctx);

    let pool = NodePool {
        metadata,
        spec: NodePoolSpec {
            template: NodeClaimTemplate {
                metadata: template_metadata,
                spec: NodeClaimTemplateSpec {
                    taints,
                    startup_taints,
                    requirements,
                    node_class_ref,
                    expire_after,
                    termination_grace_period,
                },
            },
            disruption,
            limits,
            weight,
        },
        status: None,
    };
    Ok(Converted {
        objects: vec![to_value(&pool)?],
        notes: ctx.notes,
        unknown_fields: ctx.unknown_fields,
    })
}

/// `{name, kind?, apiVersion?}` → `{group, kind, name}`, all required in v1.
fn node_class_ref(tspec: &mut Fields, ctx: &mut Ctx) -> Result<NodeClassReference, ConvertError> {
    let mut r = tspec
        .fields("nodeClassRef")?
        .ok_or_else(|| ConvertError::Missing {
            path: tspec.at("nodeClassRef"),
        })?;
    let name = r
        .string("name")?
        .ok_or_else(|| ConvertError::Missing { path: r.at("name") })?;
    let kind = r.string("kind")?.unwrap_or_else(|| "EC2NodeClass".into());
    let group = match r.string("apiVersion")? {
        Some(v) => v.split_once('/').map_or(v.as_str(), |(g, _)| g).to_string(),
        None => KARPENTER_AWS.to_string(),
    };
    r.finish(ctx);
    if group != KARPENTER_AWS || kind != "EC2NodeClass" {
        ctx.note(format!(
            "spec.template.spec.nodeClassRef: {group} {kind} kept, but capstan launches only \
             from {KARPENTER_AWS} EC2NodeClass"
        ));
    }
    Ok(NodeClassReference { kind, name, group })
}

/// The v1 disruption block, and the expireAfter that moved into the template.
fn disruption(
    mut d: Fields,
    ctx: &mut Ctx,
) -> Result<(Option<Disruption>, Option<String>), ConvertError> {
    let policy = d.string("consolidationPolicy")?;
    let mut consolidate_after = d.string("consolidateAfter")?;
    let expire_after = d.string("expireAfter")?;
    let budgets: Option<Vec<Budget>> = d.decode("budgets", ctx)?;
    d.finish(ctx);

    let policy = match policy.as_deref() {
        None => None,
        Some(WHEN_UNDERUTILIZED) => {
            let replaced = match consolidate_after.as_deref() {
                Some(a) if a != "0s" => format!(" (replacing {a}, which v1beta1 ignored)"),
                _ => String::new(),
            };
            ctx.note(format!(
                "spec.disruption.consolidationPolicy: {WHEN_UNDERUTILIZED} became \
                 {CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED} with consolidateAfter: \
                 0s{replaced}, which keeps v1beta1's timing (v1 waits consolidateAfter after the \
                 last pod change under every policy)"
            ));
            consolidate_after = Some("0s".into());
            Some(CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED.to_string())
        }
        Some(p)
            if p == CONSOLIDATION_POLICY_WHEN_EMPTY
                || p == CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED =>
        {
            Some(p.to_string())
        }
        Some(p) => {
            return Err(ConvertError::Invalid {
                path: "spec.disruption.consolidationPolicy".into(),
                message: format!("unknown policy {p:?} (v1beta1 had WhenEmpty, WhenUnderutilized)"),
            });
        }
    };
    if let Some(e) = expire_after.as_deref().filter(|e| *e != "Never") {
        ctx.note(format!(
            "spec.disruption.expireAfter: {e} moved to spec.template.spec.expireAfter; v1 expiry \
             is forceful (an expired node drains without waiting for a replacement)"
        ));
    }
    let disruption = (policy.is_some() || consolidate_after.is_some() || budgets.is_some())
        .then_some(Disruption {
            consolidate_after,
            consolidation_policy: policy,
            budgets,
        });
    Ok((disruption, expire_after))
}

pub(crate) fn ec2_node_class(doc: Value) -> Result<Converted, ConvertError> {
    let mut ctx = Ctx::new("v1beta1 EC2NodeClass");
    let Doc { metadata, mut spec } = split_doc(doc, &mut ctx)?;

    let subnet_selector_terms: Vec<SubnetSelectorTerm> =
        required_terms(&mut spec, "subnetSelectorTerms", &mut ctx)?;
    let security_group_selector_terms: Vec<SecurityGroupSelectorTerm> =
        required_terms(&mut spec, "securityGroupSelectorTerms", &mut ctx)?;
    let ami_terms: Vec<AMISelectorTerm> = spec
        .decode("amiSelectorTerms", &mut ctx)?
        .unwrap_or_default();
    let family = spec.string("amiFamily")?;
    let (ami_family, ami_selector_terms) =
        common::ami_selection(family, ami_terms, "spec.amiSelectorTerms", &mut ctx)?;

    let role = spec.string("role")?;
    let instance_profile = spec.string("instanceProfile")?;
    if role.is_none() && instance_profile.is_none() {
        ctx.note("spec.role: neither role nor instanceProfile is set; v1 needs one of them");
    }
    let user_data = spec.string("userData")?;
    let tags: Option<BTreeMap<String, String>> = spec.decode("tags", &mut ctx)?;
    let block_device_mappings: Option<Vec<BlockDeviceMapping>> =
        spec.decode("blockDeviceMappings", &mut ctx)?;
    let instance_store_policy = spec.string("instanceStorePolicy")?;
    let detailed_monitoring = spec.boolean("detailedMonitoring")?;
    let associate_public_ip_address = spec.boolean("associatePublicIPAddress")?;
    let metadata_options: Option<MetadataOptions> = spec.decode("metadataOptions", &mut ctx)?;
    let context = spec.string("context")?;
    spec.finish(&mut ctx);

    let class = EC2NodeClass {
        metadata,
        spec: EC2NodeClassSpec {
            subnet_selector_terms,
            security_group_selector_terms,
            associate_public_ip_address,
            ami_selector_terms,
            ami_family,
            user_data,
            role,
            instance_profile,
            tags,
            block_device_mappings,
            instance_store_policy,
            detailed_monitoring,
            metadata_options: Some(common::metadata_options(metadata_options, &mut ctx)),
            context,
            ..Default::default()
        },
        status: None,
    };
    Ok(Converted {
        objects: vec![to_value(&class)?],
        notes: ctx.notes,
        unknown_fields: ctx.unknown_fields,
    })
}

fn required_terms<T: serde::de::DeserializeOwned>(
    spec: &mut Fields,
    key: &str,
    ctx: &mut Ctx,
) -> Result<Vec<T>, ConvertError> {
    let terms: Option<Vec<T>> = spec.decode(key, ctx)?;
    match terms {
        Some(t) if !t.is_empty() => Ok(t),
        _ => {
            ctx.note(format!(
                "{}: empty; its terms must be written",
                spec.at(key)
            ));
            Ok(Vec::new())
        }
    }
}

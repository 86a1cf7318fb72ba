//! `karpenter.sh/v1alpha5` Provisioner → `karpenter.sh/v1` NodePool.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;

use super::common::{self, seconds};
use super::fields::{Ctx, Fields};
use super::{ConvertError, Converted, Doc, KARPENTER_AWS, split_doc, to_value};
use crate::apis::common::{NodeClassReference, Taint};
use crate::apis::nodepool::{
    CONSOLIDATION_POLICY_WHEN_EMPTY, CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED, Disruption,
    NodeClaimTemplate, NodeClaimTemplateSpec, NodePool, NodePoolSpec, TemplateMetadata,
};

pub(crate) fn provisioner(doc: Value) -> Result<Converted, ConvertError> {
    let mut ctx = Ctx::new("v1alpha5 Provisioner");
    let Doc { metadata, mut spec } = split_doc(doc, &mut ctx)?;
    let pool_name = metadata
        .name
        .clone()
        .or_else(|| metadata.generate_name.clone())
        .unwrap_or_default();

    let labels = spec
        .string_map("labels")?
        .map(|l| common::labels(l, "spec.labels", &mut ctx))
        .filter(|l| !l.is_empty());
    let annotations = spec
        .string_map("annotations")?
        .map(|a| common::annotations(a, "spec.annotations", &mut ctx))
        .filter(|a| !a.is_empty());
    let template_metadata =
        (labels.is_some() || annotations.is_some()).then_some(TemplateMetadata {
            labels,
            annotations,
        });

    let requirements = match spec.take("requirements") {
        Some(v) => common::requirements(v, "spec.requirements", &mut ctx)?,
        None => Vec::new(),
    };
    let taints: Vec<Taint> = spec.decode("taints", &mut ctx)?.unwrap_or_default();
    let startup_taints: Vec<Taint> = spec.decode("startupTaints", &mut ctx)?.unwrap_or_default();

    let node_class = node_class_name(&mut spec, &pool_name, &mut ctx)?;
    if let Some(kubelet) = spec.take("kubeletConfiguration") {
        common::kubelet_note(kubelet, "spec.kubeletConfiguration", &node_class, &mut ctx)?;
    }

    let limits = match spec.fields("limits")? {
        Some(mut l) => {
            let resources: Option<BTreeMap<String, Quantity>> = l.decode("resources", &mut ctx)?;
            l.finish(&mut ctx);
            resources
        }
        None => None,
    };
    let weight = spec
        .integer("weight")?
        .map(|w| common::weight(w, "spec.weight"))
        .transpose()?;
    let disruption = disruption(&mut spec, &mut ctx)?;
    let expire_after = expire_after(&mut spec, &mut ctx)?;
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
                    node_class_ref: NodeClassReference {
                        kind: "EC2NodeClass".into(),
                        name: node_class,
                        group: KARPENTER_AWS.into(),
                    },
                    expire_after,
                    termination_grace_period: None,
                },
            },
            disruption: Some(disruption),
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

/// The EC2NodeClass the pool points at: the providerRef's name, else one named after the pool
/// that the user has to write (inline `provider` settings have no place on a v1 NodePool).
fn node_class_name(
    spec: &mut Fields,
    pool_name: &str,
    ctx: &mut Ctx,
) -> Result<String, ConvertError> {
    let has_provider = spec.take("provider").is_some();
    let name = match spec.fields("providerRef")? {
        Some(mut r) => {
            let name = r
                .string("name")?
                .ok_or_else(|| ConvertError::Missing { path: r.at("name") })?;
            let kind = r.string("kind")?;
            let api_version = r.string("apiVersion")?;
            r.finish(ctx);
            let foreign_kind = kind.as_deref().is_some_and(|k| k != "AWSNodeTemplate");
            let foreign_group = api_version
                .as_deref()
                .is_some_and(|v| !v.starts_with("karpenter.k8s.aws/"));
            if foreign_kind || foreign_group {
                ctx.note(format!(
                    "spec.providerRef: {} {} is not an AWSNodeTemplate; the NodePool points at \
                     EC2NodeClass {name:?}, the only node class capstan launches from",
                    api_version.as_deref().unwrap_or(""),
                    kind.as_deref().unwrap_or("")
                ));
            }
            if has_provider {
                ctx.note(format!(
                    "spec.provider: dropped; spec.providerRef (EC2NodeClass {name:?}) is used"
                ));
            }
            return Ok(name);
        }
        None => pool_name.to_string(),
    };
    if has_provider {
        ctx.note(format!(
            "spec.provider: inline AWS settings cannot be carried into a NodePool; write them as \
             an EC2NodeClass named {name:?} (convert them as the spec of an AWSNodeTemplate), \
             which spec.template.spec.nodeClassRef now names"
        ));
    } else {
        ctx.note(format!(
            "spec.providerRef: not set; spec.template.spec.nodeClassRef names EC2NodeClass \
             {name:?}, which you must write"
        ));
    }
    Ok(name)
}

fn disruption(spec: &mut Fields, ctx: &mut Ctx) -> Result<Disruption, ConvertError> {
    let ttl_empty = spec.integer("ttlSecondsAfterEmpty")?;
    let consolidation = match spec.fields("consolidation")? {
        Some(mut c) => {
            let enabled = c.boolean("enabled")?;
            c.finish(ctx);
            enabled
        }
        None => None,
    };
    let (policy, after) = match (ttl_empty, consolidation) {
        (Some(_), Some(true)) => {
            return Err(ConvertError::Invalid {
                path: "spec.ttlSecondsAfterEmpty".into(),
                message: "cannot be set with spec.consolidation.enabled: true (v1alpha5 rejected \
                          this too)"
                    .into(),
            });
        }
        (Some(n), _) => {
            let after = seconds(n, "spec.ttlSecondsAfterEmpty")?;
            ctx.note(format!(
                "spec.ttlSecondsAfterEmpty: {n} became disruption.consolidationPolicy: \
                 WhenEmpty, consolidateAfter: {after}"
            ));
            (CONSOLIDATION_POLICY_WHEN_EMPTY, after)
        }
        (None, Some(true)) => {
            ctx.note(
                "spec.consolidation.enabled: true became disruption.consolidationPolicy: \
                 WhenEmptyOrUnderutilized, consolidateAfter: 0s",
            );
            (
                CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED,
                "0s".to_string(),
            )
        }
        (None, _) => {
            ctx.note(
                "spec.ttlSecondsAfterEmpty: not set and consolidation not enabled, so v1alpha5 \
                 never removed empty or underused nodes; kept with disruption.consolidateAfter: \
                 Never (v1's default would consolidate)",
            );
            (CONSOLIDATION_POLICY_WHEN_EMPTY, "Never".to_string())
        }
    };
    Ok(Disruption {
        consolidate_after: Some(after),
        consolidation_policy: Some(policy.to_string()),
        budgets: None,
    })
}

fn expire_after(spec: &mut Fields, ctx: &mut Ctx) -> Result<Option<String>, ConvertError> {
    match spec.integer("ttlSecondsUntilExpired")? {
        Some(n) => {
            let after = seconds(n, "spec.ttlSecondsUntilExpired")?;
            ctx.note(format!(
                "spec.ttlSecondsUntilExpired: {n} became template.spec.expireAfter: {after}; v1 \
                 expiry is forceful (an expired node drains without waiting for a replacement)"
            ));
            Ok(Some(after))
        }
        None => {
            ctx.note(
                "spec.ttlSecondsUntilExpired: not set, so nodes never expired in v1alpha5; v1's \
                 default expireAfter of 720h now applies (set spec.template.spec.expireAfter: \
                 Never to keep them)",
            );
            Ok(None)
        }
    }
}

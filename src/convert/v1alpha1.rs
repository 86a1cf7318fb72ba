//! `karpenter.k8s.aws/v1alpha1` AWSNodeTemplate → `karpenter.k8s.aws/v1` EC2NodeClass.
//!
//! The old selectors were maps: each key a tag filter (values comma-separated, any of them
//! matching), `aws-ids` a list of ids, and for images `aws::name` / `aws::owners`. All of a map's
//! filters had to match. v1 has a list of terms, any of which may match, each term's fields all
//! matching, and an id term that cannot carry anything else.

use std::collections::BTreeMap;

use serde_json::Value;

use super::common;
use super::fields::Ctx;
use super::{ConvertError, Converted, Doc, split_doc, to_value};
use crate::apis::ec2nodeclass::{
    AMISelectorTerm, BlockDeviceMapping, EC2NodeClass, EC2NodeClassSpec, MetadataOptions,
    SecurityGroupSelectorTerm, SubnetSelectorTerm,
};

const IDS_KEYS: &[&str] = &["aws-ids", "aws::ids"];
/// v1 accepts at most this many terms per selector.
const MAX_TERMS: usize = 30;

pub(crate) fn aws_node_template(doc: Value) -> Result<Converted, ConvertError> {
    let mut ctx = Ctx::new("v1alpha1 AWSNodeTemplate");
    let Doc { metadata, mut spec } = split_doc(doc, &mut ctx)?;

    let subnet_selector_terms = match spec.string_map("subnetSelector")? {
        Some(sel) => {
            let sel = Selector::parse(sel, "spec.subnetSelector", &[], &mut ctx);
            sel.ids_or_tags(&mut ctx)
                .into_iter()
                .map(|(id, tags)| SubnetSelectorTerm { id, tags })
                .collect()
        }
        None => {
            ctx.note("spec.subnetSelector: not set; subnetSelectorTerms must be written");
            Vec::new()
        }
    };
    let launch_template = spec.string("launchTemplate")?;
    let security_group_selector_terms = match spec.string_map("securityGroupSelector")? {
        Some(sel) => {
            let sel = Selector::parse(sel, "spec.securityGroupSelector", &[], &mut ctx);
            sel.ids_or_tags(&mut ctx)
                .into_iter()
                .map(|(id, tags)| SecurityGroupSelectorTerm {
                    id,
                    tags,
                    name: None,
                })
                .collect()
        }
        None => {
            ctx.note(
                "spec.securityGroupSelector: not set; securityGroupSelectorTerms must be written",
            );
            Vec::new()
        }
    };
    let ami_terms = match spec.string_map("amiSelector")? {
        Some(sel) => ami_terms(sel, &mut ctx),
        None => Vec::new(),
    };
    let family = spec.string("amiFamily")?;
    let (ami_family, ami_selector_terms) =
        common::ami_selection(family, ami_terms, "spec.amiSelector", &mut ctx)?;

    let instance_profile = spec.string("instanceProfile")?;
    if instance_profile.is_none() {
        ctx.note(
            "spec.instanceProfile: not set; v1alpha1 fell back to the controller's \
             aws.defaultInstanceProfile setting, v1 needs spec.role or spec.instanceProfile",
        );
    }
    if let Some(lt) = launch_template {
        ctx.note(format!(
            "spec.launchTemplate: {lt} cannot be carried: v1 has no custom launch templates; \
             move what it set (image, userData, security groups, block devices, metadata \
             options) into this EC2NodeClass"
        ));
    }
    let user_data = spec.string("userData")?;
    let tags: Option<BTreeMap<String, String>> = spec.decode("tags", &mut ctx)?;
    let metadata_options: Option<MetadataOptions> = spec.decode("metadataOptions", &mut ctx)?;
    let block_device_mappings: Option<Vec<BlockDeviceMapping>> =
        spec.decode("blockDeviceMappings", &mut ctx)?;
    let detailed_monitoring = spec.boolean("detailedMonitoring")?;
    // v1alpha1 spelled it with a lower-case "p".
    let associate_public_ip_address = match spec.boolean("associatePublicIpAddress")? {
        Some(b) => Some(b),
        None => spec.boolean("associatePublicIPAddress")?,
    };
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
            instance_profile,
            tags,
            block_device_mappings,
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

/// One v1 subnet or security group term: an id, or tags.
type IdOrTags = (Option<String>, Option<BTreeMap<String, String>>);

/// One old selector map, split into its kinds of filter.
struct Selector {
    path: &'static str,
    ids: Vec<String>,
    /// Special keys the caller asked for (`aws::name`, ...), by key.
    special: BTreeMap<String, String>,
    /// Tag filters, each with the values any of which may match.
    tags: Vec<(String, Vec<String>)>,
}

fn split_values(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl Selector {
    fn parse(
        sel: Vec<(String, String)>,
        path: &'static str,
        special_keys: &[&str],
        ctx: &mut Ctx,
    ) -> Self {
        let mut out = Selector {
            path,
            ids: Vec::new(),
            special: BTreeMap::new(),
            tags: Vec::new(),
        };
        for (k, v) in sel {
            if IDS_KEYS.contains(&k.as_str()) {
                out.ids.extend(split_values(&v));
            } else if special_keys.contains(&k.as_str()) {
                out.special.insert(k, v);
            } else {
                let mut values = split_values(&v);
                if values.is_empty() {
                    ctx.note(format!(
                        "{}: an empty value matched any value; became \"*\"",
                        super::fields::join(path, &k)
                    ));
                    values.push("*".into());
                }
                out.tags.push((k, values));
            }
        }
        out
    }

    /// True when ids were given together with other filters, which v1 cannot express; the ids
    /// win (the other filters only narrowed them).
    fn ids_win(&self, ctx: &mut Ctx) -> bool {
        if self.ids.is_empty() {
            return false;
        }
        let others: Vec<&str> = self
            .special
            .keys()
            .map(String::as_str)
            .chain(self.tags.iter().map(|(k, _)| k.as_str()))
            .collect();
        if !others.is_empty() {
            ctx.note(format!(
                "{}: ids were combined with {}; a v1 id term cannot carry other filters, so only \
                 the ids were kept",
                self.path,
                others.join(", ")
            ));
        }
        true
    }

    /// Every combination of one value per tag: v1 ANDs within a term and ORs across terms, and a
    /// comma in a v1 tag value is literal.
    fn tag_maps(&self, ctx: &mut Ctx) -> Vec<BTreeMap<String, String>> {
        let mut maps = vec![BTreeMap::new()];
        for (k, values) in &self.tags {
            maps = maps
                .into_iter()
                .flat_map(|m| {
                    values.iter().map(move |v| {
                        let mut m = m.clone();
                        m.insert(k.clone(), v.clone());
                        m
                    })
                })
                .collect();
        }
        if self.tags.iter().any(|(_, v)| v.len() > 1) {
            ctx.note(format!(
                "{}: comma-separated values (any of which matched) became {} terms, one per \
                 combination; a comma in a v1 tag value is literal",
                self.path,
                maps.len()
            ));
        }
        maps
    }

    /// (id, tags) pairs, one per v1 term.
    fn ids_or_tags(&self, ctx: &mut Ctx) -> Vec<IdOrTags> {
        if self.ids.is_empty() && self.tags.is_empty() {
            ctx.note(format!("{}: empty; its terms must be written", self.path));
            return Vec::new();
        }
        let terms: Vec<_> = if self.ids_win(ctx) {
            self.ids.iter().map(|id| (Some(id.clone()), None)).collect()
        } else {
            self.tag_maps(ctx)
                .into_iter()
                .map(|m| (None, Some(m)))
                .collect()
        };
        too_many(self.path, terms.len(), ctx);
        terms
    }
}

fn too_many(path: &str, n: usize, ctx: &mut Ctx) {
    if n > MAX_TERMS {
        ctx.note(format!(
            "{path}: became {n} terms, more than the {MAX_TERMS} v1 accepts; narrow it"
        ));
    }
}

fn ami_terms(sel: Vec<(String, String)>, ctx: &mut Ctx) -> Vec<AMISelectorTerm> {
    const NAME: &str = "aws::name";
    const OWNERS: &str = "aws::owners";
    let sel = Selector::parse(sel, "spec.amiSelector", &[NAME, OWNERS], ctx);
    if sel.ids.is_empty() && sel.special.is_empty() && sel.tags.is_empty() {
        return Vec::new();
    }
    if sel.ids_win(ctx) {
        let terms: Vec<AMISelectorTerm> = sel
            .ids
            .iter()
            .map(|id| AMISelectorTerm {
                id: Some(id.clone()),
                ..Default::default()
            })
            .collect();
        too_many(sel.path, terms.len(), ctx);
        return terms;
    }
    let name = sel.special.get(NAME).cloned();
    let owners: Vec<Option<String>> = match sel.special.get(OWNERS) {
        Some(o) => split_values(o).into_iter().map(Some).collect(),
        None => vec![None],
    };
    if owners.len() > 1 {
        ctx.note(format!(
            "spec.amiSelector[{OWNERS:?}]: each owner became its own term (a v1 term has one owner)"
        ));
    }
    let tag_maps = sel.tag_maps(ctx);
    if name.is_none() && sel.tags.is_empty() && sel.special.contains_key(OWNERS) {
        ctx.note(format!(
            "spec.amiSelector: only {OWNERS} was given; a v1 term also needs a name or tags to \
             select images"
        ));
    }
    let mut terms = Vec::new();
    for owner in &owners {
        for tags in &tag_maps {
            terms.push(AMISelectorTerm {
                name: name.clone(),
                owner: owner.clone(),
                tags: (!tags.is_empty()).then(|| tags.clone()),
                ..Default::default()
            });
        }
    }
    too_many(sel.path, terms.len(), ctx);
    terms
}

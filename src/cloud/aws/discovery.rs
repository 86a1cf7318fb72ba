//! Subnets, security groups and AMIs from an EC2NodeClass's selector terms, as Karpenter reads
//! them: each term is one Describe call (terms are ORed), the fields inside a term become filters
//! (ANDed). A tag whose value is `*` means "the key exists".

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, Image};

use crate::apis::ec2nodeclass::{
    AMI, AMISelectorTerm, AmiRequirement, SecurityGroup, SecurityGroupSelectorTerm, Subnet,
    SubnetSelectorTerm,
};
use crate::apis::labels::ARCH;
use crate::cloud::provider::{CloudError, CloudResult};

use super::errors::sdk_error;

/// One Describe call: EC2 filters (name, values) and, for images, owners.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pub filters: Vec<(String, Vec<String>)>,
    pub owners: Vec<String>,
}

impl Query {
    fn sdk_filters(&self) -> Vec<Filter> {
        self.filters
            .iter()
            .map(|(name, values)| {
                Filter::builder()
                    .name(name)
                    .set_values(Some(values.clone()))
                    .build()
            })
            .collect()
    }
}

fn tag_filters(tags: Option<&BTreeMap<String, String>>) -> Vec<(String, Vec<String>)> {
    tags.into_iter()
        .flatten()
        .map(|(k, v)| {
            if v == "*" {
                ("tag-key".to_string(), vec![k.clone()])
            } else {
                (format!("tag:{k}"), vec![v.clone()])
            }
        })
        .collect()
}

fn push(filters: &mut Vec<(String, Vec<String>)>, name: &str, value: Option<&String>) {
    if let Some(v) = value {
        filters.push((name.to_string(), vec![v.clone()]));
    }
}

pub fn subnet_queries(terms: &[SubnetSelectorTerm]) -> Vec<Query> {
    terms
        .iter()
        .map(|t| {
            let mut filters = Vec::new();
            push(&mut filters, "subnet-id", t.id.as_ref());
            filters.extend(tag_filters(t.tags.as_ref()));
            Query {
                filters,
                owners: Vec::new(),
            }
        })
        .collect()
}

pub fn security_group_queries(terms: &[SecurityGroupSelectorTerm]) -> Vec<Query> {
    terms
        .iter()
        .map(|t| {
            let mut filters = Vec::new();
            push(&mut filters, "group-id", t.id.as_ref());
            push(&mut filters, "group-name", t.name.as_ref());
            filters.extend(tag_filters(t.tags.as_ref()));
            Query {
                filters,
                owners: Vec::new(),
            }
        })
        .collect()
}

/// Alias and SSM-parameter terms are resolved elsewhere (they are not EC2 filters): an error
/// names them.
pub fn ami_queries(terms: &[AMISelectorTerm]) -> Result<Vec<Query>, String> {
    terms
        .iter()
        .map(|t| {
            if let Some(alias) = &t.alias {
                // The alias is an SSM parameter under /aws/service/eks/optimized-ami/<k8s version>/…;
                // capstan does not read SSM yet (and moto has no such parameters).
                return Err(format!(
                    "amiSelectorTerms alias {alias:?} is not supported yet: select the AMI by id, name or tags"
                ));
            }
            if let Some(p) = &t.ssm_parameter {
                return Err(format!(
                    "amiSelectorTerms ssmParameter {p:?} is not supported yet: select the AMI by id, name or tags"
                ));
            }
            let mut filters = Vec::new();
            push(&mut filters, "image-id", t.id.as_ref());
            push(&mut filters, "name", t.name.as_ref());
            filters.extend(tag_filters(t.tags.as_ref()));
            filters.push(("state".to_string(), vec!["available".to_string()]));
            // Karpenter: a name alone could match anyone's public image; default to ours and
            // Amazon's.
            let owners = match (&t.owner, &t.name, &t.id) {
                (Some(o), _, _) => vec![o.clone()],
                (None, Some(_), None) => vec!["self".to_string(), "amazon".to_string()],
                _ => Vec::new(),
            };
            Ok(Query { filters, owners })
        })
        .collect()
}

/// EC2's architecture names as `kubernetes.io/arch` values.
fn k8s_arch(ec2_arch: &str) -> Option<&'static str> {
    match ec2_arch {
        "x86_64" => Some("amd64"),
        "arm64" => Some("arm64"),
        _ => None,
    }
}

/// The images to launch: the newest per architecture (Karpenter's rule), newest first.
pub fn pick_amis(images: &[Image]) -> Vec<AMI> {
    let mut sorted: Vec<&Image> = images.iter().collect();
    // ISO-8601 creation dates sort as strings; ties by id so the choice is stable.
    sorted.sort_by(|a, b| {
        b.creation_date()
            .cmp(&a.creation_date())
            .then_with(|| a.image_id().cmp(&b.image_id()))
    });
    let mut seen_arch = BTreeSet::new();
    let mut seen_id = BTreeSet::new();
    let mut out = Vec::new();
    for img in sorted {
        let Some(id) = img.image_id() else { continue };
        let arch = img.architecture().map(|a| a.as_str().to_string());
        if !seen_id.insert(id.to_string()) || !seen_arch.insert(arch.clone()) {
            continue;
        }
        let requirements = arch
            .as_deref()
            .and_then(k8s_arch)
            .map(|a| {
                vec![AmiRequirement {
                    key: ARCH.to_string(),
                    operator: "In".to_string(),
                    values: vec![a.to_string()],
                }]
            })
            .unwrap_or_default();
        out.push(AMI {
            id: id.to_string(),
            name: img.name().map(str::to_string),
            deprecated: img.deprecation_time().map(|_| true),
            requirements,
        });
    }
    out
}

pub async fn subnets(client: &Client, terms: &[SubnetSelectorTerm]) -> CloudResult<Vec<Subnet>> {
    let mut out: BTreeMap<String, Subnet> = BTreeMap::new();
    for q in subnet_queries(terms) {
        let resp = client
            .describe_subnets()
            .set_filters(Some(q.sdk_filters()))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSubnets", e))?;
        for s in resp.subnets() {
            if let (Some(id), Some(zone)) = (s.subnet_id(), s.availability_zone()) {
                out.insert(
                    id.to_string(),
                    Subnet {
                        id: id.to_string(),
                        zone: zone.to_string(),
                        zone_id: s.availability_zone_id().map(str::to_string),
                    },
                );
            }
        }
    }
    Ok(out.into_values().collect())
}

pub async fn security_groups(
    client: &Client,
    terms: &[SecurityGroupSelectorTerm],
) -> CloudResult<Vec<SecurityGroup>> {
    let mut out: BTreeMap<String, SecurityGroup> = BTreeMap::new();
    for q in security_group_queries(terms) {
        let resp = client
            .describe_security_groups()
            .set_filters(Some(q.sdk_filters()))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSecurityGroups", e))?;
        for g in resp.security_groups() {
            if let Some(id) = g.group_id() {
                out.insert(
                    id.to_string(),
                    SecurityGroup {
                        id: id.to_string(),
                        name: g.group_name().map(str::to_string),
                    },
                );
            }
        }
    }
    Ok(out.into_values().collect())
}

/// `Err(NodeClassNotReady)` for alias / SSM terms; `class` names the EC2NodeClass in it.
pub async fn amis(
    client: &Client,
    class: &str,
    terms: &[AMISelectorTerm],
) -> CloudResult<Vec<AMI>> {
    let queries = ami_queries(terms).map_err(|reason| CloudError::NodeClassNotReady {
        name: class.to_string(),
        reason,
    })?;
    let mut images = Vec::new();
    for q in queries {
        let resp = client
            .describe_images()
            .set_filters(Some(q.sdk_filters()))
            .set_owners((!q.owners.is_empty()).then(|| q.owners.clone()))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeImages", e))?;
        images.extend(resp.images().iter().cloned());
    }
    Ok(pick_amis(&images))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::ArchitectureValues;

    fn tags(kv: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn f(name: &str, v: &str) -> (String, Vec<String>) {
        (name.to_string(), vec![v.to_string()])
    }

    #[test]
    fn one_query_per_term_fields_anded_wildcard_means_key_exists() {
        let terms = vec![
            SubnetSelectorTerm {
                tags: tags(&[("karpenter.sh/discovery", "demo"), ("tier", "*")]),
                id: None,
            },
            SubnetSelectorTerm {
                tags: None,
                id: Some("subnet-123".into()),
            },
        ];
        let q = subnet_queries(&terms);
        assert_eq!(q.len(), 2);
        assert_eq!(
            q[0].filters,
            vec![
                f("tag:karpenter.sh/discovery", "demo"),
                f("tag-key", "tier")
            ]
        );
        assert_eq!(q[1].filters, vec![f("subnet-id", "subnet-123")]);
    }

    #[test]
    fn security_groups_by_name_id_or_tags() {
        let terms = vec![
            SecurityGroupSelectorTerm {
                name: Some("nodes".into()),
                ..Default::default()
            },
            SecurityGroupSelectorTerm {
                id: Some("sg-1".into()),
                ..Default::default()
            },
        ];
        let q = security_group_queries(&terms);
        assert_eq!(q[0].filters, vec![f("group-name", "nodes")]);
        assert_eq!(q[1].filters, vec![f("group-id", "sg-1")]);
    }

    #[test]
    fn ami_name_defaults_owners_alias_is_an_error() {
        let q = ami_queries(&[AMISelectorTerm {
            name: Some("my-ami-*".into()),
            ..Default::default()
        }])
        .expect("name term");
        assert_eq!(q[0].owners, vec!["self", "amazon"]);
        assert!(q[0].filters.contains(&f("name", "my-ami-*")));
        assert!(q[0].filters.contains(&f("state", "available")));

        let q = ami_queries(&[AMISelectorTerm {
            tags: tags(&[("team", "a")]),
            owner: Some("123456789012".into()),
            ..Default::default()
        }])
        .expect("tag term");
        assert_eq!(q[0].owners, vec!["123456789012"]);

        let err = ami_queries(&[AMISelectorTerm {
            alias: Some("al2023@latest".into()),
            ..Default::default()
        }])
        .expect_err("alias");
        assert!(err.contains("al2023@latest"), "{err}");
    }

    #[test]
    fn newest_image_per_architecture() {
        let img = |id: &str, date: &str, arch: ArchitectureValues| {
            Image::builder()
                .image_id(id)
                .creation_date(date)
                .architecture(arch)
                .build()
        };
        let amis = pick_amis(&[
            img(
                "ami-old",
                "2024-01-01T00:00:00.000Z",
                ArchitectureValues::X8664,
            ),
            img(
                "ami-new",
                "2025-01-01T00:00:00.000Z",
                ArchitectureValues::X8664,
            ),
            img(
                "ami-arm",
                "2024-06-01T00:00:00.000Z",
                ArchitectureValues::Arm64,
            ),
        ]);
        let ids: Vec<_> = amis.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, vec!["ami-new", "ami-arm"]);
        assert_eq!(amis[0].requirements[0].values, vec!["amd64"]);
        assert_eq!(amis[1].requirements[0].values, vec!["arm64"]);
    }
}

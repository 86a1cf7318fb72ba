//! Launch templates: one per distinct launch configuration (EC2NodeClass, AMI, security groups,
//! user data, block devices, metadata options, ...), named after a hash of its content so that
//! every replica and restart finds the same one, created once and then cached.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Filter, LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateInstanceMetadataProtocolIpv6,
    LaunchTemplateInstanceNetworkInterfaceSpecificationRequest, LaunchTemplatesMonitoringRequest,
    RequestLaunchTemplateData, ResourceType, Tag, TagSpecification, VolumeType,
};
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::apis::EC2NodeClass;
use crate::apis::ec2nodeclass::{BlockDeviceMapping, MetadataOptions};
use crate::cloud::provider::{CloudResult, tags};
use crate::scheduling::resources::parse_quantity;

use super::errors::sdk_error;

pub const NAME_PREFIX: &str = "karpenter.k8s.aws/";

/// Everything that makes two launch templates differ. Serialised (field order fixed) to name it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateSpec {
    pub cluster: String,
    pub node_class: String,
    pub image_id: String,
    /// Sorted: the order selectors found them in must not make a new template.
    pub security_group_ids: Vec<String>,
    pub user_data: Option<String>,
    pub block_device_mappings: Vec<BlockDeviceMapping>,
    pub metadata_options: MetadataOptions,
    pub instance_profile: Option<String>,
    pub associate_public_ip_address: Option<bool>,
    pub detailed_monitoring: bool,
    pub tags: BTreeMap<String, String>,
}

impl TemplateSpec {
    pub fn new(
        cluster: &str,
        class: &EC2NodeClass,
        image_id: &str,
        security_group_ids: &[String],
    ) -> TemplateSpec {
        let mut sgs = security_group_ids.to_vec();
        sgs.sort();
        sgs.dedup();
        let spec = &class.spec;
        TemplateSpec {
            cluster: cluster.to_string(),
            node_class: class.metadata.name.clone().unwrap_or_default(),
            image_id: image_id.to_string(),
            security_group_ids: sgs,
            user_data: spec.user_data.clone(),
            block_device_mappings: spec.block_device_mappings.clone().unwrap_or_default(),
            metadata_options: with_defaults(spec.metadata_options.as_ref()),
            instance_profile: spec.instance_profile.clone(),
            associate_public_ip_address: spec.associate_public_ip_address,
            detailed_monitoring: spec.detailed_monitoring.unwrap_or(false),
            tags: spec.tags.clone().unwrap_or_default(),
        }
    }

    /// `karpenter.k8s.aws/<first 128 bits of the SHA-256 of the spec, hex>`.
    pub fn name(&self) -> String {
        // Serialising plain structs, maps and strings cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{NAME_PREFIX}{hex}")
    }

    fn data(&self) -> RequestLaunchTemplateData {
        let m = &self.metadata_options;
        let metadata = LaunchTemplateInstanceMetadataOptionsRequest::builder()
            .set_http_endpoint(
                m.http_endpoint
                    .as_deref()
                    .map(LaunchTemplateInstanceMetadataEndpointState::from),
            )
            .set_http_protocol_ipv6(
                m.http_protocol_ipv6
                    .as_deref()
                    .map(LaunchTemplateInstanceMetadataProtocolIpv6::from),
            )
            .set_http_put_response_hop_limit(
                m.http_put_response_hop_limit
                    .and_then(|h| i32::try_from(h).ok()),
            )
            .set_http_tokens(
                m.http_tokens
                    .as_deref()
                    .map(LaunchTemplateHttpTokensState::from),
            )
            .build();
        let mut data = RequestLaunchTemplateData::builder()
            .image_id(&self.image_id)
            .metadata_options(metadata)
            .monitoring(
                LaunchTemplatesMonitoringRequest::builder()
                    .enabled(self.detailed_monitoring)
                    .build(),
            )
            .set_block_device_mappings(Some(
                self.block_device_mappings
                    .iter()
                    .map(block_device)
                    .collect(),
            ))
            .set_user_data(
                self.user_data
                    .as_ref()
                    .map(|u| base64::engine::general_purpose::STANDARD.encode(u)),
            )
            .set_iam_instance_profile(self.instance_profile.as_ref().map(|p| {
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                    .name(p)
                    .build()
            }));
        // EC2 takes the groups on the interface when the interface is given (public IP choice),
        // and refuses them in both places.
        data = match self.associate_public_ip_address {
            Some(public) => data.network_interfaces(
                LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                    .device_index(0)
                    .associate_public_ip_address(public)
                    .set_groups(Some(self.security_group_ids.clone()))
                    .build(),
            ),
            None => data.set_security_group_ids(Some(self.security_group_ids.clone())),
        };
        data.build()
    }

    fn tags(&self) -> Vec<Tag> {
        let mut t = self.tags.clone();
        t.insert(tags::cluster_key(&self.cluster), "owned".to_string());
        t.insert(tags::EC2NODECLASS.to_string(), self.node_class.clone());
        to_sdk_tags(&t)
    }
}

pub fn to_sdk_tags(t: &BTreeMap<String, String>) -> Vec<Tag> {
    t.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The CRD's defaults (IMDSv2 required, one hop), for classes stored without them.
fn with_defaults(m: Option<&MetadataOptions>) -> MetadataOptions {
    let m = m.cloned().unwrap_or_default();
    MetadataOptions {
        http_endpoint: m.http_endpoint.or(Some("enabled".into())),
        http_protocol_ipv6: m.http_protocol_ipv6.or(Some("disabled".into())),
        http_put_response_hop_limit: m.http_put_response_hop_limit.or(Some(1)),
        http_tokens: m.http_tokens.or(Some("required".into())),
    }
}

/// EBS sizes are whole GiB; a quantity is rounded up.
fn gib(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> Option<i32> {
    let bytes = parse_quantity(&q.0).ok()?.as_f64();
    let gib = (bytes / (1u64 << 30) as f64).ceil();
    (gib >= 1.0 && gib <= i32::MAX as f64).then_some(gib as i32)
}

fn block_device(b: &BlockDeviceMapping) -> LaunchTemplateBlockDeviceMappingRequest {
    let ebs = b.ebs.as_ref().map(|e| {
        LaunchTemplateEbsBlockDeviceRequest::builder()
            .set_delete_on_termination(e.delete_on_termination)
            .set_encrypted(e.encrypted)
            .set_iops(e.iops.and_then(|v| i32::try_from(v).ok()))
            .set_kms_key_id(e.kms_key_id.clone())
            .set_snapshot_id(e.snapshot_id.clone())
            .set_throughput(e.throughput.and_then(|v| i32::try_from(v).ok()))
            .set_volume_size(e.volume_size.as_ref().and_then(gib))
            .set_volume_type(e.volume_type.as_deref().map(VolumeType::from))
            .build()
    });
    LaunchTemplateBlockDeviceMappingRequest::builder()
        .set_device_name(b.device_name.clone())
        .set_ebs(ebs)
        .build()
}

/// Launch template ids by name, as created or found.
#[derive(Default)]
pub struct LaunchTemplates {
    ids: Mutex<HashMap<String, String>>,
}

impl LaunchTemplates {
    /// The template's (name, id): from the cache, else found by name, else created.
    pub async fn ensure(
        &self,
        client: &Client,
        spec: &TemplateSpec,
    ) -> CloudResult<(String, String)> {
        let name = spec.name();
        if let Some(id) = self.cached(&name) {
            return Ok((name, id));
        }
        let id = match find(client, &name).await? {
            Some(id) => id,
            None => match create(client, &name, spec).await {
                Ok(id) => id,
                // Another replica (or a previous run) created it between our look and create.
                Err(e) if e.to_string().contains("AlreadyExists") => {
                    find(client, &name).await?.ok_or(e)?
                }
                Err(e) => return Err(e),
            },
        };
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(name.clone(), id.clone());
        }
        Ok((name, id))
    }

    fn cached(&self, name: &str) -> Option<String> {
        self.ids.lock().ok()?.get(name).cloned()
    }
}

async fn find(client: &Client, name: &str) -> CloudResult<Option<String>> {
    let resp = client
        .describe_launch_templates()
        .filters(
            Filter::builder()
                .name("launch-template-name")
                .values(name)
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk_error("DescribeLaunchTemplates", e))?;
    Ok(resp
        .launch_templates()
        .iter()
        .find(|t| t.launch_template_name() == Some(name))
        .and_then(|t| t.launch_template_id())
        .map(str::to_string))
}

async fn create(client: &Client, name: &str, spec: &TemplateSpec) -> CloudResult<String> {
    let resp = client
        .create_launch_template()
        .launch_template_name(name)
        .launch_template_data(spec.data())
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::LaunchTemplate)
                .set_tags(Some(spec.tags()))
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk_error("CreateLaunchTemplate", e))?;
    resp.launch_template()
        .and_then(|t| t.launch_template_id())
        .map(str::to_string)
        .ok_or_else(|| crate::cloud::provider::CloudError::Api {
            operation: "CreateLaunchTemplate".into(),
            message: format!("no launch template id returned for {name}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::EC2NodeClassSpec;
    use crate::apis::ec2nodeclass::BlockDevice;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn class() -> EC2NodeClass {
        EC2NodeClass::new("default", EC2NodeClassSpec::default())
    }

    #[test]
    fn name_is_stable_and_follows_content() {
        let a = TemplateSpec::new("demo", &class(), "ami-1", &["sg-2".into(), "sg-1".into()]);
        let b = TemplateSpec::new("demo", &class(), "ami-1", &["sg-1".into(), "sg-2".into()]);
        assert_eq!(a.name(), b.name(), "security group order must not matter");
        assert!(a.name().starts_with(NAME_PREFIX));
        assert_eq!(a.name().len(), NAME_PREFIX.len() + 32);

        let other_ami = TemplateSpec::new("demo", &class(), "ami-2", &["sg-1".into()]);
        assert_ne!(a.name(), other_ami.name());
        let mut k = class();
        k.spec.user_data = Some("#!/bin/sh\necho hi".into());
        let other_user_data =
            TemplateSpec::new("demo", &k, "ami-1", &["sg-1".into(), "sg-2".into()]);
        assert_ne!(a.name(), other_user_data.name());
    }

    #[test]
    fn metadata_defaults_and_volume_sizes() {
        let spec = TemplateSpec::new("demo", &class(), "ami-1", &[]);
        assert_eq!(
            spec.metadata_options.http_tokens.as_deref(),
            Some("required")
        );
        assert_eq!(spec.metadata_options.http_put_response_hop_limit, Some(1));
        assert_eq!(gib(&Quantity("20Gi".into())), Some(20));
        assert_eq!(gib(&Quantity("100G".into())), Some(94));
        assert_eq!(gib(&Quantity("0".into())), None);

        let b = block_device(&BlockDeviceMapping {
            device_name: Some("/dev/xvda".into()),
            ebs: Some(BlockDevice {
                volume_size: Some(Quantity("50Gi".into())),
                volume_type: Some("gp3".into()),
                ..Default::default()
            }),
            root_volume: Some(true),
        });
        let ebs = b.ebs().expect("ebs");
        assert_eq!(ebs.volume_size(), Some(50));
        assert_eq!(ebs.volume_type(), Some(&VolumeType::Gp3));
    }

    #[test]
    fn public_ip_moves_groups_onto_the_interface() {
        let mut k = class();
        k.spec.associate_public_ip_address = Some(false);
        let data = TemplateSpec::new("demo", &k, "ami-1", &["sg-1".into()]).data();
        assert!(data.security_group_ids().is_empty());
        assert_eq!(data.network_interfaces()[0].groups(), ["sg-1".to_string()]);
        let data = TemplateSpec::new("demo", &class(), "ami-1", &["sg-1".into()]).data();
        assert_eq!(data.security_group_ids(), ["sg-1".to_string()]);
    }
}

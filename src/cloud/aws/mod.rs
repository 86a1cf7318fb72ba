//! The AWS provider: EC2 CreateFleet launches, DescribeInstances by tags, selector resolution
//! and launch templates; the interruption queue on SQS ([`sqs`]). Only this module talks to the
//! AWS SDK.
//!
//! Files by concern: [`discovery`] (selector terms → subnets, security groups, AMIs),
//! [`launch_template`] (content-named templates, cached), [`fleet`] (overrides, tags, per-override
//! errors), [`instances`] (tags → instances, states, drift), [`errors`] (EC2 codes →
//! `CloudError`).
//!
//! Not done yet: AMI aliases and SSM-parameter terms (need SSM), instance profiles from `role`
//! (need IAM), bootstrap user data per AMI family (the class's `userData` is passed as is),
//! on-demand prices from the Pricing API (embedded ones are used; [`AwsProvider::refresh_catalog`]
//! refreshes zone offerings and spot prices from EC2), and batching of concurrent CreateFleet
//! requests (every request carries its own NodeClaim tag, which batching would have to add
//! afterwards with CreateTags, losing the launch-time tag that makes `create` idempotent).

mod discovery;
mod errors;
mod fleet;
mod instances;
mod launch_template;
mod offerings;
pub mod sqs;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::apis::labels::ARCH;
use crate::apis::{EC2NodeClass, EC2NodeClassStatus, NodeClaim};

use super::catalog::Catalog;
use super::launch::launch_options;
use super::provider::{
    CloudError, CloudProvider, CloudResult, Instance, InstanceState, OfferingKey, instance_id,
};

use fleet::Template;
use launch_template::{LaunchTemplates, TemplateSpec};

/// How long an offering that had no capacity is left out (Karpenter: 3 minutes).
pub const UNAVAILABLE_FOR: Duration = Duration::from_secs(180);

/// Static credentials, e.g. for moto in tests. Production leaves them out and uses the default
/// chain (environment, profile, web identity, instance metadata).
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub region: String,
    /// Another EC2 endpoint (moto, a VPC endpoint); None: the region's public one.
    pub endpoint_url: Option<String>,
    /// Names the `kubernetes.io/cluster/<name>` tag that marks our instances.
    pub cluster_name: String,
    pub credentials: Option<StaticCredentials>,
    /// Zones the catalog offers in; None: every zone the embedded dataset knows for the region.
    pub zones: Option<Vec<String>>,
}

pub struct AwsProvider {
    client: Client,
    settings: AwsSettings,
    /// A snapshot handed out by `catalog()`; insufficient-capacity marks replace it (copy on
    /// write), so readers never see a half-updated catalog.
    catalog: RwLock<Arc<Catalog>>,
    templates: LaunchTemplates,
}

impl AwsProvider {
    pub async fn new(settings: AwsSettings) -> AwsProvider {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()));
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(c) = &settings.credentials {
            loader = loader.credentials_provider(Credentials::new(
                &c.access_key_id,
                &c.secret_access_key,
                None,
                None,
                "capstan-static",
            ));
        }
        let config = loader.load().await;
        let catalog = Catalog::for_region(&settings.region, settings.zones.as_deref());
        tracing::info!(
            region = %settings.region,
            price_sources = ?catalog.price_sources(),
            "AWS provider: embedded catalog until refresh_catalog"
        );
        AwsProvider {
            client: Client::new(&config),
            settings,
            catalog: RwLock::new(Arc::new(catalog)),
            templates: LaunchTemplates::default(),
        }
    }

    /// Which types each zone offers and the current spot prices, from EC2; on-demand prices stay
    /// embedded. Logs which price sources are in use.
    pub async fn refresh_catalog(&self) -> CloudResult<()> {
        let zones = offerings::zone_offerings(&self.client).await?;
        let spot = offerings::spot_prices(&self.client).await?;
        let Ok(mut guard) = self.catalog.write() else {
            return Ok(());
        };
        let catalog = Arc::make_mut(&mut guard);
        let availability_changes = offerings::apply_offerings(catalog, &zones);
        let live_spot = offerings::apply_spot_prices(catalog, &spot);
        tracing::info!(
            availability_changes,
            live_spot,
            price_sources = ?catalog.price_sources(),
            "catalog refreshed from EC2 (on-demand prices: embedded)"
        );
        Ok(())
    }

    fn cluster(&self) -> &str {
        &self.settings.cluster_name
    }

    fn mark_offerings_unavailable(&self, offerings: &[OfferingKey], now: SystemTime) {
        if offerings.is_empty() {
            return;
        }
        let Ok(mut guard) = self.catalog.write() else {
            return;
        };
        let catalog = Arc::make_mut(&mut guard);
        for o in offerings {
            match catalog.mark_unavailable(
                &o.instance_type,
                &o.zone,
                o.capacity_type,
                now + UNAVAILABLE_FOR,
            ) {
                Ok(()) => {
                    tracing::info!(offering = %o, "offering unavailable for 3m")
                }
                Err(e) => {
                    tracing::debug!(offering = %o, error = %e, "capacity error for an offering the catalog lacks")
                }
            }
        }
    }

    async fn resolve(&self, class: &EC2NodeClass) -> CloudResult<EC2NodeClassStatus> {
        let name = class.metadata.name.clone().unwrap_or_default();
        let spec = &class.spec;
        let subnets = discovery::subnets(&self.client, &spec.subnet_selector_terms).await?;
        let security_groups =
            discovery::security_groups(&self.client, &spec.security_group_selector_terms).await?;
        let amis = discovery::amis(&self.client, &name, &spec.ami_selector_terms).await?;
        let mut missing = Vec::new();
        if subnets.is_empty() {
            missing.push("no subnet matches subnetSelectorTerms");
        }
        if security_groups.is_empty() {
            missing.push("no security group matches securityGroupSelectorTerms");
        }
        if amis.is_empty() {
            missing.push("no available AMI matches amiSelectorTerms");
        }
        if !missing.is_empty() {
            return Err(CloudError::NodeClassNotReady {
                name,
                reason: missing.join("; "),
            });
        }
        Ok(EC2NodeClassStatus {
            subnets,
            security_groups,
            amis,
            instance_profile: spec.instance_profile.clone(),
            ..Default::default()
        })
    }

    /// The class's resolved status, resolving now when the controller has not yet.
    async fn resolved(&self, class: &EC2NodeClass) -> CloudResult<EC2NodeClassStatus> {
        match &class.status {
            Some(s)
                if !s.subnets.is_empty() && !s.security_groups.is_empty() && !s.amis.is_empty() =>
            {
                Ok(s.clone())
            }
            _ => self.resolve(class).await,
        }
    }

    async fn create_impl(&self, claim: &NodeClaim, class: &EC2NodeClass) -> CloudResult<Instance> {
        let claim_name = claim
            .metadata
            .name
            .as_deref()
            .ok_or_else(|| CloudError::Api {
                operation: "create".into(),
                message: "NodeClaim has no name".into(),
            })?;
        // Idempotent: a controller killed between CreateFleet and its status update finds the
        // instance by its tag instead of launching another.
        let existing = instances::describe(
            &self.client,
            instances::claim_filters(self.cluster(), claim_name),
        )
        .await?;
        if let Some(i) = existing.iter().filter_map(instances::to_instance).next() {
            tracing::info!(nodeclaim = claim_name, instance = %i.id, "instance already launched");
            return Ok(i);
        }

        let status = self.resolved(class).await?;
        let mut resolved_class = class.clone();
        resolved_class.status = Some(status.clone());
        let now = SystemTime::now();
        let catalog = self.catalog();
        let options = launch_options(claim, &resolved_class, &catalog, now)?;
        let capacity_type = options
            .first()
            .map(|o| o.capacity_type)
            .ok_or_else(|| CloudError::NoCompatibleOffering("no launch option".into()))?;

        let sg_ids: Vec<String> = status
            .security_groups
            .iter()
            .map(|g| g.id.clone())
            .collect();
        let mut templates = Vec::new();
        for ami in &status.amis {
            let spec = TemplateSpec::new(self.cluster(), class, &ami.id, &sg_ids);
            let (_, id) = self.templates.ensure(&self.client, &spec).await?;
            let arch = ami
                .requirements
                .iter()
                .find(|r| r.key == ARCH && r.operator == "In" && r.values.len() == 1)
                .map(|r| r.values[0].clone());
            templates.push(Template { id, arch });
        }
        let configs = fleet::build_overrides(&options, &status.subnets, &templates, &catalog);
        if configs.is_empty() {
            return Err(CloudError::NoCompatibleOffering(
                "no allowed offering has both a subnet in its zone and an AMI for its architecture"
                    .into(),
            ));
        }
        let tags = fleet::instance_tags(self.cluster(), claim, class);
        let token = fleet::client_token(claim.metadata.uid.as_deref(), &configs, capacity_type);
        let out = fleet::create_fleet(&self.client, &configs, capacity_type, token, &tags).await?;
        let subnet_zones: HashMap<String, String> = status
            .subnets
            .iter()
            .map(|s| (s.id.clone(), s.zone.clone()))
            .collect();
        let outcome = fleet::parse_outcome(&out, &subnet_zones, capacity_type);
        self.mark_offerings_unavailable(&outcome.unavailable, now);
        let Some((id, _, _)) = outcome.launched else {
            return Err(outcome.error());
        };
        tracing::info!(nodeclaim = claim_name, instance = %id, "launched");
        self.describe_launched(&id).await
    }

    /// DescribeInstances is eventually consistent just after a launch: a few short retries. If
    /// it still answers NotFound the error is retryable, and the retried `create` finds the
    /// instance by its tag.
    async fn describe_launched(&self, id: &str) -> CloudResult<Instance> {
        let mut delay = Duration::from_millis(100);
        for _ in 0..5 {
            match instances::describe_id(&self.client, id).await {
                Ok(i) => {
                    if let Some(i) = instances::to_instance(&i) {
                        return Ok(i);
                    }
                }
                Err(CloudError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        Err(CloudError::Retryable {
            operation: "DescribeInstances".into(),
            message: format!("launched {id} but cannot describe it yet"),
        })
    }

    async fn get_impl(&self, provider_id: &str) -> CloudResult<Instance> {
        let id = instance_id(provider_id)
            .ok_or_else(|| CloudError::NotFound(provider_id.to_string()))?;
        let i = instances::describe_id(&self.client, id).await?;
        match instances::to_instance(&i) {
            Some(i) if i.state != InstanceState::Terminated => Ok(i),
            _ => Err(CloudError::NotFound(provider_id.to_string())),
        }
    }

    async fn delete_impl(&self, provider_id: &str) -> CloudResult<()> {
        let i = self.get_impl(provider_id).await?;
        instances::terminate(&self.client, &i.id).await?;
        tracing::info!(instance = %i.id, "terminating");
        Ok(())
    }

    async fn list_impl(&self) -> CloudResult<Vec<Instance>> {
        let all =
            instances::describe(&self.client, instances::cluster_filters(self.cluster())).await?;
        Ok(all.iter().filter_map(instances::to_instance).collect())
    }

    async fn drift_impl(
        &self,
        claim: &NodeClaim,
        class: &EC2NodeClass,
    ) -> CloudResult<Option<String>> {
        let Some(pid) = claim.status.as_ref().and_then(|s| s.provider_id.as_deref()) else {
            return Ok(None);
        };
        let id = instance_id(pid).ok_or_else(|| CloudError::NotFound(pid.to_string()))?;
        let instance = instances::describe_id(&self.client, id).await?;
        let resolved = self.resolved(class).await?;
        Ok(instances::drift_reason(&instance, &resolved))
    }
}

impl CloudProvider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn create<'a>(
        &'a self,
        claim: &'a NodeClaim,
        class: &'a EC2NodeClass,
    ) -> BoxFuture<'a, CloudResult<Instance>> {
        self.create_impl(claim, class).boxed()
    }

    fn delete<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, CloudResult<()>> {
        self.delete_impl(provider_id).boxed()
    }

    fn get<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, CloudResult<Instance>> {
        self.get_impl(provider_id).boxed()
    }

    fn list(&self) -> BoxFuture<'_, CloudResult<Vec<Instance>>> {
        self.list_impl().boxed()
    }

    fn catalog(&self) -> Arc<Catalog> {
        match self.catalog.read() {
            Ok(c) => Arc::clone(&c),
            // A writer panicked mid-mark; the snapshot it replaced is still whole.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn resolve_node_class<'a>(
        &'a self,
        class: &'a EC2NodeClass,
    ) -> BoxFuture<'a, CloudResult<EC2NodeClassStatus>> {
        self.resolve(class).boxed()
    }

    fn is_drifted<'a>(
        &'a self,
        claim: &'a NodeClaim,
        class: &'a EC2NodeClass,
    ) -> BoxFuture<'a, CloudResult<Option<String>>> {
        self.drift_impl(claim, class).boxed()
    }

    fn mark_unavailable(&self, offering: &OfferingKey) {
        self.mark_offerings_unavailable(std::slice::from_ref(offering), SystemTime::now());
    }
}

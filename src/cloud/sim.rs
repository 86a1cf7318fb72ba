//! The simulated cloud: instances in memory, launched at once or after a delay, with fault
//! injection (insufficient capacity per offering, API errors, slow launches). It backs
//! `capstan sandbox` and the controller tests; [`SimNodes`] plays the kubelet of each instance
//! by registering its Node through the Kubernetes API.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::apis::ec2nodeclass::{AMI, SecurityGroup, Subnet};
use crate::apis::{Condition, EC2NodeClass, EC2NodeClassStatus, NodeClaim, Taint};

use super::catalog::{Catalog, zone_id_for_name};
use super::launch::{LaunchOption, launch_options};
use super::provider::{
    CloudError, CloudProvider, CloudResult, Instance, InstanceState, OfferingKey, provider_id, tags,
};

/// How long an offering that ran out of capacity stays hidden (Karpenter's ICE cache TTL).
pub const UNAVAILABLE_TTL: Duration = Duration::from_secs(180);
pub const SIM_AMI: &str = "ami-0sim00000000000001";

#[derive(Debug, Clone)]
pub struct SimSettings {
    pub region: String,
    pub cluster_name: String,
    /// How long `create` takes (EC2's CreateFleet answers in about a second).
    pub launch_delay: Duration,
}

impl SimSettings {
    pub fn new(region: &str, cluster_name: &str) -> Self {
        SimSettings {
            region: region.to_string(),
            cluster_name: cluster_name.to_string(),
            launch_delay: Duration::ZERO,
        }
    }
}

/// Faults the next calls meet. Tests and the chaos soak set them.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Offerings that answer "insufficient capacity".
    pub no_capacity: BTreeSet<OfferingKey>,
    /// The next this-many `create` calls fail with a retryable API error.
    pub failing_creates: u32,
    /// Extra delay on every `create`.
    pub slow_launch: Duration,
}

/// What the simulated kubelet needs to register an instance's Node.
#[derive(Debug, Clone)]
pub struct LaunchedNode {
    pub instance: Instance,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub capacity: BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    pub allocatable: BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
}

#[derive(Default)]
struct State {
    instances: BTreeMap<String, LaunchedNode>,
    next_id: u64,
    creates: u64,
}

pub struct SimProvider {
    settings: SimSettings,
    catalog: RwLock<Arc<Catalog>>,
    state: Mutex<State>,
    faults: Mutex<Faults>,
}

impl SimProvider {
    pub fn new(settings: SimSettings) -> Self {
        let catalog = Catalog::for_region(&settings.region, None);
        SimProvider {
            settings,
            catalog: RwLock::new(Arc::new(catalog)),
            state: Mutex::new(State::default()),
            faults: Mutex::new(Faults::default()),
        }
    }

    pub fn settings(&self) -> &SimSettings {
        &self.settings
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    /// Launches that reached the cloud (CreateFleet calls that returned an instance).
    pub fn launches(&self) -> u64 {
        lock(&self.state).creates
    }

    /// Running instances with what their kubelet registers.
    pub fn running(&self) -> Vec<LaunchedNode> {
        lock(&self.state)
            .instances
            .values()
            .filter(|n| !n.instance.state.is_terminating())
            .cloned()
            .collect()
    }

    /// Every instance ever launched, terminated ones included (tests check for leaks).
    pub fn all_instances(&self) -> Vec<Instance> {
        lock(&self.state)
            .instances
            .values()
            .map(|n| n.instance.clone())
            .collect()
    }

    fn find_for_claim(&self, claim: &str) -> Option<Instance> {
        lock(&self.state)
            .instances
            .values()
            .find(|n| !n.instance.state.is_terminating() && n.instance.nodeclaim() == Some(claim))
            .map(|n| n.instance.clone())
    }

    fn mark_offerings_unavailable(&self, keys: &[OfferingKey]) {
        let until = SystemTime::now() + UNAVAILABLE_TTL;
        let mut guard = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**guard).clone();
        for k in keys {
            // An offering the catalog does not know cannot be marked; nothing to hide.
            let _ = next.mark_unavailable(&k.instance_type, &k.zone, k.capacity_type, until);
        }
        *guard = Arc::new(next);
    }

    async fn launch(&self, claim: &NodeClaim, class: &EC2NodeClass) -> CloudResult<Instance> {
        let name = claim.metadata.name.clone().unwrap_or_default();
        if let Some(existing) = self.find_for_claim(&name) {
            return Ok(existing);
        }
        let faults = lock(&self.faults).clone();
        let delay = self.settings.launch_delay + faults.slow_launch;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if faults.failing_creates > 0 {
            lock(&self.faults).failing_creates -= 1;
            return Err(CloudError::Retryable {
                operation: "CreateFleet".into(),
                message: "injected API error".into(),
            });
        }
        let catalog = self.catalog();
        let options = launch_options(claim, class, &catalog, SystemTime::now())?;
        // EC2 tries the overrides cheapest first (lowest-price; price-capacity-optimized is
        // close enough for a simulation) and fails only when none has capacity.
        let (chosen, exhausted) = pick(&options, &faults.no_capacity);
        let Some(chosen) = chosen else {
            self.mark_offerings_unavailable(&exhausted);
            return Err(CloudError::InsufficientCapacity {
                offerings: exhausted,
                message: "injected: no capacity for any override".into(),
            });
        };
        if !exhausted.is_empty() {
            self.mark_offerings_unavailable(&exhausted);
        }
        let (capacity, allocatable) =
            super::launch::node_resources(&chosen.instance_type, class, &catalog).ok_or_else(
                || CloudError::NoCompatibleOffering(format!("{} unknown", chosen.instance_type)),
            )?;
        let it = catalog
            .instance_type(&chosen.instance_type)
            .cloned()
            .ok_or_else(|| CloudError::NoCompatibleOffering(chosen.instance_type.clone()))?;

        let mut state = lock(&self.state);
        // A concurrent call for the same claim may have launched while this one slept.
        if let Some(n) = state
            .instances
            .values()
            .find(|n| !n.instance.state.is_terminating() && n.instance.nodeclaim() == Some(&name))
        {
            return Ok(n.instance.clone());
        }
        state.next_id += 1;
        state.creates += 1;
        let id = format!("i-{:017x}", 0x5a0000 + state.next_id);
        let nodepool = claim
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::apis::labels::NODEPOOL))
            .cloned()
            .unwrap_or_default();
        let mut instance_tags = class.spec.tags.clone().unwrap_or_default();
        instance_tags.insert(
            tags::cluster_key(&self.settings.cluster_name),
            "owned".into(),
        );
        instance_tags.insert(
            tags::EKS_CLUSTER_NAME.into(),
            self.settings.cluster_name.clone(),
        );
        instance_tags.insert(tags::NODEPOOL.into(), nodepool.clone());
        instance_tags.insert(tags::NODECLAIM.into(), name.clone());
        instance_tags.insert(
            tags::EC2NODECLASS.into(),
            class.metadata.name.clone().unwrap_or_default(),
        );
        instance_tags.insert(tags::NAME.into(), format!("{nodepool}/{name}"));
        let instance = Instance {
            provider_id: provider_id(&chosen.zone, &id),
            id: id.clone(),
            instance_type: chosen.instance_type.clone(),
            zone: chosen.zone.clone(),
            capacity_type: chosen.capacity_type,
            image_id: Some(SIM_AMI.to_string()),
            state: InstanceState::Running,
            tags: instance_tags,
            launch_time: SystemTime::now(),
        };
        let mut labels = claim.metadata.labels.clone().unwrap_or_default();
        labels.extend(super::catalog::labels(&it));
        labels.insert(crate::apis::labels::ZONE.into(), chosen.zone.clone());
        if let Some(zone_id) = zone_id_for_name(
            super::catalog::embedded(),
            &self.settings.region,
            &chosen.zone,
        ) {
            labels.insert(super::catalog::ZONE_ID.into(), zone_id);
        }
        labels.insert(
            crate::apis::labels::REGION.into(),
            self.settings.region.clone(),
        );
        labels.insert(
            crate::apis::labels::CAPACITY_TYPE.into(),
            chosen.capacity_type.as_str().into(),
        );
        let mut taints = claim.spec.taints.clone();
        taints.extend(claim.spec.startup_taints.iter().cloned());
        state.instances.insert(
            id,
            LaunchedNode {
                instance: instance.clone(),
                labels,
                taints,
                capacity,
                allocatable,
            },
        );
        Ok(instance)
    }
}

/// The first option (cheapest) with capacity, and every cheaper one that had none.
fn pick<'a>(
    options: &'a [LaunchOption],
    no_capacity: &BTreeSet<OfferingKey>,
) -> (Option<&'a LaunchOption>, Vec<OfferingKey>) {
    let mut exhausted = Vec::new();
    for o in options {
        let key = OfferingKey {
            instance_type: o.instance_type.clone(),
            zone: o.zone.clone(),
            capacity_type: o.capacity_type,
        };
        if no_capacity.contains(&key) {
            exhausted.push(key);
        } else {
            return (Some(o), exhausted);
        }
    }
    (None, exhausted)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data; keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CloudProvider for SimProvider {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn create<'a>(
        &'a self,
        claim: &'a NodeClaim,
        class: &'a EC2NodeClass,
    ) -> BoxFuture<'a, CloudResult<Instance>> {
        self.launch(claim, class).boxed()
    }

    fn delete<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, CloudResult<()>> {
        async move {
            let id = super::provider::instance_id(provider_id)
                .ok_or_else(|| CloudError::NotFound(provider_id.to_string()))?;
            let mut state = lock(&self.state);
            match state.instances.get_mut(id) {
                Some(n) if !n.instance.state.is_terminating() => {
                    n.instance.state = InstanceState::Terminated;
                    Ok(())
                }
                _ => Err(CloudError::NotFound(provider_id.to_string())),
            }
        }
        .boxed()
    }

    fn get<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, CloudResult<Instance>> {
        async move {
            let id = super::provider::instance_id(provider_id)
                .ok_or_else(|| CloudError::NotFound(provider_id.to_string()))?;
            lock(&self.state)
                .instances
                .get(id)
                .filter(|n| !n.instance.state.is_terminating())
                .map(|n| n.instance.clone())
                .ok_or_else(|| CloudError::NotFound(provider_id.to_string()))
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, CloudResult<Vec<Instance>>> {
        async move { Ok(self.running().into_iter().map(|n| n.instance).collect()) }.boxed()
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn resolve_node_class<'a>(
        &'a self,
        class: &'a EC2NodeClass,
    ) -> BoxFuture<'a, CloudResult<EC2NodeClassStatus>> {
        async move {
            let catalog = self.catalog();
            // One subnet per zone, one security group, one image: every selector resolves.
            let subnets = catalog
                .zones()
                .iter()
                .enumerate()
                .map(|(i, z)| Subnet {
                    id: format!("subnet-sim{i:04}"),
                    zone: z.name.clone(),
                    zone_id: z.id.clone(),
                })
                .collect();
            let mut status = class.status.clone().unwrap_or_default();
            status.subnets = subnets;
            status.security_groups = vec![SecurityGroup {
                id: "sg-sim0001".into(),
                name: Some(format!("{}-nodes", self.settings.cluster_name)),
            }];
            status.amis = vec![AMI {
                id: SIM_AMI.into(),
                name: Some("sim-eks-node".into()),
                deprecated: None,
                requirements: Vec::new(),
            }];
            status.conditions = Vec::<Condition>::new();
            Ok(status)
        }
        .boxed()
    }

    fn is_drifted<'a>(
        &'a self,
        claim: &'a NodeClaim,
        class: &'a EC2NodeClass,
    ) -> BoxFuture<'a, CloudResult<Option<String>>> {
        async move {
            let Some(image) = claim.status.as_ref().and_then(|s| s.image_id.clone()) else {
                return Ok(None);
            };
            let amis: Vec<&str> = class
                .status
                .iter()
                .flat_map(|s| s.amis.iter())
                .map(|a| a.id.as_str())
                .collect();
            Ok((!amis.is_empty() && !amis.contains(&image.as_str()))
                .then(|| format!("AMIDrift: {image} is not among {}", amis.join(", "))))
        }
        .boxed()
    }

    fn mark_unavailable(&self, offering: &OfferingKey) {
        self.mark_offerings_unavailable(std::slice::from_ref(offering));
    }
}

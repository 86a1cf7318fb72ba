//! Controllers: tasks that watch the cluster and act on it, split by concern as Karpenter's are.
//! Each gathers its inputs from the shared [`state::ClusterState`] (reflectors, not per-decision
//! list calls) and hands them to pure logic elsewhere (scheduling, drain choice); none is called
//! per admission request.
//!
//! - [`provisioning`]: pending pods → simulation → NodeClaims
//! - [`nodeclaim`]: NodeClaim lifecycle (launch, registration, initialization, liveness) and its
//!   termination finalizer
//! - [`termination`]: the Node finalizer: taint, drain through the Eviction API, terminate
//! - [`disruption`]: consolidation, drift, expiration, emptiness
//! - [`interruption`]: spot interruptions and instance events from the SQS queue
//! - [`garbage_collection`]: instances without NodeClaims, NodeClaims without instances
//! - [`nodepool_status`], [`ec2nodeclass_status`]
//! - [`webhook_cache`]: feeds the webhook server

pub mod disruption;
pub mod ec2nodeclass_status;
pub mod events;
pub mod garbage_collection;
pub mod interruption;
pub mod nodeclaim;
pub mod nodepool_status;
pub mod pod_events;
pub mod provisioning;
pub mod state;
pub mod termination;
pub mod webhook_cache;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::task::JoinHandle;

use crate::cloud::CloudProvider;
use crate::cloud::queue::InterruptionQueue;
use crate::metrics::{ControllerMetrics, Metrics};

/// Knobs, with Karpenter's defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cluster_name: String,
    /// A batch closes after this long without a new pending pod (`BATCH_IDLE_DURATION`).
    pub batch_idle: Duration,
    /// ... or after this long in all (`BATCH_MAX_DURATION`).
    pub batch_max: Duration,
    /// A launched NodeClaim whose Node has not joined by then is deleted.
    pub registration_ttl: Duration,
    /// An instance without a NodeClaim is terminated after this long (it may be a launch whose
    /// status write is still coming).
    pub gc_grace: Duration,
    /// How often the garbage collector and the status controllers look.
    pub resync: Duration,
    /// How often disruption decides (Karpenter: 10 s).
    pub disruption_poll: Duration,
    /// How long an emptiness or consolidation decision settles before it is re-validated and
    /// carried out (Karpenter: 15 s).
    pub disruption_validation: Duration,
    /// Feature gate `SpotToSpotConsolidation`.
    pub spot_to_spot_consolidation: bool,
    /// Where interruption events arrive (`INTERRUPTION_QUEUE`); None: no interruption
    /// controller.
    pub interruption_queue: Option<Arc<dyn InterruptionQueue>>,
}

impl Settings {
    pub fn new(cluster_name: &str) -> Self {
        Settings {
            cluster_name: cluster_name.to_string(),
            batch_idle: Duration::from_secs(1),
            batch_max: Duration::from_secs(10),
            registration_ttl: Duration::from_secs(15 * 60),
            gc_grace: Duration::from_secs(30),
            resync: Duration::from_secs(10),
            disruption_poll: Duration::from_secs(10),
            disruption_validation: Duration::from_secs(15),
            spot_to_spot_consolidation: false,
            interruption_queue: None,
        }
    }
}

impl Context {
    /// `CloudProvider::list`, timed and counted in the cloud provider metrics.
    pub async fn cloud_list(
        &self,
    ) -> Result<Vec<crate::cloud::Instance>, crate::cloud::CloudError> {
        let started = std::time::Instant::now();
        let listed = self.cloud.list().await;
        self.metrics.observe_cloud(
            self.cloud.name(),
            "List",
            started.elapsed(),
            listed.as_ref().err().map(crate::cloud::CloudError::kind),
        );
        listed
    }

    /// `CloudProvider::delete`, timed and counted; an instance already gone is not an error.
    pub async fn cloud_delete(&self, provider_id: &str) -> Result<(), crate::cloud::CloudError> {
        let started = std::time::Instant::now();
        let result = self.cloud.delete(provider_id).await;
        self.metrics.observe_cloud(
            self.cloud.name(),
            "Delete",
            started.elapsed(),
            result.as_ref().err().map(crate::cloud::CloudError::kind),
        );
        match result {
            Err(crate::cloud::CloudError::NotFound(_)) => Ok(()),
            other => other,
        }
    }
}

/// A 404 from the API server: the object is already gone.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// What every controller shares.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    /// The same API server without kube-rs's retry of 429s: an eviction a PodDisruptionBudget
    /// refuses answers 429, and the drain decides itself when to try again.
    pub eviction_client: Client,
    pub cloud: Arc<dyn CloudProvider>,
    pub state: state::ClusterState,
    pub settings: Settings,
    pub metrics: ControllerMetrics,
    pub events: events::Recorder,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("kube client: {0}")]
    Client(#[from] kube::Error),
    #[error(transparent)]
    State(#[from] state::StateError),
}

/// The running controllers; dropping them (or [`Controllers::shutdown`]) stops them at once.
pub struct Controllers {
    tasks: Vec<JoinHandle<()>>,
    pub state: state::ClusterState,
}

impl Controllers {
    /// Starts the reflectors, waits for their first lists, then every controller.
    pub async fn start(
        config: kube::Config,
        cloud: Arc<dyn CloudProvider>,
        settings: Settings,
        metrics: &Metrics,
    ) -> Result<Self, StartError> {
        let client = Client::try_from(config.clone())?;
        let mut no_retry = config;
        no_retry.default_retry = false;
        let eviction_client = Client::try_from(no_retry)?;
        let (state, mut tasks, pod_events) =
            state::ClusterState::start(client.clone(), metrics.controllers.clone());
        state.wait_ready().await?;
        let ctx = Context {
            events: events::Recorder::new(client.clone()),
            eviction_client,
            client,
            cloud,
            state: state.clone(),
            settings,
            metrics: metrics.controllers.clone(),
        };
        tasks.push(tokio::spawn(provisioning::run(ctx.clone())));
        tasks.push(tokio::spawn(nodeclaim::run(ctx.clone())));
        tasks.push(tokio::spawn(termination::run(ctx.clone())));
        tasks.push(tokio::spawn(garbage_collection::run(ctx.clone())));
        tasks.push(tokio::spawn(nodepool_status::run(ctx.clone())));
        tasks.push(tokio::spawn(ec2nodeclass_status::run(ctx.clone())));
        tasks.push(tokio::spawn(pod_events::run(ctx.clone(), pod_events)));
        if let Some(queue) = ctx.settings.interruption_queue.clone() {
            tasks.push(tokio::spawn(interruption::run(ctx.clone(), queue)));
        }
        tasks.push(tokio::spawn(disruption::run(ctx)));
        Ok(Controllers { tasks, state })
    }

    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

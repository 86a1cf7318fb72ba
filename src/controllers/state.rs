//! The cluster as the controllers see it: one reflector per kind they read (pods, nodes,
//! NodeClaims, NodePools, EC2NodeClasses, DaemonSets), kept by kube-runtime watchers, so that a
//! decision reads memory instead of listing. Pod and NodeClaim changes that may need new
//! capacity wake the provisioner.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::apis::{EC2NodeClass, NodeClaim, NodePool};
use crate::metrics::ControllerMetrics;

use super::provisioning::pending::is_provisionable;

/// How long the first lists may take before start-up gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "the cluster caches did not fill within {0:?}: is the API server reachable and are capstan's CRDs installed?"
    )]
    Timeout(Duration),
    #[error("a cluster cache stopped before it filled")]
    Stopped,
}

#[derive(Clone)]
pub struct ClusterState {
    pub pods: Store<Pod>,
    pub nodes: Store<Node>,
    pub nodeclaims: Store<NodeClaim>,
    pub nodepools: Store<NodePool>,
    pub nodeclasses: Store<EC2NodeClass>,
    pub daemonsets: Store<DaemonSet>,
    pub pdbs: Store<PodDisruptionBudget>,
    /// Notified when a pod may need capacity (a pending pod appeared or changed, a NodeClaim went
    /// away, a NodePool changed).
    pub provision: Arc<Notify>,
}

impl ClusterState {
    /// Also returns the names of nodes whose pods changed (bound, deleted), for
    /// `lastPodEventTime` (see [`super::pod_events`]).
    pub fn start(
        client: Client,
        metrics: ControllerMetrics,
    ) -> (Self, Vec<JoinHandle<()>>, mpsc::UnboundedReceiver<String>) {
        let provision = Arc::new(Notify::new());
        let (pod_events, pod_events_rx) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        let wake = provision.clone();
        let mut startup = StartupClock::default();
        let pods = reflect(Api::<Pod>::all(client.clone()), &mut tasks, move |e| {
            if let Event::Apply(p) | Event::InitApply(p) = e
                && is_provisionable(p)
            {
                wake.notify_one();
            }
            if let Some(took) = startup.observe(e) {
                metrics.pods_startup_duration.observe(took.as_secs_f64());
            }
            if let Event::Apply(p) | Event::Delete(p) = e
                && let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone())
            {
                let _ = pod_events.send(node);
            }
        });
        let nodes = reflect(Api::<Node>::all(client.clone()), &mut tasks, |_| {});
        let wake = provision.clone();
        let nodeclaims = reflect(
            Api::<NodeClaim>::all(client.clone()),
            &mut tasks,
            move |e| {
                if let Event::Delete(_) = e {
                    wake.notify_one();
                }
            },
        );
        let wake = provision.clone();
        let nodepools = reflect(Api::<NodePool>::all(client.clone()), &mut tasks, move |e| {
            if let Event::Apply(_) = e {
                wake.notify_one();
            }
        });
        let nodeclasses = reflect(Api::<EC2NodeClass>::all(client.clone()), &mut tasks, |_| {});
        let daemonsets = reflect(Api::<DaemonSet>::all(client.clone()), &mut tasks, |_| {});
        let pdbs = reflect(Api::<PodDisruptionBudget>::all(client), &mut tasks, |_| {});
        (
            ClusterState {
                pods,
                nodes,
                nodeclaims,
                nodepools,
                nodeclasses,
                daemonsets,
                pdbs,
                provision,
            },
            tasks,
            pod_events_rx,
        )
    }

    /// Waits for every reflector's first list.
    pub async fn wait_ready(&self) -> Result<(), StateError> {
        let all = async {
            self.pods.wait_until_ready().await?;
            self.nodes.wait_until_ready().await?;
            self.nodeclaims.wait_until_ready().await?;
            self.nodepools.wait_until_ready().await?;
            self.nodeclasses.wait_until_ready().await?;
            self.daemonsets.wait_until_ready().await?;
            self.pdbs.wait_until_ready().await
        };
        match tokio::time::timeout(READY_TIMEOUT, all).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(StateError::Stopped),
            Err(_) => Err(StateError::Timeout(READY_TIMEOUT)),
        }
    }

    /// Everything provisioning and disruption read, as of now.
    pub fn snapshot(&self) -> super::provisioning::inputs::Snapshot {
        super::provisioning::inputs::Snapshot {
            pods: self.pods.state(),
            nodes: self.nodes.state(),
            nodeclaims: self.nodeclaims.state(),
            nodepools: self.nodepools.state(),
            nodeclasses: self.nodeclasses.state(),
            daemonsets: self.daemonsets.state(),
        }
    }

    pub fn nodepool(&self, name: &str) -> Option<Arc<NodePool>> {
        self.nodepools
            .state()
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    }

    pub fn nodeclass(&self, name: &str) -> Option<Arc<EC2NodeClass>> {
        self.nodeclasses
            .state()
            .into_iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
    }

    pub fn node_by_provider_id(&self, provider_id: &str) -> Option<Arc<Node>> {
        self.nodes
            .state()
            .into_iter()
            .find(|n| n.spec.as_ref().and_then(|s| s.provider_id.as_deref()) == Some(provider_id))
    }

    pub fn nodeclaim_by_provider_id(&self, provider_id: &str) -> Option<Arc<NodeClaim>> {
        self.nodeclaims
            .state()
            .into_iter()
            .find(|c| c.status.as_ref().and_then(|s| s.provider_id.as_deref()) == Some(provider_id))
    }

    /// Pods bound to `node` (any phase).
    pub fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.pods
            .state()
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .collect()
    }
}

/// `karpenter_pods_startup_duration_seconds`: from a pod's creation to the first time it is seen
/// Running. Pods already running when the watch starts are not counted (their start is unknown).
#[derive(Default)]
struct StartupClock {
    counted: BTreeSet<String>,
}

impl StartupClock {
    fn observe(&mut self, event: &Event<Pod>) -> Option<Duration> {
        match event {
            Event::Apply(p) => {
                let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                let uid = p.metadata.uid.clone()?;
                if !running || self.counted.contains(&uid) {
                    return None;
                }
                self.counted.insert(uid);
                let created = p.metadata.creation_timestamp.as_ref()?;
                SystemTime::now()
                    .duration_since(SystemTime::from(created.0))
                    .ok()
            }
            Event::InitApply(p) => {
                // Known before we watched: never counted.
                if let Some(uid) = p.metadata.uid.clone() {
                    self.counted.insert(uid);
                }
                None
            }
            Event::Delete(p) => {
                if let Some(uid) = &p.metadata.uid {
                    self.counted.remove(uid);
                }
                None
            }
            Event::Init | Event::InitDone => None,
        }
    }
}

/// Starts a watcher that keeps a store and calls `on_event` for each event after the store saw it.
fn reflect<K>(
    api: Api<K>,
    tasks: &mut Vec<JoinHandle<()>>,
    mut on_event: impl FnMut(&Event<K>) + Send + 'static,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    tasks.push(tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(e) => on_event(&e),
                Err(e) => tracing::debug!("cluster cache watch: {e}"),
            }
        }
    }));
    reader
}

//! A whole cluster for controller tests: the sandbox, the simulated cloud with its kubelets, and
//! capstan's controllers with short timings; plus helpers to apply pools and workloads.

use std::sync::Arc;
use std::time::Duration;

use capstan::apis::{EC2NodeClass, NodeClaim, NodePool};
use capstan::cloud::queue::InterruptionQueue;
use capstan::cloud::sim::{SimProvider, SimSettings};
use capstan::cloud::sim_kubelet::SimKubelet;
use capstan::controllers::{Controllers, Settings};
use capstan::metrics::Metrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

pub struct Cluster {
    pub env: super::Env,
    pub cloud: Arc<SimProvider>,
    pub kubelet: Option<SimKubelet>,
    pub controllers: Option<Controllers>,
    pub metrics: Metrics,
    pub registration_ttl: Duration,
    /// Handed to the controllers: set it before `start_controllers` to run interruption.
    pub interruption_queue: Option<Arc<dyn InterruptionQueue>>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let mut c = Cluster::without_controllers().await;
        c.start_controllers().await;
        c
    }

    pub async fn without_controllers() -> Cluster {
        Cluster::booting_in(Duration::from_millis(100)).await
    }

    /// Instances whose Nodes register `boot` after launch.
    pub async fn booting_in(boot: Duration) -> Cluster {
        let env = super::start().await;
        let cloud = Arc::new(SimProvider::new(SimSettings::new("us-east-1", "test")));
        let kubelet = SimKubelet::spawn(env.client.clone(), cloud.clone(), boot);
        Cluster {
            env,
            cloud,
            kubelet: Some(kubelet),
            controllers: None,
            metrics: Metrics::new(),
            registration_ttl: Duration::from_secs(60),
            interruption_queue: None,
        }
    }

    pub async fn start_controllers(&mut self) {
        let mut settings = Settings::new("test");
        settings.batch_idle = Duration::from_millis(200);
        settings.batch_max = Duration::from_secs(2);
        settings.gc_grace = Duration::from_secs(1);
        settings.resync = Duration::from_millis(300);
        settings.registration_ttl = self.registration_ttl;
        settings.disruption_poll = Duration::from_millis(500);
        settings.disruption_validation = Duration::from_secs(1);
        settings.interruption_queue = self.interruption_queue.clone();
        let config = super::config_from(self.env.sandbox.kubeconfig_path()).await;
        let controllers = Controllers::start(config, self.cloud.clone(), settings, &self.metrics)
            .await
            .expect("controllers start");
        self.controllers = Some(controllers);
    }

    pub fn client(&self) -> Client {
        self.env.client.clone()
    }

    pub async fn stop(mut self) {
        if let Some(c) = self.controllers.take() {
            c.shutdown();
        }
        if let Some(k) = self.kubelet.take() {
            k.stop();
        }
        self.env.sandbox.shutdown().await;
    }
}

/// Polls `check` every 100 ms for up to `secs`.
pub async fn wait_for<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

pub async fn apply_pool(client: &Client, requirements: serde_json::Value) {
    apply_pool_with(client, requirements, json!({"consolidateAfter": "Never"})).await;
}

/// A NodePool `default` (with its EC2NodeClass) with this `spec.disruption`.
pub async fn apply_pool_with(
    client: &Client,
    requirements: serde_json::Value,
    disruption: serde_json::Value,
) {
    let classes: Api<EC2NodeClass> = Api::all(client.clone());
    let class: EC2NodeClass = serde_json::from_value(json!({
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
        "metadata": {"name": "default"},
        "spec": {
            "role": "KarpenterNodeRole-test",
            "amiSelectorTerms": [{"alias": "al2023@latest"}],
            "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "test"}}],
            "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "test"}}]
        }
    }))
    .expect("class");
    classes
        .create(&PostParams::default(), &class)
        .await
        .expect("create EC2NodeClass");
    let pools: Api<NodePool> = Api::all(client.clone());
    let pool: NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": "default"},
        "spec": {
            "template": {"spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                "requirements": requirements,
            }},
            "limits": {"cpu": "1000"},
            "disruption": disruption
        }
    }))
    .expect("pool");
    pools
        .create(&PostParams::default(), &pool)
        .await
        .expect("create NodePool");
}

pub async fn deploy(client: &Client, name: &str, replicas: i32, cpu: &str, memory: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "pause",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
            }
        }
    }))
    .expect("deployment");
    api.create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
}

/// Sets a Deployment's replicas in `default`.
pub async fn scale(client: &Client, name: &str, replicas: i32) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .expect("scale");
}

pub async fn running_pods(client: &Client, app: &str) -> usize {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|p| {
                    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                        && p.metadata.deletion_timestamp.is_none()
                })
                .count()
        })
        .unwrap_or(0)
}

pub async fn claims(client: &Client) -> Vec<NodeClaim> {
    let api: Api<NodeClaim> = Api::all(client.clone());
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

pub async fn nodes(client: &Client) -> Vec<Node> {
    let api: Api<Node> = Api::all(client.clone());
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

pub async fn delete_all_claims(client: &Client) {
    let api: Api<NodeClaim> = Api::all(client.clone());
    for c in claims(client).await {
        api.delete(
            c.metadata.name.as_deref().unwrap_or(""),
            &DeleteParams::default(),
        )
        .await
        .expect("delete claim");
    }
}

pub fn generic_requirements() -> serde_json::Value {
    json!([
        {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"]},
        {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["2"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
    ])
}

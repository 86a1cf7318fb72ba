//! `capstan sandbox`: the whole system on one machine: the sandbox API server with capstan's CRDs,
//! capstan's admission webhooks in-process (every write goes through them, as in a cluster), the
//! controllers on the simulated cloud provider (whose kubelets register a Node per instance) and,
//! with `--demo`, the example NodePools, EC2NodeClasses and workload applied through a real
//! kube-rs client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use capstan_sandbox::{Sandbox, SandboxConfig};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Discovery;
use kube::{Client, Config};

use super::CliResult;
use crate::cloud::aws::sqs::{SqsQueue, SqsSettings};
use crate::cloud::queue::{InterruptionQueue, SimQueue};
use crate::cloud::sim::{SimProvider, SimSettings};
use crate::cloud::sim_kubelet::SimKubelet;
use crate::controllers::{Controllers, Settings};
use crate::feature_gates;
use crate::local_webhooks::LocalWebhooks;
use crate::manifest;
use crate::metrics::Metrics;
use k8s_openapi::api::core::v1::{Node, Pod};

#[derive(clap::Args)]
pub struct Args {
    /// Where the kubeconfig and the webhook certificates (`certs/`) are written.
    #[arg(long, default_value = ".capstan/sandbox")]
    pub dir: PathBuf,
    /// Also apply manifests/examples (NodePools, EC2NodeClasses, RequestPolicy, a sample workload).
    #[arg(long)]
    pub demo: bool,
    /// The manifests `--demo` applies.
    #[arg(long, default_value = "manifests/examples")]
    pub examples: PathBuf,
    /// Stop after this many seconds instead of waiting for Ctrl-C (for scripts and tests).
    #[arg(long)]
    pub exit_after: Option<u64>,
    /// The simulated cloud's region (prices and zones from the embedded catalog).
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    #[arg(long, env = "CLUSTER_NAME", default_value = "sandbox")]
    pub cluster_name: String,
    /// How long a simulated CreateFleet takes, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub launch_delay_ms: u64,
    /// How long a simulated instance takes to register its Node, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub boot_delay_ms: u64,
    /// Run the API server and webhooks only (no controllers, no simulated cloud).
    #[arg(long)]
    pub no_controllers: bool,
    /// Receive interruption events from this SQS queue (by name, as Karpenter's
    /// `INTERRUPTION_QUEUE`) instead of an in-memory queue: spot warnings for the simulated
    /// instances, sent as EventBridge sends them. Credentials from the usual AWS environment.
    #[arg(long)]
    pub interruption_queue: Option<String>,
    /// The SQS endpoint for `--interruption-queue` (e.g. moto's); default: the region's.
    #[arg(long)]
    pub sqs_endpoint: Option<String>,
    /// Karpenter's feature gates, e.g. `SpotToSpotConsolidation=true`.
    #[arg(long, env = "FEATURE_GATES", default_value = "")]
    pub feature_gates: String,
}

/// The queue interruption listens on: SQS when asked for, else in memory (nothing sends to it,
/// but the controller runs as it does on AWS).
async fn interruption_queue(
    args: &Args,
) -> Result<Arc<dyn InterruptionQueue>, Box<dyn std::error::Error>> {
    let Some(name) = args.interruption_queue.as_deref().filter(|n| !n.is_empty()) else {
        return Ok(Arc::new(SimQueue::new()));
    };
    let settings = SqsSettings {
        region: args.region.clone(),
        queue_name: name.to_string(),
        endpoint_url: args.sqs_endpoint.clone(),
        credentials: None,
    };
    match SqsQueue::new(&settings).await {
        Ok(q) => Ok(Arc::new(q)),
        Err(e) => Err(format!("--interruption-queue {name:?}: {e}").into()),
    }
}

pub fn run(args: &Args) -> CliResult {
    super::run::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: &Args) -> CliResult {
    // Checked before anything starts: a typo is an error, not a silent default.
    let (gates, warnings) = feature_gates::parse(&args.feature_gates)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let kubeconfig = args.dir.join("kubeconfig");
    let mut config = SandboxConfig::new(&kubeconfig);
    config.crds_yaml.push(crate::apis::crds_yaml()?);
    let sandbox = Sandbox::start(config).await?;
    println!("api: {}", sandbox.url());
    println!("kubeconfig: {}", kubeconfig.display());
    println!(
        "try: KUBECONFIG={} kubectl get --raw /apis/karpenter.sh/v1",
        kubeconfig.display()
    );

    let kube_config = config_for(&kubeconfig).await?;
    let client = Client::try_from(kube_config.clone())?;
    let metrics = Metrics::new();
    // After the CRDs (installed at start) and before anything is applied, so every object,
    // the demo's included, is admitted by capstan's webhooks.
    let webhooks = match LocalWebhooks::start_with_metrics(
        client.clone(),
        &args.dir.join("certs"),
        metrics.clone(),
    )
    .await
    {
        Ok(w) => w,
        Err(e) => {
            sandbox.shutdown().await;
            return Err(e.into());
        }
    };
    println!(
        "webhooks: {} (certificates in {})",
        webhooks.url,
        webhooks.cert_dir.display()
    );
    println!("metrics: http://{}/metrics", webhooks.health_addr());

    let mut running = None;
    if !args.no_controllers {
        let mut sim = SimSettings::new(&args.region, &args.cluster_name);
        sim.launch_delay = Duration::from_millis(args.launch_delay_ms);
        let cloud = Arc::new(SimProvider::new(sim));
        let kubelet = SimKubelet::spawn(
            client.clone(),
            cloud.clone(),
            Duration::from_millis(args.boot_delay_ms),
        );
        let mut settings = Settings::new(&args.cluster_name);
        settings.spot_to_spot_consolidation = gates.spot_to_spot_consolidation;
        let queue = match interruption_queue(args).await {
            Ok(q) => q,
            Err(e) => {
                kubelet.stop();
                webhooks.shutdown().await;
                sandbox.shutdown().await;
                return Err(e);
            }
        };
        let queue_name = match &args.interruption_queue {
            Some(name) if !name.is_empty() => format!("SQS queue {name}"),
            _ => "in-memory queue".to_string(),
        };
        settings.interruption_queue = Some(queue);
        match Controllers::start(kube_config.clone(), cloud, settings, &metrics).await {
            Ok(c) => running = Some((c, kubelet)),
            Err(e) => {
                kubelet.stop();
                webhooks.shutdown().await;
                sandbox.shutdown().await;
                return Err(e.into());
            }
        }
        println!(
            "controllers: provisioning, nodeclaim lifecycle, termination, disruption, interruption ({queue_name}), garbage collection (simulated cloud, {})",
            args.region
        );
    }

    if args.demo {
        let applied = apply_dir(&client, &args.examples).await?;
        println!(
            "demo: applied {} objects from {}",
            applied.len(),
            args.examples.display()
        );
        for a in &applied {
            println!("  {a}");
        }
        if running.is_some() {
            tokio::spawn(report_progress(client.clone()));
        }
    }

    match args.exit_after {
        Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
        None => {
            println!("serving until Ctrl-C");
            tokio::signal::ctrl_c().await?;
        }
    }
    if let Some((controllers, kubelet)) = running {
        controllers.shutdown();
        kubelet.stop();
    }
    webhooks.shutdown().await;
    sandbox.shutdown().await;
    Ok(())
}

/// Prints nodes and running pods each time they change, until every pod runs.
async fn report_progress(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client);
    let mut last = (usize::MAX, usize::MAX, usize::MAX);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (Ok(p), Ok(n)) = (
            pods.list(&ListParams::default()).await,
            nodes.list(&ListParams::default()).await,
        ) else {
            continue;
        };
        let running = p
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        let now = (n.items.len(), running, p.items.len());
        if now != last {
            println!("demo: {} nodes, {}/{} pods running", now.0, now.1, now.2);
            last = now;
        }
        if now.2 > 0 && now.1 == now.2 {
            println!("demo: every pod is running");
            return;
        }
    }
}

async fn config_for(kubeconfig: &std::path::Path) -> Result<Config, Box<dyn std::error::Error>> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    Ok(Config::from_custom_kubeconfig(kc, &Default::default()).await?)
}

/// Server-side applies every document under `dir`, in file order, as `kubectl apply --server-side`
/// would. Returns `Kind/name` of each object.
pub async fn apply_dir(
    client: &Client,
    dir: &std::path::Path,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let docs = manifest::read_paths(&[dir.to_path_buf()])?;
    let discovery = Discovery::new(client.clone()).run().await?;
    let params = PatchParams::apply("capstan-sandbox-demo").force();
    let mut applied = Vec::new();
    for doc in &docs {
        let (group, version) = match doc.api_version().split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", doc.api_version()),
        };
        let gvk = GroupVersionKind::gvk(group, version, doc.kind());
        let (resource, caps) = discovery.resolve_gvk(&gvk).ok_or_else(|| {
            format!(
                "{}: document {}: the sandbox does not serve {} {}",
                doc.file.display(),
                doc.index,
                doc.api_version(),
                doc.kind()
            )
        })?;
        let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
            let ns = doc
                .value
                .pointer("/metadata/namespace")
                .and_then(|v| v.as_str())
                .unwrap_or("default");
            Api::namespaced_with(client.clone(), ns, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        api.patch(doc.name(), &params, &Patch::Apply(&doc.value))
            .await?;
        applied.push(format!("{}/{}", doc.kind(), doc.name()));
    }
    Ok(applied)
}

//! `capstan run`: the in-cluster entry point. Every replica serves the admission webhooks, fed by
//! the watches of RequestPolicies and Namespaces; with a cluster name set, the replica holding
//! the leader Lease also runs the controllers on the AWS provider (stopped at once if it loses
//! the Lease, restarted if it wins it back).

use std::net::SocketAddr;
use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

use std::sync::Arc;

use super::CliResult;
use crate::apis::common::parse_duration;
use crate::cloud::aws::sqs::{SqsQueue, SqsSettings};
use crate::cloud::aws::{AwsProvider, AwsSettings};
use crate::controllers::webhook_cache::CacheWatcher;
use crate::controllers::{Controllers, Settings};
use crate::feature_gates;
use crate::leader::{Election, ElectionConfig};
use crate::metrics::Metrics;
use crate::webhook::cache::WebhookCache;
use crate::webhook::server::{self, ServerConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Directory holding tls.crt and tls.key (the mounted Secret capstan-webhook-cert); the
    /// files are re-read when they change.
    #[arg(long, default_value = "/etc/capstan/tls")]
    pub cert_dir: PathBuf,
    /// HTTPS port of the admission webhooks.
    #[arg(long, env = "WEBHOOK_PORT", default_value_t = 8443)]
    pub webhook_port: u16,
    /// Plain-HTTP port of /healthz and /readyz.
    #[arg(long, env = "HEALTH_PROBE_PORT", default_value_t = 8081)]
    pub health_port: u16,
    /// Plain-HTTP port of /metrics (Prometheus scrapes it; also served on the health port).
    #[arg(long, env = "METRICS_PORT", default_value_t = 8080)]
    pub metrics_port: u16,
    /// The namespace capstan runs in; its own pods are never defaulted.
    #[arg(long, env = "SYSTEM_NAMESPACE", default_value = "capstan")]
    pub namespace: String,
    /// The EKS cluster's name: tags instances as `kubernetes.io/cluster/<name>`. Without it only
    /// the webhooks run.
    #[arg(long, env = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// The AWS region of the cluster.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Another EC2 endpoint (a VPC endpoint, or moto in tests).
    #[arg(long, env = "AWS_ENDPOINT_URL_EC2")]
    pub ec2_endpoint: Option<String>,
    /// The SQS queue (its name) carrying spot interruption and instance events; empty: no
    /// interruption controller.
    #[arg(long, env = "INTERRUPTION_QUEUE")]
    pub interruption_queue: Option<String>,
    /// Another SQS endpoint (a VPC endpoint, or moto in tests).
    #[arg(long, env = "AWS_ENDPOINT_URL_SQS")]
    pub sqs_endpoint: Option<String>,
    /// Batch window: closes after this long without a new pending pod.
    #[arg(long, env = "BATCH_IDLE_DURATION", default_value = "1s")]
    pub batch_idle_duration: String,
    /// Batch window: closes after this long in all.
    #[arg(long, env = "BATCH_MAX_DURATION", default_value = "10s")]
    pub batch_max_duration: String,
    /// This replica's name in the leader Lease.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Karpenter's feature gates, e.g. `SpotToSpotConsolidation=true`.
    #[arg(long, env = "FEATURE_GATES", default_value = "")]
    pub feature_gates: String,
}

/// Controller settings from the flags, with a clear error for a bad duration.
fn controller_settings(args: &Args, cluster: &str) -> Result<Settings, String> {
    let mut s = Settings::new(cluster);
    let parse = |flag: &str, v: &str| {
        parse_duration(v)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{flag} {v:?}: expected a duration such as 1s or 500ms"))
    };
    s.batch_idle = parse("BATCH_IDLE_DURATION", &args.batch_idle_duration)?;
    s.batch_max = parse("BATCH_MAX_DURATION", &args.batch_max_duration)?;
    if s.batch_max < s.batch_idle {
        return Err(format!(
            "BATCH_MAX_DURATION {} is shorter than BATCH_IDLE_DURATION {}",
            args.batch_max_duration, args.batch_idle_duration
        ));
    }
    // Warnings were logged at start (`run`).
    let (gates, _) = feature_gates::parse(&args.feature_gates)?;
    s.spot_to_spot_consolidation = gates.spot_to_spot_consolidation;
    Ok(s)
}

pub fn run(args: &Args) -> CliResult {
    init_logging();
    // Checked before anything starts, whatever runs: a typo is an error, not a silent default.
    let (_, warnings) = feature_gates::parse(&args.feature_gates)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

/// `LOG_LEVEL` (Karpenter's setting, e.g. `info` or `capstan=debug`), else `RUST_LOG`, else info;
/// `LOG_FORMAT=json` writes one JSON object a line (for log pipelines), anything else text.
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("LOG_LEVEL")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Setting a subscriber fails only if one is already set, which then keeps logging.
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        let _ = builder.json().with_current_span(false).try_init();
    } else {
        // Colours only on a terminal: container logs stay plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let _ = builder.with_ansi(ansi).try_init();
    }
}

async fn serve(args: &Args) -> CliResult {
    // In a pod: the service account; elsewhere: KUBECONFIG / ~/.kube/config.
    let client = kube::Client::try_default().await?;
    let cache = WebhookCache::new();
    let watcher = CacheWatcher::spawn(client.clone(), cache.clone());

    let mut config = ServerConfig::new(&args.cert_dir);
    config.https_addr = SocketAddr::from(([0, 0, 0, 0], args.webhook_port));
    config.health_addr = SocketAddr::from(([0, 0, 0, 0], args.health_port));
    if args.metrics_port != args.health_port {
        config.metrics_addr = Some(SocketAddr::from(([0, 0, 0, 0], args.metrics_port)));
    }
    config.own_namespace = args.namespace.clone();
    // Not ready before the cache has its first lists: pods admitted earlier would miss their
    // RequestPolicy defaults, so the Service sends reviews to ready replicas only.
    config.ready_at_start = false;
    let config_metrics = config.metrics.clone();
    let server = match server::start(config, cache).await {
        Ok(s) => s,
        Err(e) => {
            watcher.shutdown().await;
            return Err(e.into());
        }
    };
    tracing::info!(webhooks = %server.https_addr, health = %server.health_addr, "capstan serving");

    let leading = match (&args.cluster_name, &args.region) {
        (Some(cluster), Some(region)) => {
            let mut settings = match controller_settings(args, cluster) {
                Ok(s) => s,
                Err(e) => {
                    server.shutdown().await;
                    watcher.shutdown().await;
                    return Err(e.into());
                }
            };
            let cloud = Arc::new(
                AwsProvider::new(AwsSettings {
                    region: region.clone(),
                    endpoint_url: args.ec2_endpoint.clone(),
                    cluster_name: cluster.clone(),
                    credentials: None,
                    zones: None,
                })
                .await,
            );
            if let Err(e) = cloud.refresh_catalog().await {
                tracing::warn!(
                    "instance offerings and spot prices not refreshed, using the embedded catalog: {e}"
                );
            }
            if let Some(name) = args.interruption_queue.as_deref().filter(|n| !n.is_empty()) {
                let sqs = SqsSettings {
                    region: region.clone(),
                    queue_name: name.to_string(),
                    endpoint_url: args.sqs_endpoint.clone(),
                    credentials: None,
                };
                match SqsQueue::new(&sqs).await {
                    Ok(q) => {
                        tracing::info!(queue = %q.url(), "interruption queue");
                        settings.interruption_queue = Some(Arc::new(q));
                    }
                    Err(e) => {
                        server.shutdown().await;
                        watcher.shutdown().await;
                        return Err(format!("INTERRUPTION_QUEUE {name:?}: {e}").into());
                    }
                }
            }
            let identity = args
                .pod_name
                .clone()
                .unwrap_or_else(|| format!("capstan-{}", std::process::id()));
            let election = Election::start(
                client.clone(),
                ElectionConfig::new(&args.namespace, &identity),
            );
            let task = tokio::spawn(lead(
                kube::Config::infer().await?,
                cloud,
                settings,
                config_metrics,
                election.is_leader.clone(),
            ));
            Some((task, election))
        }
        (None, _) => {
            tracing::info!("CLUSTER_NAME not set: serving webhooks only, no controllers");
            None
        }
        (Some(_), None) => {
            server.shutdown().await;
            watcher.shutdown().await;
            return Err("CLUSTER_NAME is set but AWS_REGION is not: the controllers need the cluster's region".into());
        }
    };

    let signal = tokio::select! {
        s = shutdown_signal() => s?,
        () = watcher.wait_synced() => {
            server.set_ready(true);
            tracing::info!("webhook cache synced; ready");
            shutdown_signal().await?
        }
    };
    tracing::info!(
        signal,
        "shutting down: no new connections, finishing in-flight reviews"
    );
    if let Some((task, election)) = leading {
        // Controllers stop first (dropping them aborts their tasks), then the Lease is released
        // so that a standby takes over at once.
        task.abort();
        let _ = task.await;
        election.shutdown().await;
    }
    server.shutdown().await;
    watcher.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Runs the controllers while this replica holds the Lease; stops them the moment it does not.
async fn lead(
    config: kube::Config,
    cloud: Arc<AwsProvider>,
    settings: Settings,
    metrics: Metrics,
    mut is_leader: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if is_leader.wait_for(|l| *l).await.is_err() {
            return;
        }
        let controllers =
            match Controllers::start(config.clone(), cloud.clone(), settings.clone(), &metrics)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("starting the controllers: {e}");
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    continue;
                }
            };
        tracing::info!("leader: controllers running");
        if is_leader.wait_for(|l| !*l).await.is_err() {
            controllers.shutdown();
            return;
        }
        controllers.shutdown();
        tracing::warn!("no longer leader: controllers stopped");
    }
}

/// SIGTERM (the kubelet stopping the pod) or Ctrl-C; returns which.
async fn shutdown_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}

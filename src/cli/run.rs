//! `capstan run`: the in-cluster entry point. Today it serves the admission webhooks, fed by
//! the watches of RequestPolicies and Namespaces; the controllers join in later issues.

use std::net::SocketAddr;
use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

use super::CliResult;
use crate::controllers::webhook_cache::CacheWatcher;
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
    /// The namespace capstan runs in; its own pods are never defaulted.
    #[arg(long, env = "SYSTEM_NAMESPACE", default_value = "capstan")]
    pub namespace: String,
}

pub fn run(args: &Args) -> CliResult {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

/// `LOG_LEVEL` (Karpenter's setting, e.g. `info` or `capstan=debug`), else `RUST_LOG`, else info.
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("LOG_LEVEL")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: container logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Fails only if a subscriber is already set, which then keeps logging.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

async fn serve(args: &Args) -> CliResult {
    // In a pod: the service account; elsewhere: KUBECONFIG / ~/.kube/config.
    let client = kube::Client::try_default().await?;
    let cache = WebhookCache::new();
    let watcher = CacheWatcher::spawn(client, cache.clone());

    let mut config = ServerConfig::new(&args.cert_dir);
    config.https_addr = SocketAddr::from(([0, 0, 0, 0], args.webhook_port));
    config.health_addr = SocketAddr::from(([0, 0, 0, 0], args.health_port));
    config.own_namespace = args.namespace.clone();
    // Not ready before the cache has its first lists: pods admitted earlier would miss their
    // RequestPolicy defaults, so the Service sends reviews to ready replicas only.
    config.ready_at_start = false;
    let server = match server::start(config, cache).await {
        Ok(s) => s,
        Err(e) => {
            watcher.shutdown().await;
            return Err(e.into());
        }
    };
    tracing::info!(webhooks = %server.https_addr, health = %server.health_addr, "capstan serving");

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
    server.shutdown().await;
    watcher.shutdown().await;
    tracing::info!("stopped");
    Ok(())
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

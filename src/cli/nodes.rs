//! `capstan nodes`: the live nodes with type, zone, capacity type, CPU / memory requested against
//! allocatable, pods and $/hour, and the cluster's totals; `--watch` redraws every 2 s.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};

use super::CliResult;
use crate::apis::labels::REGION;
use crate::cloud::catalog::Catalog;
use crate::nodeview;

#[derive(clap::Args)]
pub struct Args {
    /// The cluster (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Prices of this region (default: the nodes' `topology.kubernetes.io/region`, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Redraw every 2 s until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
}

pub fn run(args: &Args) -> CliResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = match &args.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
            }
            None => kube::Config::infer().await?,
        };
        let client = kube::Client::try_from(config)?;
        let nodes: Api<Node> = Api::all(client.clone());
        let pods: Api<Pod> = Api::all(client);
        let mut catalog: Option<(String, Catalog)> = None;
        loop {
            let n: Vec<Arc<Node>> = nodes
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .map(Arc::new)
                .collect();
            let p: Vec<Arc<Pod>> = pods
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .map(Arc::new)
                .collect();
            let region = args.region.clone().unwrap_or_else(|| {
                n.iter()
                    .find_map(|n| n.metadata.labels.as_ref()?.get(REGION).cloned())
                    .unwrap_or_else(|| "us-east-1".into())
            });
            let (cached_region, cat) = match catalog.take() {
                Some((r, c)) if r == region => (r, c),
                _ => (region.clone(), Catalog::for_region(&region, None)),
            };
            let cat = &catalog.insert((cached_region, cat)).1;
            let text = nodeview::render(&nodeview::rows(&n, &p, cat));
            if args.watch {
                // Clear the screen and home the cursor, as watch(1) does.
                print!("\x1b[2J\x1b[H");
            }
            print!("{text}");
            if cat.has_estimated_prices() {
                println!("(prices for {region} are estimates from the embedded catalog)");
            }
            if !args.watch {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    })
}

//! `capstan sandbox`: the whole system on one machine. Today it runs the sandbox API server with
//! capstan's CRDs installed and capstan's admission webhooks in-process (so every write goes
//! through them, as in a cluster) and, with `--demo`, applies the example NodePools,
//! EC2NodeClasses and workload through a real kube-rs client. Controllers join as they are built.

use std::path::PathBuf;
use std::time::Duration;

use capstan_sandbox::{Sandbox, SandboxConfig};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Discovery;
use kube::{Client, Config};

use super::CliResult;
use crate::local_webhooks::LocalWebhooks;
use crate::manifest;

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
}

pub fn run(args: &Args) -> CliResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: &Args) -> CliResult {
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

    let client = client_for(&kubeconfig).await?;
    // After the CRDs (installed at start) and before anything is applied, so every object,
    // the demo's included, is admitted by capstan's webhooks.
    let webhooks = match LocalWebhooks::start(client.clone(), &args.dir.join("certs")).await {
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
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::all(client.clone());
        let pods = pods.list(&ListParams::default()).await?.items.len();
        println!(
            "demo: {pods} pods exist so far (they stay Pending until provisioning launches nodes, a later issue)"
        );
    }

    match args.exit_after {
        Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
        None => {
            println!("serving until Ctrl-C");
            tokio::signal::ctrl_c().await?;
        }
    }
    webhooks.shutdown().await;
    sandbox.shutdown().await;
    Ok(())
}

async fn client_for(kubeconfig: &std::path::Path) -> Result<Client, Box<dyn std::error::Error>> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(Client::try_from(config)?)
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

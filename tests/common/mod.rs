//! Shared setup for tests against the sandbox: a sandbox with capstan's CRDs on a random port,
//! its kubeconfig in a temp dir, and a kube-rs client built from that kubeconfig.
#![allow(dead_code)]

pub mod cluster;
pub mod moto;

use std::path::Path;
use std::time::Duration;

use capstan_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub struct Env {
    pub sandbox: SandboxHandle,
    pub client: Client,
    pub dir: tempfile::TempDir,
}

pub async fn config_from(path: &Path) -> kube::Config {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube config")
}

pub async fn client_from(path: &Path) -> Client {
    Client::try_from(config_from(path).await).expect("client")
}

/// A sandbox serving capstan's CRDs.
pub async fn start() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SandboxConfig::new(dir.path().join("sandbox").join("kubeconfig"));
    config
        .crds_yaml
        .push(capstan::apis::crds_yaml().expect("capstan CRDs"));
    let sandbox = Sandbox::start(config).await.expect("start sandbox");
    let client = client_from(sandbox.kubeconfig_path()).await;
    Env {
        sandbox,
        client,
        dir,
    }
}

/// Poll `check` until it holds (or fail after 10 s).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

//! Shared test setup: a sandbox on a random port, its kubeconfig in a temp dir, and a kube-rs
//! client built from that kubeconfig exactly as a user's tooling would.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use capstan_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

pub struct Env {
    pub sandbox: SandboxHandle,
    pub client: Client,
    pub dir: tempfile::TempDir,
}

pub async fn client_from(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    Client::try_from(config).expect("client")
}

pub async fn start_with(configure: impl FnOnce(&mut SandboxConfig)) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SandboxConfig::new(dir.path().join("sandbox").join("kubeconfig"));
    configure(&mut config);
    let sandbox = Sandbox::start(config).await.expect("start sandbox");
    let client = client_from(sandbox.kubeconfig_path()).await;
    Env {
        sandbox,
        client,
        dir,
    }
}

pub async fn start() -> Env {
    start_with(|_| {}).await
}

/// capstan's generated CRDs, as checked in.
pub fn capstan_crds() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds/crds.yaml");
    std::fs::read_to_string(&path).expect("manifests/crds/crds.yaml")
}

/// A raw request through the kube client (auth and TLS from the kubeconfig); returns the HTTP
/// status and the JSON body.
pub async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body))
        .expect("request");
    let res = client.send(req).await.expect("send");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect_bytes().await.expect("body");
    let json = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, json)
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

/// The `kube::Error::Api` status of a failed call.
pub fn api_status<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<kube::core::Status> {
    match r {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

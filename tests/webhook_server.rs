//! The webhook server end to end over TLS on loopback: AdmissionReviews in, responses out, and a
//! certificate rotation picked up without a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use capstan::certs::{self, CertBundle};
use capstan::webhook::cache::WebhookCache;
use capstan::webhook::server::{ServerConfig, start};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "capstan-webhook-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bundle() -> CertBundle {
    certs::generate("capstan", "capstan", &["127.0.0.1".to_string()], 30).unwrap()
}

/// One HTTPS request trusting `ca_pem`; returns (status, body, the leaf certificate served).
async fn https(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    path: &str,
    body: &[u8],
) -> (u16, Vec<u8>, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("capstan.capstan.svc").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: capstan.capstan.svc\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let split = text.find("\r\n\r\n").unwrap();
    (status, raw[split + 4..].to_vec(), leaf)
}

async fn plain_get(addr: std::net::SocketAddr, path: &str) -> u16 {
    let raw = plain_get_raw(addr, path).await;
    raw.split(' ').nth(1).unwrap().parse().unwrap()
}

async fn plain_get_raw(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    raw
}

fn review(uid: &str, operation: &str, namespace: Option<&str>, object: Value) -> Vec<u8> {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "request": {"uid": uid, "operation": operation, "namespace": namespace, "object": object}})
    .to_string()
    .into_bytes()
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn serves_reviews_over_tls_and_reloads_rotated_certificates() {
    let dir = temp_dir("rotate");
    let first = bundle();
    certs::write_files(&first, &dir).unwrap();
    let mut config = ServerConfig::new(&dir);
    config.https_addr = "127.0.0.1:0".parse().unwrap();
    config.health_addr = "127.0.0.1:0".parse().unwrap();
    config.reload_interval = Duration::from_millis(100);
    let cache = WebhookCache::new();
    cache.set_policies(vec![serde_json::from_value(json!({
        "apiVersion": "capstan.dev/v1alpha1", "kind": "RequestPolicy", "metadata": {"name": "all"},
        "spec": {"containers": {"defaultRequest": {"cpu": "250m"}, "max": {"cpu": "2"}}}
    }))
    .unwrap()]);
    let server = start(config, cache).await.unwrap();
    let addr = server.https_addr;

    assert_eq!(plain_get(server.health_addr, "/healthz").await, 200);
    assert_eq!(plain_get(server.health_addr, "/readyz").await, 200);

    // Invalid NodePool: denied with the field path.
    let pool = json!({"spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "x"},
        "requirements": []}}, "disruption": {"budgets": [{"nodes": "150%"}]}}});
    let (status, body, leaf) = https(
        addr,
        &first.ca_cert_pem,
        "/validate/nodepool",
        &review("u-1", "CREATE", None, pool.clone()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(leaf, der(&first.cert_pem));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["response"]["uid"], "u-1");
    assert_eq!(v["response"]["allowed"], false);
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("spec.disruption.budgets[0].nodes"),
        "{v}"
    );
    let metrics = plain_get_raw(server.health_addr, "/metrics").await;
    assert!(
        metrics.contains(
            "capstan_webhook_requests_total{endpoint=\"/validate/nodepool\",outcome=\"denied\"} 1"
        ),
        "{metrics}"
    );

    // Mutation: a base64 JSON Patch that adds the defaults.
    let (_, body, _) = https(
        addr,
        &first.ca_cert_pem,
        "/mutate/nodepool",
        &review("u-2", "CREATE", None, pool),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["response"]["allowed"], true);
    assert_eq!(v["response"]["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(v["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert!(
        patch
            .to_string()
            .contains("/spec/template/spec/expireAfter"),
        "{patch}"
    );

    // Pods: defaulted from the cached policy; Enforce denies a too-large limit.
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}});
    let (_, body, _) = https(
        addr,
        &first.ca_cert_pem,
        "/mutate/pod",
        &review("u-3", "CREATE", Some("default"), pod),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let patch = base64::engine::general_purpose::STANDARD
        .decode(v["response"]["patch"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8_lossy(&patch).contains("250m"));
    let big = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": "4"}}}]}});
    let (_, body, _) = https(
        addr,
        &first.ca_cert_pem,
        "/validate/pod",
        &review("u-4", "CREATE", Some("default"), big.clone()),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["response"]["allowed"], false, "{v}");
    let (_, body, _) = https(
        addr,
        &first.ca_cert_pem,
        "/validate/pod",
        &review("u-5", "CREATE", Some("kube-system"), big),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["response"]["allowed"], true, "{v}");

    // Malformed and oversized bodies: 4xx, and the server keeps serving.
    let (status, _, _) = https(addr, &first.ca_cert_pem, "/validate/nodepool", b"{not json").await;
    assert_eq!(status, 400);
    let (status, _, _) = https(
        addr,
        &first.ca_cert_pem,
        "/validate/nodepool",
        &vec![b' '; 3 * 1024 * 1024 + 10],
    )
    .await;
    assert_eq!(status, 413);

    // Rotate: the new certificate (from a new CA) is served to new connections.
    let second = bundle();
    certs::write_files(&second, &dir).unwrap();
    let mut served = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if server.cert.current().cert[0].as_ref() == der(&second.cert_pem).as_slice() {
            let (status, _, leaf) = https(
                addr,
                &second.ca_cert_pem,
                "/validate/requestpolicy",
                &review("u-6", "CREATE", None, json!({"spec": {}})),
            )
            .await;
            assert_eq!(status, 200);
            served = leaf;
            break;
        }
    }
    assert_eq!(
        served,
        der(&second.cert_pem),
        "rotated certificate not served"
    );

    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn readiness_can_wait_for_the_caller() {
    let dir = temp_dir("ready");
    certs::write_files(&bundle(), &dir).unwrap();
    let mut config = ServerConfig::new(&dir);
    config.https_addr = "127.0.0.1:0".parse().unwrap();
    config.health_addr = "127.0.0.1:0".parse().unwrap();
    config.ready_at_start = false;
    let server = start(config, WebhookCache::new()).await.unwrap();
    assert_eq!(plain_get(server.health_addr, "/healthz").await, 200);
    assert_eq!(plain_get(server.health_addr, "/readyz").await, 503);
    server.set_ready(true);
    assert_eq!(plain_get(server.health_addr, "/readyz").await, 200);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

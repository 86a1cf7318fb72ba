//! The HTTPS client the admission chain calls webhooks with: one HTTP/1.1 connection per call
//! (webhook traffic in a sandbox is light, and a fresh connection cannot be poisoned by an
//! earlier timeout), the server verified against the webhook's own `caBundle`. One rustls
//! `ClientConfig` is built per distinct caBundle and cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio_rustls::TlsConnector;

use crate::object::lock;

/// Largest AdmissionReview response read (the real server caps request bodies at 3 MiB too).
const MAX_RESPONSE: usize = 3 * 1024 * 1024;
/// Distinct caBundles remembered; beyond this the cache starts over (no unbounded growth when
/// configurations churn).
const MAX_CACHED_CONFIGS: usize = 64;

/// Where to send a review: the address to dial, the name the certificate must carry, and the
/// URL as error messages show it (`Post "https://…?timeout=10s": …`, as the real server says).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub server_name: String,
    /// Path and query sent in the request line.
    pub path: String,
    pub url: String,
}

/// Why a call failed. Every variant counts as a call failure for `failurePolicy`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("failed to call webhook: Post \"{url}\": {reason}")]
    Post { url: String, reason: String },
    #[error("failed to call webhook: Post \"{url}\": context deadline exceeded")]
    Timeout { url: String },
    #[error(
        "failed to call webhook: the server responded with the status code {code} but did not return more information"
    )]
    Status { code: u16 },
    #[error("received invalid webhook response: {0}")]
    InvalidResponse(String),
    #[error("expected response.uid={expected:?}, got {got:?}")]
    UidMismatch { expected: String, got: String },
    /// The webhook's clientConfig cannot be used (bad caBundle or URL, unresolvable service).
    #[error("{0}")]
    Config(String),
}

/// Aborts the connection task when the call ends early (timeout): the socket closes at once.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Default)]
pub struct WebhookClient {
    configs: Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookClient").finish_non_exhaustive()
    }
}

impl WebhookClient {
    /// The TLS configuration trusting exactly the certificates of `ca_bundle` (base64 PEM, as
    /// `clientConfig.caBundle` is on the wire).
    fn tls_config(&self, ca_bundle: &str) -> Result<Arc<rustls::ClientConfig>, CallError> {
        if let Some(config) = lock(&self.configs).get(ca_bundle) {
            return Ok(config.clone());
        }
        let config = Arc::new(build_tls_config(ca_bundle)?);
        let mut cache = lock(&self.configs);
        if cache.len() >= MAX_CACHED_CONFIGS {
            cache.clear();
        }
        cache.insert(ca_bundle.to_string(), config.clone());
        Ok(config)
    }

    /// POST `body` (JSON) to `endpoint` and return the response body of a 2xx answer, all
    /// within `timeout`.
    pub async fn post(
        &self,
        endpoint: &Endpoint,
        ca_bundle: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let config = self.tls_config(ca_bundle)?;
        match tokio::time::timeout(timeout, exchange(endpoint, config, body)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                url: endpoint.url.clone(),
            }),
        }
    }
}

fn build_tls_config(ca_bundle: &str) -> Result<rustls::ClientConfig, CallError> {
    let invalid = |why: String| CallError::Config(format!("invalid clientConfig.caBundle: {why}"));
    if ca_bundle.trim().is_empty() {
        // The real server falls back to the system roots; the sandbox has none to offer.
        return Err(CallError::Config(
            "clientConfig.caBundle is empty and the sandbox has no system trust roots".into(),
        ));
    }
    let pem = base64::engine::general_purpose::STANDARD
        .decode(ca_bundle.trim())
        .map_err(|e| invalid(format!("not base64: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| invalid(format!("bad PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| invalid(format!("bad certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(invalid("no certificates".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CallError::Config(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

async fn exchange(
    endpoint: &Endpoint,
    config: Arc<rustls::ClientConfig>,
    body: Vec<u8>,
) -> Result<Vec<u8>, CallError> {
    let failed = |reason: String| CallError::Post {
        url: endpoint.url.clone(),
        reason,
    };
    let server_name = ServerName::try_from(endpoint.server_name.clone()).map_err(|e| {
        failed(format!(
            "invalid server name {:?}: {e}",
            endpoint.server_name
        ))
    })?;
    let addr = format!("{}:{}", endpoint.host, endpoint.port);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| failed(format!("dial tcp {addr}: {e}")))?;
    let tls = TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| failed(format!("tls: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let task = tokio::spawn(connection);
    let _abort = AbortOnDrop(task.abort_handle());

    let host = if endpoint.port == 443 {
        endpoint.server_name.clone()
    } else {
        format!("{}:{}", endpoint.server_name, endpoint.port)
    };
    let request = hyper::Request::post(endpoint.path.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| failed(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| failed(format!("reading the response: {e}")))?
        .to_bytes();
    if !status.is_success() {
        return Err(CallError::Status {
            code: status.as_u16(),
        });
    }
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_bundles_are_checked() {
        let client = WebhookClient::default();
        assert!(matches!(client.tls_config(""), Err(CallError::Config(_))));
        assert!(
            matches!(client.tls_config("%%%"), Err(CallError::Config(m)) if m.contains("base64"))
        );
        let no_pem = base64::engine::general_purpose::STANDARD.encode("hello");
        assert!(
            matches!(client.tls_config(&no_pem), Err(CallError::Config(m)) if m.contains("no certificates"))
        );
        let ca = crate::tls::generate().expect("cert").ca_pem;
        let bundle = base64::engine::general_purpose::STANDARD.encode(ca);
        let a = client.tls_config(&bundle).expect("config");
        let b = client.tls_config(&bundle).expect("config");
        assert!(Arc::ptr_eq(&a, &b), "configs are cached per caBundle");
    }
}

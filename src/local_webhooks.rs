//! capstan's admission webhooks served in-process for an API server on this machine
//! (`capstan sandbox`, integration tests): a fresh CA and a serving certificate for
//! 127.0.0.1 / localhost, the webhook server on loopback, the cache watcher, and the webhook
//! configurations of manifests/30-webhooks.yaml installed to call that server by URL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;

use crate::certs::{self, CertError};
use crate::controllers::webhook_cache::CacheWatcher;
use crate::metrics::Metrics;
use crate::webhook::cache::WebhookCache;
use crate::webhook::install::{self, InstallError};
use crate::webhook::server::{self, RunningServer, ServerConfig, ServerError};

/// The Service and namespace the installed manifests name; the certificate carries them too.
const SERVICE: &str = "capstan";
const NAMESPACE: &str = "capstan";
/// Regenerated on every start; long enough never to expire under a running sandbox.
const CERT_VALID_DAYS: u32 = 365;
/// Loopback lists are instant; this only bounds a broken setup.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
const FIELD_MANAGER: &str = "capstan";

#[derive(Debug, thiserror::Error)]
pub enum LocalWebhooksError {
    #[error("webhook certificates: {0}")]
    Certs(#[from] CertError),
    #[error("webhook server: {0}")]
    Server(#[from] ServerError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error(
        "the webhook cache did not list RequestPolicies and Namespaces within {0:?}; is the API server serving capstan's CRDs?"
    )]
    SyncTimeout(Duration),
    #[error("document {index} of the webhook configurations has no apiVersion, kind or name")]
    Malformed { index: usize },
    #[error("installing {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The running webhooks. Call [`LocalWebhooks::shutdown`] to stop them; the installed webhook
/// configurations stay (they go with the API server they were installed in).
pub struct LocalWebhooks {
    /// `https://127.0.0.1:<port>`: what the webhook configurations call.
    pub url: String,
    /// Where ca.crt, tls.crt and tls.key were written.
    pub cert_dir: PathBuf,
    pub cache: WebhookCache,
    server: RunningServer,
    watcher: CacheWatcher,
}

impl LocalWebhooks {
    /// Generates certificates into `cert_dir`, starts the server (ports picked by the OS) and
    /// the cache watcher, waits for the cache's first lists (so the first pods already get
    /// their RequestPolicy defaults), then installs the webhook configurations through `client`.
    pub async fn start(client: Client, cert_dir: &Path) -> Result<Self, LocalWebhooksError> {
        Self::start_with_metrics(client, cert_dir, Metrics::new()).await
    }

    /// As [`LocalWebhooks::start`], recording into (and serving on `/metrics`) `metrics`, which
    /// the controllers share.
    pub async fn start_with_metrics(
        client: Client,
        cert_dir: &Path,
        metrics: Metrics,
    ) -> Result<Self, LocalWebhooksError> {
        let sans = ["127.0.0.1".to_string(), "localhost".to_string()];
        let bundle = certs::generate(SERVICE, NAMESPACE, &sans, CERT_VALID_DAYS)?;
        certs::write_files(&bundle, cert_dir)?;

        let mut config = ServerConfig::new(cert_dir);
        config.https_addr = ([127, 0, 0, 1], 0).into();
        config.health_addr = ([127, 0, 0, 1], 0).into();
        config.own_namespace = NAMESPACE.to_string();
        config.metrics = metrics;
        let cache = WebhookCache::new();
        let server = server::start(config, cache.clone()).await?;
        let watcher = CacheWatcher::spawn(client.clone(), cache.clone());
        let running = LocalWebhooks {
            url: format!("https://{}", server.https_addr),
            cert_dir: cert_dir.to_path_buf(),
            cache,
            server,
            watcher,
        };

        let installed = async {
            tokio::time::timeout(SYNC_TIMEOUT, running.watcher.wait_synced())
                .await
                .map_err(|_| LocalWebhooksError::SyncTimeout(SYNC_TIMEOUT))?;
            let docs = install::parse_documents(install::WEBHOOK_CONFIGURATIONS_YAML)?;
            let docs = install::point_at_url(&docs, &running.url, &bundle.ca_cert_pem)?;
            apply_documents(&client, &docs).await
        }
        .await;
        match installed {
            Ok(()) => Ok(running),
            Err(e) => {
                running.shutdown().await;
                Err(e)
            }
        }
    }

    /// The plain-HTTP port serving /healthz and /readyz.
    pub fn health_addr(&self) -> std::net::SocketAddr {
        self.server.health_addr
    }

    /// Stops the server (in-flight reviews finish) and the watches.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        self.watcher.shutdown().await;
    }
}

/// Server-side applies cluster-scoped documents (webhook configurations) in order.
async fn apply_documents(client: &Client, docs: &[Value]) -> Result<(), LocalWebhooksError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (index, doc) in docs.iter().enumerate() {
        let text = |pointer: &str| doc.pointer(pointer).and_then(Value::as_str);
        let (Some(api_version), Some(kind), Some(name)) =
            (text("/apiVersion"), text("/kind"), text("/metadata/name"))
        else {
            return Err(LocalWebhooksError::Malformed { index });
        };
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        api.patch(name, &params, &Patch::Apply(doc))
            .await
            .map_err(|source| LocalWebhooksError::Apply {
                kind: kind.to_string(),
                name: name.to_string(),
                source,
            })?;
    }
    Ok(())
}

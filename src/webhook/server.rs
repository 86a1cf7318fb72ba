//! The webhook server: axum over rustls (TLS 1.2+) for the admission endpoints, plain HTTP on a
//! separate port for `/healthz` and `/readyz`. The serving certificate is re-read when its files
//! change (a Secret rotation), without a restart and without dropping requests: new handshakes
//! get the new certificate, established connections carry on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::cache::{Snapshot, WebhookCache};
use super::ec2nodeclass::{default_ec2nodeclass, validate_ec2nodeclass};
use super::nodepool::{default_instance_options, default_nodepool, validate_nodepool};
use super::pod_defaults::apply_request_policies;
use super::requestpolicy::validate_requestpolicy;
use super::review::{AdmissionRequest, Decision, MAX_BODY_BYTES, handle};
use crate::metrics::Metrics;
use crate::scheduling::instance::InstanceOption;

/// The admission endpoints, at the paths manifests/30-webhooks.yaml calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    MutateNodePool,
    ValidateNodePool,
    MutateEc2NodeClass,
    ValidateEc2NodeClass,
    ValidateRequestPolicy,
    MutatePod,
    ValidatePod,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::MutateNodePool,
        Endpoint::ValidateNodePool,
        Endpoint::MutateEc2NodeClass,
        Endpoint::ValidateEc2NodeClass,
        Endpoint::ValidateRequestPolicy,
        Endpoint::MutatePod,
        Endpoint::ValidatePod,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::MutateNodePool => "/mutate/nodepool",
            Endpoint::ValidateNodePool => "/validate/nodepool",
            Endpoint::MutateEc2NodeClass => "/mutate/ec2nodeclass",
            Endpoint::ValidateEc2NodeClass => "/validate/ec2nodeclass",
            Endpoint::ValidateRequestPolicy => "/validate/requestpolicy",
            Endpoint::MutatePod => "/mutate/pod",
            Endpoint::ValidatePod => "/validate/pod",
        }
    }
}

/// What a decision may consult besides the request.
pub struct Context<'a> {
    pub snapshot: &'a Snapshot,
    /// capstan's namespace: its pods are never defaulted.
    pub own_namespace: &'a str,
    pub instance_types: &'a [Arc<InstanceOption>],
}

/// The pure core of every endpoint: one request in, one decision out.
pub fn decide(endpoint: Endpoint, req: &AdmissionRequest, ctx: &Context<'_>) -> Decision {
    let Some(obj) = req.object.as_ref().filter(|o| !o.is_null()) else {
        // DELETE and CONNECT carry no object; nothing to check.
        return Decision::allow();
    };
    let old = if req.operation == "UPDATE" {
        req.old_object.as_ref().filter(|o| !o.is_null())
    } else {
        None
    };
    match endpoint {
        Endpoint::MutateNodePool => Decision::allow().with_mutation(obj, &default_nodepool(obj)),
        Endpoint::ValidateNodePool => {
            Decision::from_verdict(validate_nodepool(obj, old, ctx.instance_types))
        }
        Endpoint::MutateEc2NodeClass => {
            Decision::allow().with_mutation(obj, &default_ec2nodeclass(obj))
        }
        Endpoint::ValidateEc2NodeClass => Decision::from_verdict(validate_ec2nodeclass(obj, old)),
        Endpoint::ValidateRequestPolicy => Decision::from_verdict(validate_requestpolicy(obj)),
        Endpoint::MutatePod | Endpoint::ValidatePod => {
            // Resources are set at creation; later updates are not ours to default.
            if req.operation != "CREATE" {
                return Decision::allow();
            }
            let namespace = req
                .namespace
                .clone()
                .or_else(|| {
                    obj.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "default".into());
            let labels = ctx.snapshot.namespace_labels(&namespace);
            let out = apply_request_policies(
                obj,
                &namespace,
                &labels,
                &ctx.snapshot.policies,
                ctx.own_namespace,
            );
            if endpoint == Endpoint::MutatePod {
                // Denials and warnings come from the validating call, which sees the final pod.
                Decision::allow().with_mutation(obj, &out.pod)
            } else {
                Decision::from_verdict(out.verdict())
            }
        }
    }
}

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub https_addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// How often the certificate files are checked for changes.
    pub reload_interval: Duration,
    pub own_namespace: String,
    /// Where `/metrics` is also served on a port of its own (`METRICS_PORT`); it is always on
    /// the health port too.
    pub metrics_addr: Option<SocketAddr>,
    /// Where review counts and latencies go; `/metrics` renders it.
    pub metrics: Metrics,
    /// Whether /readyz answers ok as soon as the ports are bound; false leaves that to
    /// [`RunningServer::set_ready`] (e.g. once the cache has its first lists).
    pub ready_at_start: bool,
}

impl ServerConfig {
    /// The in-cluster defaults: 8443 for webhooks, 8081 for probes, the Secret mounted at `dir`.
    pub fn new(dir: &Path) -> Self {
        ServerConfig {
            https_addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
            health_addr: SocketAddr::from(([0, 0, 0, 0], 8081)),
            cert_path: dir.join("tls.crt"),
            key_path: dir.join("tls.key"),
            reload_interval: Duration::from_secs(10),
            own_namespace: "capstan".into(),
            metrics_addr: None,
            metrics: Metrics::new(),
            ready_at_start: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("loading the serving certificate: {0}")]
    Cert(String),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The current certificate, swapped in place when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    state: RwLock<CertState>,
}

#[derive(Debug)]
struct CertState {
    key: Arc<CertifiedKey>,
    stamp: FileStamp,
}

/// (mtime, length) of the certificate and key files: cheap to poll.
type FileStamp = [(Option<SystemTime>, u64); 2];

fn stamp(paths: [&Path; 2]) -> FileStamp {
    paths.map(|p| match std::fs::metadata(p) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    })
}

fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, String> {
    let cert_pem =
        std::fs::read(cert_path).map_err(|e| format!("reading {}: {e}", cert_path.display()))?;
    let key_pem =
        std::fs::read(key_path).map_err(|e| format!("reading {}: {e}", key_path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    // Also checks that the key belongs to the leaf: a half-written rotation is refused, not served.
    CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("{} and {}: {e}", cert_path.display(), key_path.display()))
}

impl ReloadingCert {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, String> {
        let before = stamp([cert_path, key_path]);
        let key = load_certified_key(cert_path, key_path)?;
        Ok(ReloadingCert {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            state: RwLock::new(CertState {
                key: Arc::new(key),
                stamp: before,
            }),
        })
    }

    /// Re-reads the files if their mtime or size changed. Ok(true) when a new certificate is in
    /// use; on error the old one stays and the next poll tries again.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamp([&self.cert_path, &self.key_path]);
        let unchanged = match self.state.read() {
            Ok(s) => s.stamp == now,
            Err(p) => p.into_inner().stamp == now,
        };
        if unchanged {
            return Ok(false);
        }
        let key = load_certified_key(&self.cert_path, &self.key_path)?;
        let mut s = match self.state.write() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        s.key = Arc::new(key);
        s.stamp = now;
        Ok(true)
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.state.read() {
            Ok(s) => s.key.clone(),
            Err(p) => p.into_inner().key.clone(),
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// TLS 1.3 and 1.2 on aws-lc-rs with the reloading resolver. HTTP/1.1 only: what the API server
/// speaks to webhooks when h2 is not offered, and all our axum build is sure to serve.
pub fn tls_config(resolver: Arc<ReloadingCert>) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts TCP connections and completes TLS handshakes off the accept loop, so a slow or
/// broken client never holds up others; axum serves what comes out.
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn spawn(
        tcp: TcpListener,
        acceptor: TlsAcceptor,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = tcp.accept() => a,
                    _ = stop.changed() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "webhook accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept loop stopped (shutdown): no more connections, ever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[derive(Clone)]
struct AppState {
    cache: WebhookCache,
    metrics: Metrics,
    own_namespace: Arc<str>,
    instance_types: Arc<Vec<Arc<InstanceOption>>>,
}

fn respond(state: &AppState, endpoint: Endpoint, body: &[u8]) -> Response {
    let snapshot = state.cache.snapshot();
    let ctx = Context {
        snapshot: &snapshot,
        own_namespace: &state.own_namespace,
        instance_types: &state.instance_types,
    };
    let started = Instant::now();
    let mut outcome = "error";
    let (status, out, ctype) = handle(body, |req| {
        let d = decide(endpoint, req, &ctx);
        outcome = match (d.allowed, d.patch.0.is_empty()) {
            (false, _) => "denied",
            (true, false) => "patched",
            (true, true) => "allowed",
        };
        d
    });
    state
        .metrics
        .webhook
        .observe(endpoint.path(), outcome, started.elapsed());
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, [(header::CONTENT_TYPE, ctype)], out).into_response()
}

/// The admission routes (exposed for tests and benchmarks that want them without TLS).
pub fn admission_router(cache: WebhookCache, own_namespace: &str, metrics: Metrics) -> Router {
    let state = AppState {
        cache,
        metrics,
        own_namespace: Arc::from(own_namespace),
        instance_types: default_instance_options(),
    };
    let mut router = Router::new();
    for endpoint in Endpoint::ALL {
        router = router.route(
            endpoint.path(),
            post(move |State(s): State<AppState>, body: Bytes| async move {
                respond(&s, endpoint, &body)
            }),
        );
    }
    router
        // Larger bodies get 413 from axum before they are buffered.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `/metrics` alone (the `METRICS_PORT` listener).
fn metrics_router(metrics: Metrics) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let text = metrics.render();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    )
}

fn health_router(ready: Arc<AtomicBool>, metrics: Metrics) -> Router {
    metrics_router(metrics)
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Relaxed) {
                        (StatusCode::OK, "ok\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
}

/// A running server; dropping it does not stop it, call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub https_addr: SocketAddr,
    pub health_addr: SocketAddr,
    /// The `METRICS_PORT` listener's address; the health address when there is none.
    pub metrics_addr: SocketAddr,
    pub cert: Arc<ReloadingCert>,
    ready: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// What /readyz reports from now on.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the tasks.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds both ports and starts serving. Must run inside a Tokio runtime.
pub async fn start(
    config: ServerConfig,
    cache: WebhookCache,
) -> Result<RunningServer, ServerError> {
    let cert = Arc::new(
        ReloadingCert::load(&config.cert_path, &config.key_path).map_err(ServerError::Cert)?,
    );
    let tls = tls_config(cert.clone()).map_err(ServerError::Cert)?;
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let https = bind(config.https_addr).await?;
    let health = bind(config.health_addr).await?;
    let health_addr = health.local_addr().map_err(|source| ServerError::Bind {
        addr: config.health_addr,
        source,
    })?;
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => l.local_addr().map_err(|source| ServerError::Bind {
            addr: health_addr,
            source,
        })?,
        None => health_addr,
    };
    let (stop, stop_rx) = watch::channel(false);
    let listener = TlsListener::spawn(https, TlsAcceptor::from(Arc::new(tls)), stop_rx.clone())
        .map_err(|source| ServerError::Bind {
            addr: config.https_addr,
            source,
        })?;
    let https_addr = listener.local;
    let ready = Arc::new(AtomicBool::new(false));

    let mut tasks = Vec::new();
    let until_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let app = admission_router(cache, &config.own_namespace, config.metrics.clone());
    tasks.push(tokio::spawn({
        let stop = until_stop(stop_rx.clone());
        async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "webhook server failed");
            }
        }
    }));
    tasks.push(tokio::spawn({
        let stop = until_stop(stop_rx.clone());
        let app = health_router(ready.clone(), config.metrics.clone());
        async move {
            if let Err(e) = axum::serve(health, app).with_graceful_shutdown(stop).await {
                tracing::error!(error = %e, "health server failed");
            }
        }
    }));
    if let Some(l) = metrics_listener {
        let stop = until_stop(stop_rx.clone());
        let app = metrics_router(config.metrics.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(l, app).with_graceful_shutdown(stop).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        }));
    }
    tasks.push(tokio::spawn({
        let cert = cert.clone();
        let mut rx = stop_rx;
        let interval = config.reload_interval;
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = rx.wait_for(|s| *s) => return,
                }
                match cert.reload_if_changed() {
                    Ok(true) => tracing::info!("webhook serving certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "webhook certificate changed but cannot be loaded; keeping the old one"),
                }
            }
        }
    }));
    ready.store(config.ready_at_start, Ordering::Relaxed);
    Ok(RunningServer {
        https_addr,
        health_addr,
        metrics_addr,
        cert,
        ready,
        stop,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "(In|Exists|Gt|NoSchedule|10%|150%|@daily|0 9 \\* \\* mon-fri|8h|Never|1Gi|-1|cpu|memory|[a-z]{0,6})"
                .prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            let keys = "(spec|template|metadata|labels|requirements|key|operator|values|minValues|disruption|budgets|nodes|schedule|duration|reasons|containers|initContainers|resources|requests|limits|name|kubelet|tags|amiSelectorTerms|subnetSelectorTerms|role|mode|pod|max|min|default|defaultRequest|nodeClassRef|taints|effect|weight|limits)";
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys, inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn policies() -> Snapshot {
        let cache = WebhookCache::new();
        cache.set_policies(vec![
            serde_json::from_value(json!({"metadata": {"name": "a"}, "spec": {"containers": {"default": {"cpu": "1", "memory": "1Gi"}, "min": {"cpu": "10m"}, "maxLimitRequestRatio": {"cpu": "2"}, "memoryRequestsEqualLimits": true}, "pod": {"max": {"cpu": "4"}}}})).unwrap(),
        ]);
        cache.snapshot()
    }

    fn request(operation: &str, object: Option<Value>, old: Option<Value>) -> AdmissionRequest {
        AdmissionRequest {
            uid: "u".into(),
            operation: operation.into(),
            namespace: Some("default".into()),
            object,
            old_object: old,
            ..Default::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Every endpoint takes any object without panicking, and its patch applies cleanly.
        #[test]
        fn every_endpoint_survives_arbitrary_objects(obj in arb_json(), old in arb_json()) {
            let snapshot = policies();
            let ctx = Context { snapshot: &snapshot, own_namespace: "capstan", instance_types: &[] };
            for endpoint in Endpoint::ALL {
                for op in ["CREATE", "UPDATE"] {
                    let d = decide(endpoint, &request(op, Some(obj.clone()), Some(old.clone())), &ctx);
                    prop_assert!(d.allowed || d.message.is_some());
                    let mut patched = obj.clone();
                    prop_assert!(json_patch::patch(&mut patched, &d.patch).is_ok(), "{:?} {}", endpoint, obj);
                }
            }
        }
    }

    #[test]
    fn decisions_by_operation() {
        let snapshot = policies();
        let ctx = Context {
            snapshot: &snapshot,
            own_namespace: "capstan",
            instance_types: &[],
        };
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}}]}});
        // Ratio 10 > 2: denied on CREATE, untouched on UPDATE, nothing to check on DELETE.
        assert!(
            !decide(
                Endpoint::ValidatePod,
                &request("CREATE", Some(pod.clone()), None),
                &ctx
            )
            .allowed
        );
        assert!(
            decide(
                Endpoint::ValidatePod,
                &request("UPDATE", Some(pod.clone()), None),
                &ctx
            )
            .allowed
        );
        assert!(
            decide(
                Endpoint::ValidateNodePool,
                &request("DELETE", None, Some(pod.clone())),
                &ctx
            )
            .allowed
        );
        // The mutating call patches (memory limit and request) but leaves denial to validation.
        let d = decide(
            Endpoint::MutatePod,
            &request("CREATE", Some(pod.clone()), None),
            &ctx,
        );
        assert!(d.allowed);
        let mut patched = pod.clone();
        json_patch::patch(&mut patched, &d.patch).unwrap();
        assert_eq!(
            patched["spec"]["containers"][0]["resources"]["requests"]["memory"],
            "1Gi"
        );
        assert_eq!(
            patched["spec"]["containers"][0]["resources"]["limits"]["memory"],
            "1Gi"
        );
        assert!(
            patched["metadata"]["annotations"][crate::apis::requestpolicy::DEFAULTS_ANNOTATION]
                .is_string()
        );
        // capstan's own namespace is exempt.
        let mut own = request("CREATE", Some(pod), None);
        own.namespace = Some("capstan".into());
        assert!(decide(Endpoint::MutatePod, &own, &ctx).patch.0.is_empty());
    }

    #[test]
    fn endpoints_match_the_webhook_manifest() {
        let manifest = include_str!("../../manifests/30-webhooks.yaml");
        let mut paths: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.trim().strip_prefix("path: "))
            .collect();
        paths.sort();
        let mut ours: Vec<&str> = Endpoint::ALL.iter().map(|e| e.path()).collect();
        ours.sort();
        assert_eq!(paths, ours);
    }
}

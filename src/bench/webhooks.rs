//! `capstan bench webhooks`: admission latency under load, over TLS on loopback.
//!
//! The real webhook server ([`crate::webhook::server::start`], certificates from [`crate::certs`])
//! runs in-process on 127.0.0.1 with a [`WebhookCache`] holding the example RequestPolicy and the
//! team-a namespace's labels. A small load generator drives it over keep-alive HTTP/1.1
//! connections (hyper's client connection over tokio-rustls, trusting only the generated CA).
//!
//! The load is open-loop: request `i` is due at `start + i / rate`, whatever happened to earlier
//! requests, and its latency is measured from that due time, so a stalled server shows up as
//! latency instead of as a lower send rate ("coordinated omission"). A dedicated thread paces the
//! requests with `std::thread::sleep` (tens of microseconds of slack on Linux; tokio's timer
//! wheel rounds to whole milliseconds, which would be half the 2 ms goal) and hands each one to
//! a connection, round-robin. A connection sends its requests in order; one that arrives while
//! the previous is in flight waits, and that wait counts.
//!
//! The requests are the shipped examples as the API server would send them: a team-a Pod to
//! the pod mutating webhook (matched by RequestPolicy team-a-defaults, so it is patched), every
//! example NodePool to the NodePool validating and mutating webhooks, every example
//! EC2NodeClass to the EC2NodeClass validating webhook. Bodies are serialised once; each request
//! only splices in its own uid. Every answer is checked: HTTP 200, a well-formed
//! AdmissionReview, the request's uid, and the decision the pure [`decide`] gives for the same
//! request (allowed or not, patched or not).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use crate::apis::RequestPolicy;
use crate::certs;
use crate::webhook::cache::{NAMESPACE_NAME_LABEL, WebhookCache};
use crate::webhook::nodepool::default_instance_options;
use crate::webhook::review::AdmissionRequest;
use crate::webhook::server::{self, Context, Endpoint, ServerConfig};

/// The latency goal the issue sets, at 2,000 requests per second.
pub const GOAL_P99_MS: f64 = 2.0;
/// The namespace of capstan itself (never defaulted); the bench pods live elsewhere.
const OWN_NAMESPACE: &str = "capstan";
/// What the bench pod's namespace is called and labelled (manifests/examples/workload.yaml).
const POD_NAMESPACE: &str = "team-a";
const UID_HOLE: &str = "__capstan_bench_uid__";
/// Largest response body read; admission responses here are a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

const EXAMPLES: [(&str, &str); 5] = [
    (
        "default.yaml",
        include_str!("../../manifests/examples/default.yaml"),
    ),
    (
        "gpu.yaml",
        include_str!("../../manifests/examples/gpu.yaml"),
    ),
    (
        "team.yaml",
        include_str!("../../manifests/examples/team.yaml"),
    ),
    (
        "requestpolicy.yaml",
        include_str!("../../manifests/examples/requestpolicy.yaml"),
    ),
    (
        "workload.yaml",
        include_str!("../../manifests/examples/workload.yaml"),
    ),
];

/// How hard and how long to drive the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Requests per second, open-loop.
    pub rate: f64,
    pub duration: Duration,
    /// Keep-alive TLS connections the requests are spread over.
    pub connections: usize,
    /// A request without an answer this long after its due time is an error.
    pub request_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rate: 2000.0,
            duration: Duration::from_secs(10),
            connections: 8,
            request_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid options: {0}")]
    Options(String),
    #[error("bench workload: {0}")]
    Workload(String),
    #[error("webhook certificates: {0}")]
    Certs(#[from] certs::CertError),
    #[error("webhook server: {0}")]
    Server(#[from] server::ServerError),
    #[error("temporary directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("connecting to the webhook server: {0}")]
    Connect(String),
}

/// One kind of request in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    PodMutate,
    NodePoolValidate,
    NodePoolMutate,
    Ec2NodeClassValidate,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::PodMutate,
        Kind::NodePoolValidate,
        Kind::NodePoolMutate,
        Kind::Ec2NodeClassValidate,
    ];

    pub fn endpoint(self) -> Endpoint {
        match self {
            Kind::PodMutate => Endpoint::MutatePod,
            Kind::NodePoolValidate => Endpoint::ValidateNodePool,
            Kind::NodePoolMutate => Endpoint::MutateNodePool,
            Kind::Ec2NodeClassValidate => Endpoint::ValidateEc2NodeClass,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::PodMutate => "pod mutate",
            Kind::NodePoolValidate => "NodePool validate",
            Kind::NodePoolMutate => "NodePool mutate",
            Kind::Ec2NodeClassValidate => "EC2NodeClass validate",
        }
    }
}

/// What a correct answer to a request looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub allowed: bool,
    pub patched: bool,
}

/// One request of the mix, serialised once with a hole for the uid.
#[derive(Debug, Clone)]
pub struct Template {
    pub kind: Kind,
    /// `NodePool/default` and the like.
    pub object: String,
    pub expected: Expected,
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Template {
    pub fn body(&self, uid: &str) -> Bytes {
        let mut body = Vec::with_capacity(self.head.len() + uid.len() + self.tail.len());
        body.extend_from_slice(&self.head);
        body.extend_from_slice(uid.as_bytes());
        body.extend_from_slice(&self.tail);
        Bytes::from(body)
    }
}

/// The request mix and the cache contents the pod requests rely on.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Request `i` uses `templates[i % len]`: pods interleaved with everything else, so half of
    /// all requests are pods (the bulk of real admission traffic).
    pub templates: Vec<Template>,
    pub cache: WebhookCache,
}

/// Builds the request mix from manifests/examples (compiled in) and checks every expected
/// answer with [`decide`]: the examples are admitted, and the pod is patched by the policy.
pub fn workload() -> Result<Workload, BenchError> {
    let bad = |m: String| BenchError::Workload(m);
    let mut docs: Vec<(&str, Value)> = Vec::new();
    for (file, text) in EXAMPLES {
        let parsed: Vec<Value> = serde_saphyr::from_multiple(text)
            .map_err(|e| bad(format!("manifests/examples/{file}: {e}")))?;
        docs.extend(
            parsed
                .into_iter()
                .filter(|d| d.is_object())
                .map(|d| (file, d)),
        );
    }
    let of_kind = |kind: &str| -> Vec<&Value> {
        docs.iter()
            .map(|(_, d)| d)
            .filter(|d| d["kind"] == kind)
            .collect()
    };

    let policies = of_kind("RequestPolicy")
        .into_iter()
        .map(|d| serde_json::from_value::<RequestPolicy>(d.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("RequestPolicy: {e}")))?;
    let mut namespaces = BTreeMap::new();
    for ns in of_kind("Namespace") {
        let name = ns["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut labels: BTreeMap<String, String> =
            serde_json::from_value(ns["metadata"]["labels"].clone()).unwrap_or_default();
        labels.insert(NAMESPACE_NAME_LABEL.into(), name.clone());
        namespaces.insert(name, labels);
    }
    let cache = WebhookCache::new();
    cache.set_policies(policies);
    cache.set_namespaces(namespaces);

    // The pod a ReplicaSet of Deployment team-a-app creates.
    let deployment = of_kind("Deployment")
        .into_iter()
        .find(|d| d["metadata"]["namespace"] == POD_NAMESPACE)
        .ok_or_else(|| bad(format!("no Deployment in namespace {POD_NAMESPACE}")))?;
    let name = deployment["metadata"]["name"].as_str().unwrap_or("app");
    let template = &deployment["spec"]["template"];
    let mut pod_meta = template["metadata"].clone();
    pod_meta["name"] = json!(format!("{name}-7d4b9c8f6d-x2v9q"));
    pod_meta["namespace"] = json!(POD_NAMESPACE);
    let pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": template["spec"]});

    let mut objects: Vec<(Kind, Value)> = Vec::new();
    for pool in of_kind("NodePool") {
        objects.push((Kind::NodePoolValidate, pool.clone()));
        objects.push((Kind::NodePoolMutate, pool.clone()));
    }
    for class in of_kind("EC2NodeClass") {
        objects.push((Kind::Ec2NodeClassValidate, class.clone()));
    }
    if objects.is_empty() {
        return Err(bad("no NodePools or EC2NodeClasses in the examples".into()));
    }

    let snapshot = cache.snapshot();
    let instance_types = default_instance_options();
    let ctx = Context {
        snapshot: &snapshot,
        own_namespace: OWN_NAMESPACE,
        instance_types: &instance_types,
    };
    let mut templates = Vec::new();
    for (kind, object) in objects {
        templates.push(template_for(Kind::PodMutate, &pod, &ctx)?);
        templates.push(template_for(kind, &object, &ctx)?);
    }
    if let Some(t) = templates.iter().find(|t| !t.expected.allowed) {
        return Err(bad(format!("{} is denied by {}", t.object, t.kind.label())));
    }
    if !templates[0].expected.patched {
        return Err(bad(format!(
            "{} is not defaulted by the example RequestPolicy",
            templates[0].object
        )));
    }
    Ok(Workload { templates, cache })
}

fn template_for(kind: Kind, object: &Value, ctx: &Context<'_>) -> Result<Template, BenchError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let object_kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = object["metadata"]["namespace"].as_str();
    let resource = match object_kind {
        "Pod" => "pods",
        "NodePool" => "nodepools",
        "EC2NodeClass" => "ec2nodeclasses",
        other => {
            return Err(BenchError::Workload(format!("no webhook for kind {other}")));
        }
    };
    let gvk = json!({"group": group, "version": version, "kind": object_kind});
    let request = json!({
        "uid": UID_HOLE,
        "kind": gvk,
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": gvk,
        "name": name,
        "namespace": namespace,
        "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": object,
        "oldObject": null,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    });
    let decoded: AdmissionRequest = serde_json::from_value(request.clone())
        .map_err(|e| BenchError::Workload(format!("{object_kind} {name}: {e}")))?;
    let decision = server::decide(kind.endpoint(), &decoded, ctx);
    let text =
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
            .to_string();
    let (head, tail) = text
        .split_once(UID_HOLE)
        .ok_or_else(|| BenchError::Workload("uid placeholder lost".into()))?;
    Ok(Template {
        kind,
        object: format!("{object_kind}/{name}"),
        expected: Expected {
            allowed: decision.allowed,
            patched: !decision.patch.0.is_empty(),
        },
        head: head.as_bytes().to_vec(),
        tail: tail.as_bytes().to_vec(),
    })
}

/// The uid of request `index` of a run: UUID-shaped and unique within the run.
pub fn uid(index: u64) -> String {
    format!("be4c0000-0000-4000-8000-{:012x}", index & 0xffff_ffff_ffff)
}

/// Why a request does not count as a correct answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// Connecting or the TLS handshake failed.
    Connect,
    /// The connection broke mid-request.
    Transport,
    /// No answer within the request timeout of its due time.
    Timeout,
    /// HTTP status other than 200.
    Status,
    /// Not an AdmissionReview response.
    Malformed,
    /// The response's uid is not the request's.
    UidMismatch,
    /// Allowed / denied or patched / not patched differs from what [`decide`] says.
    WrongDecision,
}

#[derive(Deserialize)]
struct ReviewOut {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    response: ResponseOut,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut {
    uid: String,
    allowed: bool,
    #[serde(default)]
    patch_type: Option<String>,
    #[serde(default)]
    patch: Option<String>,
}

/// Checks one answer against its request. `Err` names what is wrong, with a short reason.
pub fn check_response(
    status: u16,
    body: &[u8],
    uid: &str,
    expected: Expected,
) -> Result<(), (Failure, String)> {
    if status != 200 {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err((Failure::Status, format!("HTTP {status}: {}", text.trim())));
    }
    let review: ReviewOut = serde_json::from_slice(body)
        .map_err(|e| (Failure::Malformed, format!("not an AdmissionReview: {e}")))?;
    if review.api_version != "admission.k8s.io/v1" || review.kind != "AdmissionReview" {
        return Err((
            Failure::Malformed,
            format!(
                "{}/{} is not admission.k8s.io/v1 AdmissionReview",
                review.api_version, review.kind
            ),
        ));
    }
    let r = review.response;
    if r.uid != uid {
        return Err((
            Failure::UidMismatch,
            format!("uid {:?}, sent {uid:?}", r.uid),
        ));
    }
    let patched = match (&r.patch_type, &r.patch) {
        (None, None) => false,
        (Some(t), Some(p)) if t == "JSONPatch" && !p.is_empty() => true,
        _ => {
            return Err((
                Failure::Malformed,
                format!("patchType {:?} with patch {:?}", r.patch_type, r.patch),
            ));
        }
    };
    let got = Expected {
        allowed: r.allowed,
        patched,
    };
    if got != expected {
        return Err((
            Failure::WrongDecision,
            format!("answered {got:?}, expected {expected:?}"),
        ));
    }
    Ok(())
}

/// One request's fate.
#[derive(Debug, Clone, Copy)]
struct Sample {
    template: u16,
    /// From the due time to the end of the response body; None when no response came back.
    latency: Option<Duration>,
    failure: Option<Failure>,
    done: Instant,
}

/// Latency percentiles in milliseconds (nearest rank over the sorted samples).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(mut micros: Vec<u64>) -> Self {
        if micros.is_empty() {
            return Latency::default();
        }
        micros.sort_unstable();
        let at = |p: f64| {
            let rank = ((p / 100.0) * micros.len() as f64).ceil() as usize;
            micros[rank.clamp(1, micros.len()) - 1] as f64 / 1000.0
        };
        Latency {
            p50_ms: at(50.0),
            p90_ms: at(90.0),
            p99_ms: at(99.0),
            max_ms: at(100.0),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub kind: Kind,
    pub label: &'static str,
    pub sent: u64,
    pub errors: u64,
    pub latency: Latency,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target_rate: f64,
    pub duration_s: f64,
    pub connections: usize,
    /// Where the server listened (127.0.0.1, a port the OS picked).
    pub server: String,
    /// Requests due and handed to a connection.
    pub sent: u64,
    /// Requests that got an HTTP response (any status).
    pub completed: u64,
    /// Requests without a correct answer: see `failures`.
    pub errors: u64,
    pub failures: BTreeMap<Failure, u64>,
    /// The first few error messages, for diagnosis.
    pub error_examples: Vec<String>,
    /// Completed requests per second, from the first due time to the last response.
    pub achieved_rate: f64,
    /// Over every completed request, from its due time.
    pub latency: Latency,
    /// How late the pacer thread handed a request over, at worst (client-side slack; it is
    /// included in the latencies).
    pub pacer_lag_max_ms: f64,
    pub per_kind: Vec<KindReport>,
    pub goal_p99_ms: f64,
    /// p99 below the goal and no errors.
    pub goal_met: bool,
}

/// A request handed to a connection.
struct Job {
    index: u64,
    due: Instant,
}

/// Starts the webhook server in-process, drives it as `opts` says, stops it, and reports.
/// Must run inside a multi-threaded Tokio runtime.
pub async fn run(opts: &Options) -> Result<Report, BenchError> {
    if !(opts.rate.is_finite() && opts.rate > 0.0) {
        return Err(BenchError::Options(format!(
            "rate {} must be > 0",
            opts.rate
        )));
    }
    if opts.connections == 0 {
        return Err(BenchError::Options("connections must be >= 1".into()));
    }
    let total = (opts.rate * opts.duration.as_secs_f64()).round() as u64;
    if total == 0 {
        return Err(BenchError::Options(
            "rate x duration is less than one request".into(),
        ));
    }
    let workload = Arc::new(workload()?);

    let dir = tempfile::Builder::new()
        .prefix("capstan-bench-webhooks-")
        .tempdir()?;
    let bundle = certs::generate(OWN_NAMESPACE, OWN_NAMESPACE, &["127.0.0.1".to_string()], 1)?;
    certs::write_files(&bundle, dir.path())?;
    let mut config = ServerConfig::new(dir.path());
    config.https_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    config.health_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    config.own_namespace = OWN_NAMESPACE.to_string();
    let server = server::start(config, workload.cache.clone()).await?;
    let addr = server.https_addr;

    let result = drive(addr, &bundle.ca_cert_pem, &workload, opts, total).await;
    server.shutdown().await;
    let (samples, pacer_lag, start) = result?;
    Ok(report(
        opts, addr, &workload, total, samples, pacer_lag, start,
    ))
}

fn client_config(ca_pem: &str) -> Result<rustls::ClientConfig, BenchError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| BenchError::Connect(format!("CA certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| BenchError::Connect(format!("CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BenchError::Connect(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

type Sender = SendRequest<Full<Bytes>>;

/// One keep-alive HTTP/1.1 connection over TLS, verified against the generated CA.
async fn connect(addr: SocketAddr, tls: &TlsConnector) -> Result<Sender, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    // Small requests and answers: Nagle would add up to 40 ms of delayed-ACK wait.
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::IpAddress(IpAddr::from(Ipv4Addr::LOCALHOST).into());
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP/1.1 handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on `sender`: (status, body) or what went wrong.
async fn exchange(sender: &mut Sender, path: &str, body: Bytes) -> Result<(u16, Bytes), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status.as_u16(), body))
}

/// Sends the jobs one connection receives, in order, reconnecting after a failure.
async fn connection_loop(
    addr: SocketAddr,
    tls: TlsConnector,
    mut sender: Option<Sender>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    workload: Arc<Workload>,
    timeout: Duration,
) -> (Vec<Sample>, Vec<String>) {
    let mut samples = Vec::new();
    let mut messages = Vec::new();
    let n = workload.templates.len();
    while let Some(job) = jobs.recv().await {
        let which = (job.index % n as u64) as usize;
        let template = &workload.templates[which];
        let uid = uid(job.index);
        let path = template.kind.endpoint().path();
        let attempt = tokio::time::timeout_at((job.due + timeout).into(), async {
            if sender.as_ref().is_none_or(|s| s.is_closed()) {
                sender = Some(
                    connect(addr, &tls)
                        .await
                        .map_err(|e| (Failure::Connect, e))?,
                );
            }
            let Some(s) = sender.as_mut() else {
                return Err((Failure::Connect, "no connection".to_string()));
            };
            exchange(s, path, template.body(&uid))
                .await
                .map_err(|e| (Failure::Transport, e))
        })
        .await;
        let done = Instant::now();
        let (latency, failure) = match attempt {
            Ok(Ok((status, body))) => (
                Some(done.saturating_duration_since(job.due)),
                check_response(status, &body, &uid, template.expected).err(),
            ),
            Ok(Err(f)) => (None, Some(f)),
            Err(_) => (
                None,
                Some((
                    Failure::Timeout,
                    format!("no answer within {timeout:?} of its due time"),
                )),
            ),
        };
        let failure = failure.map(|(f, message)| {
            if !matches!(
                f,
                Failure::Status
                    | Failure::Malformed
                    | Failure::UidMismatch
                    | Failure::WrongDecision
            ) {
                // The connection's state is unknown: start over on a fresh one.
                sender = None;
            }
            if messages.len() < 5 {
                messages.push(format!(
                    "{} {} (uid {uid}): {message}",
                    template.kind.label(),
                    template.object
                ));
            }
            f
        });
        samples.push(Sample {
            template: which as u16,
            latency,
            failure,
            done,
        });
    }
    (samples, messages)
}

async fn drive(
    addr: SocketAddr,
    ca_pem: &str,
    workload: &Arc<Workload>,
    opts: &Options,
    total: u64,
) -> Result<(Vec<Sample>, (Vec<String>, Duration), Instant), BenchError> {
    let tls = TlsConnector::from(Arc::new(client_config(ca_pem)?));
    // Handshakes happen before the clock starts: steady-state keep-alive traffic is measured.
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..opts.connections {
        let sender = connect(addr, &tls).await.map_err(BenchError::Connect)?;
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        tasks.push(tokio::spawn(connection_loop(
            addr,
            tls.clone(),
            Some(sender),
            rx,
            workload.clone(),
            opts.request_timeout,
        )));
    }

    let start = Instant::now() + Duration::from_millis(20);
    let rate = opts.rate;
    let pacer = tokio::task::spawn_blocking(move || {
        let mut lag = Duration::ZERO;
        for index in 0..total {
            let due = start + Duration::from_secs_f64(index as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            lag = lag.max(Instant::now().saturating_duration_since(due));
            let tx = &senders[(index % senders.len() as u64) as usize];
            // A connection task only ends when its channel closes, so this cannot fail.
            let _ = tx.send(Job { index, due });
        }
        lag
        // `senders` dropped here: each connection finishes what it was given, then ends.
    });
    let lag = pacer
        .await
        .map_err(|e| BenchError::Connect(format!("pacer thread: {e}")))?;

    let mut samples = Vec::with_capacity(total as usize);
    let mut messages = Vec::new();
    for task in tasks {
        let (mut s, mut m) = task
            .await
            .map_err(|e| BenchError::Connect(format!("connection task: {e}")))?;
        samples.append(&mut s);
        messages.append(&mut m);
    }
    Ok((samples, (messages, lag), start))
}

fn report(
    opts: &Options,
    addr: SocketAddr,
    workload: &Workload,
    total: u64,
    samples: Vec<Sample>,
    (messages, pacer_lag): (Vec<String>, Duration),
    start: Instant,
) -> Report {
    let micros = |s: &Sample| s.latency.map(|d| d.as_micros() as u64);
    let completed = samples.iter().filter(|s| s.latency.is_some()).count() as u64;
    let mut failures = BTreeMap::new();
    for f in samples.iter().filter_map(|s| s.failure) {
        *failures.entry(f).or_insert(0) += 1;
    }
    // Requests never handed back (cannot happen unless a task died) count as errors too.
    let errors = samples.iter().filter(|s| s.failure.is_some()).count() as u64
        + total.saturating_sub(samples.len() as u64);
    let last = samples
        .iter()
        .filter(|s| s.latency.is_some())
        .map(|s| s.done)
        .max()
        .unwrap_or(start);
    let elapsed = last.saturating_duration_since(start).as_secs_f64();
    let latency = Latency::of(samples.iter().filter_map(micros).collect());
    let per_kind = Kind::ALL
        .iter()
        .map(|&kind| {
            let of_kind: Vec<&Sample> = samples
                .iter()
                .filter(|s| workload.templates[s.template as usize].kind == kind)
                .collect();
            KindReport {
                kind,
                label: kind.label(),
                sent: of_kind.len() as u64,
                errors: of_kind.iter().filter(|s| s.failure.is_some()).count() as u64,
                latency: Latency::of(of_kind.iter().filter_map(|s| micros(s)).collect()),
            }
        })
        .collect();
    Report {
        target_rate: opts.rate,
        duration_s: opts.duration.as_secs_f64(),
        connections: opts.connections,
        server: addr.to_string(),
        sent: total,
        completed,
        errors,
        failures,
        error_examples: messages,
        achieved_rate: if elapsed > 0.0 {
            completed as f64 / elapsed
        } else {
            0.0
        },
        latency,
        pacer_lag_max_ms: pacer_lag.as_secs_f64() * 1000.0,
        per_kind,
        goal_p99_ms: GOAL_P99_MS,
        goal_met: errors == 0 && completed > 0 && latency.p99_ms < GOAL_P99_MS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_covers_every_kind_and_the_pod_is_defaulted() {
        let w = workload().unwrap();
        for kind in Kind::ALL {
            assert!(w.templates.iter().any(|t| t.kind == kind), "{kind:?}");
        }
        let pods = w.templates.iter().filter(|t| t.kind == Kind::PodMutate);
        assert!(pods.clone().all(|t| t.expected.patched));
        assert_eq!(pods.count() * 2, w.templates.len());
        // The body is a review with the uid spliced in.
        let body = w.templates[1].body(&uid(7));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["request"]["uid"], uid(7));
        assert_eq!(v["kind"], "AdmissionReview");
    }

    #[test]
    fn answers_are_checked() {
        let ok = Expected {
            allowed: true,
            patched: false,
        };
        let answer = |uid: &str, extra: Value| {
            let mut r = json!({"uid": uid, "allowed": true});
            if let Some(m) = extra.as_object() {
                for (k, v) in m {
                    r[k] = v.clone();
                }
            }
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": r})
                .to_string()
                .into_bytes()
        };
        assert_eq!(
            check_response(200, &answer("a", json!({})), "a", ok),
            Ok(())
        );
        let failure = |status, body: &[u8], expected| {
            check_response(status, body, "a", expected).unwrap_err().0
        };
        assert_eq!(
            failure(200, &answer("b", json!({})), ok),
            Failure::UidMismatch
        );
        assert_eq!(failure(500, b"boom", ok), Failure::Status);
        assert_eq!(failure(200, b"{}", ok), Failure::Malformed);
        assert_eq!(
            failure(200, &answer("a", json!({"patch": "W10="})), ok),
            Failure::Malformed
        );
        let patched = answer("a", json!({"patchType": "JSONPatch", "patch": "W10="}));
        assert_eq!(failure(200, &patched, ok), Failure::WrongDecision);
        assert_eq!(
            check_response(
                200,
                &patched,
                "a",
                Expected {
                    allowed: true,
                    patched: true
                }
            ),
            Ok(())
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latency::of((1..=100).map(|i| i * 1000).collect());
        assert_eq!(
            (l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Latency::of(vec![]), Latency::default());
        assert_eq!(Latency::of(vec![1500]).p99_ms, 1.5);
    }
}

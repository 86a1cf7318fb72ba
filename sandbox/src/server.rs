//! HTTPS serving and routing: TLS on loopback, authentication ([`crate::authn`]) and RBAC
//! ([`crate::access`]) of every request, Kubernetes URL parsing
//! (`/api/v1/namespaces/<ns>/<resource>/<name>/<subresource>`), body decoding and limits, and
//! the mapping of HTTP verbs onto [`Api`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::access::{Access, AccessControl};
use crate::admission;
use crate::api::{Api, DeleteOptions, Propagation, Sub};
use crate::authn::Authenticator;
use crate::discovery;
use crate::errors::{ApiError, SandboxError};
use crate::kubeconfig;
use crate::object::{name, new_token, parse_rv};
use crate::openapi;
use crate::patch::PatchType;
use crate::rbac::{RequestAttributes, UserInfo};
use crate::registry::{GroupResource, ResourceType};
use crate::scale;
use crate::selectors::{FieldSelector, LabelSelector, Selectors};
use crate::store::StoreLimits;
use crate::table;
use crate::tls;
use crate::validation::{FieldValidation, WriteChecks};
use crate::watch::{self as watching, WatchFrom, WatchRequest};

/// The real server's request body limit (3 MiB); larger bodies get 413.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How a sandbox is started.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where the kubeconfig is written (parent directories are created).
    pub kubeconfig_path: PathBuf,
    /// Listen address; port 0 picks a free one.
    pub bind: SocketAddr,
    /// YAML streams whose CustomResourceDefinitions are installed before serving.
    pub crds_yaml: Vec<String>,
    pub limits: StoreLimits,
    /// Period of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Watch duration when the client gives no `timeoutSeconds` (the real server picks
    /// 30–60 min).
    pub default_watch_timeout: Duration,
    /// The admin's bearer token (a `system:masters` member, as in the kubeconfig); generated
    /// when `None`.
    pub token: Option<String>,
    /// Keep every distinct request of non-admin users ([`SandboxHandle::recorded_requests`]),
    /// for tests that replay them against other roles. Off by default: the record only grows.
    pub record_requests: bool,
    /// Run the workload controllers, the scheduler and the simulated kubelet
    /// ([`crate::controllers`]); off, pods stay as clients leave them.
    pub controllers: bool,
}

impl SandboxConfig {
    pub fn new(kubeconfig_path: impl Into<PathBuf>) -> Self {
        Self {
            kubeconfig_path: kubeconfig_path.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            crds_yaml: Vec::new(),
            limits: StoreLimits::default(),
            bookmark_interval: Duration::from_secs(10),
            default_watch_timeout: Duration::from_secs(1800),
            token: None,
            record_requests: false,
            controllers: true,
        }
    }
}

/// The entry point.
pub struct Sandbox;

/// A running sandbox. Dropping it stops the server (as does [`SandboxHandle::shutdown`]).
pub struct SandboxHandle {
    url: String,
    kubeconfig_path: PathBuf,
    token: String,
    ca_pem: String,
    api: Arc<Api>,
    authn: Arc<Authenticator>,
    access: Arc<AccessControl>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    controllers: Option<JoinHandle<()>>,
}

impl SandboxHandle {
    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn kubeconfig_path(&self) -> &std::path::Path {
        &self.kubeconfig_path
    }
    pub fn token(&self) -> &str {
        &self.token
    }
    /// PEM of the CA that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
    /// In-process access to the API.
    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    /// A bearer token for ServiceAccount `namespace/name` (which must exist), valid for an
    /// hour, as `kubectl create token` gets one.
    pub fn issue_service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, ApiError> {
        service_account_token(&self.api, &self.authn, namespace, name, TOKEN_TTL)
            .map(|(token, _)| token)
    }

    /// RBAC decisions and their record.
    pub fn access(&self) -> &AccessControl {
        &self.access
    }

    /// Every request RBAC denied so far, oldest first.
    pub fn denials(&self) -> Vec<Access> {
        self.access.denials()
    }

    /// The distinct requests of non-admin users so far ([`SandboxConfig::record_requests`]).
    pub fn recorded_requests(&self) -> Vec<Access> {
        self.access.requests()
    }

    /// Stop serving: watches end, connections close, and this waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(task) = self.controllers.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

struct AppState {
    api: Arc<Api>,
    authn: Arc<Authenticator>,
    access: Arc<AccessControl>,
    server_address: String,
    bookmark_interval: Duration,
    default_watch_timeout: Duration,
    shutdown: watch::Receiver<bool>,
}

impl Sandbox {
    pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
        let api = Arc::new(Api::new(config.limits));
        api.bootstrap()
            .map_err(|e| SandboxError::Preload(e.message))?;
        for yaml in &config.crds_yaml {
            api.install_crds_yaml(yaml)
                .map_err(|e| SandboxError::Preload(e.message))?;
        }
        let cert = tls::generate()?;
        let tcp = TcpListener::bind(config.bind)
            .await
            .map_err(|source| SandboxError::Bind {
                addr: config.bind,
                source,
            })?;
        let local = tcp.local_addr().map_err(|source| SandboxError::Bind {
            addr: config.bind,
            source,
        })?;
        let url = format!("https://{local}");
        let token = match config.token.clone() {
            Some(t) => t,
            None => new_token().map_err(|e| SandboxError::Random(e.message))?,
        };
        kubeconfig::write(
            &config.kubeconfig_path,
            &kubeconfig::render(&url, &cert.ca_pem, &token),
        )?;

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let authn = Arc::new(Authenticator::new(token.clone()));
        let access = Arc::new(AccessControl::new(api.clone(), config.record_requests));
        let state = Arc::new(AppState {
            api: api.clone(),
            authn: authn.clone(),
            access: access.clone(),
            server_address: local.to_string(),
            bookmark_interval: config.bookmark_interval,
            default_watch_timeout: config.default_watch_timeout,
            shutdown: shutdown_rx.clone(),
        });
        let controllers = if config.controllers {
            crate::controllers::spawn(api.clone(), shutdown_rx.clone())
        } else {
            None
        };
        let router = Router::new().fallback(handle).with_state(state);
        let listener = tls_listener(
            tcp,
            TlsAcceptor::from(cert.server_config),
            shutdown_rx.clone(),
        );
        let mut stop = shutdown_rx;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "sandbox server stopped");
            }
        });
        tracing::info!(%url, kubeconfig = %config.kubeconfig_path.display(), "sandbox API server listening");
        Ok(SandboxHandle {
            url,
            kubeconfig_path: config.kubeconfig_path,
            token,
            ca_pem: cert.ca_pem,
            api,
            authn,
            access,
            shutdown: shutdown_tx,
            task: Some(task),
            controllers,
        })
    }
}

/// TLS handshakes happen off the accept path (a slow client must not stall others); finished
/// streams are handed to axum through a channel.
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop ended (shutdown): no more connections, ever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

fn tls_listener(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    mut shutdown: watch::Receiver<bool>,
) -> TlsListener {
    let local = tcp
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                accepted = tcp.accept() => accepted,
            };
            match accepted {
                Ok((stream, addr)) => {
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                        match handshake.await {
                            Ok(Ok(tls)) => {
                                let _ = tx.send((tls, addr)).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%addr, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    TlsListener { rx, local }
}

pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

fn object_response(code: StatusCode, rt: &ResourceType, obj: &Arc<Value>) -> Response {
    json_response(code, &Api::at_version(rt, obj))
}

/// A `<Kind>List`, serialised item by item (no deep copy of the stored objects).
fn list_response(rt: &ResourceType, items: &[Arc<Value>], rv: u64) -> Response {
    let mut buf = Vec::with_capacity(64 + items.len() * 512);
    let header = json!({
        "kind": rt.list_kind(),
        "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
    })
    .to_string();
    // `{...}` → `{..., "items": [` followed by the items and `]}`.
    buf.extend_from_slice(&header.as_bytes()[..header.len().saturating_sub(1)]);
    buf.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let _ = serde_json::to_writer(&mut buf, &*Api::at_version(rt, item));
    }
    buf.extend_from_slice(b"]}");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        buf,
    )
        .into_response()
}

fn success_status(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

async fn handle(State(app): State<Arc<AppState>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let response = match route(&app, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::debug!(%method, %uri, status = response.status().as_u16(), "request");
    response
}

async fn route(app: &Arc<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let public = matches!(
        segs.as_slice(),
        ["healthz" | "livez" | "readyz" | "version"]
    );
    let user = app
        .authn
        .authenticate(parts.headers.get(header::AUTHORIZATION), public)?;
    let user = match user {
        Some(u) => Some(app.access.impersonate(u, &parts.headers)?),
        None if parts.headers.contains_key("Impersonate-User") => {
            return Err(ApiError::unauthorized());
        }
        None => None,
    };
    let query: HashMap<String, String> =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let get = parts.method == Method::GET;
    let registry = &app.api.registry;
    let found = |v: Option<Value>| {
        v.map(|v| json_response(StatusCode::OK, &v))
            .ok_or_else(ApiError::no_route)
    };
    match segs.as_slice() {
        ["healthz" | "livez" | "readyz"] if get => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "ok",
        )
            .into_response()),
        ["version"] if get => Ok(json_response(StatusCode::OK, &discovery::version_info())),
        ["api"] if get => Ok(json_response(
            StatusCode::OK,
            &discovery::api_versions(&app.server_address),
        )),
        ["apis"] if get => Ok(json_response(
            StatusCode::OK,
            &discovery::api_group_list(registry),
        )),
        ["openapi", "v3"] if get => Ok(json_response(StatusCode::OK, &openapi::index(registry))),
        ["openapi", "v3", "api", v] if get => found(openapi::document(registry, "", v)),
        ["openapi", "v3", "apis", g, v] if get => found(openapi::document(registry, g, v)),
        ["api", "v1"] if get => found(discovery::resource_list(registry, "", "v1")),
        ["apis", g] if get => found(discovery::api_group(registry, g)),
        ["apis", g, v] if get => found(discovery::resource_list(registry, g, v)),
        ["healthz" | "livez" | "readyz" | "version" | "api" | "apis"]
        | ["api", "v1"]
        | ["apis", _]
        | ["apis", _, _] => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} {path})",
            parts.method
        ))),
        ["api", "v1", rest @ ..] | ["apis", _, _, rest @ ..] => {
            // The core group is `/api/v1`; every other group `/apis/<group>/<version>`.
            let (group, version) = match segs.as_slice() {
                ["apis", g, v, ..] => (*g, *v),
                _ => ("", "v1"),
            };
            resource(
                app,
                user.as_ref(),
                &parts.method,
                &parts.headers,
                body,
                &query,
                group,
                version,
                rest,
            )
            .await
        }
        _ => Err(ApiError::no_route()),
    }
}

/// `POST` of an access review: answered at once, never stored. Every authenticated user may ask
/// about themselves (the real server's `system:basic-user` role); asking about others is
/// authorized like any create.
async fn review(
    app: &Arc<AppState>,
    user: &UserInfo,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    target: &Target,
) -> Result<Response, ApiError> {
    let rt = &target.rt;
    if *method != Method::POST || target.name.is_some() {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            rt.gr()
        )));
    }
    if rt.namespaced && target.namespace.is_none() {
        return Err(ApiError::no_route());
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    if !rt.kind.starts_with("Self") {
        app.access.authorize(
            user,
            &RequestAttributes {
                verb: "create".into(),
                group: rt.group.clone(),
                resource: rt.plural.clone(),
                subresource: String::new(),
                namespace: namespace.clone(),
                name: String::new(),
            },
        )?;
    }
    let object = decode_object(headers, &read_body(headers, body).await?, &rt.kind)?;
    let answered = crate::reviews::answer(&app.access, rt, user, &namespace, object)?;
    Ok(json_response(StatusCode::CREATED, &answered))
}

/// A parsed resource URL.
struct Target {
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(
    app: &AppState,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target, ApiError> {
    let lookup = |plural: &str| {
        app.api
            .registry
            .lookup(group, version, plural)
            .ok_or_else(ApiError::no_route)
    };
    let build = |rt: Arc<ResourceType>, namespace: Option<String>, tail: &[&str]| {
        if tail.len() > 2 {
            return Err(ApiError::no_route());
        }
        Ok(Target {
            rt,
            namespace,
            name: tail.first().map(|s| s.to_string()),
            sub: tail.get(1).map(|s| s.to_string()),
        })
    };
    match rest {
        // `/api/v1/namespaces/<ns>/status|finalize` is the namespace's own subresource.
        ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => {
            build(lookup("namespaces")?, None, &[ns, sub])
        }
        ["namespaces", ns, plural, tail @ ..] => {
            let rt = lookup(plural)?;
            if !rt.namespaced {
                return Err(ApiError::no_route());
            }
            build(rt, Some(ns.to_string()), tail)
        }
        [plural, tail @ ..] => {
            let rt = lookup(plural)?;
            if rt.namespaced && !tail.is_empty() {
                return Err(ApiError::no_route());
            }
            build(rt, None, tail)
        }
        [] => Err(ApiError::no_route()),
    }
}

/// How long a token lives when the request does not say (`kubectl create token`'s default).
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The shortest token lifetime the real server issues.
const TOKEN_MIN_TTL: Duration = Duration::from_secs(600);

/// A token for an existing ServiceAccount, and when it expires.
fn service_account_token(
    api: &Api,
    authn: &Authenticator,
    namespace: &str,
    name: &str,
    ttl: Duration,
) -> Result<(String, jiff::Timestamp), ApiError> {
    let rt = api
        .registry
        .lookup("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts are not served"))?;
    api.get(&rt, namespace, name)?;
    authn.issue(namespace, name, ttl)
}

/// `POST .../serviceaccounts/<name>/token`: the TokenRequest with `status.token` filled in.
fn token_request(
    app: &AppState,
    namespace: &str,
    name: &str,
    request: &Value,
) -> Result<Response, ApiError> {
    let mut spec = match request.get("spec") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(spec)) => spec.clone(),
        Some(_) => return Err(ApiError::bad_request("spec: must be an object")),
    };
    let ttl = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => TOKEN_TTL,
        Some(v) => v
            .as_u64()
            .map(Duration::from_secs)
            .filter(|d| *d >= TOKEN_MIN_TTL)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "spec.expirationSeconds: may not specify a duration less than 10 minutes",
                )
            })?,
    };
    let (token, expires) = service_account_token(&app.api, &app.authn, namespace, name, ttl)?;
    spec.insert("expirationSeconds".into(), json!(ttl.as_secs()));
    // No audiences: the API server's own, as the real server fills in.
    if spec
        .get("audiences")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec.insert(
            "audiences".into(),
            json!(["https://kubernetes.default.svc.cluster.local"]),
        );
    }
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
            "spec": spec,
            "status": {
                "token": token,
                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            },
        }),
    ))
}

/// Read a body, at most [`MAX_BODY`] bytes (413 beyond).
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(ApiError::too_large(MAX_BODY));
    }
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::too_large(MAX_BODY))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A YAML document as JSON.
pub fn decode_yaml(body: &[u8]) -> Result<Value, ApiError> {
    serde_saphyr::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("yaml parse error: {e}")))
}

/// Decode a JSON, YAML or Kubernetes protobuf object body; other media types → 415.
fn decode_object(headers: &HeaderMap, body: &[u8], kind: &str) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    let value = match ct.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; json parse error: {e}"
            ))
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body)?,
        crate::protobuf::MEDIA_TYPE => crate::protobuf::decode_body(body)?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {kind})"
        )));
    }
    Ok(value)
}

/// The write directives of a request; admission reviews name `user` as its author.
fn write_checks(
    query: &HashMap<String, String>,
    method: &Method,
    user: &UserInfo,
) -> Result<WriteChecks, ApiError> {
    Ok(WriteChecks {
        field_validation: FieldValidation::parse(query.get("fieldValidation").map(String::as_str))?,
        warnings: Vec::new(),
        dry_run: dry_run(query, method)?,
        field_manager: query.get("fieldManager").cloned(),
        user: Some(user.to_admission()),
    })
}

/// `?dryRun=All` (the only value the real server accepts).
fn dry_run(query: &HashMap<String, String>, method: &Method) -> Result<bool, ApiError> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => {
            let kind = match *method {
                Method::POST => "CreateOptions",
                Method::DELETE => "DeleteOptions",
                Method::PATCH => "PatchOptions",
                _ => "UpdateOptions",
            };
            Err(ApiError::invalid(
                kind,
                &GroupResource {
                    group: "meta.k8s.io".into(),
                    resource: kind.to_lowercase(),
                },
                "",
                vec![(
                    "dryRun".into(),
                    "FieldValueNotSupported",
                    format!("Unsupported value: []string{{{other:?}}}: supported values: \"All\""),
                )],
            ))
        }
    }
}

/// Warnings as the real server sends them: `Warning: 299 - "<text>"`, one header each, which
/// kubectl prints as `Warning: <text>`.
fn warned(mut response: Response, checks: &WriteChecks) -> Response {
    for w in &checks.warnings {
        let quoted = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = header::HeaderValue::from_str(&format!("299 - \"{quoted}\"")) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    response
}

/// A write's response, with its warnings whether it succeeded or not (webhooks warn on
/// denials too).
fn answer<T>(
    result: Result<T, ApiError>,
    checks: &WriteChecks,
    ok: impl FnOnce(&T) -> Response,
) -> Response {
    let response = match &result {
        Ok(value) => ok(value),
        Err(e) => e.clone().into_response(),
    };
    warned(response, checks)
}

/// `Some(includeObject)` when the client asked for a Table (kubectl get).
fn table_request(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<String> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    table::wants_table(accept).then(|| {
        query
            .get("includeObject")
            .cloned()
            .unwrap_or_else(|| "Metadata".into())
    })
}

fn flag(query: &HashMap<String, String>, key: &str) -> bool {
    query
        .get(key)
        .is_some_and(|v| matches!(v.as_str(), "true" | "1"))
}

fn selectors(rt: &ResourceType, query: &HashMap<String, String>) -> Result<Selectors, ApiError> {
    Ok(Selectors {
        labels: LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(
            query.get("fieldSelector").map_or("", String::as_str),
            &rt.field_selectors,
        )?,
    })
}

/// DeleteOptions from the query and the (optional) JSON or protobuf body (kubectl drain
/// deletes pods with a protobuf one).
fn delete_options(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else if content_type(headers) == crate::protobuf::MEDIA_TYPE {
        crate::protobuf::decode_body(body)?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let policy = query
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| body.get("propagationPolicy").and_then(Value::as_str));
    let orphan = query
        .get("orphanDependents")
        .map(|v| v == "true")
        .or_else(|| body.get("orphanDependents").and_then(Value::as_bool));
    let propagation = match (policy, orphan) {
        (Some("Orphan"), _) | (None, Some(true)) => Propagation::Orphan,
        (Some("Foreground"), _) => Propagation::Foreground,
        (Some("Background") | None, _) => Propagation::Background,
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "invalid propagationPolicy {other:?}: must be Orphan, Background or Foreground"
            )));
        }
    };
    let pre = body.get("preconditions");
    Ok(DeleteOptions {
        propagation,
        precondition_uid: pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: parse_rv(
            pre.and_then(|p| p.get("resourceVersion"))
                .and_then(Value::as_str)
                .unwrap_or(""),
        )?,
    })
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    app: &Arc<AppState>,
    user: Option<&UserInfo>,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    query: &HashMap<String, String>,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let target = parse_target(app, group, version, rest)?;
    // Resource paths are never public: authentication gave a user.
    let user = user.ok_or_else(ApiError::unauthorized)?;
    if target.rt.create_only() {
        return review(app, user, method, headers, body, &target).await;
    }
    app.access.authorize(
        user,
        &RequestAttributes::of(
            method,
            &target.rt.group,
            &target.rt.plural,
            target.sub.as_deref(),
            target.namespace.as_deref(),
            target.name.as_deref(),
            query,
        ),
    )?;
    let rt = target.rt.clone();
    let api = &app.api;
    let ns = target.namespace.clone().unwrap_or_default();
    let body = if matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        read_body(headers, body).await?
    } else {
        Vec::new()
    };
    let sub = match target.sub.as_deref() {
        None => None,
        Some("status") if rt.status => Some(Sub::Status),
        Some("status") => return Err(ApiError::no_route()),
        Some(s) if rt.subresources.iter().any(|x| x.name == s) => None,
        Some("finalize") if rt.plural == "namespaces" => None,
        Some(_) => return Err(ApiError::no_route()),
    };
    let named_sub = target.sub.as_deref().filter(|s| *s != "status");

    match (method.clone(), target.name.as_deref(), named_sub) {
        (Method::GET, None, None) => {
            let sel = selectors(&rt, query)?;
            let ns_filter = target.namespace.clone();
            if flag(query, "watch") {
                let from = match query.get("resourceVersion").map(String::as_str) {
                    None | Some("") | Some("0") => WatchFrom::Now,
                    Some(rv) => WatchFrom::After(parse_rv(rv)?.unwrap_or(0)),
                };
                let timeout = query
                    .get("timeoutSeconds")
                    .and_then(|t| t.parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(app.default_watch_timeout);
                let req = WatchRequest {
                    rt,
                    namespace: ns_filter,
                    selectors: sel,
                    from,
                    allow_bookmarks: flag(query, "allowWatchBookmarks"),
                    send_initial_events: flag(query, "sendInitialEvents"),
                    timeout,
                    bookmark_interval: app.bookmark_interval,
                };
                let stream = watching::start(api.clone(), req, app.shutdown.clone());
                return Ok((
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    stream,
                )
                    .into_response());
            }
            // `limit`/`continue` are accepted; everything comes back in one page.
            let (items, rv) = api.list(&rt, ns_filter.as_deref(), &sel);
            if let Some(include) = table_request(headers, query) {
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(&rt, &items, rv, &include),
                ));
            }
            Ok(list_response(&rt, &items, rv))
        }
        (Method::GET, Some(n), None) => {
            let obj = api.get(&rt, &ns, n)?;
            if let Some(include) = table_request(headers, query) {
                let rv = parse_rv(crate::object::resource_version(&obj))?.unwrap_or(0);
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(&rt, &[obj], rv, &include),
                ));
            }
            Ok(object_response(StatusCode::OK, &rt, &obj))
        }
        (Method::POST, None, None) => {
            if rt.namespaced && target.namespace.is_none() {
                return Err(ApiError::no_route());
            }
            let obj = decode_object(headers, &body, &rt.kind)?;
            let mut checks = write_checks(query, method, user)?;
            let created = api.create_admitted(&rt, &ns, obj, &mut checks).await;
            Ok(answer(created, &checks, |c| {
                object_response(StatusCode::CREATED, &rt, c)
            }))
        }
        (Method::POST, Some(n), Some(sub @ ("binding" | "eviction"))) => {
            let kind = if sub == "binding" {
                ("", "v1", "Binding")
            } else {
                ("policy", "v1", "Eviction")
            };
            let mut object = decode_object(headers, &body, kind.2)?;
            let mut checks = write_checks(query, method, user)?;
            if checks.dry_run {
                return Err(ApiError::bad_request(format!(
                    "dryRun is not supported by the sandbox for pods/{sub}"
                )));
            }
            let mut attrs = admission::Attributes::of(
                &rt,
                sub,
                admission::Operation::Create,
                &ns,
                n,
                false,
                checks.field_manager.as_deref(),
                user.to_admission(),
            );
            attrs.kind = (kind.0.into(), kind.1.into(), kind.2.into());
            let result = async {
                admission::review_subresource(api, &attrs, &mut object, &mut checks.warnings)
                    .await?;
                if sub == "binding" {
                    api.bind_pod(&rt, &ns, n, &object)
                } else {
                    crate::eviction::evict(api, &rt, &ns, n, &object)
                }
            }
            .await;
            Ok(answer(result, &checks, |_| {
                json_response(StatusCode::CREATED, &success_status(201))
            }))
        }
        (Method::POST, Some(n), Some("token")) if rt.group.is_empty() => {
            let request = decode_object(headers, &body, "TokenRequest")?;
            token_request(app, &ns, n, &request)
        }
        (Method::GET, Some(n), Some("scale")) => Ok(json_response(
            StatusCode::OK,
            &scale::scale_of(&*api.get(&rt, &ns, n)?),
        )),
        (Method::PUT | Method::PATCH, Some(n), Some("scale")) => {
            let mut checks = write_checks(query, method, user)?;
            let how = if *method == Method::PUT {
                scale::ScaleWrite::Replace(decode_object(headers, &body, "Scale")?)
            } else {
                let ct = content_type(headers);
                let kind = PatchType::from_content_type(&ct)
                    .ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
                scale::ScaleWrite::Patch(kind, &body)
            };
            let written = scale::write(api, &rt, &ns, n, how, &mut checks).await;
            Ok(answer(written, &checks, |s| {
                json_response(StatusCode::OK, s)
            }))
        }
        (Method::PUT, Some(n), None) => {
            let obj = decode_object(headers, &body, &rt.kind)?;
            let mut checks = write_checks(query, method, user)?;
            let stored = api
                .update_admitted(&rt, &ns, n, obj, sub.unwrap_or(Sub::Main), &mut checks)
                .await;
            Ok(answer(stored, &checks, |s| {
                object_response(StatusCode::OK, &rt, s)
            }))
        }
        (Method::PATCH, Some(n), None) => {
            let ct = content_type(headers);
            let kind = PatchType::from_content_type(&ct)
                .ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
            let mut checks = write_checks(query, method, user)?;
            let patched = api
                .patch_admitted(
                    &rt,
                    &ns,
                    n,
                    kind,
                    &body,
                    sub.unwrap_or(Sub::Main),
                    query.get("fieldManager").map(String::as_str),
                    &mut checks,
                )
                .await;
            Ok(answer(patched, &checks, |(stored, created)| {
                let code = if *created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                object_response(code, &rt, stored)
            }))
        }
        (Method::DELETE, Some(n), None) if sub.is_none() => {
            let opts = delete_options(headers, query, &body)?;
            let mut checks = write_checks(query, method, user)?;
            let deleted = api.delete_admitted(&rt, &ns, n, &opts, &mut checks).await;
            Ok(answer(deleted, &checks, |(obj, gone)| {
                let code = if *gone {
                    StatusCode::OK
                } else {
                    StatusCode::ACCEPTED
                };
                object_response(code, &rt, obj)
            }))
        }
        (Method::DELETE, None, None) => {
            let opts = delete_options(headers, query, &body)?;
            let mut checks = write_checks(query, method, user)?;
            let sel = selectors(&rt, query)?;
            let (items, _) = api.list(&rt, target.namespace.as_deref(), &sel);
            let mut deleted = Vec::with_capacity(items.len());
            for item in &items {
                let ns = crate::object::namespace(item);
                match api
                    .delete_admitted(&rt, ns, name(item), &opts, &mut checks)
                    .await
                {
                    Ok((obj, _)) => deleted.push(obj),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Ok(warned(e.into_response(), &checks)),
                }
            }
            Ok(warned(
                list_response(&rt, &deleted, api.store.current_rv()),
                &checks,
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            rt.gr()
        ))),
    }
}

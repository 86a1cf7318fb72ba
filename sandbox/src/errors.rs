//! Every failure the API server reports is a `meta.k8s.io` `Status` object, worded as the real
//! kube-apiserver words it: kubectl prints `reason` and `message` verbatim and kube-rs matches on
//! `code`, so the exact shape matters more than the prose.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::registry::GroupResource;

/// A Kubernetes API error: HTTP code, machine `reason`, human `message`, optional `details`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    /// Static for the server's own errors; owned when a webhook's Status supplies it.
    pub reason: Cow<'static, str>,
    pub message: String,
    /// Boxed: keeps `Result<_, ApiError>` small on the hot path.
    pub details: Option<Box<Details>>,
}

/// `Status.details`: which object the error is about. `kind` is the resource (plural) for
/// errors about an object, as the real server fills it.
#[derive(Debug, Clone, PartialEq)]
pub struct Details {
    pub name: String,
    pub group: String,
    pub kind: String,
    pub causes: Vec<Cause>,
}

/// One `Status.details.causes` entry (422 Invalid lists one per bad field).
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

impl ApiError {
    pub fn new(
        code: u16,
        reason: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
        }
    }

    fn about(mut self, gr: &GroupResource, name: &str) -> Self {
        self.details = Some(Box::new(Details {
            name: name.to_string(),
            group: gr.group.clone(),
            kind: gr.resource.clone(),
            causes: Vec::new(),
        }));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403: the authorizer said no; `name` is empty for collection requests.
    pub fn forbidden(gr: &GroupResource, name: &str, message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message).about(gr, name)
    }

    /// The generic 404 for a path that names no served resource.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{gr} \"{name}\" not found")).about(gr, name)
    }

    pub fn method_not_allowed(what: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", what)
    }

    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{gr} \"{name}\" already exists"),
        )
        .about(gr, name)
    }

    /// Optimistic-concurrency failure: the message is the real server's, word for word.
    pub fn conflict(gr: &GroupResource, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {gr} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
        .about(gr, name)
    }

    /// A 409 with a custom message (failed preconditions, already-bound pods).
    pub fn conflict_msg(gr: &GroupResource, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {gr} \"{name}\": {why}"),
        )
        .about(gr, name)
    }

    /// 410 Gone for a watch or list from a resourceVersion older than the kept history.
    pub fn gone(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}) - accepted media \
                 types include: application/json, application/yaml, \
                 application/vnd.kubernetes.protobuf"
            ),
        )
    }

    /// 422 Invalid with one cause per field, phrased `<kind> "<name>" is invalid: <field>: <msg>`;
    /// each cause is (field path, machine reason such as `FieldValueRequired`, message such as
    /// `Required value: name or generateName is required`).
    pub fn invalid(
        kind: &str,
        gr: &GroupResource,
        name: &str,
        causes: Vec<(String, &'static str, String)>,
    ) -> Self {
        let joined: Vec<String> = causes
            .iter()
            .map(|(field, _, msg)| format!("{field}: {msg}"))
            .collect();
        let message = if joined.len() == 1 {
            format!("{kind} \"{name}\" is invalid: {}", joined.join(", "))
        } else {
            format!("{kind} \"{name}\" is invalid: [{}]", joined.join(", "))
        };
        let mut err = Self::new(422, "Invalid", message).about(gr, name);
        if let Some(d) = err.details.as_mut() {
            d.kind = kind.to_string();
            d.causes = causes
                .into_iter()
                .map(|(field, reason, message)| Cause {
                    reason,
                    message,
                    field,
                })
                .collect();
        }
        err
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The Status object body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        // `reason` is omitempty in metav1.Status (webhook denials may leave it empty).
        if !self.reason.is_empty() {
            status["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            let mut details = json!({ "name": d.name, "kind": d.kind });
            if !d.group.is_empty() {
                details["group"] = json!(d.group);
            }
            if !d.causes.is_empty() {
                details["causes"] = d
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
            }
            status["details"] = details;
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        crate::server::json_response(code, &self.to_status())
    }
}

/// Errors starting the sandbox (as opposed to answering a request).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("generating the serving certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("configuring TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("writing the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading randomness: {0}")]
    Random(String),
    #[error("preloading CRDs: {0}")]
    Preload(String),
}

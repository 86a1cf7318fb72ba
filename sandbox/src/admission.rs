//! The admission chain, as kube-apiserver runs it for every create, update (patches included)
//! and delete: after defaulting, the matching webhooks of the MutatingWebhookConfigurations
//! (ordered by configuration name, then as listed) are called one by one and their JSON
//! patches applied; then, on the final object, the matching ValidatingWebhookConfigurations'
//! webhooks are called (concurrently, as the real server does) and any denial rejects the
//! write.
//!
//! Matching follows the real server: `rules` (operations, apiGroups, apiVersions, resources
//! with `*`, `pods/*` and `*/*`, scope), `namespaceSelector` (the namespace's labels; a
//! Namespace is matched by its own labels; other cluster-scoped objects always match) and
//! `objectSelector` (labels of the object or of the old object). `failurePolicy: Ignore` lets
//! a request through when the call fails, `Fail` (the default) rejects it with `failed calling
//! webhook`. On dry-run requests, webhooks that may have side effects are not called and the
//! request is rejected. Webhook configurations themselves are never reviewed, so a broken
//! webhook can always be removed.
//!
//! Not implemented: `matchConditions` (CEL), `reinvocationPolicy: IfNeeded`, `matchPolicy`
//! (requests are only matched at their own group/version), audit annotations.
//!
//! No store lock is held while a webhook is called: configurations and namespace labels are
//! read (and the locks released) before any call goes out.

use std::time::Duration;

use base64::Engine;
use futures_util::future::join_all;
use serde_json::{Map, Value, json};

use crate::api::Api;
use crate::errors::ApiError;
use crate::object::{labels, new_uid};
use crate::registry::{GroupResource, ResourceType};
use crate::selectors::matches_label_selector;
use crate::webhook_client::{CallError, Endpoint, WebhookClient};

/// The real server's default and maximum `timeoutSeconds`.
const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
const MAX_TIMEOUT_SECONDS: u64 = 30;

/// `admission.Operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }

    /// The `options` object kind the review carries for this operation.
    fn options_kind(self) -> &'static str {
        match self {
            Self::Create => "CreateOptions",
            Self::Update => "UpdateOptions",
            Self::Delete => "DeleteOptions",
        }
    }
}

/// The admin token's user as admission reviews name it.
pub fn admin_user() -> Value {
    crate::authn::admin().to_admission()
}

/// The user a built-in controller acts as (`system:serviceaccount:kube-system:<name>`).
pub fn controller_user(controller: &str) -> Value {
    json!({
        "username": format!("system:serviceaccount:kube-system:{controller}"),
        "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
    })
}

/// A request as webhooks see it; the object (and old object) travel separately.
#[derive(Debug, Clone)]
pub struct Attributes {
    /// group, version, resource (plural).
    pub resource: (String, String, String),
    /// "" for the main resource.
    pub subresource: String,
    /// group, version, kind of the object (for subresources such as `pods/eviction` not the
    /// resource's kind).
    pub kind: (String, String, String),
    pub operation: Operation,
    /// "" for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    pub dry_run: bool,
    pub options: Value,
    pub user: Value,
}

impl Attributes {
    /// A write of `rt` (or its `subresource`) itself.
    #[allow(clippy::too_many_arguments)]
    pub fn of(
        rt: &ResourceType,
        subresource: &str,
        operation: Operation,
        namespace: &str,
        name: &str,
        dry_run: bool,
        field_manager: Option<&str>,
        user: Value,
    ) -> Self {
        let mut options = json!({"kind": operation.options_kind(), "apiVersion": "meta.k8s.io/v1"});
        if dry_run {
            options["dryRun"] = json!(["All"]);
        }
        if let Some(fm) = field_manager.filter(|f| !f.is_empty())
            && operation != Operation::Delete
        {
            options["fieldManager"] = json!(fm);
        }
        Self {
            resource: (rt.group.clone(), rt.version.clone(), rt.plural.clone()),
            subresource: subresource.to_string(),
            kind: (rt.group.clone(), rt.version.clone(), rt.kind.clone()),
            operation,
            namespace: namespace.to_string(),
            name: name.to_string(),
            dry_run,
            options,
            user,
        }
    }

    fn is_namespace(&self) -> bool {
        self.resource.0.is_empty() && self.resource.2 == "namespaces"
    }
}

/// Which chain a webhook belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    Mutating,
    Validating,
}

impl Chain {
    fn resource(self) -> GroupResource {
        GroupResource {
            group: "admissionregistration.k8s.io".into(),
            resource: match self {
                Self::Mutating => "mutatingwebhookconfigurations".into(),
                Self::Validating => "validatingwebhookconfigurations".into(),
            },
        }
    }
}

/// A webhook's answer, checked.
#[derive(Debug, Default)]
struct Verdict {
    allowed: bool,
    status: Option<Value>,
    patch: Option<Vec<u8>>,
    warnings: Vec<String>,
}

/// The admission chain's state: the HTTPS client and its TLS configurations.
#[derive(Debug, Default)]
pub struct Admission {
    client: WebhookClient,
}

/// Resources no webhook reviews, so that a broken webhook can always be fixed or removed.
fn exempt(attrs: &Attributes) -> bool {
    attrs.resource.0 == "admissionregistration.k8s.io"
        && matches!(
            attrs.resource.2.as_str(),
            "mutatingwebhookconfigurations"
                | "validatingwebhookconfigurations"
                | "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings"
                | "mutatingadmissionpolicies"
                | "mutatingadmissionpolicybindings"
        )
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn listed(list: &[&str], value: &str) -> bool {
    list.iter().any(|x| *x == "*" || *x == value)
}

/// One entry of `rules` against the request (k8s.io/apiserver's `rules.Matcher`).
fn rule_matches(rule: &Value, attrs: &Attributes) -> bool {
    let ops = strings(rule.get("operations"));
    let groups = strings(rule.get("apiGroups"));
    let versions = strings(rule.get("apiVersions"));
    let resources = strings(rule.get("resources"));
    let resource_ok = resources.iter().any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r, ""));
        (res == "*" || res == attrs.resource.2) && (sub == "*" || sub == attrs.subresource)
    });
    let scope_ok = match rule.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => !attrs.is_namespace() && !attrs.namespace.is_empty(),
        Some("Cluster") => attrs.is_namespace() || attrs.namespace.is_empty(),
        _ => true,
    };
    listed(&ops, attrs.operation.as_str())
        && listed(&groups, &attrs.resource.0)
        && listed(&versions, &attrs.resource.1)
        && resource_ok
        && scope_ok
}

fn is_empty_selector(sel: Option<&Value>) -> bool {
    sel.is_none_or(|s| {
        s.get("matchLabels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
            && s.get("matchExpressions")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
    })
}

impl Admission {
    /// The webhooks of one chain, in call order, with the configuration they came from.
    fn webhooks(api: &Api, chain: Chain) -> Vec<Value> {
        // Lists come out sorted by name: the real server's order of configurations.
        let (configs, _) = api.store.list(&chain.resource(), None, |_| true);
        configs
            .iter()
            .filter_map(|c| c.get("webhooks").and_then(Value::as_array))
            .flatten()
            .cloned()
            .collect()
    }

    /// Whether `hook` wants this request; a namespace that cannot be found is a 404, as on the
    /// real server.
    fn wants(
        api: &Api,
        hook: &Value,
        attrs: &Attributes,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<bool, ApiError> {
        let rules = hook.get("rules").and_then(Value::as_array);
        if !rules.is_some_and(|rs| rs.iter().any(|r| rule_matches(r, attrs))) {
            return Ok(false);
        }
        let ns_selector = hook.get("namespaceSelector");
        if !is_empty_selector(ns_selector) {
            let ns_labels: Option<Map<String, Value>> = if attrs.is_namespace() {
                // A Namespace is matched by its own labels.
                object.or(old).and_then(labels).cloned()
            } else if attrs.namespace.is_empty() {
                None
            } else {
                let gr = GroupResource {
                    group: String::new(),
                    resource: "namespaces".into(),
                };
                let ns = api
                    .store
                    .get(&gr, "", &attrs.namespace)
                    .ok_or_else(|| ApiError::not_found(&gr, &attrs.namespace))?;
                Some(labels(&ns).cloned().unwrap_or_default())
            };
            let cluster_scoped = !attrs.is_namespace() && attrs.namespace.is_empty();
            if !cluster_scoped
                && !ns_selector.is_some_and(|s| matches_label_selector(s, ns_labels.as_ref()))
            {
                return Ok(false);
            }
        }
        let obj_selector = hook.get("objectSelector");
        if !is_empty_selector(obj_selector) {
            let selects = |o: Option<&Value>| {
                o.is_some_and(|o| {
                    obj_selector.is_some_and(|s| matches_label_selector(s, labels(o)))
                })
            };
            if !selects(object) && !selects(old) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The matching webhooks of `chain`; on dry-run, 400 if one of them may have side effects.
    fn matching(
        api: &Api,
        chain: Chain,
        attrs: &Attributes,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<Vec<Value>, ApiError> {
        if exempt(attrs) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for hook in Self::webhooks(api, chain) {
            if !Self::wants(api, &hook, attrs, object, old)? {
                continue;
            }
            if attrs.dry_run {
                let side_effects = hook.get("sideEffects").and_then(Value::as_str);
                if !matches!(side_effects, Some("None" | "NoneOnDryRun")) {
                    return Err(ApiError::bad_request(format!(
                        "admission webhook {:?} does not support dry run",
                        hook_name(&hook)
                    )));
                }
            }
            out.push(hook);
        }
        Ok(out)
    }

    /// Run the mutating webhooks, patching `object` in place (absent on DELETE, where patches
    /// have nothing to apply to). Webhook warnings are appended to `warnings`.
    pub async fn mutate(
        &self,
        api: &Api,
        attrs: &Attributes,
        mut object: Option<&mut Value>,
        old: Option<&Value>,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let hooks = Self::matching(api, Chain::Mutating, attrs, object.as_deref(), old)?;
        for hook in hooks {
            // Selectors are re-checked against the object as earlier webhooks left it.
            if !Self::wants(api, &hook, attrs, object.as_deref(), old)? {
                continue;
            }
            let verdict = self
                .call(api, &hook, Chain::Mutating, attrs, object.as_deref(), old)
                .await;
            let Some(verdict) = settle(&hook, verdict)? else {
                continue;
            };
            warnings.extend(verdict.warnings);
            if !verdict.allowed {
                return Err(denied(&hook, verdict.status.as_ref()));
            }
            if let (Some(patch), Some(obj)) = (verdict.patch, object.as_deref_mut()) {
                apply_patch(obj, &patch)?;
            }
        }
        Ok(())
    }

    /// Run the validating webhooks concurrently; the first denial or failure, in webhook order,
    /// rejects the request. Warnings of every webhook are kept.
    pub async fn validate(
        &self,
        api: &Api,
        attrs: &Attributes,
        object: Option<&Value>,
        old: Option<&Value>,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let hooks = Self::matching(api, Chain::Validating, attrs, object, old)?;
        if hooks.is_empty() {
            return Ok(());
        }
        let calls = hooks
            .iter()
            .map(|hook| self.call(api, hook, Chain::Validating, attrs, object, old));
        let verdicts = join_all(calls).await;
        let mut rejection = None;
        for (hook, verdict) in hooks.iter().zip(verdicts) {
            match settle(hook, verdict) {
                Ok(Some(v)) => {
                    warnings.extend(v.warnings);
                    if !v.allowed && rejection.is_none() {
                        rejection = Some(denied(hook, v.status.as_ref()));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if rejection.is_none() {
                        rejection = Some(e);
                    }
                }
            }
        }
        rejection.map_or(Ok(()), Err)
    }

    /// One AdmissionReview round trip.
    async fn call(
        &self,
        api: &Api,
        hook: &Value,
        chain: Chain,
        attrs: &Attributes,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<Verdict, CallError> {
        let timeout = hook
            .get("timeoutSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
            .clamp(1, MAX_TIMEOUT_SECONDS);
        let client_config = hook.get("clientConfig").cloned().unwrap_or(json!({}));
        let endpoint = endpoint(api, &client_config, timeout)?;
        let uid = new_uid().map_err(|e| CallError::Config(e.message))?;
        let review = review(&uid, attrs, object, old);
        let body = serde_json::to_vec(&review)
            .map_err(|e| CallError::Config(format!("encoding the review: {e}")))?;
        let ca_bundle = client_config
            .get("caBundle")
            .and_then(Value::as_str)
            .unwrap_or("");
        let answer = self
            .client
            .post(&endpoint, ca_bundle, body, Duration::from_secs(timeout))
            .await?;
        verdict(&answer, &uid, chain)
    }
}

fn hook_name(hook: &Value) -> &str {
    hook.get("name").and_then(Value::as_str).unwrap_or("")
}

/// A call failure under the webhook's `failurePolicy`: `Ok(None)` to go on without it.
fn settle(hook: &Value, verdict: Result<Verdict, CallError>) -> Result<Option<Verdict>, ApiError> {
    match verdict {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let message = format!("failed calling webhook {:?}: {e}", hook_name(hook));
            if hook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore") {
                tracing::warn!(%message, "webhook failed; ignored per failurePolicy");
                Ok(None)
            } else {
                Err(ApiError::internal(format!(
                    "Internal error occurred: {message}"
                )))
            }
        }
    }
}

/// The real server's rejection (`webhookerrors.ToStatusErr`): the webhook's code if it is an
/// error code (400 otherwise), its reason, and its message behind `admission webhook "<name>"
/// denied the request`.
fn denied(hook: &Value, status: Option<&Value>) -> ApiError {
    let denied_by = format!("admission webhook {:?} denied the request", hook_name(hook));
    let field = |k: &str| {
        status
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (message, reason) = (field("message"), field("reason"));
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(400);
    let text = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    ApiError::new(code, reason, text)
}

/// Apply a webhook's JSON patch; a patch that does not apply is the server's error (500),
/// whatever the failure policy, as on the real server.
fn apply_patch(object: &mut Value, patch: &[u8]) -> Result<(), ApiError> {
    let patch: json_patch::Patch = serde_json::from_slice(patch)
        .map_err(|e| ApiError::internal(format!("Internal error occurred: {e}")))?;
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch)
        .map_err(|e| ApiError::internal(format!("Internal error occurred: {e}")))?;
    *object = patched;
    Ok(())
}

/// Where `clientConfig` points. A `service` is reachable only when it is of type ExternalName
/// (the real server's resolver dials `externalName:port` and still verifies the certificate
/// for `<name>.<namespace>.svc`); the sandbox runs no service proxy for the other kinds.
fn endpoint(api: &Api, client_config: &Value, timeout: u64) -> Result<Endpoint, CallError> {
    if let Some(url) = client_config.get("url").and_then(Value::as_str) {
        let uri: axum::http::Uri = url
            .parse()
            .map_err(|e| CallError::Config(format!("invalid clientConfig.url {url:?}: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(CallError::Config(format!(
                "invalid clientConfig.url {url:?}: the scheme must be https"
            )));
        }
        let host = uri.host().ok_or_else(|| {
            CallError::Config(format!("invalid clientConfig.url {url:?}: no host"))
        })?;
        // `[::1]` is dialled and verified as `::1`.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let path = with_timeout(path, timeout);
        return Ok(Endpoint {
            server_name: host.clone(),
            port: uri.port_u16().unwrap_or(443),
            url: format!(
                "https://{}{path}",
                uri.authority().map_or("", |a| a.as_str())
            ),
            host,
            path,
        });
    }
    let Some(service) = client_config.get("service") else {
        return Err(CallError::Config(
            "clientConfig has neither url nor service".into(),
        ));
    };
    let field = |k: &str| service.get(k).and_then(Value::as_str).unwrap_or("");
    let (ns, name) = (field("namespace"), field("name"));
    let port = service
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(443);
    let path = with_timeout(
        if field("path").is_empty() {
            "/"
        } else {
            field("path")
        },
        timeout,
    );
    let server_name = format!("{name}.{ns}.svc");
    let url = format!("https://{server_name}:{port}{path}");
    let services = GroupResource {
        group: String::new(),
        resource: "services".into(),
    };
    let svc = api
        .store
        .get(&services, ns, name)
        .ok_or_else(|| CallError::Post {
            url: url.clone(),
            reason: format!("service \"{name}\" not found"),
        })?;
    let external = svc
        .pointer("/spec/externalName")
        .and_then(Value::as_str)
        .filter(|_| svc.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName"));
    let Some(host) = external else {
        return Err(CallError::Post {
            url,
            reason: format!(
                "service \"{ns}/{name}\" cannot be reached: the sandbox runs no pods or service \
                 proxy; use clientConfig.url, or make the service type ExternalName"
            ),
        });
    };
    Ok(Endpoint {
        host: host.to_string(),
        port,
        server_name,
        path,
        url,
    })
}

/// The real server adds `?timeout=<n>s` to every webhook URL.
fn with_timeout(path: &str, timeout: u64) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}timeout={timeout}s")
}

/// The `admission.k8s.io/v1` AdmissionReview request.
fn review(uid: &str, attrs: &Attributes, object: Option<&Value>, old: Option<&Value>) -> Value {
    let kind = json!({"group": attrs.kind.0, "version": attrs.kind.1, "kind": attrs.kind.2});
    let resource = json!({"group": attrs.resource.0, "version": attrs.resource.1, "resource": attrs.resource.2});
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "operation": attrs.operation.as_str(),
        "userInfo": attrs.user,
        "object": object,
        "oldObject": old,
        "dryRun": attrs.dry_run,
        "options": attrs.options,
    });
    if !attrs.subresource.is_empty() {
        request["subResource"] = json!(attrs.subresource);
        request["requestSubResource"] = json!(attrs.subresource);
    }
    if !attrs.name.is_empty() {
        request["name"] = json!(attrs.name);
    }
    if !attrs.namespace.is_empty() {
        request["namespace"] = json!(attrs.namespace);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// Decode and check an AdmissionReview response (webhookutil.VerifyAdmissionResponse).
fn verdict(body: &[u8], uid: &str, chain: Chain) -> Result<Verdict, CallError> {
    let invalid = |why: String| CallError::InvalidResponse(why);
    let review: Value = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    let av = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
    if av != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(invalid(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {av}, Kind={kind}"
        )));
    }
    let Some(response) = review.get("response").filter(|r| r.is_object()) else {
        return Err(invalid("webhook response was absent".into()));
    };
    let got = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if got != uid {
        return Err(CallError::UidMismatch {
            expected: uid.to_string(),
            got: got.to_string(),
        });
    }
    let allowed = response
        .get("allowed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let patch = match response.get("patch") {
        None | Some(Value::Null) => None,
        // The API's form: a base64 string.
        Some(Value::String(s)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| invalid(format!("response.patch is not base64: {e}")))?,
        ),
        // kube-core serialises its `Vec<u8>` patch as an array of byte values.
        Some(Value::Array(bytes)) => Some(
            bytes
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| invalid("response.patch is not a byte array".into()))?,
        ),
        Some(_) => return Err(invalid("response.patch must be a base64 string".into())),
    }
    .filter(|p| !p.is_empty());
    if patch.is_some() {
        if chain == Chain::Validating {
            return Err(invalid(
                "validating webhook may not return response.patch".into(),
            ));
        }
        match response.get("patchType").and_then(Value::as_str) {
            Some("JSONPatch") => {}
            None => {
                return Err(invalid(
                    "webhook returned response.patch but not response.patchType".into(),
                ));
            }
            Some(other) => {
                return Err(invalid(format!(
                    "webhook returned invalid response.patchType of {other:?}"
                )));
            }
        }
    }
    Ok(Verdict {
        allowed,
        status: response.get("status").cloned(),
        patch,
        warnings: strings(response.get("warnings"))
            .into_iter()
            .map(str::to_string)
            .collect(),
    })
}

/// Webhook configurations, defaulted as the real server stores them.
pub fn default_configuration(kind: &str, obj: &mut Value) {
    let mutating = kind == "MutatingWebhookConfiguration";
    let Some(hooks) = obj.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return;
    };
    for hook in hooks.iter_mut().filter_map(Value::as_object_mut) {
        let mut defaults = vec![
            ("failurePolicy", json!("Fail")),
            ("matchPolicy", json!("Equivalent")),
            ("namespaceSelector", json!({})),
            ("objectSelector", json!({})),
            ("timeoutSeconds", json!(DEFAULT_TIMEOUT_SECONDS)),
        ];
        if mutating {
            defaults.push(("reinvocationPolicy", json!("Never")));
        }
        for (k, v) in defaults {
            hook.entry(k).or_insert(v);
        }
        if let Some(Value::Array(rules)) = hook.get_mut("rules") {
            for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
                rule.entry("scope").or_insert(json!("*"));
            }
        }
        if let Some(Value::Object(svc)) = hook
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
        {
            svc.entry("port").or_insert(json!(443));
        }
    }
}

/// Shared by the api and the server: run both chains for a write that has no stored object
/// of its own (subresources such as `pods/eviction`), mutating `object` in place.
pub async fn review_subresource(
    api: &Api,
    attrs: &Attributes,
    object: &mut Value,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    api.admission
        .mutate(api, attrs, Some(object), None, warnings)
        .await?;
    api.admission
        .validate(api, attrs, Some(object), None, warnings)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(op: Operation, ns: &str, resource: &str, sub: &str) -> Attributes {
        Attributes {
            resource: ("apps".into(), "v1".into(), resource.into()),
            subresource: sub.into(),
            kind: ("apps".into(), "v1".into(), "Deployment".into()),
            operation: op,
            namespace: ns.into(),
            name: "x".into(),
            dry_run: false,
            options: json!({}),
            user: admin_user(),
        }
    }

    #[test]
    fn rules_match_like_the_real_server() {
        let rule =
            |r: Value| rule_matches(&r, &attrs(Operation::Create, "default", "deployments", ""));
        assert!(rule(
            json!({"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]})
        ));
        assert!(rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]})
        ));
        assert!(rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["deployments/*"]})
        ));
        assert!(!rule(
            json!({"operations": ["UPDATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]})
        ));
        assert!(!rule(
            json!({"operations": ["*"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["*"]})
        ));
        assert!(!rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"})
        ));
        assert!(rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Namespaced"})
        ));

        let status = attrs(Operation::Update, "default", "deployments", "status");
        let rule = |r: Value| rule_matches(&r, &status);
        // `*` is main resources only; `x/*` and `*/*` include subresources.
        assert!(!rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]})
        ));
        assert!(rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["deployments/*"]})
        ));
        assert!(rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/status"]})
        ));
        assert!(!rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["deployments/scale"]})
        ));
    }

    #[test]
    fn denials_are_worded_like_the_real_server() {
        let hook = json!({"name": "v.example.com"});
        let e = denied(
            &hook,
            Some(&json!({"message": "no", "code": 403, "reason": "Forbidden"})),
        );
        assert_eq!((e.code, &*e.reason), (403, "Forbidden"));
        assert_eq!(
            e.message,
            "admission webhook \"v.example.com\" denied the request: no"
        );
        let e = denied(&hook, Some(&json!({"code": 200})));
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "admission webhook \"v.example.com\" denied the request without explanation"
        );
    }

    #[test]
    fn responses_are_checked() {
        let ok = |resp: Value| {
            verdict(
                &serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})).expect("json"),
                "u1",
                Chain::Mutating,
            )
        };
        let patch = br#"[{"op":"add","path":"/a","value":1}]"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(patch);
        let v = ok(json!({"uid": "u1", "allowed": true, "patch": b64, "patchType": "JSONPatch"}))
            .expect("base64");
        assert_eq!(v.patch.as_deref(), Some(&patch[..]));
        let v = ok(json!({"uid": "u1", "allowed": true, "patch": patch.to_vec(), "patchType": "JSONPatch"})).expect("bytes");
        assert_eq!(v.patch.as_deref(), Some(&patch[..]));
        assert!(matches!(
            ok(json!({"uid": "u2", "allowed": true})),
            Err(CallError::UidMismatch { .. })
        ));
        assert!(matches!(
            ok(json!({"uid": "u1", "allowed": true, "patch": b64})),
            Err(CallError::InvalidResponse(_))
        ));
        assert!(matches!(
            verdict(b"{\"kind\": \"Nope\"}", "u1", Chain::Mutating),
            Err(CallError::InvalidResponse(_))
        ));
    }

    #[test]
    fn configurations_are_defaulted() {
        let mut c = json!({"webhooks": [{"name": "a", "clientConfig": {"service": {"name": "s", "namespace": "n"}}, "rules": [{}]}]});
        default_configuration("MutatingWebhookConfiguration", &mut c);
        let h = &c["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(h["reinvocationPolicy"], "Never");
        assert_eq!(h["rules"][0]["scope"], "*");
        assert_eq!(h["clientConfig"]["service"]["port"], 443);
    }
}

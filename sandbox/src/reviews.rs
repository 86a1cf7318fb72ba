//! `authorization.k8s.io/v1` reviews: "may this user do this?", answered by the same RBAC
//! decision the server applies to requests. `kubectl auth can-i` asks a SelfSubjectAccessReview
//! (`--list`: a SelfSubjectRulesReview), usually with `--as`, so a person can check what a
//! ServiceAccount may do (capstan's, say) before anything runs as it. Reviews are created and
//! answered, never stored.

use serde_json::{Value, json};

use crate::access::AccessControl;
use crate::errors::ApiError;
use crate::rbac::{Decision, PolicyRule, RequestAttributes, UserInfo};
use crate::registry::ResourceType;

/// Paths every authenticated user may read here (the sandbox authorizes no other non-resource
/// URL and serves these without RBAC, as the real server's `system:discovery` role grants).
const OPEN_PATHS: &[&str] = &[
    "/api", "/apis", "/openapi", "/version", "/healthz", "/livez", "/readyz",
];

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn invalid(rt: &ResourceType, field: &str, reason: &'static str, message: &str) -> ApiError {
    ApiError::invalid(
        &rt.kind,
        &rt.gr(),
        "",
        vec![(field.to_string(), reason, message.to_string())],
    )
}

/// The subject a review asks about: the caller for the Self kinds, else `spec.user` and
/// `spec.groups`.
fn subject(rt: &ResourceType, caller: &UserInfo, review: &Value) -> Result<UserInfo, ApiError> {
    if rt.kind.starts_with("Self") {
        return Ok(caller.clone());
    }
    let name = text(review, "/spec/user").to_string();
    let groups: Vec<String> = review
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if name.is_empty() && groups.is_empty() {
        return Err(invalid(
            rt,
            "spec.user",
            "FieldValueRequired",
            "Required value: at least one of user or group must be specified",
        ));
    }
    Ok(UserInfo { name, groups })
}

/// Whether `user` may do what `spec.resourceAttributes` or `spec.nonResourceAttributes`
/// describe: `(allowed, reason)`.
fn access_review(
    access: &AccessControl,
    rt: &ResourceType,
    user: &UserInfo,
    review: &Value,
    url_namespace: &str,
) -> Result<(bool, String), ApiError> {
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(attrs), None) => {
            let mut namespace = text(attrs, "/namespace").to_string();
            if !url_namespace.is_empty() {
                // LocalSubjectAccessReview: about its own namespace only.
                if namespace.is_empty() {
                    namespace = url_namespace.to_string();
                } else if namespace != url_namespace {
                    return Err(invalid(
                        rt,
                        "spec.resourceAttributes.namespace",
                        "FieldValueInvalid",
                        &format!("Invalid value: {namespace:?}: must match metadata.namespace"),
                    ));
                }
            }
            let attributes = RequestAttributes {
                verb: text(attrs, "/verb").to_string(),
                group: text(attrs, "/group").to_string(),
                resource: text(attrs, "/resource").to_string(),
                subresource: text(attrs, "/subresource").to_string(),
                namespace,
                name: text(attrs, "/name").to_string(),
            };
            Ok(match access.decide(user, &attributes) {
                Decision::Allow => (true, String::new()),
                Decision::Deny { reason } => (false, reason),
            })
        }
        (None, Some(attrs)) => {
            let path = text(attrs, "/path");
            let verb = text(attrs, "/verb");
            let open = OPEN_PATHS
                .iter()
                .any(|p| path == *p || path.starts_with(&format!("{p}/")));
            Ok(if user.is_superuser() || (open && verb == "get") {
                (true, String::new())
            } else {
                (
                    false,
                    "the sandbox serves non-resource URLs other than discovery, OpenAPI, version and health to system:masters only".into(),
                )
            })
        }
        _ => Err(invalid(
            rt,
            "spec.resourceAttributes",
            "FieldValueRequired",
            "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

fn rule_json(r: &PolicyRule) -> Value {
    let mut v = json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
    if !r.resource_names.is_empty() {
        v["resourceNames"] = json!(r.resource_names);
    }
    v
}

/// Answers the review `object` (already decoded) that `caller` created at `rt` in
/// `url_namespace` (LocalSubjectAccessReview only): the object back with its `status`.
pub fn answer(
    access: &AccessControl,
    rt: &ResourceType,
    caller: &UserInfo,
    url_namespace: &str,
    mut object: Value,
) -> Result<Value, ApiError> {
    let status = if rt.kind == "SelfSubjectRulesReview" {
        let namespace = text(&object, "/spec/namespace").to_string();
        let (rules, errors) = access.policy().rules_for(caller, &namespace);
        let mut resource_rules: Vec<Value> = rules.iter().map(rule_json).collect();
        if caller.is_superuser() {
            resource_rules.insert(
                0,
                json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
            );
        }
        let mut status = json!({
            "resourceRules": resource_rules,
            "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": OPEN_PATHS.iter().flat_map(|p| [p.to_string(), format!("{p}/*")]).collect::<Vec<_>>()}],
            "incomplete": !errors.is_empty(),
        });
        if !errors.is_empty() {
            status["evaluationError"] = json!(errors.join(", "));
        }
        status
    } else {
        let user = subject(rt, caller, &object)?;
        let (allowed, reason) = access_review(access, rt, &user, &object, url_namespace)?;
        let mut status = json!({"allowed": allowed});
        if !reason.is_empty() {
            status["reason"] = json!(reason);
        }
        status
    };
    let map = object.as_object_mut().ok_or_else(|| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {})",
            rt.kind
        ))
    })?;
    map.insert("apiVersion".into(), json!(rt.api_version()));
    map.insert("kind".into(), json!(rt.kind));
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.insert("creationTimestamp".into(), Value::Null);
        if !url_namespace.is_empty() {
            m.insert("namespace".into(), json!(url_namespace));
        }
    }
    map.insert("status".into(), status);
    Ok(object)
}

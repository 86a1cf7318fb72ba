//! The `scale` subresource of Deployments, ReplicaSets and StatefulSets: an `autoscaling/v1`
//! Scale view (`spec.replicas`, `status.replicas`, `status.selector` as a selector string)
//! that reads from and writes `spec.replicas` of the parent. Writes are reviewed by webhooks as
//! UPDATEs of `<resource>/scale` with Scale objects, as on the real server.

use serde_json::{Value, json};

use crate::admission::{Attributes, Operation};
use crate::api::{Api, Sub};
use crate::errors::ApiError;
use crate::object::{meta, name, parse_rv, resource_version};
use crate::patch::{PatchType, apply_merge, parse_apply_body, patch_object};
use crate::registry::{GroupResource, ResourceType};
use crate::validation::WriteChecks;

/// Optimistic-concurrency retries for writes not pinned to a resourceVersion.
const MAX_RETRIES: usize = 16;

/// A `metav1.LabelSelector` as the string form Scale's `status.selector` uses.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return String::new();
    };
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match e.get("operator").and_then(Value::as_str) {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("Exists") => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

/// The Scale view of a scalable object.
pub fn scale_of(obj: &Value) -> Value {
    let m = meta(obj);
    let copy = |k: &str| m.and_then(|m| m.get(k)).cloned().unwrap_or(Value::Null);
    let mut metadata = json!({
        "name": copy("name"),
        "uid": copy("uid"),
        "resourceVersion": copy("resourceVersion"),
        "creationTimestamp": copy("creationTimestamp"),
    });
    if let Some(ns) = m.and_then(|m| m.get("namespace")) {
        metadata["namespace"] = ns.clone();
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_string(obj.pointer("/spec/selector")),
        },
    })
}

/// How a write computes the new Scale from the current one.
pub enum ScaleWrite<'a> {
    /// PUT: the body; its resourceVersion, if any, is a precondition.
    Replace(Value),
    /// PATCH of the Scale view.
    Patch(PatchType, &'a [u8]),
}

fn replicas_of(rt: &ResourceType, n: &str, scale: &Value) -> Result<i64, ApiError> {
    let invalid = |why: String| {
        ApiError::invalid(
            "Scale.autoscaling",
            &GroupResource {
                group: "autoscaling".into(),
                resource: "scales".into(),
            },
            n,
            vec![("spec.replicas".into(), "FieldValueInvalid", why)],
        )
    };
    match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => match v.as_i64() {
            Some(r) if r >= 0 => Ok(r),
            Some(r) => Err(invalid(format!(
                "Invalid value: {r}: must be greater than or equal to 0"
            ))),
            None => Err(invalid(format!(
                "Invalid value: {v}: {} replicas must be an integer",
                rt.kind
            ))),
        },
    }
}

/// PUT or PATCH `<resource>/<name>/scale`: returns the resulting Scale.
pub async fn write(
    api: &Api,
    rt: &ResourceType,
    ns: &str,
    n: &str,
    write: ScaleWrite<'_>,
    checks: &mut WriteChecks,
) -> Result<Value, ApiError> {
    let pinned = match &write {
        ScaleWrite::Replace(body) => parse_rv(resource_version(body))?,
        ScaleWrite::Patch(..) => None,
    };
    for _ in 0..MAX_RETRIES {
        let current = api.get(rt, ns, n)?;
        if let Some(rv) = pinned
            && resource_version(&current) != rv.to_string()
        {
            return Err(ApiError::conflict(&rt.gr(), n));
        }
        let old_scale = scale_of(&current);
        let mut scale = match &write {
            ScaleWrite::Replace(body) => body.clone(),
            ScaleWrite::Patch(PatchType::Apply, body) => {
                let mut doc = old_scale.clone();
                apply_merge(&mut doc, &parse_apply_body(body)?);
                doc
            }
            ScaleWrite::Patch(kind, body) => patch_object(*kind, &old_scale, body)?,
        };
        if let Some(user) = checks.user.clone() {
            let mut attrs = Attributes::of(
                rt,
                "scale",
                Operation::Update,
                ns,
                n,
                checks.dry_run,
                checks.field_manager.as_deref(),
                user,
            );
            attrs.kind = ("autoscaling".into(), "v1".into(), "Scale".into());
            api.admission
                .mutate(
                    api,
                    &attrs,
                    Some(&mut scale),
                    Some(&old_scale),
                    &mut checks.warnings,
                )
                .await?;
            api.admission
                .validate(
                    api,
                    &attrs,
                    Some(&scale),
                    Some(&old_scale),
                    &mut checks.warnings,
                )
                .await?;
        }
        let replicas = replicas_of(rt, name(&current), &scale)?;
        let mut parent = (*current).clone();
        if let Some(spec) = parent.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("replicas".into(), json!(replicas));
        }
        if checks.dry_run {
            return Ok(scale_of(&parent));
        }
        // The parent keeps its resourceVersion: a concurrent write makes this a conflict.
        let mut inner = WriteChecks::default();
        match api.update_with(rt, ns, n, parent, Sub::Main, &mut inner) {
            Err(e) if e.reason == "Conflict" && pinned.is_none() => continue,
            Err(e) => return Err(e),
            Ok(stored) => return Ok(scale_of(&stored)),
        }
    }
    Err(ApiError::conflict(&rt.gr(), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
            "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web,tier in (a,b)");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }
}

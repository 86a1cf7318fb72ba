//! Strategic merge patch (`application/strategic-merge-patch+json`), as kubectl sends it for
//! built-in kinds (`apply`, `label`, `cordon`, `set resources`).
//!
//! Maps merge key by key (`null` deletes). Lists merge by the key the Kubernetes types declare
//! (`patchMergeKey`), looked up here by field name since the sandbox has no Go types: containers,
//! initContainers, ephemeralContainers, volumes, env, imagePullSecrets by `name`; container ports
//! by `containerPort` (Service ports by `port`); volumeMounts by `mountPath`; conditions and node
//! addresses by `type`; ownerReferences by `uid`; `finalizers` merge as a set. Every other list
//! is replaced whole, as on the real server — that includes `tolerations`, which carry no merge
//! key in the Kubernetes types (kubectl therefore always sends the whole list).
//! Directives: `$patch: delete|replace|merge`, `$setElementOrder/<list>`,
//! `$deleteFromPrimitiveList/<list>`, `$retainKeys`.

use serde_json::{Map, Value};

use crate::errors::ApiError;

/// How a list field merges.
enum ListKind {
    /// Objects merged by this key.
    Keyed(&'static str),
    /// Scalars merged as a set.
    Set,
    /// Replaced whole.
    Replace,
}

fn list_kind(field: &str, items: &[Value]) -> ListKind {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => ListKind::Keyed("name"),
        "ports" => {
            // Container ports merge by containerPort, Service ports by port.
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                ListKind::Keyed("containerPort")
            } else {
                ListKind::Keyed("port")
            }
        }
        "volumeMounts" => ListKind::Keyed("mountPath"),
        "volumeDevices" => ListKind::Keyed("devicePath"),
        "hostAliases" => ListKind::Keyed("ip"),
        "conditions" | "addresses" => ListKind::Keyed("type"),
        "ownerReferences" => ListKind::Keyed("uid"),
        "topologySpreadConstraints" => ListKind::Keyed("topologyKey"),
        "finalizers" => ListKind::Set,
        _ => ListKind::Replace,
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// Apply a strategic merge patch to `doc`.
pub fn apply(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let Value::Object(p) = patch else {
        return Err(bad("strategic merge patch must be a JSON object"));
    };
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    if let Value::Object(d) = doc {
        merge_map(d, p)?;
    }
    Ok(())
}

fn merge_map(doc: &mut Map<String, Value>, patch: &Map<String, Value>) -> Result<(), ApiError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *doc = strip(patch);
            return Ok(());
        }
        Some("delete") => {
            doc.clear();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(bad(format!("unknown patch type: {other}"))),
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                doc.remove(key);
            }
            Value::Object(pm) => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    doc.remove(key);
                    continue;
                }
                let entry = doc
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(dm) = entry {
                    merge_map(dm, pm)?;
                } else {
                    *entry = Value::Object(strip(pm));
                }
            }
            Value::Array(items) => {
                let merged = merge_list(key, doc.get(key), items)?;
                doc.insert(key.clone(), merged);
            }
            scalar => {
                doc.insert(key.clone(), scalar.clone());
            }
        }
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/")
            && let (Some(Value::Array(list)), Value::Array(remove)) = (doc.get_mut(field), value)
        {
            list.retain(|v| !remove.contains(v));
        }
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$setElementOrder/")
            && let (Some(Value::Array(list)), Value::Array(order)) = (doc.get_mut(field), value)
        {
            reorder(field, list, order);
        }
    }
    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        doc.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
    Ok(())
}

/// A patch object without its directives (nested ones included), for values that replace.
fn strip(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), strip_value(v)))
        .collect()
}

fn strip_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip(m)),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                .map(strip_value)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_list(field: &str, current: Option<&Value>, items: &[Value]) -> Result<Value, ApiError> {
    let current: Vec<Value> = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // `[{"$patch": "replace"}, ...]` replaces the list with the other items.
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip_value)
                .collect(),
        ));
    }
    match list_kind(field, items) {
        ListKind::Replace => Ok(strip_value(&Value::Array(items.to_vec()))),
        ListKind::Set => {
            let mut out = current;
            for i in items {
                if !out.contains(i) {
                    out.push(i.clone());
                }
            }
            Ok(Value::Array(out))
        }
        ListKind::Keyed(key) => {
            let mut out = current;
            for item in items {
                let Value::Object(pm) = item else {
                    return Err(bad(format!(
                        "strategic merge patch: {field} items must be objects with {key:?}"
                    )));
                };
                let Some(k) = pm.get(key) else {
                    return Err(bad(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    )));
                };
                let pos = out.iter().position(|c| c.get(key) == Some(k));
                match (pm.get("$patch").and_then(Value::as_str), pos) {
                    (Some("delete"), Some(p)) => {
                        out.remove(p);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(p)) => {
                        if let Value::Object(cm) = &mut out[p] {
                            merge_map(cm, pm)?;
                        }
                    }
                    (_, None) => out.push(Value::Object(strip(pm))),
                }
            }
            Ok(Value::Array(out))
        }
    }
}

/// `$setElementOrder/<field>`: listed elements take the listed order; the others (added by
/// someone else) keep their relative place after them.
fn reorder(field: &str, list: &mut [Value], order: &[Value]) {
    let key = match list_kind(field, list) {
        ListKind::Keyed(k) => Some(k),
        ListKind::Set => None,
        ListKind::Replace => return,
    };
    let ident = |v: &Value| match key {
        Some(k) => v.get(k).cloned(),
        None => Some(v.clone()),
    };
    let rank = |v: &Value| {
        let id = ident(v);
        order
            .iter()
            .position(|o| id.is_some() && ident(o) == id)
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(|v| rank(v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(doc: Value, patch: Value) -> Value {
        let mut d = doc;
        apply(&mut d, &patch).expect("patch");
        d
    }

    #[test]
    fn containers_env_and_directives() {
        let doc = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "b", "image": "y"}
        ], "tolerations": [{"key": "t"}]}});
        let out = smp(
            doc,
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [
                    {"name": "a", "$setElementOrder/env": [{"name": "A"}],
                     "env": [{"name": "A", "value": "one"}, {"$patch": "delete", "name": "B"}]},
                    {"$patch": "delete", "name": "b"}
                ],
                "tolerations": [{"key": "u"}]
            }}),
        );
        assert_eq!(
            out,
            json!({"spec": {"containers": [
                {"name": "a", "image": "x", "env": [{"name": "A", "value": "one"}]}
            ], "tolerations": [{"key": "u"}]}})
        );
    }

    #[test]
    fn ports_finalizers_nulls_and_order() {
        let doc = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1"}},
            "spec": {"ports": [{"containerPort": 80, "name": "http"}], "x": 1}});
        let out = smp(
            doc,
            json!({"metadata": {"finalizers": ["b"], "labels": {"x": null}},
                "spec": {"ports": [{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}],
                         "$setElementOrder/ports": [{"containerPort": 443}, {"containerPort": 80}],
                         "x": null}}),
        );
        assert_eq!(
            out["metadata"],
            json!({"finalizers": ["a", "b"], "labels": {}})
        );
        assert_eq!(
            out["spec"],
            json!({"ports": [{"containerPort": 443}, {"containerPort": 80, "name": "http", "protocol": "TCP"}]})
        );
        let err = apply(
            &mut json!({}),
            &json!({"spec": {"containers": [{"image": "x"}]}}),
        )
        .expect_err("no merge key");
        assert_eq!(err.code, 400);
    }
}

//! Defaulting: structural-schema `default`s for custom resources, and the few built-in defaults
//! that clients observably rely on.

use serde_json::{Map, Value, json};

/// Apply the `default`s of a structural openAPIV3Schema to `obj`, as the real server does on
/// create, update and patch: a missing property (or an explicit `null` where the property is
/// not `nullable`) takes its default, and the walk then continues into the value just set, so
/// defaults nested inside a defaulted object apply too (NodePool `spec.disruption` →
/// `budgets: [{nodes: "10%"}]`). Structural schemas forbid defaults under `anyOf`/`oneOf`/
/// `allOf`, so only `properties`, `items` and `additionalProperties` are walked. At the root,
/// `apiVersion`, `kind` and `metadata` belong to the server and are left alone.
pub fn apply_schema_defaults(schema: &Value, obj: &mut Value) {
    let (Some(props), Value::Object(map)) =
        (schema.get("properties").and_then(Value::as_object), obj)
    else {
        return;
    };
    for (key, sub) in props {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            default_property(map, key, sub);
        }
    }
}

fn walk(schema: &Value, obj: &mut Value) {
    match obj {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, sub) in props {
                    default_property(map, key, sub);
                }
            } else if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for v in map.values_mut() {
                    walk(sub, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for v in items.iter_mut() {
                    walk(sub, v);
                }
            }
        }
        _ => {}
    }
}

fn default_property(map: &mut Map<String, Value>, key: &str, sub: &Value) {
    let nullable = sub
        .get("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(default) = sub.get("default") {
        match map.get(key) {
            None => {
                map.insert(key.to_string(), default.clone());
            }
            Some(Value::Null) if !nullable => {
                map.insert(key.to_string(), default.clone());
            }
            _ => {}
        }
    }
    if let Some(v) = map.get_mut(key) {
        walk(sub, v);
    }
}

/// Defaults the real server's built-in types apply that clients read back. Deliberately small:
/// TODO(milestone: built-in defaulting/validation) container fields, Deployment strategy, etc.
pub fn apply_built_in_defaults(group: &str, kind: &str, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match (group, kind) {
        ("", "Pod") => {
            if let Some(Value::Object(spec)) = map.get_mut("spec") {
                for (k, v) in [
                    ("restartPolicy", json!("Always")),
                    ("schedulerName", json!("default-scheduler")),
                    ("terminationGracePeriodSeconds", json!(30)),
                    ("dnsPolicy", json!("ClusterFirst")),
                    ("enableServiceLinks", json!(true)),
                    ("priority", json!(0)),
                ] {
                    spec.entry(k).or_insert(v);
                }
            }
        }
        ("admissionregistration.k8s.io", kind) => {
            crate::admission::default_configuration(kind, obj);
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet") => {
            if let Some(Value::Object(spec)) = map.get_mut("spec") {
                spec.entry("replicas").or_insert(json!(1));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_defaults_apply_into_defaulted_values() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "disruption": {"type": "object", "default": {"consolidateAfter": "0s"}, "properties": {
                    "consolidateAfter": {"type": "string", "default": "0s"},
                    "budgets": {"type": "array", "default": [{"nodes": "10%"}], "items": {
                        "type": "object", "properties": {"nodes": {"type": "string", "default": "10%"}}}},
                    "policy": {"type": "string", "default": "WhenEmptyOrUnderutilized", "nullable": true}
                }},
                "limits": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                    "x": {"type": "integer", "default": 1}}}}
            }}
        }});
        let mut obj = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"limits": {"a": {}}}});
        apply_schema_defaults(&schema, &mut obj);
        assert_eq!(
            obj["spec"]["disruption"],
            json!({"consolidateAfter": "0s", "budgets": [{"nodes": "10%"}], "policy": "WhenEmptyOrUnderutilized"})
        );
        assert_eq!(obj["spec"]["limits"]["a"]["x"], 1);

        // An explicit null survives where nullable, and is defaulted where not.
        let mut obj = json!({"spec": {"disruption": {"policy": null, "budgets": [{}], "consolidateAfter": null}}});
        apply_schema_defaults(&schema, &mut obj);
        assert_eq!(obj["spec"]["disruption"]["policy"], Value::Null);
        assert_eq!(obj["spec"]["disruption"]["consolidateAfter"], "0s");
        assert_eq!(
            obj["spec"]["disruption"]["budgets"],
            json!([{"nodes": "10%"}])
        );
    }
}

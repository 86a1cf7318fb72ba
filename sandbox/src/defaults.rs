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

/// Sets each absent field of `obj` (an object) to its default.
fn fill(obj: Option<&mut Value>, defaults: &[(&str, Value)]) {
    if let Some(Value::Object(map)) = obj {
        for (k, v) in defaults {
            map.entry(*k).or_insert_with(|| v.clone());
        }
    }
}

/// The real server's `imagePullPolicy` default: `Always` for `:latest` or an untagged image
/// (a digest counts as a tag), else `IfNotPresent`.
fn pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match name.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// A pod spec's defaults, also inside workload templates (the real server defaults those too).
fn default_pod_spec(spec: Option<&mut Value>) {
    let Some(spec) = spec else { return };
    fill(Some(spec), &[("restartPolicy", json!("Always"))]);
    default_pod_spec_but_restart(Some(spec));
}

/// [`default_pod_spec`] without `restartPolicy`: a Job's template must name Never or OnFailure
/// (the real server defaults Always there and then refuses the Job).
fn default_pod_spec_but_restart(spec: Option<&mut Value>) {
    let Some(spec) = spec else { return };
    fill(
        Some(spec),
        &[
            ("schedulerName", json!("default-scheduler")),
            ("terminationGracePeriodSeconds", json!(30)),
            ("dnsPolicy", json!("ClusterFirst")),
            ("enableServiceLinks", json!(true)),
            ("securityContext", json!({})),
        ],
    );
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for c in containers {
            let policy = pull_policy(c.get("image").and_then(Value::as_str).unwrap_or(""));
            fill(
                Some(c),
                &[
                    ("imagePullPolicy", json!(policy)),
                    ("terminationMessagePath", json!("/dev/termination-log")),
                    ("terminationMessagePolicy", json!("File")),
                ],
            );
        }
    }
}

/// Defaults the real server's built-in types apply that clients read back (what `kubectl get
/// -o yaml` shows and `kubectl apply` diffs against); only fields a person or the controllers
/// read, not every field of every kind.
pub fn apply_built_in_defaults(group: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, kind) {
        ("", "Pod") => {
            default_pod_spec(obj.get_mut("spec"));
            fill(obj.get_mut("spec"), &[("priority", json!(0))]);
        }
        ("", "Secret") => fill(Some(obj), &[("type", json!("Opaque"))]),
        ("", "Service") => {
            let external_name = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .is_some_and(|t| t == "ExternalName");
            fill(obj.get_mut("spec"), &[("type", json!("ClusterIP"))]);
            if !external_name {
                fill(
                    obj.get_mut("spec"),
                    &[
                        ("sessionAffinity", json!("None")),
                        ("internalTrafficPolicy", json!("Cluster")),
                    ],
                );
            }
            if let Some(Value::Array(ports)) = obj.pointer_mut("/spec/ports") {
                for port in ports {
                    let target = port.get("port").cloned().unwrap_or(Value::Null);
                    fill(
                        Some(port),
                        &[("protocol", json!("TCP")), ("targetPort", target)],
                    );
                }
            }
        }
        ("admissionregistration.k8s.io", kind) => {
            crate::admission::default_configuration(kind, obj);
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            if kind != "DaemonSet" {
                fill(obj.get_mut("spec"), &[("replicas", json!(1))]);
            }
            fill(obj.get_mut("spec"), &[("revisionHistoryLimit", json!(10))]);
            if kind == "Deployment" {
                fill(
                    obj.get_mut("spec"),
                    &[
                        ("progressDeadlineSeconds", json!(600)),
                        (
                            "strategy",
                            json!({"type": "RollingUpdate",
                                   "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                        ),
                    ],
                );
            }
            default_pod_spec(obj.pointer_mut("/spec/template/spec"));
        }
        ("batch", "Job") => {
            fill(obj.get_mut("spec"), &[("backoffLimit", json!(6))]);
            default_pod_spec_but_restart(obj.pointer_mut("/spec/template/spec"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_kinds_read_back_with_the_real_servers_defaults() {
        let mut secret = json!({"metadata": {"name": "s"}, "data": {"k": "dg=="}});
        apply_built_in_defaults("", "Secret", &mut secret);
        assert_eq!(secret["type"], "Opaque");
        let mut tls = json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls"});
        apply_built_in_defaults("", "Secret", &mut tls);
        assert_eq!(tls["type"], "kubernetes.io/tls");

        let mut svc = json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}});
        apply_built_in_defaults("", "Service", &mut svc);
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(svc["spec"]["sessionAffinity"], "None");
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(
            svc["spec"]["ports"][1],
            json!({"port": 53, "protocol": "UDP", "targetPort": "dns"})
        );

        let mut deploy = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "nginx"}, {"name": "b", "image": "registry.k8s.io/pause:3.9"},
            {"name": "c", "image": "localhost:5000/app:latest"}, {"name": "d", "image": "app@sha256:ab"},
            {"name": "e", "image": "localhost:5000/app", "imagePullPolicy": "Never"}]}}}});
        apply_built_in_defaults("apps", "Deployment", &mut deploy);
        assert_eq!(deploy["spec"]["replicas"], 1);
        assert_eq!(
            deploy["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
            "25%"
        );
        let containers = &deploy["spec"]["template"]["spec"]["containers"];
        let policies: Vec<&str> = (0..5)
            .map(|i| containers[i]["imagePullPolicy"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            policies,
            ["Always", "IfNotPresent", "Always", "IfNotPresent", "Never"]
        );
        assert_eq!(
            deploy["spec"]["template"]["spec"]["restartPolicy"],
            "Always"
        );

        // Explicit values are kept; a Job keeps its own restart policy.
        let mut job = json!({"spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never", "containers": []}}}});
        apply_built_in_defaults("batch", "Job", &mut job);
        assert_eq!(job["spec"]["backoffLimit"], 2);
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    }

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

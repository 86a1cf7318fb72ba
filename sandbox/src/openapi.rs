//! OpenAPI v3: the index at `/openapi/v3` and one document per group-version.
//!
//! kubectl only needs two things from them (see KUBECTL-PROTOCOL.md): each PATCH operation names
//! its kind in `x-kubernetes-group-version-kind` and lists the `fieldValidation` query parameter,
//! so that `kubectl apply` leaves validation to the server instead of failing to download a
//! schema. Custom resources get their `openAPIV3Schema` as a component (for `kubectl explain`);
//! built-ins get a schema that preserves unknown fields. PATCH request bodies deliberately do not
//! list `application/strategic-merge-patch+json`: kubectl would then compute strategic patches
//! from these (minimal) schemas instead of its compiled-in types, losing the merge keys.
//! `/openapi/v2` is not served (404), which kubectl tolerates.

use serde_json::{Map, Value, json};

use crate::registry::{Registry, ResourceType};

/// `api/v1` or `apis/<group>/<version>`: the index key of a group-version.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// FNV-1a: a stable content hash, so kubectl's disk cache (keyed by `hash`) notices new CRDs.
fn hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`.
pub fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, versions) in registry.groups() {
        for version in versions {
            let key = gv_path(&group, &version);
            let doc = document(registry, &group, &version)
                .map(|d| d.to_string())
                .unwrap_or_default();
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", hash(&doc))}),
            );
        }
    }
    json!({ "paths": paths })
}

/// The component name the real server uses: reversed group, version, kind
/// (`sh.karpenter.v1.NodePool`, `io.k8s.api.core.v1.Pod` for core kinds).
fn component_name(rt: &ResourceType) -> String {
    let group = if rt.group.is_empty() {
        "io.k8s.api.core".to_string()
    } else if rt.custom.is_some() {
        rt.group.split('.').rev().collect::<Vec<_>>().join(".")
    } else {
        format!(
            "io.k8s.api.{}",
            rt.group.split('.').next().unwrap_or(&rt.group)
        )
    };
    format!("{group}.{}.{}", rt.version, rt.kind)
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(rt: &ResourceType, verb: &str, action: &str, params: &[&str], body: bool) -> Value {
    let schema_ref = json!({"$ref": format!("#/components/schemas/{}", component_name(rt))});
    let mut op = json!({
        "operationId": format!("{verb}{}", rt.kind),
        "parameters": params.iter().map(|p| query_param(p)).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
    });
    if body {
        let types: &[&str] = if verb == "patch" {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]
        } else {
            &["application/json", "application/yaml"]
        };
        let content: Map<String, Value> = types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": schema_ref})))
            .collect();
        op["requestBody"] = json!({"content": content});
    }
    op
}

fn collection_url(rt: &ResourceType) -> String {
    let base = format!("/{}", gv_path(&rt.group, &rt.version));
    if rt.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", rt.plural)
    } else {
        format!("{base}/{}", rt.plural)
    }
}

fn path_params(rt: &ResourceType, named: bool) -> Value {
    let mut params = Vec::new();
    if named {
        params.push(
            json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}),
        );
    }
    if rt.namespaced {
        params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}));
    }
    Value::Array(params)
}

fn schema_for(rt: &ResourceType) -> Value {
    let mut schema = rt
        .custom
        .as_ref()
        .and_then(|c| c.schema.clone())
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if let Some(o) = schema.as_object_mut() {
        o.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]),
        );
    }
    schema
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`.
pub fn document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = registry.resources(group, version)?;
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let write = ["dryRun", "fieldManager", "fieldValidation", "pretty"];
    for rt in &types {
        let collection = collection_url(rt);
        paths.insert(
            collection.clone(),
            json!({
                "get": operation(rt, "list", "list", &["labelSelector", "fieldSelector", "limit", "continue", "watch", "resourceVersion"], false),
                "post": operation(rt, "create", "post", &write, true),
                "parameters": path_params(rt, false),
            }),
        );
        let mut patch_params = write.to_vec();
        patch_params.push("force");
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": operation(rt, "read", "get", &[], false),
                "put": operation(rt, "replace", "put", &write, true),
                "patch": operation(rt, "patch", "patch", &patch_params, true),
                "delete": operation(rt, "delete", "delete", &["dryRun", "propagationPolicy", "gracePeriodSeconds"], false),
                "parameters": path_params(rt, true),
            }),
        );
        schemas.insert(component_name(rt), schema_for(rt));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0-capstan-sandbox"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_documents() {
        let r = Registry::with_built_ins();
        let idx = index(&r);
        let url = idx["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap_or_default();
        assert!(url.starts_with("/openapi/v3/api/v1?hash="), "{url}");
        let doc = document(&r, "apps", "v1").expect("apps/v1");
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fieldValidation"))
        );
        assert!(document(&r, "nosuch", "v1").is_none());
    }
}

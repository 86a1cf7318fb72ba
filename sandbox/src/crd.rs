//! CustomResourceDefinitions: what a CRD object makes the server serve, the checks the real
//! server makes before accepting one, and the status it reports (Established).

use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::object::{name, now_rfc3339};
use crate::registry::{CustomInfo, GroupResource, NameRule, ResourceType};

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn strings_at(v: &Value, path: &[&str]) -> Vec<String> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn crd_gr() -> GroupResource {
    GroupResource {
        group: "apiextensions.k8s.io".into(),
        resource: "customresourcedefinitions".into(),
    }
}

/// The served versions of a CRD, or 422 Invalid with the fields the real server would name.
pub fn resource_types(crd: &Value) -> Result<Vec<ResourceType>, ApiError> {
    let crd_name = name(crd);
    let group = str_at(crd, &["spec", "group"]);
    let plural = str_at(crd, &["spec", "names", "plural"]);
    let kind = str_at(crd, &["spec", "names", "kind"]);
    let scope = str_at(crd, &["spec", "scope"]);
    let mut causes: Vec<(String, &'static str, String)> = Vec::new();
    let mut require = |field: &str, value: &str| {
        if value.is_empty() {
            causes.push((
                field.to_string(),
                "FieldValueRequired",
                "Required value".to_string(),
            ));
        }
    };
    require("spec.group", group);
    require("spec.names.plural", plural);
    require("spec.names.kind", kind);
    if !plural.is_empty() && !group.is_empty() && crd_name != format!("{plural}.{group}") {
        causes.push((
            "metadata.name".into(),
            "FieldValueInvalid",
            format!("Invalid value: {crd_name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if !matches!(scope, "Namespaced" | "Cluster") {
        causes.push((
            "spec.scope".into(),
            "FieldValueNotSupported",
            format!("Unsupported value: {scope:?}: supported values: \"Cluster\", \"Namespaced\""),
        ));
    }
    let versions = crd
        .get("spec")
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push((
            "spec.versions".into(),
            "FieldValueInvalid",
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    } else {
        let storage = versions
            .iter()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .count();
        if storage != 1 {
            causes.push((
                "spec.versions".into(),
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version".into(),
            ));
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            &crd_gr(),
            crd_name,
            causes,
        ));
    }

    let singular = match str_at(crd, &["spec", "names", "singular"]) {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let types = versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .map(|v| {
            let version = str_at(v, &["name"]).to_string();
            let selectable = v
                .get("selectableFields")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                        .map(|p| p.trim_start_matches('.').to_string())
                        .collect()
                })
                .unwrap_or_default();
            ResourceType {
                group: group.to_string(),
                version,
                kind: kind.to_string(),
                plural: plural.to_string(),
                singular: singular.clone(),
                namespaced: scope == "Namespaced",
                short_names: strings_at(crd, &["spec", "names", "shortNames"]),
                categories: strings_at(crd, &["spec", "names", "categories"]),
                status: v
                    .get("subresources")
                    .and_then(|s| s.get("status"))
                    .is_some(),
                // TODO(milestone: scale) `subresources.scale` for CRDs.
                subresources: Vec::new(),
                field_selectors: selectable,
                name_rule: NameRule::Subdomain,
                custom: Some(CustomInfo {
                    crd_name: crd_name.to_string(),
                    schema: v
                        .get("schema")
                        .and_then(|s| s.get("openAPIV3Schema"))
                        .cloned(),
                    printer_columns: v
                        .get("additionalPrinterColumns")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                }),
                storage: None,
            }
        })
        .filter(|rt| !rt.version.is_empty())
        .collect();
    Ok(types)
}

/// The status the real server converges to for an accepted CRD: names accepted, Established,
/// and the storage version recorded. Conditions keep their transition time while unchanged.
pub fn accepted_status(crd: &Value, previous: Option<&Value>) -> Value {
    let now = now_rfc3339();
    let since = |t: &str| {
        previous
            .and_then(|p| p.get("conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter().find(|c| {
                    c.get("type").and_then(Value::as_str) == Some(t)
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now))
    };
    let mut stored: Vec<String> = previous
        .map(|p| strings_at(p, &["storedVersions"]))
        .unwrap_or_default();
    let storage = crd
        .get("spec")
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        })
        .map(|v| str_at(v, &["name"]).to_string())
        .unwrap_or_default();
    if !storage.is_empty() && !stored.contains(&storage) {
        stored.push(storage);
    }
    let names = crd
        .get("spec")
        .and_then(|s| s.get("names"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": since("Established")},
        ],
        "storedVersions": stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_to_types_and_validation() {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1beta1", "served": false, "storage": false}
                ]}
        });
        let types = resource_types(&crd).expect("valid");
        assert_eq!(types.len(), 1);
        assert!(types[0].status && types[0].namespaced);
        assert_eq!(types[0].singular, "widget");
        assert_eq!(types[0].short_names, vec!["wd"]);

        let mut bad = crd.clone();
        bad["metadata"]["name"] = json!("wrong.example.com");
        bad["spec"]["scope"] = json!("Galaxy");
        let err = resource_types(&bad).expect_err("invalid");
        assert_eq!(err.code, 422);
        assert!(err.message.contains("metadata.name"), "{}", err.message);
        assert!(err.message.contains("spec.scope"), "{}", err.message);

        let status = accepted_status(&crd, None);
        assert_eq!(status["conditions"][1]["type"], "Established");
        assert_eq!(status["storedVersions"], json!(["v1"]));
    }
}

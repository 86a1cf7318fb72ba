//! Custom resources in manifests/ are checked against the schemas of the CRDs capstan generates,
//! the way the API server checks them: defaults applied, then structural validation with unknown
//! fields rejected (kubectl's `--validate=strict`). CEL rules are evaluated by the sandbox.

use std::path::PathBuf;

use capstan::apis::all_crds;
use capstan::manifest::{Document, read_paths};
use serde_json::{Value, json};

/// The CRD schema of `api_version` / `kind`, rewritten from Kubernetes' OpenAPI dialect into JSON
/// Schema: `nullable` becomes a null type, objects with declared properties reject others.
fn schema_for(api_version: &str, kind: &str) -> Option<Value> {
    let (group, version) = api_version.split_once('/')?;
    all_crds().into_iter().find_map(|crd| {
        if crd.spec.group != group || crd.spec.names.kind != kind {
            return None;
        }
        let v = crd.spec.versions.iter().find(|v| v.name == version)?;
        let mut schema =
            serde_json::to_value(v.schema.as_ref()?.open_api_v3_schema.as_ref()?).ok()?;
        // The API server supplies these three at the root of every custom resource.
        let props = schema.get_mut("properties")?.as_object_mut()?;
        props.insert("apiVersion".into(), json!({"type": "string"}));
        props.insert("kind".into(), json!({"type": "string"}));
        props.insert("metadata".into(), json!({"type": "object"}));
        to_json_schema(&mut schema);
        Some(schema)
    })
}

fn to_json_schema(v: &mut Value) {
    let Value::Object(map) = v else { return };
    if map.remove("nullable") == Some(Value::Bool(true))
        && let Some(Value::String(t)) = map.get("type").cloned()
    {
        map.insert("type".into(), json!([t, "null"]));
    }
    if map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && !map.contains_key("x-kubernetes-preserve-unknown-fields")
    {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (_, child) in map.iter_mut() {
        match child {
            Value::Object(_) => to_json_schema(child),
            Value::Array(items) => items.iter_mut().for_each(to_json_schema),
            _ => {}
        }
    }
    // `properties` holds a map of schemas, whose values were rewritten above; `default`,
    // `enum` and `x-kubernetes-validations` hold data, which the rewrite leaves alone as long
    // as it holds no `nullable` / `properties` keys (ours hold none).
}

/// Structural defaulting as the API server does it: absent properties with a default get it,
/// recursively, including inside defaults just applied.
fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(obj) => {
            if let Some(Value::Object(props)) = schema.get("properties") {
                for (name, prop) in props {
                    if !obj.contains_key(name)
                        && let Some(d) = prop.get("default")
                    {
                        obj.insert(name.clone(), d.clone());
                    }
                    if let Some(child) = obj.get_mut(name) {
                        apply_defaults(prop, child);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                items
                    .iter_mut()
                    .for_each(|i| apply_defaults(item_schema, i));
            }
        }
        _ => {}
    }
}

fn validate(api_version: &str, kind: &str, object: &Value) -> Result<Value, Vec<String>> {
    let schema = schema_for(api_version, kind)
        .ok_or_else(|| vec![format!("no CRD for {api_version} {kind}")])?;
    let mut defaulted = object.clone();
    apply_defaults(&schema, &mut defaulted);
    let validator =
        jsonschema::validator_for(&schema).map_err(|e| vec![format!("bad schema: {e}")])?;
    let errors: Vec<String> = validator
        .iter_errors(&defaulted)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(defaulted)
    } else {
        Err(errors)
    }
}

fn custom_resources(dir: &str) -> Vec<Document> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    read_paths(&[root])
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|d| {
            matches!(
                d.kind(),
                "NodePool" | "NodeClaim" | "EC2NodeClass" | "RequestPolicy"
            )
        })
        .collect()
}

#[test]
fn examples_pass_the_crd_schemas() {
    let docs = custom_resources("manifests/examples");
    assert!(
        docs.len() >= 5,
        "expected the example NodePools, EC2NodeClasses and RequestPolicy, found {}",
        docs.len()
    );
    for doc in docs {
        if let Err(errors) = validate(doc.api_version(), doc.kind(), &doc.value) {
            panic!(
                "{} document {} ({} {}): {errors:#?}",
                doc.file.display(),
                doc.index,
                doc.kind(),
                doc.name()
            );
        }
    }
}

#[test]
fn checked_in_crds_match_the_generator() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/crds/crds.yaml");
    let on_disk = std::fs::read_to_string(&path).expect("manifests/crds/crds.yaml exists");
    let generated = capstan::apis::crds_yaml().expect("renders");
    assert!(
        on_disk == generated,
        "manifests/crds/crds.yaml is stale: run `cargo run -- crds > manifests/crds/crds.yaml`"
    );
}

fn minimal_pool() -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "p"},
        "spec": {"template": {"spec": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
            "requirements": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]
        }}}
    })
}

#[test]
fn defaults_are_those_of_karpenter_v1() {
    let defaulted = validate("karpenter.sh/v1", "NodePool", &minimal_pool()).expect("valid");
    assert_eq!(
        defaulted["spec"]["disruption"],
        json!({"consolidateAfter": "0s", "consolidationPolicy": "WhenEmptyOrUnderutilized", "budgets": [{"nodes": "10%"}]})
    );
    assert_eq!(defaulted["spec"]["template"]["spec"]["expireAfter"], "720h");
}

#[test]
fn schema_rejects_what_karpenter_rejects() {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "budget nodes over 100%",
            Box::new(|p| p["spec"]["disruption"] = json!({"budgets": [{"nodes": "110%"}]})),
        ),
        (
            "budget nodes not a count",
            Box::new(|p| p["spec"]["disruption"] = json!({"budgets": [{"nodes": "ten"}]})),
        ),
        (
            "budget duration with seconds",
            Box::new(|p| {
                p["spec"]["disruption"] =
                    json!({"budgets": [{"nodes": "1", "schedule": "@daily", "duration": "30s"}]})
            }),
        ),
        ("weight 0", Box::new(|p| p["spec"]["weight"] = json!(0))),
        ("weight 101", Box::new(|p| p["spec"]["weight"] = json!(101))),
        (
            "v1beta1 policy name",
            Box::new(|p| {
                p["spec"]["disruption"] = json!({"consolidationPolicy": "WhenUnderutilized"})
            }),
        ),
        (
            "unknown operator",
            Box::new(|p| {
                p["spec"]["template"]["spec"]["requirements"][0]["operator"] = json!("Like")
            }),
        ),
        (
            "minValues over 50",
            Box::new(|p| p["spec"]["template"]["spec"]["requirements"][0]["minValues"] = json!(51)),
        ),
        (
            "bad expireAfter",
            Box::new(|p| p["spec"]["template"]["spec"]["expireAfter"] = json!("30 days")),
        ),
        (
            "bad taint effect",
            Box::new(|p| {
                p["spec"]["template"]["spec"]["taints"] = json!([{"key": "a", "effect": "NoRun"}])
            }),
        ),
        (
            "unknown field",
            Box::new(|p| p["spec"]["template"]["spec"]["requirments"] = json!([])),
        ),
        (
            "bad limit quantity",
            Box::new(|p| p["spec"]["limits"] = json!({"cpu": "lots"})),
        ),
        (
            "101 requirements",
            Box::new(|p| {
                p["spec"]["template"]["spec"]["requirements"] =
                    json!(vec![json!({"key": "a", "operator": "Exists"}); 101])
            }),
        ),
    ];
    for (name, mutate) in cases {
        let mut pool = minimal_pool();
        mutate(&mut pool);
        assert!(
            validate("karpenter.sh/v1", "NodePool", &pool).is_err(),
            "{name} must be rejected"
        );
    }
}

#[test]
fn ec2nodeclass_schema_checks_ids_and_enums() {
    let class = json!({
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "c"},
        "spec": {"role": "r", "amiSelectorTerms": [{"alias": "al2023@latest"}],
                 "subnetSelectorTerms": [{"id": "subnet-0abc"}], "securityGroupSelectorTerms": [{"id": "sg-0abc"}]}
    });
    let defaulted = validate("karpenter.k8s.aws/v1", "EC2NodeClass", &class).expect("valid");
    assert_eq!(
        defaulted["spec"]["metadataOptions"]["httpTokens"],
        "required"
    );
    for (pointer, bad) in [
        ("/spec/subnetSelectorTerms/0/id", json!("vpc-1")),
        ("/spec/securityGroupSelectorTerms/0/id", json!("subnet-1")),
        ("/spec/amiFamily", json!("Windows")),
        ("/spec/instanceStorePolicy", json!("RAID5")),
    ] {
        let mut c = class.clone();
        match c.pointer_mut(pointer) {
            Some(slot) => *slot = bad,
            None => c["spec"][pointer.rsplit('/').next().unwrap_or_default()] = bad,
        }
        assert!(
            validate("karpenter.k8s.aws/v1", "EC2NodeClass", &c).is_err(),
            "{pointer} must be rejected"
        );
    }
    let mut empty = class.clone();
    empty["spec"]["subnetSelectorTerms"] = json!([]);
    assert!(
        validate("karpenter.k8s.aws/v1", "EC2NodeClass", &empty).is_err(),
        "empty subnetSelectorTerms must be rejected"
    );
}

//! Custom resources against capstan's CRDs: structural validation, pruning per
//! `fieldValidation`, and every CEL rule in manifests/crds/crds.yaml.

use crate::common;

use capstan_sandbox::cel;
use serde_json::{Value, json};

use common::{raw, start_with};

/// A value that satisfies the shape of `schema` (not necessarily its rules): something for
/// each rule to run against.
fn sample(schema: &Value, depth: usize) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return json!("1");
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") | None if depth < 16 => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                props
                    .iter()
                    .map(|(k, s)| (k.clone(), sample(s, depth + 1)))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                json!({"cpu": sample(ap, depth + 1)})
            } else {
                json!({})
            }
        }
        Some("array") => match schema.get("items") {
            Some(items) => json!([sample(items, depth + 1)]),
            None => json!([]),
        },
        Some("integer") => {
            json!(schema.get("minimum").and_then(Value::as_f64).unwrap_or(1.0) as i64)
        }
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("string") => json!("x"),
        _ => json!({}),
    }
}

/// Every (CRD, path, rule, schema) in the file.
fn rules() -> Vec<(String, String, String, Value)> {
    fn walk(schema: &Value, path: &str, crd: &str, out: &mut Vec<(String, String, String, Value)>) {
        if let Some(rs) = schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            for r in rs {
                let rule = r
                    .get("rule")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                out.push((crd.to_string(), path.to_string(), rule, schema.clone()));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, s) in props {
                walk(s, &format!("{path}.{k}"), crd, out);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(s) = schema.get(key).filter(|s| s.is_object()) {
                walk(s, &format!("{path}[{key}]"), crd, out);
            }
        }
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(&common::capstan_crds()).expect("crds yaml");
    let mut out = Vec::new();
    for crd in docs {
        let crd_name = crd["metadata"]["name"].as_str().unwrap_or("").to_string();
        for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
            walk(&v["schema"]["openAPIV3Schema"], "", &crd_name, &mut out);
        }
    }
    out
}

#[test]
fn every_crd_rule_compiles_and_runs() {
    let all = rules();
    assert!(all.len() >= 20, "only {} rules found", all.len());
    let mut broken = Vec::new();
    for (crd, path, rule, schema) in &all {
        if let Err(e) = cel::compile(rule) {
            broken.push(format!("{crd} {path}: {rule}: {e}"));
            continue;
        }
        let value = sample(schema, 0);
        let old = cel::is_transition(rule).then_some(&value);
        if let Err(e) = cel::evaluate(rule, &value, old) {
            broken.push(format!("{crd} {path}: {rule}: {e} (self = {value})"));
        }
    }
    assert!(
        broken.is_empty(),
        "{} of {} rules broken:\n{}",
        broken.len(),
        all.len(),
        broken.join("\n")
    );
    eprintln!("{} CEL rules compiled and ran", all.len());
}

fn nodepool(name: &str) -> Value {
    json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
            "requirements": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}}}})
}

fn nodeclass(name: &str) -> Value {
    json!({"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": name},
        "spec": {"role": "KarpenterNodeRole", "amiSelectorTerms": [{"alias": "al2023@latest"}],
            "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "c"}}],
            "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "c"}}]}})
}

const NODEPOOLS: &str = "/apis/karpenter.sh/v1/nodepools";
const NODECLASSES: &str = "/apis/karpenter.k8s.aws/v1/ec2nodeclasses";

/// POST, then expect `code`; returns the message.
async fn post(client: &kube::Client, path: &str, body: &Value, code: u16) -> String {
    let (status, resp) = raw(
        client,
        "POST",
        path,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, code, "{body}\n→ {resp}");
    resp["message"].as_str().unwrap_or("").to_string()
}

async fn merge(client: &kube::Client, path: &str, patch: Value, code: u16) -> String {
    let (status, resp) = raw(
        client,
        "PATCH",
        path,
        "application/merge-patch+json",
        patch.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, code, "{patch}\n→ {resp}");
    resp["message"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn nodepool_schema_and_rules() {
    let env = start_with(|c| c.crds_yaml = vec![common::capstan_crds()]).await;
    let c = &env.client;
    post(c, NODEPOOLS, &nodepool("ok"), 201).await;

    // Structural: bounds, enums, types, required — worded as the API server words them.
    let mut np = nodepool("heavy");
    np["spec"]["weight"] = json!(101);
    let msg = post(c, NODEPOOLS, &np, 422).await;
    assert_eq!(
        msg,
        r#"NodePool.karpenter.sh "heavy" is invalid: spec.weight: Invalid value: 101: spec.weight in body should be less than or equal to 100"#
    );
    let mut np = nodepool("badop");
    np["spec"]["template"]["spec"]["requirements"][0]["operator"] = json!("Near");
    let msg = post(c, NODEPOOLS, &np, 422).await;
    assert!(
        msg.contains("spec.template.spec.requirements[0].operator: Unsupported value: \"Near\""),
        "{msg}"
    );
    let mut np = nodepool("noref");
    np["spec"]["template"]["spec"]["nodeClassRef"] = json!({"name": "x"});
    let msg = post(c, NODEPOOLS, &np, 422).await;
    assert!(
        msg.contains("spec.template.spec.nodeClassRef.group: Required value"),
        "{msg}"
    );
    let mut np = nodepool("typed");
    np["spec"]["weight"] = json!("heavy");
    let msg = post(c, NODEPOOLS, &np, 422).await;
    assert!(
        msg.contains("spec.weight in body must be of type integer"),
        "{msg}"
    );

    // Restricted label domains (requirement keys and template labels).
    for (key, rule) in [
        (
            "kubernetes.io/custom",
            r#"label domain "kubernetes.io" is restricted"#,
        ),
        ("k8s.io/x", r#"label domain "k8s.io" is restricted"#),
        (
            "karpenter.sh/custom",
            r#"label domain "karpenter.sh" is restricted"#,
        ),
        (
            "kubernetes.io/hostname",
            r#"label "kubernetes.io/hostname" is restricted"#,
        ),
    ] {
        let mut np = nodepool("labels");
        np["spec"]["template"]["spec"]["requirements"][0]["key"] = json!(key);
        let msg = post(c, NODEPOOLS, &np, 422).await;
        assert!(msg.contains(rule), "{key}: {msg}");
    }
    let mut np = nodepool("zone");
    np["spec"]["template"]["spec"]["requirements"][0]["key"] = json!("topology.kubernetes.io/zone");
    post(c, NODEPOOLS, &np, 201).await;
    let mut np = nodepool("tlabel");
    np["spec"]["template"]["metadata"] = json!({"labels": {"karpenter.sh/nodepool": "x"}});
    let msg = post(c, NODEPOOLS, &np, 422).await;
    assert!(
        msg.contains(r#"label "karpenter.sh/nodepool" is restricted"#),
        "{msg}"
    );

    // Budgets: schedule needs duration.
    let mut np = nodepool("budget");
    np["spec"]["disruption"] =
        json!({"budgets": [{"nodes": "10%", "schedule": "0 9 * * mon-fri"}]});
    let msg = post(c, NODEPOOLS, &np, 422).await;
    assert!(
        msg.contains("'schedule' must be set with 'duration'"),
        "{msg}"
    );
    np["spec"]["disruption"]["budgets"][0]["duration"] = json!("8h");
    post(c, NODEPOOLS, &np, 201).await;

    // nodeClassRef: group and kind are immutable, name is not.
    let path = format!("{NODEPOOLS}/ok");
    let msg = merge(
        c,
        &path,
        json!({"spec": {"template": {"spec": {"nodeClassRef": {"kind": "Other"}}}}}),
        422,
    )
    .await;
    assert!(msg.contains("nodeClassRef.kind is immutable"), "{msg}");
    merge(
        c,
        &path,
        json!({"spec": {"template": {"spec": {"nodeClassRef": {"name": "other"}}}}}),
        200,
    )
    .await;
}

#[tokio::test]
async fn ec2nodeclass_rules_and_field_validation() {
    let env = start_with(|c| c.crds_yaml = vec![common::capstan_crds()]).await;
    let c = &env.client;
    post(c, NODECLASSES, &nodeclass("ok"), 201).await;

    let mut nc = nodeclass("both");
    nc["spec"]["instanceProfile"] = json!("profile");
    let msg = post(c, NODECLASSES, &nc, 422).await;
    assert!(
        msg.contains("must specify exactly one of ['role', 'instanceProfile']"),
        "{msg}"
    );
    let msg = merge(
        c,
        &format!("{NODECLASSES}/ok"),
        json!({"spec": {"role": null, "instanceProfile": "p"}}),
        422,
    )
    .await;
    assert!(
        msg.contains("changing from 'instanceProfile' to 'role' is not supported"),
        "{msg}"
    );

    let mut nc = nodeclass("alias");
    nc["spec"]["amiSelectorTerms"] = json!([{"alias": "al2023@latest", "id": "ami-123"}]);
    let msg = post(c, NODECLASSES, &nc, 422).await;
    assert!(msg.contains("'alias' is mutually exclusive"), "{msg}");
    nc["spec"]["amiSelectorTerms"] = json!([{"alias": "al2023@latest"}, {"id": "ami-123"}]);
    let msg = post(c, NODECLASSES, &nc, 422).await;
    assert!(msg.contains("'alias' is mutually exclusive, cannot be set with a combination of other amiSelectorTerms"), "{msg}");
    nc["spec"]["amiSelectorTerms"] = json!([{"alias": "ubuntu@latest"}]);
    let msg = post(c, NODECLASSES, &nc, 422).await;
    assert!(msg.contains("family is not supported"), "{msg}");

    let mut nc = nodeclass("kubelet");
    nc["spec"]["kubelet"] =
        json!({"imageGCHighThresholdPercent": 50, "imageGCLowThresholdPercent": 60});
    let msg = post(c, NODECLASSES, &nc, 422).await;
    assert!(
        msg.contains("imageGCHighThresholdPercent must be greater than imageGCLowThresholdPercent"),
        "{msg}"
    );
    nc["spec"]["kubelet"] =
        json!({"imageGCHighThresholdPercent": 85, "imageGCLowThresholdPercent": 60});
    post(c, NODECLASSES, &nc, 201).await;

    // Unknown fields: Strict → 400 naming the field; Warn (default) and Ignore → pruned.
    let mut nc = nodeclass("unknown");
    nc["spec"]["colour"] = json!("blue");
    let msg = post(
        c,
        &format!("{NODECLASSES}?fieldValidation=Strict"),
        &nc,
        400,
    )
    .await;
    assert!(msg.contains(r#"unknown field "spec.colour""#), "{msg}");
    post(
        c,
        &format!("{NODECLASSES}?fieldValidation=Ignore"),
        &nc,
        201,
    )
    .await;
    let (_, stored) = raw(
        c,
        "GET",
        &format!("{NODECLASSES}/unknown"),
        "application/json",
        Vec::new(),
    )
    .await;
    assert!(stored["spec"].get("colour").is_none(), "{stored}");
    assert_eq!(stored["spec"]["role"], "KarpenterNodeRole");
}

#[tokio::test]
async fn openapi_v3_documents_for_kubectl() {
    let env = start_with(|c| c.crds_yaml = vec![common::capstan_crds()]).await;
    let c = &env.client;
    let (code, index) = raw(c, "GET", "/openapi/v3", "", Vec::new()).await;
    assert_eq!(code, 200);
    let url = index["paths"]["apis/karpenter.sh/v1"]["serverRelativeURL"]
        .as_str()
        .expect("karpenter.sh/v1 in the index");
    assert!(index["paths"]["api/v1"]["serverRelativeURL"].is_string());
    let (code, doc) = raw(c, "GET", url, "", Vec::new()).await;
    assert_eq!(code, 200);
    let patch = &doc["paths"]["/apis/karpenter.sh/v1/nodepools/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "karpenter.sh", "version": "v1", "kind": "NodePool"})
    );
    assert!(
        patch["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fieldValidation"))
    );
    // The CRD's own schema is the component (what `kubectl explain` reads).
    let schema = &doc["components"]["schemas"]["sh.karpenter.v1.NodePool"];
    assert!(
        schema["properties"]["spec"]["properties"]["weight"].is_object(),
        "{schema}"
    );
    let (code, _) = raw(c, "GET", "/openapi/v2", "", Vec::new()).await;
    assert_eq!(code, 404);
}

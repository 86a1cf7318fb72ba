use serde_json::{Value, json};

use super::*;

fn pool() -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "default"},
        "spec": {
            "template": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                    "requirements": [
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]},
                        {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"], "minValues": 2},
                        {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["2"]}
                    ],
                    "expireAfter": "720h"
                }
            },
            "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "1m",
                           "budgets": [{"nodes": "10%"}, {"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h"}]},
            "limits": {"cpu": 1000, "memory": "1000Gi"},
            "weight": 10
        }
    })
}

fn with(pointer: &str, value: Value) -> Value {
    let mut p = pool();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = p.pointer_mut(parent).unwrap();
    match target {
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = value,
        Value::Object(m) => {
            if value.is_null() {
                m.remove(key);
            } else {
                m.insert(key.to_string(), value);
            }
        }
        _ => panic!("{pointer}"),
    }
    p
}

fn check(v: &Verdict) -> Vec<String> {
    v.errors.iter().map(|e| e.path.clone()).collect()
}

#[test]
fn valid_pool_is_admitted_without_warnings() {
    let v = validate_nodepool(&pool(), None, &default_instance_options());
    assert!(v.is_allowed(), "{:?}", v.errors);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
}

#[test]
fn invalid_cases_name_their_field() {
    let r = "/spec/template/spec/requirements";
    let cases: Vec<(Value, &str)> = vec![
        (
            with("/spec/disruption/budgets/0", json!({"nodes": "110%"})),
            "spec.disruption.budgets[0].nodes",
        ),
        (
            with(
                "/spec/disruption/budgets/1",
                json!({"nodes": "1", "schedule": "@daily"}),
            ),
            "spec.disruption.budgets[1].duration",
        ),
        (
            with("/spec/disruption/consolidationPolicy", json!("Sometimes")),
            "spec.disruption.consolidationPolicy",
        ),
        (
            with("/spec/disruption/consolidateAfter", json!("5 minutes")),
            "spec.disruption.consolidateAfter",
        ),
        (
            with(
                &format!("{r}/0"),
                json!({"key": "kubernetes.io/arch", "operator": "Like", "values": ["amd64"]}),
            ),
            "spec.template.spec.requirements[0].operator",
        ),
        (
            with(
                &format!("{r}/0"),
                json!({"key": "kubernetes.io/arch", "operator": "In"}),
            ),
            "spec.template.spec.requirements[0].values",
        ),
        (
            with(
                &format!("{r}/0"),
                json!({"key": "kubernetes.io/arch", "operator": "Exists", "values": ["amd64"]}),
            ),
            "spec.template.spec.requirements[0].values",
        ),
        (
            with(
                &format!("{r}/0"),
                json!({"key": "kubernetes.io/arch", "operator": "In", "values": ["x86_64"]}),
            ),
            "spec.template.spec.requirements[0].values[0]",
        ),
        (
            with(
                &format!("{r}/1"),
                json!({"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "ondemand"]}),
            ),
            "spec.template.spec.requirements[1].values[1]",
        ),
        (
            with(
                &format!("{r}/0"),
                json!({"key": "kubernetes.io/os", "operator": "In", "values": ["macos"]}),
            ),
            "spec.template.spec.requirements[0].values[0]",
        ),
        (
            with(
                &format!("{r}/3"),
                json!({"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["two"]}),
            ),
            "spec.template.spec.requirements[3].values",
        ),
        (
            with(
                &format!("{r}/3"),
                json!({"key": "karpenter.k8s.aws/instance-generation", "operator": "Lt", "values": ["2", "3"]}),
            ),
            "spec.template.spec.requirements[3].values",
        ),
        (
            with(
                &format!("{r}/2"),
                json!({"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c"], "minValues": 2}),
            ),
            "spec.template.spec.requirements[2].minValues",
        ),
        (
            with(
                &format!("{r}/0"),
                json!({"key": "karpenter.sh/nodepool", "operator": "In", "values": ["x"]}),
            ),
            "spec.template.spec.requirements[0].key",
        ),
        (
            with(
                &format!("{r}/0"),
                json!({"key": "kubernetes.io/hostname", "operator": "Exists"}),
            ),
            "spec.template.spec.requirements[0].key",
        ),
        (
            with(
                &format!("{r}/0"),
                json!({"key": "karpenter.k8s.aws/made-up", "operator": "Exists"}),
            ),
            "spec.template.spec.requirements[0].key",
        ),
        (
            with(
                &format!("{r}/0"),
                json!({"key": "bad key!", "operator": "Exists"}),
            ),
            "spec.template.spec.requirements[0].key",
        ),
        (
            with(
                "/spec/template/spec/taints",
                json!([{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "Sometimes"}]),
            ),
            "spec.template.spec.taints[1].effect",
        ),
        (
            with(
                "/spec/template/spec/taints",
                json!([{"key": "-bad", "effect": "NoSchedule"}]),
            ),
            "spec.template.spec.taints[0].key",
        ),
        (
            with(
                "/spec/template/spec/startupTaints",
                json!([{"key": "ok", "value": "not ok!", "effect": "NoSchedule"}]),
            ),
            "spec.template.spec.startupTaints[0].value",
        ),
        (
            with(
                "/spec/template/metadata/labels",
                json!({"kubernetes.io/custom": "x"}),
            ),
            "spec.template.metadata.labels[kubernetes.io/custom]",
        ),
        (
            with("/spec/template/metadata/labels", json!({"team": "a b"})),
            "spec.template.metadata.labels[team]",
        ),
        (
            with("/spec/limits", json!({"cpu": "lots"})),
            "spec.limits[cpu]",
        ),
        (
            with("/spec/limits", json!({"memory": "-1Gi"})),
            "spec.limits[memory]",
        ),
        (with("/spec/weight", json!(0)), "spec.weight"),
        (with("/spec/weight", json!(101)), "spec.weight"),
        (
            with("/spec/template/spec/expireAfter", json!("30d")),
            "spec.template.spec.expireAfter",
        ),
        (
            with("/spec/template/spec/terminationGracePeriod", json!("Never")),
            "spec.template.spec.terminationGracePeriod",
        ),
        (
            with(
                "/spec/template/spec/nodeClassRef",
                json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": ""}),
            ),
            "spec.template.spec.nodeClassRef.name",
        ),
        (
            with("/spec/template/spec/requirements", json!("linux")),
            "spec.template.spec.requirements",
        ),
        (with("/spec", json!(null)), "spec"),
    ];
    for (obj, path) in cases {
        let v = validate_nodepool(&obj, None, &[]);
        assert!(
            check(&v).iter().any(|p| p == path),
            "want an error at {path}, got {:?}",
            v.errors
        );
        assert!(v.message().contains(path), "{}", v.message());
    }
}

#[test]
fn allowed_variants() {
    let r = "/spec/template/spec/requirements";
    let cases = vec![
        with("/spec/template/spec/expireAfter", json!("Never")),
        with("/spec/disruption/consolidateAfter", json!("Never")),
        with("/spec/template/spec/terminationGracePeriod", json!("48h")),
        with(
            &format!("{r}/1"),
            json!({"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]}),
        ),
        with(
            &format!("{r}/0"),
            json!({"key": "node.kubernetes.io/instance-type", "operator": "Exists", "minValues": 3}),
        ),
        with(
            &format!("{r}/0"),
            json!({"key": "example.com/team", "operator": "DoesNotExist"}),
        ),
        with(
            "/spec/template/metadata/labels",
            json!({"kops.k8s.io/instancegroup": "a", "topology.kubernetes.io/zone": "us-east-1a"}),
        ),
    ];
    for obj in cases {
        let v = validate_nodepool(&obj, None, &[]);
        assert!(v.is_allowed(), "{:?}", v.errors);
    }
}

#[test]
fn unsatisfiable_requirements_warn() {
    let obj = with(
        "/spec/template/spec/requirements/0",
        json!({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m5.nonexistent"]}),
    );
    let v = validate_nodepool(&obj, None, &default_instance_options());
    assert!(v.is_allowed(), "{:?}", v.errors);
    assert!(
        v.warnings.iter().any(|w| w.contains("no instance type")),
        "{:?}",
        v.warnings
    );
}

#[test]
fn freeze_budget_warns() {
    let obj = with("/spec/disruption/budgets", json!([{"nodes": "0"}]));
    let v = validate_nodepool(&obj, None, &[]);
    assert!(v.is_allowed());
    assert!(
        v.warnings.iter().any(|w| w.contains("forever")),
        "{:?}",
        v.warnings
    );
}

#[test]
fn node_class_ref_group_and_kind_are_immutable() {
    let old = pool();
    let new = with(
        "/spec/template/spec/nodeClassRef",
        json!({"group": "example.com", "kind": "EC2NodeClass", "name": "default"}),
    );
    let v = validate_nodepool(&new, Some(&old), &[]);
    assert_eq!(check(&v), vec!["spec.template.spec.nodeClassRef.group"]);
    let renamed = with(
        "/spec/template/spec/nodeClassRef",
        json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "other"}),
    );
    let v = validate_nodepool(&renamed, Some(&old), &[]);
    assert!(v.is_allowed());
    assert_eq!(v.warnings.len(), 1);
}

#[test]
fn defaults_minimal_pool() {
    let minimal = json!({"spec": {"template": {"spec": {"nodeClassRef": {"name": "default"}}}}});
    let d = default_nodepool(&minimal);
    assert_eq!(
        d["spec"]["disruption"],
        json!({"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "0s", "budgets": [{"nodes": "10%"}]})
    );
    let t = &d["spec"]["template"]["spec"];
    assert_eq!(t["expireAfter"], "720h");
    assert_eq!(
        t["nodeClassRef"],
        json!({"name": "default", "group": "karpenter.k8s.aws", "kind": "EC2NodeClass"})
    );
    assert_eq!(t["requirements"], default_requirements());
    // The defaulted pool is valid and some instance types satisfy it.
    let v = validate_nodepool(&d, None, &default_instance_options());
    assert!(v.is_allowed(), "{:?}", v.errors);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    // A pool with requirements keeps them; explicit values are never overwritten.
    let d = default_nodepool(&pool());
    assert_eq!(
        d["spec"]["template"]["spec"]["requirements"],
        pool()["spec"]["template"]["spec"]["requirements"]
    );
    assert_eq!(d["spec"]["disruption"]["consolidateAfter"], "1m");
    assert_eq!(json_patch::diff(&pool(), &d).0.len(), 0);
}

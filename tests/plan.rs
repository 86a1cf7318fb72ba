//! `capstan plan` on the example manifests, run as a user runs it; the JSON is checked field by field.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn plan(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("plan")
        .args(args)
        .output()
        .expect("capstan runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let (code, stdout, stderr) = plan(&all);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn examples_plan_puts_every_pod_on_a_matching_pool() {
    let p = json(&["-f", "manifests/examples"]);
    let claims = p["nodeclaims"].as_array().expect("nodeclaims");
    assert!(
        p["unschedulable"].as_array().is_some_and(Vec::is_empty),
        "{}",
        p["unschedulable"]
    );
    let pods_of = |pool: &str| -> Vec<String> {
        claims
            .iter()
            .filter(|c| c["nodepool"] == pool)
            .flat_map(|c| c["pods"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let default = pods_of("default");
    assert_eq!(default.len(), 30, "the 30 inflate replicas");
    assert!(
        default.contains(&"default/inflate-0".to_string())
            && default.contains(&"default/inflate-29".to_string())
    );
    assert!(
        pods_of("team-a").iter().all(|p| p.starts_with("team-a/")),
        "team pods go to the team pool"
    );
    assert!(pods_of("gpu").is_empty(), "nothing tolerates the GPU taint");
    for c in claims {
        for key in [
            "nodepool",
            "instance_type",
            "instance_types",
            "zone",
            "capacity_type",
            "price_per_hour",
            "pods",
        ] {
            assert!(c.get(key).is_some(), "nodeclaim lacks {key}: {c}");
        }
        let types = c["instance_types"].as_array().expect("list");
        assert_eq!(
            types[0], c["instance_type"],
            "the chosen type is the cheapest listed"
        );
        assert!(types.len() <= 60);
        let zone = c["zone"].as_str().unwrap_or_default();
        assert!(zone.starts_with("us-west-2"), "{zone}");
    }
    // The default pool allows c/m/r families, generation > 2, amd64, spot and on-demand.
    let d = claims
        .iter()
        .find(|c| c["nodepool"] == "default")
        .expect("a default claim");
    let t = d["instance_type"].as_str().unwrap_or_default();
    assert!(matches!(&t[..1], "c" | "m" | "r"), "{t}");
    let total = p["total_per_hour"].as_f64().expect("total");
    let lower = p["lower_bound_per_hour"].as_f64().expect("lower bound");
    let ratio = p["cost_ratio"].as_f64().expect("ratio");
    assert!(lower > 0.0 && lower <= total, "{lower} <= {total}");
    assert!((ratio - total / lower).abs() < 0.01);
    assert!((p["total_per_month"].as_f64().unwrap_or(0.0) - total * 730.0).abs() < 0.05);
    assert_eq!(
        p["estimated_prices"], true,
        "us-west-2 prices start from us-east-1's"
    );
}

#[test]
fn us_east_1_prices_are_not_estimates_for_on_demand() {
    let dir = std::env::temp_dir().join(format!("capstan-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("od.yaml");
    std::fs::write(
        &file,
        r#"
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: od}
spec:
  template:
    spec:
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}
      requirements:
        - {key: node.kubernetes.io/instance-type, operator: In, values: [m5.large, m5.xlarge]}
---
apiVersion: v1
kind: Pod
metadata: {name: one}
spec:
  containers: [{name: c, image: x, resources: {requests: {cpu: 500m, memory: 1Gi}}}]
"#,
    )
    .expect("write");
    let p = json(&[
        "-f",
        file.to_str().unwrap_or_default(),
        "--region",
        "us-east-1",
    ]);
    let c = &p["nodeclaims"][0];
    assert_eq!(c["instance_type"], "m5.large");
    assert_eq!(
        c["capacity_type"], "on-demand",
        "a pool without a capacity-type requirement launches on-demand"
    );
    assert_eq!(c["price_per_hour"], 0.096, "the embedded us-east-1 price");
    assert_eq!(p["estimated_prices"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unschedulable_pods_are_listed_with_a_reason_per_pool() {
    let dir = std::env::temp_dir().join(format!("capstan-plan-u-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("big.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  containers: [{name: c, image: x, resources: {requests: {cpu: \"900\"}}}]\n",
    )
    .expect("write");
    let p = json(&[
        "-f",
        "manifests/examples",
        "-f",
        file.to_str().unwrap_or_default(),
    ]);
    let u = p["unschedulable"].as_array().expect("list");
    assert_eq!(u.len(), 1);
    assert_eq!(u[0]["pod"], "default/big");
    assert_eq!(
        u[0]["reasons"]["gpu"],
        "did not tolerate nvidia.com/gpu=true:NoSchedule"
    );
    assert!(
        u[0]["reasons"]["default"]
            .as_str()
            .is_some_and(|r| r.contains("enough resources")),
        "{}",
        u[0]
    );
    // The table says the same to a person.
    let (code, table, _) = plan(&[
        "-f",
        "manifests/examples",
        "-f",
        file.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0);
    assert!(
        table.contains("1 pods cannot be scheduled") && table.contains("default/big"),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_manifests_fail_with_their_location() {
    let (code, _, stderr) = plan(&["-f", "e2e/fixtures/broken-nodepool.yaml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "broken-nodepool.yaml:17: document 2: spec.template.spec.requirments: unknown field"
        ),
        "{stderr}"
    );
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("e2e/fixtures/broken-nodepool.yaml")
            .exists()
    );
}

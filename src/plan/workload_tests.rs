use std::path::Path;

use super::*;
use crate::manifest::{decode_object, parse_documents};

fn objects(yaml: &str) -> Vec<Object> {
    parse_documents(Path::new("w.yaml"), yaml)
        .expect("parses")
        .iter()
        .map(|d| decode_object(d).expect("decodes"))
        .collect()
}

fn names(pods: &[Pod]) -> Vec<&str> {
    pods.iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect()
}

const TEMPLATE: &str = "
  template:
    metadata:
      labels:
        app: inflate
    spec:
      containers:
        - name: c
          image: pause
          resources:
            requests:
              cpu: '1'
";

fn workload(head: &str) -> String {
    format!("{head}{TEMPLATE}")
}

#[test]
fn deployment_of_three() {
    let w = expand(&objects(&workload(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: inflate\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: inflate",
    ))).expect("within MAX_PODS");
    assert_eq!(names(&w.pods), ["inflate-0", "inflate-1", "inflate-2"]);
    assert!(w.daemonsets.is_empty());
    for p in &w.pods {
        let m = &p.metadata;
        assert_eq!(m.namespace.as_deref(), Some("default"));
        let labels = m.labels.as_ref().expect("labels");
        assert_eq!(labels.get("app").map(String::as_str), Some("inflate"));
        assert_eq!(
            m.uid.as_deref(),
            Some(format!("default/{}", m.name.as_deref().unwrap_or_default()).as_str())
        );
        let o = &m.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (o.kind.as_str(), o.name.as_str()),
            ("Deployment", "inflate")
        );
        let spec = p.spec.as_ref().expect("spec");
        assert_eq!(spec.containers[0].name, "c");
    }
}

#[test]
fn table() {
    struct Case {
        what: &'static str,
        yaml: String,
        pods: Vec<&'static str>,
        daemonsets: Vec<&'static str>,
    }
    let cases = [
        Case {
            what: "StatefulSet in its namespace",
            yaml: workload(
                "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n  namespace: data\nspec:\n  replicas: 2\n  serviceName: db\n  selector:\n    matchLabels:\n      app: inflate",
            ),
            pods: vec!["data/db-0", "data/db-1"],
            daemonsets: vec![],
        },
        Case {
            what: "Job: completions cap parallelism",
            yaml: workload(
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: batch\nspec:\n  parallelism: 4\n  completions: 2",
            ),
            pods: vec!["default/batch-0", "default/batch-1"],
            daemonsets: vec![],
        },
        Case {
            what: "Job: parallelism defaults to 1",
            yaml: workload("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\nspec:"),
            pods: vec!["default/once-0"],
            daemonsets: vec![],
        },
        Case {
            what: "suspended Job runs nothing",
            yaml: workload(
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: later\nspec:\n  suspend: true\n  parallelism: 3",
            ),
            pods: vec![],
            daemonsets: vec![],
        },
        Case {
            what: "DaemonSet goes to daemonsets",
            yaml: workload(
                "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n  namespace: kube-system\nspec:\n  selector:\n    matchLabels:\n      app: inflate",
            ),
            pods: vec![],
            daemonsets: vec!["kube-system/agent"],
        },
        Case {
            what: "replicas: 0 gives no pods",
            yaml: workload(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: idle\nspec:\n  replicas: 0\n  selector:\n    matchLabels:\n      app: inflate",
            ),
            pods: vec![],
            daemonsets: vec![],
        },
        Case {
            what: "ReplicaSet replicas default to 1",
            yaml: workload(
                "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: rs\nspec:\n  selector:\n    matchLabels:\n      app: inflate",
            ),
            pods: vec!["default/rs-0"],
            daemonsets: vec![],
        },
        Case {
            what: "bare Pod is itself, namespace defaulted; other kinds ignored",
            yaml: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: solo\nspec:\n  containers:\n    - name: c\n      image: pause\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n".into(),
            pods: vec!["default/solo"],
            daemonsets: vec![],
        },
    ];
    for case in cases {
        let w = expand(&objects(&case.yaml)).expect("within MAX_PODS");
        let uids = |pods: &[Pod]| -> Vec<String> {
            pods.iter()
                .map(|p| p.metadata.uid.clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(uids(&w.pods), case.pods, "{}", case.what);
        assert_eq!(uids(&w.daemonsets), case.daemonsets, "{}", case.what);
        for p in w.pods.iter().chain(&w.daemonsets) {
            let m = &p.metadata;
            let key = format!(
                "{}/{}",
                m.namespace.as_deref().unwrap_or_default(),
                m.name.as_deref().unwrap_or_default()
            );
            assert_eq!(m.uid.as_deref(), Some(key.as_str()), "{}", case.what);
            assert!(p.spec.is_some(), "{}", case.what);
        }
    }
}

#[test]
fn controller_labels_and_owners() {
    let w = expand(&objects(&format!(
        "{}\n---\n{}",
        workload(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  replicas: 1\n  serviceName: db\n  selector:\n    matchLabels:\n      app: inflate"
        ),
        workload(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels:\n      app: inflate"
        ),
    ))).expect("within MAX_PODS");
    let labels = w.pods[0].metadata.labels.as_ref().expect("labels");
    assert_eq!(labels["app"], "inflate");
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "db-0");
    let ds = &w.daemonsets[0].metadata;
    assert_eq!(
        ds.owner_references.as_ref().expect("owner")[0].kind,
        "DaemonSet"
    );
    assert_eq!(ds.labels.as_ref().expect("labels")["app"], "inflate");
}

/// `replicas: 2147483647` tried to allocate 5 TB and aborted `capstan plan`: refused up front,
/// naming the object.
#[test]
fn more_pods_than_a_cluster_holds_is_an_error() {
    let huge = workload(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: typo\nspec:\n  replicas: 2147483647\n  selector:\n    matchLabels:\n      app: inflate",
    );
    let err = expand(&objects(&huge)).expect_err("over the limit");
    assert!(
        err.starts_with("Deployment default/typo asks for 2147483647 pods"),
        "{err}"
    );
    // Counted across objects, before any pod is made.
    let over = format!(
        "{}\n---\n{}",
        workload(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: inflate"
        ),
        workload(&format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n  namespace: batch\nspec:\n  parallelism: {}",
            MAX_PODS - 2
        )),
    );
    let err = expand(&objects(&over)).expect_err("over the limit");
    assert!(
        err.starts_with("Job batch/j asks for 149998 pods (150001 in all)"),
        "{err}"
    );
}

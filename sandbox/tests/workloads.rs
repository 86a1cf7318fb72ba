//! The sandbox's controllers, scheduler and kubelet, driven through kube-rs: Deployments make
//! ReplicaSets make pods, pods wait for nodes that fit, then bind and run; a Job's pods run for a
//! while and succeed until the Job is complete.

use crate::common;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use common::{eventually, start, start_with};

fn deployment(name: &str, replicas: i32, cpu: &str, extra_spec: Value) -> Deployment {
    let mut spec = json!({"containers": [{"name": "c", "image": "x",
        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        }
    }))
    .expect("deployment")
}

/// A node with allocatable cpu (cores), Ready unless `ready` is false.
fn node(name: &str, cpu: &str, labels: Value, taints: Value, ready: bool) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "addresses": [{"type": "InternalIP", "address": "192.168.0.10"}],
        }
    }))
    .expect("node")
}

async fn pods_of(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list pods")
        .items
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn scheduled_condition(p: &Pod) -> Option<(String, Option<String>, Option<String>)> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn count_where(pods: &Api<Pod>, app: &str, f: impl Fn(&Pod) -> bool) -> usize {
    pods_of(pods, app).await.iter().filter(|p| f(p)).count()
}

#[tokio::test]
async fn deployments_make_replica_sets_make_pods_and_scale() {
    let env = start().await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let d = deployments
        .create(
            &PostParams::default(),
            &deployment("web", 3, "100m", json!({})),
        )
        .await
        .expect("create");
    let d_uid = d.metadata.uid.expect("uid");

    eventually("3 pods", || async {
        pods_of(&pods, "web").await.len() == 3
    })
    .await;
    let rs_list = sets
        .list(&ListParams::default())
        .await
        .expect("list rs")
        .items;
    assert_eq!(rs_list.len(), 1);
    let rs = &rs_list[0];
    let rs_name = rs.metadata.name.clone().expect("name");
    let hash = rs.metadata.labels.as_ref().expect("labels")["pod-template-hash"].clone();
    assert_eq!(rs_name, format!("web-{hash}"));
    let owner = &rs.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", d_uid.as_str())
    );
    assert_eq!(owner.controller, Some(true));
    for p in pods_of(&pods, "web").await {
        let name = p.metadata.name.clone().expect("name");
        assert!(name.starts_with(&format!("{rs_name}-")), "{name}");
        let owner = &p.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ReplicaSet", rs_name.as_str())
        );
        assert_eq!(
            p.metadata.labels.as_ref().expect("labels")["pod-template-hash"],
            hash
        );
    }

    // No nodes: every pod is Pending and marked unschedulable.
    eventually("pods marked unschedulable", || async {
        count_where(&pods, "web", |p| {
            scheduled_condition(p)
                == Some((
                    "False".into(),
                    Some("Unschedulable".into()),
                    Some("no nodes available to schedule pods".into()),
                ))
        })
        .await
            == 3
    })
    .await;
    assert!(
        pods_of(&pods, "web")
            .await
            .iter()
            .all(|p| phase(p) == "Pending")
    );

    // Scale through the scale subresource (what `kubectl scale` uses).
    let scale = deployments.get_scale("web").await.expect("get scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    assert_eq!(
        scale.status.map(|s| (s.replicas, s.selector)),
        Some((3, Some("app=web".to_string())))
    );
    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("scale up");
    eventually("5 pods", || async {
        pods_of(&pods, "web").await.len() == 5
    })
    .await;
    assert_eq!(sets.get(&rs_name).await.expect("rs").spec.replicas, Some(5));
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale down");
    eventually("2 pods", || async {
        pods_of(&pods, "web").await.len() == 2
    })
    .await;

    // A new template: a new ReplicaSet takes over, the old one goes to 0.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {"labels": {"v": "2"}}}}})),
        )
        .await
        .expect("new template");
    eventually("rollout", || async {
        let sets = sets.list(&ListParams::default()).await.expect("list").items;
        let replicas: BTreeMap<String, i32> = sets
            .iter()
            .map(|rs| {
                (
                    rs.metadata.name.clone().unwrap_or_default(),
                    rs.spec.replicas.unwrap_or(-1),
                )
            })
            .collect();
        replicas.len() == 2 && replicas.get(&rs_name) == Some(&0)
    })
    .await;
    eventually("new pods only", || async {
        let ps = pods_of(&pods, "web").await;
        ps.len() == 2
            && ps.iter().all(|p| {
                p.metadata.labels.as_ref().and_then(|l| l.get("v")) == Some(&"2".to_string())
            })
    })
    .await;
}

#[tokio::test]
async fn replica_sets_work_on_their_own() {
    let env = start().await;
    let sets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "solo"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "solo"}},
            "template": {"metadata": {"labels": {"app": "solo"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    }))
    .expect("rs");
    sets.create(&PostParams::default(), &rs)
        .await
        .expect("create");
    eventually("2 pods", || async {
        pods_of(&pods, "solo").await.len() == 2
    })
    .await;
    sets.replace_scale(
        "solo",
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "solo", "namespace": "default"},
            "spec": {"replicas": 1}}))
        .expect("scale"),
    )
    .await
    .expect("replace scale");
    eventually("1 pod", || async {
        pods_of(&pods, "solo").await.len() == 1
    })
    .await;
    eventually("status", || async {
        sets.get("solo")
            .await
            .expect("rs")
            .status
            .is_some_and(|s| s.replicas == 1)
    })
    .await;
}

#[tokio::test]
async fn pods_bind_to_nodes_that_fit_and_run() {
    let env = start().await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    for n in [
        node("small", "1", json!({}), json!([]), true),
        node(
            "gpu",
            "8",
            json!({}),
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
            true,
        ),
        node("down", "8", json!({}), json!([]), false),
    ] {
        nodes
            .create(&PostParams::default(), &n)
            .await
            .expect("node");
    }
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 4, "400m", json!({})),
        )
        .await
        .expect("create");

    // Two fit on `small`; the others fit nowhere, for three different reasons.
    eventually("2 running on small", || async {
        count_where(&pods, "web", |p| {
            node_of(p).as_deref() == Some("small") && phase(p) == "Running"
        })
        .await
            == 2
    })
    .await;
    let message = "0/3 nodes are available: 1 Insufficient cpu, \
        1 node(s) had untolerated taint {dedicated: gpu}, \
        1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.";
    eventually("2 unschedulable", || async {
        count_where(&pods, "web", |p| {
            scheduled_condition(p).and_then(|c| c.2).as_deref() == Some(message)
        })
        .await
            == 2
    })
    .await;
    let running = pods_of(&pods, "web")
        .await
        .into_iter()
        .find(|p| phase(p) == "Running")
        .expect("running pod");
    let status = running.status.expect("status");
    assert_eq!(status.host_ip.as_deref(), Some("192.168.0.10"));
    assert!(status.pod_ip.is_some());
    let ready = status
        .conditions
        .expect("conditions")
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    assert!(ready);

    // A node with room: the rest bind and run, and the Deployment reports them.
    nodes
        .create(
            &PostParams::default(),
            &node("big", "4", json!({}), json!([]), true),
        )
        .await
        .expect("node");
    eventually("all running", || async {
        count_where(&pods, "web", |p| phase(p) == "Running").await == 4
    })
    .await;
    assert_eq!(
        count_where(&pods, "web", |p| node_of(p).as_deref() == Some("big")).await,
        2
    );
    eventually("deployment status", || async {
        let s = deployments
            .get("web")
            .await
            .expect("get")
            .status
            .unwrap_or_default();
        (
            s.replicas,
            s.ready_replicas,
            s.available_replicas,
            s.updated_replicas,
        ) == (Some(4), Some(4), Some(4), Some(4))
    })
    .await;
    let conditions = deployments
        .get("web")
        .await
        .expect("get")
        .status
        .and_then(|s| s.conditions)
        .expect("conditions");
    assert!(conditions
        .iter()
        .any(|c| c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")));
}

#[tokio::test]
async fn node_selectors_affinity_taints_and_cordons_are_respected() {
    let env = start().await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    for n in [
        node("a", "4", json!({"zone": "a", "gen": "5"}), json!([]), true),
        node("b", "4", json!({"zone": "b", "gen": "7"}), json!([]), true),
        node(
            "tainted",
            "4",
            json!({"zone": "c", "gen": "9"}),
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
            true,
        ),
    ] {
        nodes
            .create(&PostParams::default(), &n)
            .await
            .expect("node");
    }
    let specs = [
        ("zoned", json!({"nodeSelector": {"zone": "b"}})),
        (
            "tolerant",
            json!({"nodeSelector": {"zone": "c"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
        ),
        (
            "newgen",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "gen", "operator": "Gt", "values": ["5"]},
                    {"key": "zone", "operator": "NotIn", "values": ["c"]}]}]}}}}),
        ),
        ("intolerant", json!({"nodeSelector": {"zone": "c"}})),
    ];
    for (name, extra) in &specs {
        deployments
            .create(
                &PostParams::default(),
                &deployment(name, 1, "100m", extra.clone()),
            )
            .await
            .expect("create");
    }
    for (app, want) in [("zoned", "b"), ("tolerant", "tainted"), ("newgen", "b")] {
        eventually(app, || async {
            count_where(&pods, app, |p| node_of(p).as_deref() == Some(want)).await == 1
        })
        .await;
    }
    eventually("intolerant pod unschedulable", || async {
        count_where(&pods, "intolerant", |p| {
            scheduled_condition(p).and_then(|c| c.2).as_deref()
                == Some("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector.")
        })
        .await
            == 1
    })
    .await;

    // Cordoned: new pods avoid the node.
    nodes
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .expect("cordon");
    deployments
        .patch(
            "newgen",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale");
    eventually("second newgen pod unschedulable", || async {
        count_where(&pods, "newgen", |p| {
            scheduled_condition(p)
                .and_then(|c| c.2)
                .is_some_and(|m| m.contains("1 node(s) were unschedulable"))
        })
        .await
            == 1
    })
    .await;
}

#[tokio::test]
async fn daemon_sets_run_one_pod_per_eligible_node() {
    let env = start().await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let sets: Api<DaemonSet> = Api::namespaced(env.client.clone(), "kube-system");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "kube-system");
    for n in [
        node("a", "4", json!({}), json!([]), true),
        node("b", "4", json!({}), json!([]), true),
        node(
            "tainted",
            "4",
            json!({}),
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
            true,
        ),
    ] {
        nodes
            .create(&PostParams::default(), &n)
            .await
            .expect("node");
    }
    // Cordoned nodes still run daemons.
    nodes
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .expect("cordon");
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "x",
                    "resources": {"requests": {"cpu": "100m"}}}]}}}
    }))
    .expect("ds");
    sets.create(&PostParams::default(), &ds)
        .await
        .expect("create");
    eventually("one running pod on a and b", || async {
        let mut on: Vec<String> = pods_of(&pods, "agent")
            .await
            .iter()
            .filter(|p| phase(p) == "Running")
            .filter_map(node_of)
            .collect();
        on.sort();
        on == ["a", "b"]
    })
    .await;
    eventually("daemon set status", || async {
        let s = sets
            .get("agent")
            .await
            .expect("get")
            .status
            .unwrap_or_default();
        (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_ready,
        ) == (2, 2, 2)
    })
    .await;

    // A new node gets its daemon; a removed one loses it.
    nodes
        .create(
            &PostParams::default(),
            &node("c", "4", json!({}), json!([]), true),
        )
        .await
        .expect("node");
    nodes
        .delete("a", &Default::default())
        .await
        .expect("delete node");
    eventually("daemons follow the nodes", || async {
        let mut on: Vec<String> = pods_of(&pods, "agent")
            .await
            .iter()
            .filter_map(node_of)
            .collect();
        on.sort();
        on == ["b", "c"]
    })
    .await;
}

#[tokio::test]
async fn controllers_can_be_turned_off() {
    let env = start_with(|c| c.controllers = false).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 2, "100m", json!({})),
        )
        .await
        .expect("create");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        sets.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn jobs_run_their_pods_to_completion() {
    let env = start().await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    nodes
        .create(
            &PostParams::default(),
            &node("n1", "4", json!({}), json!([]), true),
        )
        .await
        .expect("node");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "batch"},
        "spec": {
            "completions": 3,
            "parallelism": 2,
            "template": {
                "metadata": {"labels": {"app": "batch"},
                             "annotations": {"sandbox.capstan.dev/run-for": "500ms"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "100m"}}}]}
            }
        }
    }))
    .expect("job");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");

    // Never more than `parallelism` at once; all three succeed in the end.
    let mut most_running = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let running = count_where(&pods, "batch", |p| phase(p) == "Running").await;
        most_running = most_running.max(running);
        let done = jobs
            .get("batch")
            .await
            .ok()
            .and_then(|j| j.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            });
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Job did not complete"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(most_running <= 2, "{most_running} pods ran at once");
    let all = pods_of(&pods, "batch").await;
    assert_eq!(all.len(), 3, "one pod per completion");
    assert!(all.iter().all(|p| phase(p) == "Succeeded"));
    assert!(all.iter().all(|p| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("job-name"))
            .map(String::as_str)
            == Some("batch")
    }));
    let status = jobs
        .get("batch")
        .await
        .expect("job")
        .status
        .expect("status");
    assert_eq!(status.succeeded, Some(3));
    assert!(status.completion_time.is_some());
}

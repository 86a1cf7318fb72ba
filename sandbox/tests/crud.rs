//! CRUD, patches, selectors and status subresources through kube-rs.

use crate::common;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use common::{api_status, start};

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn pod(name: &str, node: Option<&str>, labels: &[(&str, &str)]) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]}
    }))
    .expect("pod")
}

#[tokio::test]
async fn configmap_crud_and_conflicts() {
    let env = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");

    let created = cms
        .create(&PostParams::default(), &cm("a", &[("k", "v")]))
        .await
        .expect("create");
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(meta.uid.as_ref().map(String::len), Some(36));
    assert!(meta.creation_timestamp.is_some());
    let rv1: u64 = meta
        .resource_version
        .as_deref()
        .expect("rv")
        .parse()
        .expect("numeric rv");

    // Same name again: 409 AlreadyExists.
    let dup = api_status(cms.create(&PostParams::default(), &cm("a", &[])).await);
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "configmaps \"a\" already exists");

    let got = cms.get("a").await.expect("get");
    assert_eq!(
        got.data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("v")
    );

    // Update with the current rv works and bumps it; the stale one then conflicts.
    let mut changed = got.clone();
    changed.data = Some(BTreeMap::from([("k".to_string(), "w".to_string())]));
    let updated = cms
        .replace("a", &PostParams::default(), &changed)
        .await
        .expect("replace");
    let rv2: u64 = updated
        .metadata
        .resource_version
        .as_deref()
        .expect("rv")
        .parse()
        .expect("rv");
    assert!(rv2 > rv1);
    let stale = api_status(cms.replace("a", &PostParams::default(), &changed).await);
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        stale.message,
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // A no-op update keeps the resourceVersion (controllers rely on that not to loop).
    let same = cms
        .replace("a", &PostParams::default(), &updated)
        .await
        .expect("noop");
    assert_eq!(
        same.metadata.resource_version,
        updated.metadata.resource_version
    );

    // generateName: prefix + 5 random characters.
    let mut generated = cm("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let g = cms
        .create(&PostParams::default(), &generated)
        .await
        .expect("generateName");
    let name = g.metadata.name.expect("name");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let list = cms.list(&ListParams::default()).await.expect("list");
    let mut names: Vec<_> = list
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, vec!["a".to_string(), name.clone()]);
    assert!(list.metadata.resource_version.is_some());

    cms.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    let gone = api_status(cms.get("a").await);
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert_eq!(gone.message, "configmaps \"a\" not found");
}

#[tokio::test]
async fn patches_merge_json_apply_strategic() {
    let env = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    cms.create(&PostParams::default(), &cm("p", &[("a", "1"), ("b", "2")]))
        .await
        .expect("create");

    let merged = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        merged.data,
        Some(BTreeMap::from([
            ("b".into(), "2".into()),
            ("c".into(), "3".into())
        ]))
    );

    // JSON Patch (kube's `Patch::Json` needs a kube feature the workspace does not enable, so
    // this goes through the same client as a raw request).
    let (code, jp) = common::raw(
        &env.client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/p",
        "application/json-patch+json",
        serde_json::to_vec(&json!([
            {"op": "add", "path": "/metadata/labels", "value": {"tier": "web"}},
            {"op": "replace", "path": "/data/b", "value": "20"}
        ]))
        .expect("ops"),
    )
    .await;
    assert_eq!(code, 200, "{jp}");
    assert_eq!(jp["data"]["b"], "20");
    assert_eq!(jp["metadata"]["labels"]["tier"], "web");
    let (code, failed) = common::raw(
        &env.client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/p",
        "application/json-patch+json",
        br#"[{"op": "test", "path": "/data/b", "value": "nope"}]"#.to_vec(),
    )
    .await;
    assert_eq!((code, &failed["kind"]), (422, &json!("Status")), "{failed}");

    let smp = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"d": "4"}})),
        )
        .await
        .expect("strategic patch");
    assert_eq!(
        smp.data
            .as_ref()
            .and_then(|d| d.get("d"))
            .map(String::as_str),
        Some("4")
    );

    // Server-side apply: updates an existing object, and creates an absent one.
    let pp = PatchParams::apply("sandbox-test");
    let applied = cms
        .patch(
            "p",
            &pp,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}, "data": {"e": "5"}})),
        )
        .await
        .expect("apply existing");
    assert_eq!(
        applied
            .data
            .as_ref()
            .and_then(|d| d.get("e"))
            .map(String::as_str),
        Some("5")
    );
    assert_eq!(
        applied
            .data
            .as_ref()
            .and_then(|d| d.get("c"))
            .map(String::as_str),
        Some("3")
    );
    let fresh = cms
        .patch(
            "fresh",
            &pp,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}, "data": {"x": "y"}})),
        )
        .await
        .expect("apply creates");
    assert!(fresh.metadata.uid.is_some());

    // A patch carrying a stale resourceVersion is a 409, as on the real server.
    let stale = api_status(
        cms.patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"z": "z"}})),
        )
        .await,
    );
    assert_eq!(stale.code, 409);
    // Patching a missing object: 404.
    let missing = api_status(
        cms.patch(
            "nosuch",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {}})),
        )
        .await,
    );
    assert_eq!(missing.code, 404);
}

#[tokio::test]
async fn pods_nodes_selectors_and_status() {
    let env = start().await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let nodes: Api<Node> = Api::all(env.client.clone());

    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "n1", "labels": {"zone": "a"}},
        "status": {"capacity": {"cpu": "4"}}
    }))
    .expect("node");
    let n1 = nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("node");
    assert_eq!(n1.metadata.namespace, None);
    assert_eq!(n1.metadata.generation, Some(1));

    pods.create(
        &PostParams::default(),
        &pod("web-1", Some("n1"), &[("app", "web"), ("tier", "front")]),
    )
    .await
    .expect("pod");
    pods.create(
        &PostParams::default(),
        &pod("web-2", None, &[("app", "web")]),
    )
    .await
    .expect("pod");
    let db = pods
        .create(
            &PostParams::default(),
            &pod("db-1", Some("n1"), &[("app", "db")]),
        )
        .await
        .expect("pod");
    // The server owns a new pod's status, and fills spec defaults.
    assert_eq!(
        db.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    assert_eq!(
        db.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()),
        Some("default-scheduler")
    );

    let names = |list: kube::core::ObjectList<Pod>| {
        let mut v: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        v.sort();
        v
    };
    let sel = |l: &str| ListParams::default().labels(l);
    assert_eq!(
        names(pods.list(&sel("app=web")).await.expect("list")),
        ["web-1", "web-2"]
    );
    assert_eq!(
        names(pods.list(&sel("app!=web")).await.expect("list")),
        ["db-1"]
    );
    assert_eq!(
        names(pods.list(&sel("app in (db,web),tier")).await.expect("list")),
        ["web-1"]
    );
    assert_eq!(
        names(pods.list(&sel("app notin (web)")).await.expect("list")),
        ["db-1"]
    );
    assert_eq!(
        names(pods.list(&sel("!tier")).await.expect("list")),
        ["db-1", "web-2"]
    );
    let fields = |f: &str| ListParams::default().fields(f);
    assert_eq!(
        names(pods.list(&fields("spec.nodeName=n1")).await.expect("list")),
        ["db-1", "web-1"]
    );
    assert_eq!(
        names(pods.list(&fields("spec.nodeName=")).await.expect("list")),
        ["web-2"]
    );
    assert_eq!(
        names(
            pods.list(&fields("spec.nodeName=n1,metadata.name!=db-1"))
                .await
                .expect("list")
        ),
        ["web-1"]
    );
    assert_eq!(
        names(
            pods.list(&fields("status.phase=Pending"))
                .await
                .expect("list")
        )
        .len(),
        3
    );
    let all: Api<Pod> = Api::all(env.client.clone());
    assert_eq!(
        names(
            all.list(&fields("metadata.namespace=default"))
                .await
                .expect("list")
        )
        .len(),
        3
    );
    let bad = api_status(pods.list(&fields("spec.bogus=x")).await);
    assert_eq!(
        (bad.code, bad.message.as_str()),
        (400, "field label not supported: spec.bogus")
    );
    let bad = api_status(pods.list(&sel("app in (web")).await);
    assert_eq!(bad.code, 400);

    // Status subresource: a status write changes only status...
    let st = pods
        .patch_status(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Running"}, "metadata": {"labels": {"ignored": "yes"}}}),
            ),
        )
        .await
        .expect("patch status");
    assert_eq!(
        st.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    assert!(
        st.metadata
            .labels
            .as_ref()
            .is_some_and(|l| !l.contains_key("ignored"))
    );
    assert_eq!(
        names(
            pods.list(&fields("status.phase=Running"))
                .await
                .expect("list")
        ),
        ["web-1"]
    );
    // ...and a main write ignores status.
    let main = pods
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Failed"}, "metadata": {"labels": {"seen": "yes"}}}),
            ),
        )
        .await
        .expect("patch main");
    assert_eq!(
        main.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    assert!(
        main.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("seen"))
    );
    let mut whole = main.clone();
    whole.status.as_mut().expect("status").phase = Some("Succeeded".into());
    let replaced = pods
        .replace_status("web-1", &PostParams::default(), &whole)
        .await
        .expect("replace status");
    assert_eq!(
        replaced.status.and_then(|s| s.phase).as_deref(),
        Some("Succeeded")
    );

    // Node status and a spec change bump generation only for the spec.
    let n = nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"capacity": {"cpu": "8"}}})),
        )
        .await
        .expect("node status");
    assert_eq!(n.metadata.generation, Some(1));
    let n = nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .expect("cordon");
    assert_eq!(n.metadata.generation, Some(2));
    let cordoned = nodes
        .list(&ListParams::default().fields("spec.unschedulable=true"))
        .await
        .expect("list");
    assert_eq!(cordoned.items.len(), 1);

    // Deleting a pod and a node.
    pods.delete("db-1", &DeleteParams::default())
        .await
        .expect("delete pod");
    nodes
        .delete("n1", &DeleteParams::default())
        .await
        .expect("delete node");
    assert_eq!(api_status(nodes.get("n1").await).code, 404);
    assert_eq!(
        names(pods.list(&ListParams::default()).await.expect("list")),
        ["web-1", "web-2"]
    );
}

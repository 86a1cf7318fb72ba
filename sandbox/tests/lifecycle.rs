//! Deletion semantics: finalizers and deletionTimestamp, ownerReference garbage collection
//! (background, orphan, chains, shared owners), namespace deletion, and pods/binding.

use crate::common;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use common::{api_status, eventually, start};

fn cm(name: &str, owners: &[&ConfigMap]) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            owner_references: (!owners.is_empty()).then(|| {
                owners
                    .iter()
                    .map(|o| OwnerReference {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        name: o.metadata.name.clone().unwrap_or_default(),
                        uid: o.metadata.uid.clone().unwrap_or_default(),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn finalizer_blocks_deletion_until_removed() {
    let env = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["test.capstan.dev/hold".into()]);
    cms.create(&PostParams::default(), &held)
        .await
        .expect("create");

    let res = cms
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let pending = res
        .left()
        .expect("object returned while finalizers hold it");
    assert!(pending.metadata.deletion_timestamp.is_some());

    // Still there, marked; a second delete changes nothing.
    let still = cms.get("held").await.expect("still present");
    assert!(still.metadata.deletion_timestamp.is_some());
    cms.delete("held", &DeleteParams::default())
        .await
        .expect("delete again");

    // No new finalizers once deleting.
    let refused = api_status(
        cms.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["test.capstan.dev/hold", "another/one"]}}),
            ),
        )
        .await,
    );
    assert_eq!(refused.code, 422);

    // Other updates are fine while deleting.
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .expect("update while deleting");
    assert!(cms.get("held").await.is_ok());

    // Removing the last finalizer completes the deletion.
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizer");
    assert_eq!(api_status(cms.get("held").await).code, 404);
}

#[tokio::test]
async fn owner_reference_garbage_collection() {
    let env = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let pp = PostParams::default();

    let owner = cms.create(&pp, &cm("owner", &[])).await.expect("owner");
    let other = cms.create(&pp, &cm("other", &[])).await.expect("other");
    let child = cms
        .create(&pp, &cm("child", &[&owner]))
        .await
        .expect("child");
    cms.create(&pp, &cm("grandchild", &[&child]))
        .await
        .expect("grandchild");
    cms.create(&pp, &cm("shared", &[&owner, &other]))
        .await
        .expect("shared");
    let owner_ref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
        "uid": owner.metadata.uid.clone().expect("uid")}]);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "owned-pod", "ownerReferences": owner_ref},
        "spec": {"containers": [{"name": "c", "image": "i"}]}
    }))
    .expect("pod");
    pods.create(&pp, &pod).await.expect("pod");

    cms.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    for gone in ["owner", "child", "grandchild"] {
        let name = gone.to_string();
        let cms = cms.clone();
        eventually(&format!("{gone} collected"), || {
            let cms = cms.clone();
            let name = name.clone();
            async move { cms.get_opt(&name).await.expect("get").is_none() }
        })
        .await;
    }
    let pods2 = pods.clone();
    eventually("owned pod collected", || {
        let pods = pods2.clone();
        async move { pods.get_opt("owned-pod").await.expect("get").is_none() }
    })
    .await;
    // A dependent with a surviving owner stays, minus the dangling reference.
    let shared = cms.get("shared").await.expect("shared survives");
    let refs = shared.metadata.owner_references.expect("refs");
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].name, "other");

    // Orphan propagation leaves dependents and strips the reference.
    cms.delete("other", &DeleteParams::orphan())
        .await
        .expect("orphan delete");
    let orphan = cms.get("shared").await.expect("orphan survives");
    assert!(
        orphan
            .metadata
            .owner_references
            .is_none_or(|r| r.is_empty())
    );

    // Foreground: dependents first, then the owner; both gone when the call returns.
    let fg = cms.create(&pp, &cm("fg", &[])).await.expect("fg");
    cms.create(&pp, &cm("fg-child", &[&fg]))
        .await
        .expect("fg child");
    cms.delete("fg", &DeleteParams::foreground())
        .await
        .expect("foreground");
    assert!(cms.get_opt("fg-child").await.expect("get").is_none());
    assert!(cms.get_opt("fg").await.expect("get").is_none());
}

#[tokio::test]
async fn namespace_deletion_removes_contents_and_missing_namespace_is_404() {
    let env = start().await;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "scratch"}})).expect("ns");
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("ns");
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Active")
    );
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "scratch");
    cms.create(&PostParams::default(), &cm("inside", &[]))
        .await
        .expect("cm");
    namespaces
        .delete("scratch", &DeleteParams::default())
        .await
        .expect("delete ns");
    assert!(namespaces.get_opt("scratch").await.expect("get").is_none());
    let missing = api_status(cms.create(&PostParams::default(), &cm("again", &[])).await);
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, "namespaces \"scratch\" not found")
    );
    for builtin in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces.get_opt(builtin).await.expect("get").is_some(),
            "{builtin}"
        );
    }
}

#[tokio::test]
async fn pod_binding_sets_node_once() {
    let env = start().await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    let binding = serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}
    }))
    .expect("binding");
    let path = "/api/v1/namespaces/default/pods/p/binding";
    let (code, body) = common::raw(
        &env.client,
        "POST",
        path,
        "application/json",
        binding.clone(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let bound = pods.get("p").await.expect("get");
    assert_eq!(bound.spec.and_then(|s| s.node_name).as_deref(), Some("n1"));
    let (code, body) = common::raw(&env.client, "POST", path, "application/json", binding).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (409, Some("Conflict")),
        "{body}"
    );
}

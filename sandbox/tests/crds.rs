//! CustomResourceDefinitions: created at run time and then served, preloaded from capstan's
//! manifests, schema defaults, status subresource, discovery, and removal.

use crate::common;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{GroupVersionKind, ObjectMeta};
use kube::discovery::{self, Scope};
use kube::runtime::{conditions, wait::await_condition};
use serde_json::json;

use common::{api_status, start, start_with};

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.capstan.dev"},
        "spec": {
            "group": "test.capstan.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList",
                      "shortNames": ["wd"], "categories": ["all"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer", "default": 3},
                        "shape": {"type": "object", "default": {}, "properties": {
                            "sides": {"type": "integer", "default": 4}}},
                        "parts": {"type": "array", "items": {"type": "object", "properties": {
                            "kind": {"type": "string", "default": "bolt"}}}}
                    }},
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
                }}}
            }]
        }
    }))
    .expect("crd")
}

#[tokio::test]
async fn crd_created_at_runtime_is_served_with_defaults_and_status() {
    let env = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    crds.create(&PostParams::default(), &widget_crd())
        .await
        .expect("create CRD");
    let established = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        await_condition(
            crds.clone(),
            "widgets.test.capstan.dev",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("established in time")
    .expect("condition");
    assert!(established.is_some());

    // Discovery finds it the way kube-rs resolves kinds.
    let gvk = GroupVersionKind::gvk("test.capstan.dev", "v1", "Widget");
    let (ar, caps) = discovery::pinned_kind(&env.client, &gvk)
        .await
        .expect("discovered");
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "widgets/status" || sub.plural == "status")
    );
    let (_, group_list) = common::raw(
        &env.client,
        "GET",
        "/apis/test.capstan.dev/v1",
        "",
        Vec::new(),
    )
    .await;
    let widgets = &group_list["resources"][0];
    assert_eq!(widgets["shortNames"], json!(["wd"]));
    assert_eq!(widgets["categories"], json!(["all"]));

    let widgets: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), "default", &ar);
    let mut w = DynamicObject::new("w1", &ar);
    w.data = json!({"spec": {"parts": [{}, {"kind": "nut"}]}, "status": {"ready": true}});
    let created = widgets
        .create(&PostParams::default(), &w)
        .await
        .expect("create widget");
    assert_eq!(
        created.data["spec"],
        json!({"size": 3, "shape": {"sides": 4}, "parts": [{"kind": "bolt"}, {"kind": "nut"}]})
    );
    // With a status subresource, status on create is dropped, as on the real server.
    assert!(created.data.get("status").is_none());
    assert_eq!(created.metadata.generation, Some(1));

    let st = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .expect("status");
    assert_eq!(st.data["status"]["ready"], true);
    assert_eq!(st.metadata.generation, Some(1));
    let spec = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}, "status": {"ready": false}})),
        )
        .await
        .expect("spec");
    assert_eq!(spec.data["spec"]["size"], 5);
    assert_eq!(
        spec.data["status"]["ready"], true,
        "main writes ignore status"
    );
    assert_eq!(spec.metadata.generation, Some(2));

    // PUT on a custom resource must carry a resourceVersion (422 otherwise).
    let mut no_rv = spec.clone();
    no_rv.metadata.resource_version = None;
    let invalid = api_status(widgets.replace("w1", &PostParams::default(), &no_rv).await);
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));

    // Deleting the CRD stops serving it and removes its objects.
    crds.delete("widgets.test.capstan.dev", &DeleteParams::default())
        .await
        .expect("delete CRD");
    let (code, _) = common::raw(
        &env.client,
        "GET",
        "/apis/test.capstan.dev/v1/namespaces/default/widgets",
        "",
        Vec::new(),
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn invalid_crd_is_rejected() {
    let env = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let mut crd = widget_crd();
    crd.metadata = ObjectMeta {
        name: Some("gadgets.test.capstan.dev".into()),
        ..Default::default()
    };
    let status = api_status(crds.create(&PostParams::default(), &crd).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains("metadata.name"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn capstan_crds_preloaded_and_nodepool_defaults_applied() {
    let env = start_with(|c| c.crds_yaml.push(common::capstan_crds())).await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let names: Vec<String> = crds
        .list(&ListParams::default())
        .await
        .expect("list CRDs")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    for want in [
        "nodepools.karpenter.sh",
        "nodeclaims.karpenter.sh",
        "ec2nodeclasses.karpenter.k8s.aws",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }

    let gvk = GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool");
    let (ar, caps) = discovery::pinned_kind(&env.client, &gvk)
        .await
        .expect("NodePool served");
    assert_eq!(caps.scope, Scope::Cluster);
    let pools: Api<DynamicObject> = Api::all_with(env.client.clone(), &ar);
    let mut pool = DynamicObject::new("default", &ar);
    pool.data = json!({"spec": {"template": {"spec": {
        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
        "requirements": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}]
    }}}});
    let created = pools
        .create(&PostParams::default(), &pool)
        .await
        .expect("create NodePool");
    let disruption = &created.data["spec"]["disruption"];
    assert_eq!(
        disruption["budgets"],
        json!([{"nodes": "10%"}]),
        "{created:?}"
    );
    assert_eq!(disruption["consolidateAfter"], "0s");
    assert_eq!(
        disruption["consolidationPolicy"],
        "WhenEmptyOrUnderutilized"
    );

    // The same CRDs installed through the API into a fresh sandbox serve too.
    let env2 = start().await;
    let crds2: Api<CustomResourceDefinition> = Api::all(env2.client.clone());
    let docs: Vec<CustomResourceDefinition> =
        serde_saphyr::from_multiple(&common::capstan_crds()).expect("parse CRDs");
    for crd in &docs {
        crds2
            .create(&PostParams::default(), crd)
            .await
            .expect("create CRD via API");
    }
    let (ar2, _) = discovery::pinned_kind(&env2.client, &gvk)
        .await
        .expect("served");
    let pools2: Api<DynamicObject> = Api::all_with(env2.client.clone(), &ar2);
    let created2 = pools2
        .create(&PostParams::default(), &pool)
        .await
        .expect("create");
    assert_eq!(
        created2.data["spec"]["disruption"]["budgets"],
        json!([{"nodes": "10%"}])
    );
}

//! pods/eviction against PodDisruptionBudgets, through kube-rs (`Api::<Pod>::evict`).

use crate::common;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};
use serde_json::json;

use common::{api_status, start};

/// kube-rs retries 429 with exponential backoff by default (15 times); an eviction that must
/// fail should fail at once here.
async fn no_retry_client(path: &std::path::Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).expect("kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    config.default_retry = false;
    kube::Client::try_from(config).expect("client")
}

pub async fn running_pod(pods: &Api<Pod>, name: &str, app: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}})),
    )
    .await
    .expect("pod status");
}

#[tokio::test]
async fn eviction_respects_pod_disruption_budgets() {
    let env = start().await;
    let client = no_retry_client(env.sandbox.kubeconfig_path()).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), "default");
    for n in ["web-1", "web-2", "web-3"] {
        running_pod(&pods, n, "web").await;
    }
    running_pod(&pods, "other", "other").await;
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}
    }))
    .expect("pdb");
    pdbs.create(&PostParams::default(), &pdb)
        .await
        .expect("create pdb");
    let status = pdbs.get("web").await.expect("pdb").status.expect("status");
    assert_eq!(
        (
            status.expected_pods,
            status.current_healthy,
            status.desired_healthy,
            status.disruptions_allowed
        ),
        (Some(3), Some(3), Some(2), Some(1))
    );

    pods.evict("web-1", &EvictParams::default())
        .await
        .expect("first eviction");
    assert!(pods.get_opt("web-1").await.expect("get").is_none());
    let status = pdbs.get("web").await.expect("pdb").status.expect("status");
    assert_eq!(
        (status.current_healthy, status.disruptions_allowed),
        (Some(2), Some(0))
    );

    let err = api_status(pods.evict("web-2", &EvictParams::default()).await);
    assert_eq!(err.code, 429);
    assert_eq!(err.reason, "TooManyRequests");
    assert_eq!(
        err.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert!(pods.get_opt("web-2").await.expect("get").is_some());

    // Pods no budget covers, pending pods and missing pods.
    pods.evict("other", &EvictParams::default())
        .await
        .expect("uncovered pod");
    let pending: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-pending", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pending)
        .await
        .expect("create");
    pods.evict("web-pending", &EvictParams::default())
        .await
        .expect("pending pod");
    assert_eq!(
        api_status(pods.evict("nosuch", &EvictParams::default()).await).code,
        404
    );

    // maxUnavailable as a percentage: 50% of 2 rounds up to 1 → one disruption allowed.
    pdbs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"minAvailable": null, "maxUnavailable": "50%"}})),
    )
    .await
    .expect("patch pdb");
    let status = pdbs.get("web").await.expect("pdb").status.expect("status");
    assert_eq!(
        (status.desired_healthy, status.disruptions_allowed),
        (Some(1), Some(1))
    );
    pods.evict("web-2", &EvictParams::default())
        .await
        .expect("allowed now");
    pdbs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxUnavailable": null, "minAvailable": "100%"}})),
    )
    .await
    .expect("patch pdb");
    assert_eq!(
        api_status(pods.evict("web-3", &EvictParams::default()).await).code,
        429
    );
}

//! Authentication and RBAC through kube-rs: a ServiceAccount token from the TokenRequest
//! subresource is `system:serviceaccount:<ns>:<name>`; what its bindings grant works, the rest
//! is 403 with the real server's message and is recorded as a denial; discovery stays open;
//! unknown tokens are 401; the admin token can do anything.

use crate::common;

use common::api_status;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use kube::config::AuthInfo;
use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use serde_json::json;

/// The sandbox's admin config with `token` instead of the admin's.
async fn client_with_token(env: &common::Env, token: &str) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(env.sandbox.kubeconfig_path()).expect("kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    config.auth_info = AuthInfo {
        token: Some(token.to_string().into()),
        ..AuthInfo::default()
    };
    kube::Client::try_from(config).expect("client")
}

async fn create(env: &common::Env, group: &str, kind: &str, plural: &str, obj: serde_json::Value) {
    let ar = ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: if group.is_empty() {
            "v1".into()
        } else {
            format!("{group}/v1")
        },
        kind: kind.into(),
        plural: plural.into(),
    };
    let obj: DynamicObject = serde_json::from_value(obj).expect("object");
    let api: Api<DynamicObject> = match obj.metadata.namespace.as_deref() {
        Some(ns) => Api::namespaced_with(env.client.clone(), ns, &ar),
        None => Api::all_with(env.client.clone(), &ar),
    };
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create {kind}: {e}"));
}

/// ServiceAccount `default/bot`, allowed to list nodes (cluster-wide), to get and update the
/// Lease `lock` in `default`, and to read Secret `cert` by name (with a field selector).
async fn bot(env: &common::Env) -> kube::Client {
    let rbac = "rbac.authorization.k8s.io";
    create(env, "", "ServiceAccount", "serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot", "namespace": "default"}})).await;
    create(
        env,
        rbac,
        "ClusterRole",
        "clusterroles",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "nodes-reader"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]
        }),
    )
    .await;
    create(
        env,
        rbac,
        "ClusterRoleBinding",
        "clusterrolebindings",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "bot-nodes"},
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "nodes-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "default"}]
        }),
    )
    .await;
    create(env, rbac, "Role", "roles", json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "lock", "namespace": "default"},
        "rules": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["lock"], "verbs": ["get", "update"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["cert"], "verbs": ["get", "list", "watch"]}
        ]
    })).await;
    create(
        env,
        rbac,
        "RoleBinding",
        "rolebindings",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "bot-lock", "namespace": "default"},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "lock"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot"}]
        }),
    )
    .await;
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), "default");
    let issued = sas
        .create_token_request("bot", &PostParams::default(), &TokenRequest::default())
        .await
        .expect("token request");
    let token = issued.status.and_then(|s| s.token).unwrap_or_default();
    assert!(!token.is_empty(), "no token issued");
    client_with_token(env, &token).await
}

#[tokio::test]
async fn service_account_tokens_get_what_their_bindings_grant_and_nothing_else() {
    let env = common::start().await;
    let client = bot(&env).await;

    // Granted: nodes cluster-wide, the named Lease, the named Secret (also as a list by name).
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    let admin_leases: Api<Lease> = Api::namespaced(env.client.clone(), "default");
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "lock"}})).expect("lease");
    admin_leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("admin creates the lease");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let mut got = leases.get("lock").await.expect("get lease");
    got.spec = Some(Default::default());
    leases
        .replace("lock", &PostParams::default(), &got)
        .await
        .expect("update lease");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .list(&ListParams::default().fields("metadata.name=cert"))
        .await
        .expect("list the secret by name");
    assert!(
        env.sandbox.denials().is_empty(),
        "{:?}",
        env.sandbox.denials()
    );

    // Not granted: 403 as the real server words it.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let denied = api_status(pods.list(&ListParams::default()).await);
    assert_eq!((denied.code, denied.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        denied.message,
        "pods is forbidden: User \"system:serviceaccount:default:bot\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    let denied = api_status(nodes.get("n1").await);
    assert_eq!(
        denied.message,
        "nodes \"n1\" is forbidden: User \"system:serviceaccount:default:bot\" cannot get resource \"nodes\" in API group \"\" at the cluster scope"
    );
    let denied = api_status(pods.evict("web-0", &Default::default()).await);
    assert!(
        denied
            .message
            .contains("cannot create resource \"pods/eviction\" in API group \"\" in the namespace \"default\""),
        "{}",
        denied.message
    );
    // resourceNames: another Lease, or all Secrets, are not granted.
    assert_eq!(api_status(leases.get("other").await).code, 403);
    assert_eq!(
        api_status(secrets.list(&ListParams::default()).await).code,
        403
    );
    // The Role is in `default` only.
    let elsewhere: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    assert_eq!(api_status(elsewhere.get("lock").await).code, 403);

    let denials = env.sandbox.denials();
    let seen: Vec<(String, String, String, String)> = denials
        .iter()
        .map(|d| {
            let a = &d.attributes;
            (
                a.verb.clone(),
                a.resource_path(),
                a.namespace.clone(),
                a.name.clone(),
            )
        })
        .collect();
    let want = |v: &str, r: &str, ns: &str, n: &str| (v.into(), r.into(), ns.into(), n.into());
    assert_eq!(
        seen,
        vec![
            want("list", "pods", "default", ""),
            want("get", "nodes", "", "n1"),
            want("create", "pods/eviction", "default", "web-0"),
            want("get", "leases", "default", "other"),
            want("list", "secrets", "default", ""),
            want("get", "leases", "kube-system", "lock"),
        ]
    );
    assert!(
        denials
            .iter()
            .all(|d| d.user.name == "system:serviceaccount:default:bot")
    );

    // Discovery is open to every authenticated user.
    let (code, _) = common::raw(&client, "GET", "/apis", "application/json", Vec::new()).await;
    assert_eq!(code, 200);
    let (code, _) = common::raw(&client, "GET", "/api/v1", "application/json", Vec::new()).await;
    assert_eq!(code, 200);
    // The admin token is not subject to RBAC.
    let admin_pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    admin_pods
        .list(&ListParams::default())
        .await
        .expect("admin lists pods");
    assert_eq!(env.sandbox.denials().len(), 6);
    env.sandbox.shutdown().await;
}

#[tokio::test]
async fn unknown_tokens_are_unauthorized_and_tokens_need_a_service_account() {
    let env = common::start().await;
    let stranger = client_with_token(&env, "not-a-token").await;
    let pods: Api<Pod> = Api::namespaced(stranger.clone(), "default");
    let status = api_status(pods.list(&ListParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
    let (code, _) = common::raw(&stranger, "GET", "/apis", "application/json", Vec::new()).await;
    assert_eq!(code, 401);

    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), "default");
    let missing = api_status(
        sas.create_token_request("ghost", &PostParams::default(), &TokenRequest::default())
            .await,
    );
    assert_eq!(missing.code, 404);
    assert!(
        env.sandbox
            .issue_service_account_token("default", "ghost")
            .is_err()
    );

    // A token from the Rust API works like one from the TokenRequest subresource.
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "idle"}})).expect("sa"),
    )
    .await
    .expect("service account");
    // The real server's bounds: at least ten minutes.
    let short: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 60}}))
            .expect("token request");
    let status = api_status(
        sas.create_token_request("idle", &PostParams::default(), &short)
            .await,
    );
    assert_eq!(status.code, 400, "{}", status.message);
    let issued = sas
        .create_token_request("idle", &PostParams::default(), &TokenRequest::default())
        .await
        .expect("token request");
    let spec = issued.spec.unwrap_or_default();
    assert_eq!(spec.expiration_seconds, Some(3600));
    assert!(spec.audiences.is_some_and(|a| !a.is_empty()));
    let token = env
        .sandbox
        .issue_service_account_token("default", "idle")
        .expect("token");
    let idle = client_with_token(&env, &token).await;
    let pods: Api<Pod> = Api::namespaced(idle, "default");
    assert_eq!(
        api_status(pods.list(&ListParams::default()).await).code,
        403
    );
    env.sandbox.shutdown().await;
}

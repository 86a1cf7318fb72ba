//! Error answers are Kubernetes Status objects with the real server's codes and reasons;
//! authentication; health, version and discovery endpoints.

use crate::common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use common::{client_from, raw, start};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn assert_status(code: u16, body: &Value, want_code: u16, want_reason: &str) {
    assert_eq!(code, want_code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert_eq!(body["reason"], want_reason, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

fn json_body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).expect("json")
}

#[tokio::test]
async fn status_errors_have_the_right_codes() {
    let env = start().await;
    let c = &env.client;

    // 404: unknown resource, unknown object.
    let (code, body) = raw(c, "GET", "/api/v1/nosuchthings", "", Vec::new()).await;
    assert_status(code, &body, 404, "NotFound");
    let (code, body) = raw(c, "GET", "/apis/nosuch.group/v1/things", "", Vec::new()).await;
    assert_status(code, &body, 404, "NotFound");
    let (code, body) = raw(c, "GET", &format!("{CMS}/missing"), "", Vec::new()).await;
    assert_status(code, &body, 404, "NotFound");
    assert_eq!(body["message"], "configmaps \"missing\" not found");
    assert_eq!(
        body["details"],
        json!({"name": "missing", "kind": "configmaps"})
    );

    // 422: no name; a malformed name.
    let (code, body) = raw(
        c,
        "POST",
        CMS,
        "application/json",
        json_body(json!({"data": {}})),
    )
    .await;
    assert_status(code, &body, 422, "Invalid");
    assert_eq!(
        body["message"],
        "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
    let (code, body) = raw(
        c,
        "POST",
        CMS,
        "application/json",
        json_body(json!({"metadata": {"name": "Bad_Name"}})),
    )
    .await;
    assert_status(code, &body, 422, "Invalid");

    // 400: namespace mismatch, malformed JSON, malformed YAML, a body that is not an object.
    let (code, body) = raw(
        c,
        "POST",
        CMS,
        "application/json",
        json_body(json!({"metadata": {"name": "x", "namespace": "kube-system"}})),
    )
    .await;
    assert_status(code, &body, 400, "BadRequest");
    let (code, body) = raw(
        c,
        "POST",
        CMS,
        "application/json",
        b"{\"metadata\": ".to_vec(),
    )
    .await;
    assert_status(code, &body, 400, "BadRequest");
    let (code, body) = raw(
        c,
        "POST",
        CMS,
        "application/yaml",
        b"metadata: [unclosed".to_vec(),
    )
    .await;
    assert_status(code, &body, 400, "BadRequest");
    let (code, body) = raw(c, "POST", CMS, "application/json", b"[1, 2]".to_vec()).await;
    assert_status(code, &body, 400, "BadRequest");

    // YAML bodies are accepted.
    let (code, body) = raw(
        c,
        "POST",
        CMS,
        "application/yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n".to_vec(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["data"]["k"], "v");

    // 409 AlreadyExists carries details.
    let (code, body) = raw(
        c,
        "POST",
        CMS,
        "application/json",
        json_body(json!({"metadata": {"name": "from-yaml"}})),
    )
    .await;
    assert_status(code, &body, 409, "AlreadyExists");

    // 413: over 3 MiB.
    let big = json_body(
        json!({"metadata": {"name": "big"}, "data": {"k": "x".repeat(3 * 1024 * 1024 + 1)}}),
    );
    let (code, body) = raw(c, "POST", CMS, "application/json", big).await;
    assert_status(code, &body, 413, "RequestEntityTooLarge");

    // Protobuf: no magic, or a truncated envelope → 400 saying why; an envelope naming no
    // kind the sandbox decodes → 415 naming it.
    const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
    let (code, body) = raw(
        c,
        "POST",
        CMS,
        PROTOBUF,
        b"{\"kind\":\"ConfigMap\"}".to_vec(),
    )
    .await;
    assert_status(code, &body, 400, "BadRequest");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("magic")),
        "{body}"
    );
    let truncated = b"k8s\0\x0a\x10\x0a\x02v1\x12\x09Conf".to_vec();
    let (code, body) = raw(c, "POST", CMS, PROTOBUF, truncated).await;
    assert_status(code, &body, 400, "BadRequest");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("truncated")),
        "{body}"
    );
    let widget = b"k8s\0\x0a\x18\x0a\x0eexample.com/v1\x12\x06Widget".to_vec();
    let (code, body) = raw(c, "POST", CMS, PROTOBUF, widget).await;
    assert_status(code, &body, 415, "UnsupportedMediaType");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"Widget\"")),
        "{body}"
    );

    // 415: unknown patch types.
    let (code, body) = raw(
        c,
        "PATCH",
        &format!("{CMS}/from-yaml"),
        "text/plain",
        b"{}".to_vec(),
    )
    .await;
    assert_status(code, &body, 415, "UnsupportedMediaType");

    // 405: a verb the resource path does not take.
    let (code, body) = raw(c, "PUT", CMS, "application/json", json_body(json!({}))).await;
    assert_status(code, &body, 405, "MethodNotAllowed");

    // 400: a bad label selector.
    let (code, body) = raw(
        c,
        "GET",
        &format!("{CMS}?labelSelector=a%20in%20(b"),
        "",
        Vec::new(),
    )
    .await;
    assert_status(code, &body, 400, "BadRequest");

    // 422: a JSON patch whose test fails; 400: a JSON patch that is not JSON.
    let (code, body) = raw(
        c,
        "PATCH",
        &format!("{CMS}/from-yaml"),
        "application/json-patch+json",
        b"[{\"op\":\"test\",\"path\":\"/data/k\",\"value\":\"other\"}]".to_vec(),
    )
    .await;
    assert_status(code, &body, 422, "Invalid");
    let (code, body) = raw(
        c,
        "PATCH",
        &format!("{CMS}/from-yaml"),
        "application/merge-patch+json",
        b"{nope".to_vec(),
    )
    .await;
    assert_status(code, &body, 400, "BadRequest");

    // DeleteOptions in protobuf (kubectl drain's pod deletions without eviction): a uid
    // precondition that fails, then a plain delete.
    let type_meta = b"\x0a\x13\x0a\x02v1\x12\x0dDeleteOptions";
    let precondition = [b"k8s\0", &type_meta[..], b"\x12\x07\x12\x05\x0a\x03bad"].concat();
    let cm = format!("{CMS}/from-yaml");
    let (code, body) = raw(c, "DELETE", &cm, PROTOBUF, precondition).await;
    assert_status(code, &body, 409, "Conflict");
    let background = [b"k8s\0", &type_meta[..], b"\x12\x0c\x22\x0aBackground"].concat();
    let (code, body) = raw(c, "DELETE", &cm, PROTOBUF, background).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn authentication_health_version_discovery() {
    let env = start().await;

    // The kubeconfig's token works; another token, or none, is 401.
    let text = std::fs::read_to_string(env.sandbox.kubeconfig_path()).expect("kubeconfig");
    assert!(text.contains(env.sandbox.token()));
    let wrong_path = env.dir.path().join("wrong-token");
    std::fs::write(
        &wrong_path,
        text.replace(env.sandbox.token(), "not-the-token"),
    )
    .expect("write");
    let wrong: Api<ConfigMap> = Api::namespaced(client_from(&wrong_path).await, "default");
    let status = common::api_status(wrong.list(&ListParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));

    let anonymous_path = env.dir.path().join("anonymous");
    let anonymous: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("token:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        &anonymous_path,
        anonymous.replace("  user:\n", "  user: {}\n"),
    )
    .expect("write");
    let anon = client_from(&anonymous_path).await;
    let (code, body) = raw(&anon, "GET", "/api/v1/pods", "", Vec::new()).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (401, Some("Unauthorized")),
        "{body}"
    );
    // Health endpoints are public, as on the real server.
    let (code, body) = raw(&anon, "GET", "/readyz", "", Vec::new()).await;
    assert_eq!((code, body), (200, Value::String("ok".into())));

    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, _) = raw(&env.client, "GET", path, "", Vec::new()).await;
        assert_eq!(code, 200, "{path}");
    }
    let version = env.client.apiserver_version().await.expect("version");
    assert_eq!(version.major, "1");

    // Legacy discovery: core resources with verbs, short names and subresources.
    let (_, core) = raw(&env.client, "GET", "/api/v1", "", Vec::new()).await;
    let find = |name: &str| {
        core["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} in /api/v1"))
    };
    assert_eq!(find("pods")["shortNames"], json!(["po"]));
    assert_eq!(find("pods")["namespaced"], true);
    assert!(
        find("pods")["verbs"]
            .as_array()
            .is_some_and(|v| v.contains(&json!("watch")))
    );
    assert_eq!(find("pods/eviction")["group"], "policy");
    assert_eq!(find("pods/eviction")["kind"], "Eviction");
    assert_eq!(find("nodes/status")["kind"], "Node");
    let (_, groups) = raw(&env.client, "GET", "/apis", "", Vec::new()).await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    for g in [
        "apps",
        "batch",
        "policy",
        "coordination.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
        "admissionregistration.k8s.io",
        "rbac.authorization.k8s.io",
    ] {
        assert!(names.contains(&g), "{g} in {names:?}");
    }
    // kube-rs's full discovery run works against it.
    let discovery = kube::Discovery::new(env.client.clone())
        .run()
        .await
        .expect("discovery");
    assert!(discovery.has_group("apps"));
    let (_, api) = raw(&env.client, "GET", "/api", "", Vec::new()).await;
    assert_eq!(api["versions"], json!(["v1"]));
}

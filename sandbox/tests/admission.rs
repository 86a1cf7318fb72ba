//! The admission chain against a real HTTPS webhook server started inside each test (axum over
//! tokio-rustls, certificate from rcgen), configured through kube-rs as a user would.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionResponse, AdmissionReview};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
    SanType,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use common::{api_status, start};

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook server: every review it receives is recorded with its path.
struct Webhook {
    base: String,
    port: u16,
    ca_bundle: String,
    seen: Seen,
}

impl Webhook {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Reviews received on `path`.
    fn reviews(&self, path: &str) -> Vec<Value> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

/// A CA and a serving certificate for 127.0.0.1, localhost and `hook.default.svc`.
fn certificate() -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, "test-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut leaf = CertificateParams::default();
    leaf.subject_alt_names = vec![
        SanType::IpAddress("127.0.0.1".parse().expect("ip")),
        SanType::DnsName("localhost".try_into().expect("dns")),
        SanType::DnsName("hook.default.svc".try_into().expect("dns")),
    ];
    let cert = leaf
        .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
        .expect("leaf");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    (ca_cert.pem(), config)
}

struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // Clients that distrust the certificate fail here; keep serving the others.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

fn add_label_patch(object: &Value, key: &str, value: &str) -> Value {
    if object.pointer("/metadata/labels").is_some() {
        json!([{"op": "add", "path": format!("/metadata/labels/{key}"), "value": value}])
    } else {
        json!([{"op": "add", "path": "/metadata/labels", "value": {key: value}}])
    }
}

/// Behaviour by path: `/deny`, `/label` (base64 patch), `/annotate` (kube-rs response, patch
/// as bytes), `/warn`, `/slow`, `/wrong-uid`; anything else allows.
async fn review(State(seen): State<Seen>, uri: Uri, Json(review): Json<Value>) -> Json<Value> {
    let path = uri.path().to_string();
    seen.lock()
        .expect("lock")
        .push((path.clone(), review.clone()));
    let request = &review["request"];
    let uid = request["uid"].clone();
    let response = match path.as_str() {
        "/deny" => json!({"uid": uid, "allowed": false, "status": {
            "code": 403, "reason": "Forbidden", "message": "not welcome here"}}),
        "/label" => {
            let patch = add_label_patch(&request["object"], "mutated", "yes");
            let b64 = base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&patch).expect("patch"));
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": b64})
        }
        "/annotate" => {
            // kube-rs as a webhook author would use it: the patch goes out as a byte array.
            let review: AdmissionReview<DynamicObject> =
                serde_json::from_value(review.clone()).expect("kube review");
            let req = review.try_into().expect("request");
            let patch: json_patch::Patch = serde_json::from_value(json!([
                {"op": "add", "path": "/metadata/annotations", "value": {"annotated": "bytes"}}
            ]))
            .expect("patch");
            let reviewed = AdmissionResponse::from(&req)
                .with_patch(patch)
                .expect("with patch")
                .into_review();
            let encoded = serde_json::to_value(reviewed).expect("review");
            assert!(encoded["response"]["patch"].is_array(), "kube sends bytes");
            return Json(encoded);
        }
        "/warn" => json!({"uid": uid, "allowed": true, "warnings": ["mind the gap", "twice"]}),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            json!({"uid": uid, "allowed": true})
        }
        "/wrong-uid" => json!({"uid": "not-the-uid", "allowed": true}),
        _ => json!({"uid": uid, "allowed": true}),
    };
    Json(
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}),
    )
}

async fn webhook() -> Webhook {
    let (ca_pem, config) = certificate();
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let seen: Seen = Arc::default();
    let router = axum::Router::new()
        .fallback(axum::routing::post(review))
        .with_state(seen.clone());
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Webhook {
        base: format!("https://127.0.0.1:{port}"),
        port,
        ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca_pem),
        seen,
    }
}

/// One webhook entry calling `url` for `ops` on `resources` of the core group.
fn hook(name: &str, url: &str, ca_bundle: &str, ops: &[&str], resources: &[&str]) -> Value {
    json!({
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "rules": [{"operations": ops, "apiGroups": [""], "apiVersions": ["v1"], "resources": resources}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    })
}

async fn validating(client: &kube::Client, name: &str, hooks: Vec<Value>) {
    let config: ValidatingWebhookConfiguration =
        serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": hooks}))
            .expect("config");
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &config)
        .await
        .expect("create validating configuration");
}

async fn mutating(client: &kube::Client, name: &str, hooks: Vec<Value>) {
    let config: MutatingWebhookConfiguration =
        serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": hooks}))
            .expect("config");
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &config)
        .await
        .expect("create mutating configuration");
}

fn pod(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "x"}]}
    }))
    .expect("pod")
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).expect("cm")
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn denial_reaches_the_client_and_unmatched_rules_are_not_called() {
    let env = start().await;
    let wh = webhook().await;
    validating(
        &env.client,
        "deny-pods",
        vec![hook(
            "deny.pods.test",
            &wh.url("/deny"),
            &wh.ca_bundle,
            &["CREATE"],
            &["pods"],
        )],
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let err = api_status(
        pods.create(&PostParams::default(), &pod("p", json!({})))
            .await,
    );
    assert_eq!(err.code, 403);
    assert_eq!(err.reason, "Forbidden");
    assert_eq!(
        err.message,
        "admission webhook \"deny.pods.test\" denied the request: not welcome here"
    );
    assert!(pods.get_opt("p").await.expect("get").is_none());
    let review = &wh.reviews("/deny")[0]["request"];
    assert_eq!(review["operation"], "CREATE");
    assert_eq!(
        review["kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(
        review["resource"],
        json!({"group": "", "version": "v1", "resource": "pods"})
    );
    assert_eq!(
        (&review["namespace"], &review["name"]),
        (&json!("default"), &json!("p"))
    );
    assert_eq!(review["userInfo"]["username"], "sandbox-admin");
    assert_eq!(review["options"]["kind"], "CreateOptions");
    assert_eq!(review["dryRun"], false);

    // Config maps and pod status updates match no rule: the webhook is not called.
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    cms.create(&PostParams::default(), &config_map("cm"))
        .await
        .expect("config map");
    assert_eq!(wh.seen.lock().expect("lock").len(), 1);

    // The configuration itself is never reviewed, so it can always be removed.
    Api::<ValidatingWebhookConfiguration>::all(env.client.clone())
        .delete("deny-pods", &DeleteParams::default())
        .await
        .expect("delete configuration");
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .expect("allowed once the webhook is gone");
}

#[tokio::test]
async fn mutations_apply_in_order_and_validation_sees_the_result() {
    let env = start().await;
    let wh = webhook().await;
    // Configurations run in name order: the label first (base64 patch), then the annotation
    // (kube-rs's byte-array patch).
    mutating(
        &env.client,
        "b-annotate",
        vec![hook(
            "annotate.test",
            &wh.url("/annotate"),
            &wh.ca_bundle,
            &["CREATE"],
            &["pods"],
        )],
    )
    .await;
    mutating(
        &env.client,
        "a-label",
        vec![hook(
            "label.test",
            &wh.url("/label"),
            &wh.ca_bundle,
            &["CREATE", "UPDATE"],
            &["pods"],
        )],
    )
    .await;
    validating(
        &env.client,
        "record",
        vec![hook(
            "record.test",
            &wh.url("/record"),
            &wh.ca_bundle,
            &["*"],
            &["pods"],
        )],
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let created = pods
        .create(&PostParams::default(), &pod("p", json!({"app": "web"})))
        .await
        .expect("create");
    let labels = created.metadata.labels.expect("labels");
    assert_eq!(labels.get("mutated").map(String::as_str), Some("yes"));
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    let annotations = created.metadata.annotations.expect("annotations");
    assert_eq!(
        annotations.get("annotated").map(String::as_str),
        Some("bytes")
    );
    let stored = pods.get("p").await.expect("get");
    assert_eq!(stored.metadata.labels, Some(labels));

    // The second webhook saw the first one's patch; the validating one saw both, and the
    // server-set fields.
    let annotate = &wh.reviews("/annotate")[0]["request"]["object"];
    assert_eq!(annotate["metadata"]["labels"]["mutated"], "yes");
    let record = &wh.reviews("/record")[0]["request"]["object"];
    assert_eq!(record["metadata"]["annotations"]["annotated"], "bytes");
    assert!(record["metadata"]["uid"].is_string());
    assert_eq!(record["spec"]["schedulerName"], "default-scheduler");

    // A patch is an UPDATE with the stored object as oldObject; the label webhook's patch
    // applies again (to the label set that now exists).
    pods.patch(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"mutated": "no"}}})),
    )
    .await
    .expect("patch");
    let update = wh.reviews("/record").last().cloned().expect("review");
    assert_eq!(update["request"]["operation"], "UPDATE");
    assert_eq!(update["request"]["options"]["kind"], "UpdateOptions");
    assert_eq!(
        update["request"]["oldObject"]["metadata"]["labels"]["mutated"],
        "yes"
    );
    assert_eq!(
        update["request"]["object"]["metadata"]["labels"]["mutated"],
        "yes"
    );
}

#[tokio::test]
async fn webhook_warnings_become_warning_headers() {
    let env = start().await;
    let wh = webhook().await;
    validating(
        &env.client,
        "warn",
        vec![hook(
            "warn.test",
            &wh.url("/warn"),
            &wh.ca_bundle,
            &["CREATE"],
            &["configmaps"],
        )],
    )
    .await;
    let body = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm"}}))
    .expect("body");
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body))
        .expect("request");
    let res = env.client.send(req).await.expect("send");
    assert_eq!(res.status().as_u16(), 201);
    let warnings: Vec<&str> = res
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(warnings, vec!["299 - \"mind the gap\"", "299 - \"twice\""]);
}

#[tokio::test]
async fn namespace_and_object_selectors_filter_webhooks() {
    let env = start().await;
    let wh = webhook().await;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    for (ns, env_label) in [("prod", "prod"), ("dev", "dev")] {
        let n: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns, "labels": {"env": env_label}}}))
                .expect("ns");
        namespaces
            .create(&PostParams::default(), &n)
            .await
            .expect("namespace");
    }
    let mut by_namespace = hook(
        "ns.test",
        &wh.url("/deny"),
        &wh.ca_bundle,
        &["*"],
        &["configmaps"],
    );
    by_namespace["namespaceSelector"] =
        json!({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]});
    // Updates of locked objects are refused.
    let mut by_object = hook(
        "obj.test",
        &wh.url("/deny"),
        &wh.ca_bundle,
        &["UPDATE"],
        &["configmaps"],
    );
    by_object["objectSelector"] = json!({"matchLabels": {"locked": "true"}});
    validating(&env.client, "selectors", vec![by_namespace, by_object]).await;

    let prod: Api<ConfigMap> = Api::namespaced(env.client.clone(), "prod");
    let dev: Api<ConfigMap> = Api::namespaced(env.client.clone(), "dev");
    let err = api_status(prod.create(&PostParams::default(), &config_map("a")).await);
    assert!(
        err.message.contains("\"ns.test\" denied"),
        "{}",
        err.message
    );
    dev.create(&PostParams::default(), &config_map("a"))
        .await
        .expect("dev is not selected");
    let mut locked = config_map("b");
    locked.metadata.labels = Some([("locked".to_string(), "true".to_string())].into());
    dev.create(&PostParams::default(), &locked)
        .await
        .expect("creates are not reviewed by obj.test");

    // The old object counts too: removing the lock is still a change to a locked object.
    let unlock = Patch::Merge(json!({"metadata": {"labels": {"locked": null}}}));
    let err = api_status(dev.patch("b", &PatchParams::default(), &unlock).await);
    assert!(
        err.message.contains("\"obj.test\" denied"),
        "{}",
        err.message
    );
    let change = Patch::Merge(json!({"data": {"k": "w"}}));
    dev.patch("a", &PatchParams::default(), &change)
        .await
        .expect("unlocked objects are not selected");
    let reviews = wh.reviews("/deny");
    assert_eq!(reviews.len(), 2, "prod create and the locked update only");
    assert_eq!(
        reviews[1]["request"]["oldObject"]["metadata"]["labels"]["locked"],
        "true"
    );
    assert!(reviews[1]["request"]["object"]["metadata"]["labels"]["locked"].is_null());
}

#[tokio::test]
async fn failure_policy_decides_on_unreachable_and_untrusted_webhooks() {
    let env = start().await;
    let wh = webhook().await;
    let port = closed_port().await;
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");

    validating(
        &env.client,
        "down",
        vec![hook(
            "down.test",
            &format!("https://127.0.0.1:{port}/x"),
            &wh.ca_bundle,
            &["CREATE"],
            &["configmaps"],
        )],
    )
    .await;
    let err = api_status(cms.create(&PostParams::default(), &config_map("a")).await);
    assert_eq!(err.code, 500);
    assert!(
        err.message
            .starts_with("Internal error occurred: failed calling webhook \"down.test\": failed to call webhook: Post"),
        "{}",
        err.message
    );
    let ignore = Patch::Json::<()>(
        serde_json::from_value(
            json!([{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]),
        )
        .expect("patch"),
    );
    configs
        .patch("down", &PatchParams::default(), &ignore)
        .await
        .expect("ignore");
    cms.create(&PostParams::default(), &config_map("a"))
        .await
        .expect("failure ignored");
    configs
        .delete("down", &DeleteParams::default())
        .await
        .expect("delete");

    // A caBundle that does not sign the server's certificate: a TLS failure.
    let other_ca = base64::engine::general_purpose::STANDARD.encode(certificate().0);
    validating(
        &env.client,
        "untrusted",
        vec![hook(
            "untrusted.test",
            &wh.url("/allow"),
            &other_ca,
            &["CREATE"],
            &["configmaps"],
        )],
    )
    .await;
    let err = api_status(cms.create(&PostParams::default(), &config_map("b")).await);
    assert_eq!(err.code, 500);
    assert!(
        err.message
            .contains("failed calling webhook \"untrusted.test\"")
    );
    assert!(err.message.contains("certificate"), "{}", err.message);
    assert!(wh.reviews("/allow").is_empty());
    configs
        .patch("untrusted", &PatchParams::default(), &ignore)
        .await
        .expect("ignore");
    cms.create(&PostParams::default(), &config_map("b"))
        .await
        .expect("failure ignored");

    // A response for another request is a call failure too.
    validating(
        &env.client,
        "wrong-uid",
        vec![hook(
            "uid.test",
            &wh.url("/wrong-uid"),
            &wh.ca_bundle,
            &["CREATE"],
            &["configmaps"],
        )],
    )
    .await;
    let err = api_status(cms.create(&PostParams::default(), &config_map("c")).await);
    assert!(
        err.message
            .contains("failed calling webhook \"uid.test\": expected response.uid="),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn timeout_seconds_is_honoured() {
    let env = start().await;
    let wh = webhook().await;
    let mut slow = hook(
        "slow.test",
        &wh.url("/slow"),
        &wh.ca_bundle,
        &["CREATE"],
        &["configmaps"],
    );
    slow["timeoutSeconds"] = json!(1);
    validating(&env.client, "slow", vec![slow]).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let started = Instant::now();
    let err = api_status(cms.create(&PostParams::default(), &config_map("a")).await);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert!(
        err.message
            .ends_with("?timeout=1s\": context deadline exceeded"),
        "{}",
        err.message
    );
    assert_eq!(wh.reviews("/slow").len(), 1);
}

#[tokio::test]
async fn deletes_are_reviewed_with_the_old_object() {
    let env = start().await;
    let wh = webhook().await;
    let mut deny = hook(
        "deny.delete.test",
        &wh.url("/deny"),
        &wh.ca_bundle,
        &["DELETE"],
        &["configmaps"],
    );
    deny["objectSelector"] = json!({"matchLabels": {"keep": "true"}});
    validating(
        &env.client,
        "deletes",
        vec![
            hook(
                "record.delete.test",
                &wh.url("/record"),
                &wh.ca_bundle,
                &["DELETE"],
                &["configmaps"],
            ),
            deny,
        ],
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    cms.create(&PostParams::default(), &config_map("gone"))
        .await
        .expect("create");
    let mut kept = config_map("kept");
    kept.metadata.labels = Some([("keep".to_string(), "true".to_string())].into());
    cms.create(&PostParams::default(), &kept)
        .await
        .expect("create");
    assert!(wh.reviews("/record").is_empty(), "creates match no rule");

    cms.delete("gone", &DeleteParams::background())
        .await
        .expect("delete");
    let review = &wh.reviews("/record")[0]["request"];
    assert_eq!(review["operation"], "DELETE");
    assert_eq!(review["name"], "gone");
    assert_eq!(review["oldObject"]["metadata"]["name"], "gone");
    assert_eq!(review["oldObject"]["data"]["k"], "v");
    assert!(review["object"].is_null());
    assert_eq!(review["options"]["kind"], "DeleteOptions");
    assert_eq!(review["options"]["propagationPolicy"], "Background");

    let err = api_status(cms.delete("kept", &DeleteParams::default()).await);
    assert_eq!(err.code, 403);
    assert!(cms.get_opt("kept").await.expect("get").is_some());
}

#[tokio::test]
async fn dry_run_skips_webhooks_with_side_effects_and_stores_nothing() {
    let env = start().await;
    let wh = webhook().await;
    let mut unsafe_hook = hook(
        "effects.test",
        &wh.url("/record"),
        &wh.ca_bundle,
        &["CREATE"],
        &["secrets"],
    );
    unsafe_hook["sideEffects"] = json!("Unknown");
    validating(
        &env.client,
        "dry",
        vec![
            hook(
                "label.dry.test",
                &wh.url("/record"),
                &wh.ca_bundle,
                &["CREATE"],
                &["configmaps"],
            ),
            unsafe_hook,
        ],
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let would_be = cms
        .create(&dry, &config_map("dry"))
        .await
        .expect("dry-run create");
    assert!(would_be.metadata.uid.is_some());
    assert!(
        cms.get_opt("dry").await.expect("get").is_none(),
        "nothing stored"
    );
    let review = &wh.reviews("/record")[0]["request"];
    assert_eq!(review["dryRun"], true);
    assert_eq!(review["options"]["dryRun"], json!(["All"]));

    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(env.client.clone(), "default");
    let secret = serde_json::from_value(json!({"metadata": {"name": "s"}})).expect("secret");
    let err = api_status(secrets.create(&dry, &secret).await);
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        "admission webhook \"effects.test\" does not support dry run"
    );
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("not a dry run");
}

#[tokio::test]
async fn service_references_resolve_through_external_name_services() {
    let env = start().await;
    let wh = webhook().await;
    let mut by_service = hook("svc.test", "", &wh.ca_bundle, &["CREATE"], &["configmaps"]);
    by_service["clientConfig"] = json!({
        "service": {"namespace": "default", "name": "hook", "path": "/deny", "port": wh.port},
        "caBundle": wh.ca_bundle,
    });
    validating(&env.client, "svc", vec![by_service]).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let err = api_status(cms.create(&PostParams::default(), &config_map("a")).await);
    assert!(
        err.message.contains("service \"hook\" not found"),
        "{}",
        err.message
    );
    let services: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let svc = serde_json::from_value(json!({"metadata": {"name": "hook"},
        "spec": {"type": "ExternalName", "externalName": "localhost"}}))
    .expect("svc");
    services
        .create(&PostParams::default(), &svc)
        .await
        .expect("service");
    // Reached (at localhost, verified as hook.default.svc): now it is the webhook that denies.
    let err = api_status(cms.create(&PostParams::default(), &config_map("a")).await);
    assert_eq!(
        err.message,
        "admission webhook \"svc.test\" denied the request: not welcome here"
    );
}

#[tokio::test]
async fn controller_pods_go_through_the_webhooks() {
    let env = start().await;
    let wh = webhook().await;
    mutating(
        &env.client,
        "label",
        vec![hook(
            "label.test",
            &wh.url("/label"),
            &wh.ca_bundle,
            &["CREATE"],
            &["pods"],
        )],
    )
    .await;
    let rs: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "rs"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "rs"}},
            "template": {"metadata": {"labels": {"app": "rs"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    }))
    .expect("rs");
    Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(env.client.clone(), "default")
        .create(&PostParams::default(), &rs)
        .await
        .expect("create");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    common::eventually("a labelled pod", || async {
        pods.list(&kube::api::ListParams::default().labels("app=rs,mutated=yes"))
            .await
            .expect("list")
            .items
            .len()
            == 1
    })
    .await;
    let review = &wh.reviews("/label")[0]["request"];
    assert_eq!(
        review["userInfo"]["username"],
        "system:serviceaccount:kube-system:replicaset-controller"
    );
    assert_eq!(review["object"]["metadata"]["generateName"], "rs-");
}

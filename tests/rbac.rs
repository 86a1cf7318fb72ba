//! capstan's RBAC in manifests/ is least-privilege. The sandbox enforces RBAC for
//! ServiceAccount tokens: with manifests/00-namespace.yaml and 10-rbac.yaml applied, capstan
//! runs as `capstan/capstan` (leader election, webhook cache, every controller) through
//! provisioning, the NodeClaim lifecycle, a consolidation that drains a node through the
//! Eviction API, and a spot interruption whose drain a PodDisruptionBudget blocks until the
//! termination grace period forces the pod out, and is never denied. The sandbox records every
//! distinct request capstan made; then, for each rule of the ClusterRole and the Role, the role
//! is written without that rule (and without each one of its verbs, and each one of its
//! resources) and the recorded requests are authorized again by the sandbox: at least one must
//! be denied each time, or the manifest grants something capstan never uses.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use capstan::cloud::provider::instance_id;
use capstan::cloud::queue::SimQueue;
use capstan::cloud::sim::{SimProvider, SimSettings};
use capstan::cloud::sim_kubelet::SimKubelet;
use capstan::controllers::webhook_cache::CacheWatcher;
use capstan::controllers::{Controllers, Settings};
use capstan::leader::{Election, ElectionConfig};
use capstan::metrics::Metrics;
use capstan::webhook::cache::WebhookCache;
use capstan_sandbox::access::Access;
use capstan_sandbox::rbac::{Decision, forbidden};
use capstan_sandbox::{Sandbox, SandboxConfig};
use common::cluster::*;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::AuthInfo;
use serde_json::{Value, json};

const USER: &str = "system:serviceaccount:capstan:capstan";

/// The documents of a manifest file under manifests/.
fn manifest(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("read manifest");
    text.split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

/// The API of a document (every kind in these files has the plural `<kind>s`).
fn api_for(client: &kube::Client, doc: &Value) -> Api<DynamicObject> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    match doc["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Creates `doc`, or replaces it with the stored resourceVersion.
async fn put(client: &kube::Client, doc: &Value) {
    let api = api_for(client, doc);
    let mut obj: DynamicObject = serde_json::from_value(doc.clone()).expect("object");
    let name = obj.metadata.name.clone().unwrap_or_default();
    match api.get_opt(&name).await.expect("get") {
        None => {
            api.create(&PostParams::default(), &obj)
                .await
                .expect("create");
        }
        Some(stored) => {
            obj.metadata.resource_version = stored.metadata.resource_version;
            api.replace(&name, &PostParams::default(), &obj)
                .await
                .expect("replace");
        }
    }
}

/// One rule as the manifest writes it, for messages.
fn describe(rule: &Value) -> String {
    let list = |k: &str| {
        rule[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let names = list("resourceNames");
    format!(
        "[{}] {} {{{}}}{}",
        list("apiGroups"),
        list("resources"),
        list("verbs"),
        if names.is_empty() {
            String::new()
        } else {
            format!(" names {names}")
        }
    )
}

/// `patch nodes n1`, `create pods/eviction web-0 in default`: one request, for messages.
fn show(a: &Access) -> String {
    let at = &a.attributes;
    let mut text = format!("{} {}", at.verb, at.resource_path());
    if !at.group.is_empty() {
        text = format!("{text} ({})", at.group);
    }
    if !at.name.is_empty() {
        text = format!("{text} {}", at.name);
    }
    if !at.namespace.is_empty() {
        text = format!("{text} in {}", at.namespace);
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capstan_runs_on_its_manifest_roles_and_needs_every_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SandboxConfig::new(dir.path().join("kubeconfig"));
    config
        .crds_yaml
        .push(capstan::apis::crds_yaml().expect("capstan CRDs"));
    config.record_requests = true;
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let admin = common::client_from(sandbox.kubeconfig_path()).await;

    let rbac = manifest("10-rbac.yaml");
    for doc in manifest("00-namespace.yaml").iter().chain(&rbac) {
        put(&admin, doc).await;
    }
    for doc in &rbac {
        for rule in doc["rules"].as_array().into_iter().flatten() {
            for field in ["apiGroups", "resources", "verbs"] {
                assert!(
                    !rule[field]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|v| v == "*"),
                    "wildcard in {}",
                    describe(rule)
                );
            }
        }
    }

    // capstan as its ServiceAccount: the same kubeconfig, another token.
    let token = sandbox
        .issue_service_account_token("capstan", "capstan")
        .expect("token");
    let mut capstan_config = common::config_from(sandbox.kubeconfig_path()).await;
    capstan_config.auth_info = AuthInfo {
        token: Some(token.into()),
        ..AuthInfo::default()
    };
    let capstan = kube::Client::try_from(capstan_config.clone()).expect("client");

    let mut election_config = ElectionConfig::new("capstan", "capstan-0");
    election_config.lease_duration = Duration::from_secs(2);
    election_config.renew_deadline = Duration::from_millis(1500);
    election_config.retry_period = Duration::from_millis(200);
    let election = Election::start(capstan.clone(), election_config);
    let mut leading = election.is_leader.clone();
    tokio::time::timeout(Duration::from_secs(10), leading.wait_for(|l| *l))
        .await
        .expect("leads within 10 s")
        .expect("election running");
    let cache_watcher = CacheWatcher::spawn(capstan.clone(), WebhookCache::new());
    tokio::time::timeout(Duration::from_secs(10), cache_watcher.wait_synced())
        .await
        .expect("webhook cache synced within 10 s");

    // The kubelets are not capstan: they register Nodes as the admin.
    let cloud = Arc::new(SimProvider::new(SimSettings::new("us-east-1", "test")));
    let kubelet = SimKubelet::spawn(admin.clone(), cloud.clone(), Duration::from_millis(100));
    let mut settings = Settings::new("test");
    settings.batch_idle = Duration::from_millis(200);
    settings.batch_max = Duration::from_secs(2);
    settings.gc_grace = Duration::from_secs(1);
    settings.resync = Duration::from_millis(300);
    settings.disruption_poll = Duration::from_millis(500);
    settings.disruption_validation = Duration::from_secs(1);
    let queue = Arc::new(SimQueue::new());
    settings.interruption_queue = Some(queue.clone());
    let metrics = Metrics::new();
    let controllers = tokio::time::timeout(
        Duration::from_secs(10),
        Controllers::start(capstan_config, cloud.clone(), settings, &metrics),
    )
    .await
    .expect("controllers start within 10 s")
    .expect("controllers start");

    // Provisioning, then a consolidation: the pods shrink to one, whose node is replaced by a
    // cheaper one and drained through the Eviction API; the empty nodes go.
    apply_pool_with(
        &admin,
        generic_requirements(),
        json!({"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "1s",
               "budgets": [{"nodes": "100%"}]}),
    )
    .await;
    // Short, so that the interrupted node's drain is forced soon.
    let pools: Api<capstan::apis::NodePool> = Api::all(admin.clone());
    pools
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"template": {"spec": {"terminationGracePeriod": "3s"}}}}),
            ),
        )
        .await
        .expect("terminationGracePeriod");
    deploy(&admin, "web", 6, "1", "1Gi").await;
    wait_for(30, "6 pods running", || async {
        running_pods(&admin, "web").await == 6
    })
    .await;
    let provisioned: BTreeSet<String> = claims(&admin)
        .await
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    scale(&admin, "web", 1).await;
    wait_for(45, "the last pod running on a replacement node", || async {
        let now = claims(&admin).await;
        running_pods(&admin, "web").await == 1
            && now.len() == 1
            && now
                .iter()
                .all(|c| !provisioned.contains(c.metadata.name.as_deref().unwrap_or("")))
    })
    .await;
    let evicted = |r: &Access| {
        r.attributes.verb == "create" && r.attributes.resource_path() == "pods/eviction"
    };
    assert!(
        sandbox.recorded_requests().iter().any(evicted),
        "the consolidated node was drained through the Eviction API"
    );

    // A spot interruption of that node, whose pod a PDB holds: the drain is blocked (429,
    // DisruptionBlocked Events, repeated) until the grace period is over and the pod is
    // deleted; it runs again on the interruption's replacement.
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(admin.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    }))
    .expect("pdb");
    pdbs.create(&PostParams::default(), &pdb)
        .await
        .expect("create pdb");
    let interrupted = claims(&admin).await.remove(0);
    let interrupted_name = interrupted.metadata.name.clone().unwrap_or_default();
    let provider_id = interrupted
        .status
        .and_then(|s| s.provider_id)
        .expect("provider id");
    let instance = instance_id(&provider_id).expect("instance id").to_string();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let old_pod = pods
        .list(&kube::api::ListParams::default().labels("app=web"))
        .await
        .expect("pods")
        .items
        .remove(0)
        .metadata
        .name
        .unwrap_or_default();
    queue.push(
        json!({
            "version": "0", "id": "1e5527d7-bb36-4607-3370-4164db56a40e",
            "detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2",
            "account": "123456789012", "time": "2026-11-26T03:00:00Z", "region": "us-east-1",
            "resources": [format!("arn:aws:ec2:us-east-1b:instance/{instance}")],
            "detail": {"instance-id": instance, "instance-action": "terminate"}
        })
        .to_string(),
    );
    wait_for(
        45,
        "the held pod forced out and running elsewhere",
        || async {
            let now = claims(&admin).await;
            running_pods(&admin, "web").await == 1
                && pods.get_opt(&old_pod).await.is_ok_and(|p| p.is_none())
                && now
                    .iter()
                    .all(|c| c.metadata.name.as_deref() != Some(&interrupted_name))
        },
    )
    .await;
    controllers.shutdown();
    cache_watcher.shutdown().await;
    election.shutdown().await;
    kubelet.stop();

    let denials = sandbox.denials();
    assert!(
        denials.is_empty(),
        "capstan was denied with the manifest's roles: {:#?}",
        denials.iter().map(show).collect::<Vec<_>>()
    );
    let recorded: Vec<Access> = sandbox
        .recorded_requests()
        .into_iter()
        .filter(|a| a.user.name == USER)
        .collect();
    assert!(recorded.len() > 20, "{recorded:?}");
    let denied_now = |recorded: &[Access]| -> Vec<Access> {
        recorded
            .iter()
            .filter(|a| sandbox.access().decide(&a.user, &a.attributes) != Decision::Allow)
            .cloned()
            .collect()
    };
    assert!(
        denied_now(&recorded).is_empty(),
        "replay with the full roles"
    );

    // Each rule removed in turn: some request capstan made is denied.
    let mut table = Vec::new();
    let mut unused = Vec::new();
    let mut needless = Vec::new();
    for role in rbac
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("ClusterRole" | "Role")))
    {
        let rules = role["rules"].as_array().cloned().unwrap_or_default();
        for (i, rule) in rules.iter().enumerate() {
            let mut reduced = role.clone();
            let mut fewer = rules.clone();
            fewer.remove(i);
            reduced["rules"] = Value::Array(fewer);
            put(&admin, &reduced).await;
            let denied = denied_now(&recorded);
            let Some(first) = denied.first() else {
                needless.push(format!(
                    "{} {}",
                    role["kind"].as_str().unwrap_or_default(),
                    describe(rule)
                ));
                continue;
            };
            // Finer: each verb, and each resource of a rule listing several.
            for field in ["verbs", "resources"] {
                let values = rule[field].as_array().cloned().unwrap_or_default();
                if values.len() < 2 {
                    continue;
                }
                for value in &values {
                    let mut narrower = rule.clone();
                    narrower[field] =
                        Value::Array(values.iter().filter(|v| *v != value).cloned().collect());
                    let mut with = rules.clone();
                    with[i] = narrower;
                    reduced["rules"] = Value::Array(with);
                    put(&admin, &reduced).await;
                    if denied_now(&recorded).is_empty() {
                        unused.push(format!("{} of {}", value, describe(rule)));
                    }
                }
            }
            table.push(format!(
                "{} {} -> {} (and {} more)",
                role["kind"].as_str().unwrap_or_default(),
                describe(rule),
                forbidden(&first.user, &first.attributes, "").message,
                denied.len() - 1
            ));
        }
        put(&admin, role).await;
    }
    assert!(denied_now(&recorded).is_empty(), "roles restored");
    eprintln!("denials per removed rule:\n  {}", table.join("\n  "));

    assert!(
        needless.is_empty() && unused.is_empty(),
        "rules no request of capstan needs:\n  {}\nverbs and resources no request of capstan needs:\n  {}",
        needless.join("\n  "),
        unused.join("\n  ")
    );
    sandbox.shutdown().await;
}

//! The webhook cache watcher against the sandbox: RequestPolicies and namespace labels arrive,
//! change and go as the API server's watches report them.

use crate::common;

use std::time::Duration;

use capstan::apis::RequestPolicy;
use capstan::controllers::webhook_cache::CacheWatcher;
use capstan::webhook::cache::WebhookCache;
use common::eventually;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn policy(name: &str, mode: &str) -> RequestPolicy {
    serde_json::from_value(json!({
        "apiVersion": "capstan.dev/v1alpha1", "kind": "RequestPolicy",
        "metadata": {"name": name},
        "spec": {"mode": mode, "namespaceSelector": {"matchLabels": {"team": "a"}}}
    }))
    .expect("policy")
}

fn modes(cache: &WebhookCache) -> Vec<(String, String)> {
    let mut out: Vec<_> = cache
        .snapshot()
        .policies
        .iter()
        .map(|p| (p.name_any(), p.mode().to_string()))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_policies_and_namespace_labels() {
    let env = common::start().await;
    let policies: Api<RequestPolicy> = Api::all(env.client.clone());
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    // One policy exists before the watch starts: it must come with the initial list.
    policies
        .create(&PostParams::default(), &policy("early", "Warn"))
        .await
        .expect("create early");

    let cache = WebhookCache::new();
    let watcher = CacheWatcher::spawn(env.client.clone(), cache.clone());
    tokio::time::timeout(Duration::from_secs(10), watcher.wait_synced())
        .await
        .expect("initial lists");
    assert!(watcher.is_synced());
    assert_eq!(modes(&cache), [("early".to_string(), "Warn".to_string())]);
    // The namespaces every cluster has, with the name label the API server sets.
    let snap = cache.snapshot();
    assert_eq!(
        snap.namespaces["default"]["kubernetes.io/metadata.name"],
        "default"
    );

    policies
        .create(&PostParams::default(), &policy("late", "Enforce"))
        .await
        .expect("create late");
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-a", "labels": {"team": "a"}}}))
            .expect("namespace");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    eventually("the new policy and namespace", || async {
        let snap = cache.snapshot();
        snap.policies.len() == 2
            && snap
                .namespaces
                .get("team-a")
                .is_some_and(|l| l.get("team").map(String::as_str) == Some("a"))
    })
    .await;

    // Updates replace, deletions remove.
    let params = PatchParams::default();
    policies
        .patch(
            "early",
            &params,
            &Patch::Merge(json!({"spec": {"mode": "Enforce"}})),
        )
        .await
        .expect("patch policy");
    namespaces
        .patch(
            "team-a",
            &params,
            &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})),
        )
        .await
        .expect("relabel namespace");
    policies
        .delete("late", &DeleteParams::default())
        .await
        .expect("delete late");
    eventually("update, relabel and delete", || async {
        let snap = cache.snapshot();
        modes(&cache) == [("early".to_string(), "Enforce".to_string())]
            && snap.namespaces["team-a"].get("team").map(String::as_str) == Some("b")
    })
    .await;

    tokio::time::timeout(Duration::from_secs(5), watcher.shutdown())
        .await
        .expect("shutdown");
    env.sandbox.shutdown().await;
}

/// A TCP relay to the sandbox that can be cut, as a network outage would: open connections are
/// dropped and new ones refused until it is restored.
struct Relay {
    addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let (up, up_rx) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*up_rx.borrow() {
                    continue; // dropped: connection reset
                }
                let mut up_rx = up_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up_rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// The connection to the API server is cut while a policy is deleted: the watches fail, back
/// off and re-list, and the cache converges instead of keeping the deleted policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_losing_the_api_server() {
    let env = common::start().await;
    let sandbox_addr = env
        .sandbox
        .url()
        .trim_start_matches("https://")
        .parse()
        .expect("sandbox address");
    let relay = Relay::start(sandbox_addr).await;
    // The same credentials and CA, through the relay (the serving certificate is for 127.0.0.1).
    let kubeconfig =
        kube::config::Kubeconfig::read_from(env.sandbox.kubeconfig_path()).expect("kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    config.cluster_url = format!("https://{}", relay.addr).parse().expect("url");
    let relayed = kube::Client::try_from(config).expect("client");

    let policies: Api<RequestPolicy> = Api::all(env.client.clone());
    policies
        .create(&PostParams::default(), &policy("ghost", "Warn"))
        .await
        .expect("create");
    let cache = WebhookCache::new();
    let watcher = CacheWatcher::spawn(relayed, cache.clone());
    tokio::time::timeout(Duration::from_secs(10), watcher.wait_synced())
        .await
        .expect("initial lists");
    assert_eq!(modes(&cache).len(), 1);

    relay.set_up(false);
    policies
        .delete("ghost", &DeleteParams::default())
        .await
        .expect("delete");
    policies
        .create(&PostParams::default(), &policy("new", "Enforce"))
        .await
        .expect("create");
    // While it is cut off the cache keeps serving what it had.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(modes(&cache), [("ghost".to_string(), "Warn".to_string())]);

    relay.set_up(true);
    eventually("the cache to re-list", || async {
        modes(&cache) == [("new".to_string(), "Enforce".to_string())]
    })
    .await;
    watcher.shutdown().await;
    env.sandbox.shutdown().await;
}

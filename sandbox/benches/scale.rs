//! The sandbox at cluster scale (issue 3): 50,000 pods and 5,000 nodes held in memory; a full
//! pod list over HTTPS through kube-rs, a label-selected list, a `spec.nodeName` field-selected
//! list, and one change fanned out to 10 watchers. Prints the store's fill time and resident
//! memory once, then criterion's timings. Controllers are off: pods stay as written, so the
//! numbers are the API server's alone.

use std::time::{Duration, Instant};

use capstan_sandbox::{Sandbox, SandboxConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const PODS: usize = 50_000;
const NODES: usize = 5_000;
const WATCHERS: usize = 10;

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (sandbox, client) = rt.block_on(async {
        let mut config = SandboxConfig::new(dir.path().join("kubeconfig"));
        config.controllers = false;
        let sandbox = Sandbox::start(config).await.expect("sandbox");
        let kc =
            kube::config::Kubeconfig::read_from(sandbox.kubeconfig_path()).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        (sandbox, kube::Client::try_from(cfg).expect("client"))
    });

    // Filled in process (the store is what is measured, not 55,000 POSTs).
    let api = sandbox.api().clone();
    let pods_rt = api.registry.lookup("", "v1", "pods").expect("pods");
    let nodes_rt = api.registry.lookup("", "v1", "nodes").expect("nodes");
    let before = resident_mib();
    let start = Instant::now();
    for n in 0..NODES {
        api.create(
            &nodes_rt,
            "",
            json!({"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": format!("node-{n}"), "labels": {"topology.kubernetes.io/zone": format!("zone-{}", n % 3)}},
                   "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                              "conditions": [{"type": "Ready", "status": "True"}]}}),
        )
        .expect("node");
    }
    for p in 0..PODS {
        api.create(
            &pods_rt,
            "default",
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": format!("pod-{p}"), "labels": {"app": format!("app-{}", p % 100)}},
                   "spec": {"nodeName": format!("node-{}", p % NODES),
                            "containers": [{"name": "c", "image": "pause",
                                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
                   "status": {"phase": "Running"}}),
        )
        .expect("pod");
    }
    println!(
        "filled {NODES} nodes and {PODS} pods in {:.2?}; resident memory {:.0} MiB (+{:.0} MiB)",
        start.elapsed(),
        resident_mib(),
        resident_mib() - before
    );

    let pods: Api<Pod> = Api::all(client.clone());
    let mut group = c.benchmark_group("sandbox");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("list 50000 pods (kube-rs, HTTPS)", |b| {
        b.iter(|| {
            let n = rt
                .block_on(pods.list(&ListParams::default()))
                .expect("list")
                .items
                .len();
            assert_eq!(n, PODS);
        })
    });
    group.bench_function("list 500 pods by label", |b| {
        b.iter(|| {
            let n = rt
                .block_on(pods.list(&ListParams::default().labels("app=app-7")))
                .expect("list")
                .items
                .len();
            assert_eq!(n, PODS / 100);
        })
    });
    group.bench_function("list 10 pods by spec.nodeName", |b| {
        b.iter(|| {
            let n = rt
                .block_on(pods.list(&ListParams::default().fields("spec.nodeName=node-42")))
                .expect("list")
                .items
                .len();
            assert_eq!(n, PODS / NODES);
        })
    });

    // Fan-out: 10 watches on ConfigMaps (a quiet resource), one write, every watcher sees it.
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut k = 0u64;
    group.bench_function("one write seen by 10 watchers", |b| {
        b.iter(|| {
            k += 1;
            rt.block_on(async {
                let rv = maps
                    .list(&ListParams::default().limit(1))
                    .await
                    .expect("list")
                    .metadata
                    .resource_version
                    .unwrap_or_default();
                let mut streams = Vec::new();
                for _ in 0..WATCHERS {
                    streams.push(
                        maps.watch(&WatchParams::default().timeout(30), &rv)
                            .await
                            .expect("watch")
                            .boxed(),
                    );
                }
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": format!("cm-{k}")}, "data": {"k": "v"}}),
                )
                .expect("configmap");
                maps.create(&PostParams::default(), &cm)
                    .await
                    .expect("create");
                for s in &mut streams {
                    loop {
                        match s.try_next().await.expect("event") {
                            Some(WatchEvent::Added(_)) => break,
                            Some(_) => continue,
                            None => panic!("watch ended early"),
                        }
                    }
                }
            })
        })
    });
    group.finish();
    rt.block_on(sandbox.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! One disruption decision over a large, underutilized cluster: N nodes (m5.2xlarge, 8 vCPU)
//! each running ten pods of 100m-800m CPU, every candidate considered (no cap). Prints the time
//! of `decide`, what it chose, and the cluster's cost before and after the decision against the
//! LP lower bound for the pods' demand. Goal (issue 7): 2,000 nodes / 20,000 pods in < 1 s.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use capstan::apis::{NodeClaim, NodePool};
use capstan::cloud::catalog::{CapacityType, Catalog};
use capstan::controllers::provisioning::inputs::{Snapshot, prepare};
use capstan::disruption::{ClusterView, Options, PriceBook, decide};
use capstan::scheduling::lower_bound::{Candidate, lp_lower_bound};
use capstan::scheduling::pod::PodInfo;
use capstan::scheduling::resources::Resources;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

const TYPE: &str = "m5.2xlarge";
const ZONE: &str = "us-east-1a";
const CREATED: &str = "2026-01-01T00:00:00Z";

fn pool() -> NodePool {
    serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "default"},
        "spec": {
            "template": {"spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                // Consolidation is what is measured: the claims (created on CREATED) never expire.
                "expireAfter": "Never",
                "requirements": [
                    {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"]},
                    {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["2"]},
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}
                ]}},
            "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "0s",
                           "budgets": [{"nodes": "100%"}]}
        }
    }))
    .expect("pool")
}

fn class() -> capstan::apis::EC2NodeClass {
    serde_json::from_value(json!({
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "default"},
        "spec": {"amiSelectorTerms": [{"alias": "al2023@latest"}], "role": "r",
                 "subnetSelectorTerms": [{"id": "subnet-1"}], "securityGroupSelectorTerms": [{"id": "sg-1"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .expect("class")
}

/// `nodes` launched, initialized NodeClaims with Nodes, ten pods each (deterministic sizes).
fn cluster(nodes: usize) -> Snapshot {
    let mut snap = Snapshot {
        nodepools: vec![Arc::new(pool())],
        nodeclasses: vec![Arc::new(class())],
        ..Default::default()
    };
    let alloc = json!({"cpu": "7910m", "memory": "29258Mi", "pods": "58"});
    for i in 0..nodes {
        let node = format!("node-{i}");
        let pid = format!("aws:///{ZONE}/i-{i:017x}");
        let labels = json!({"karpenter.sh/nodepool": "default", "node.kubernetes.io/instance-type": TYPE,
            "topology.kubernetes.io/zone": ZONE, "karpenter.sh/capacity-type": "on-demand",
            "kubernetes.io/hostname": node, "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"});
        let claim: NodeClaim = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": {"name": format!("claim-{i}"), "labels": labels, "creationTimestamp": CREATED},
            "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                     "requirements": []},
            "status": {"providerID": pid, "nodeName": node, "capacity": alloc, "allocatable": alloc,
                "conditions": [{"type": "Initialized", "status": "True", "lastTransitionTime": CREATED}]}
        }))
        .expect("claim");
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": node, "labels": labels, "creationTimestamp": CREATED},
            "spec": {"providerID": pid},
            "status": {"allocatable": alloc, "capacity": alloc, "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("node");
        snap.nodeclaims.push(Arc::new(claim));
        snap.nodes.push(Arc::new(n));
        for j in 0..10 {
            let cpu = 100 + ((i * 7 + j * 13) % 8) * 100;
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("p-{i}-{j}"), "namespace": "default",
                             "labels": {"app": format!("app-{}", j % 5)}},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x",
                    "resources": {"requests": {"cpu": format!("{cpu}m"), "memory": format!("{}Mi", cpu * 2)}}}]},
                "status": {"phase": "Running"}
            }))
            .expect("pod");
            snap.pods.push(Arc::new(pod));
        }
    }
    snap
}

fn view(snap: &Snapshot, catalog: &Catalog) -> ClusterView {
    let prepared = prepare(snap, catalog, SystemTime::now());
    let prices = PriceBook::from_catalog(catalog);
    ClusterView {
        nodes: snap.nodes.clone(),
        nodeclaims: snap.nodeclaims.clone(),
        nodepools: snap.nodepools.clone(),
        pods: snap.pods.clone(),
        pdbs: Vec::new(),
        simulation: prepared.input,
        prices,
    }
}

/// The LP bound for all pods' demand on the pool's types, as `capstan plan` computes it.
fn lower_bound(view: &ClusterView, demand: &Resources) -> f64 {
    let pool = &view.simulation.pools[0];
    let candidates = Candidate::all_for(&pool.instance_types, &pool.requirements);
    lp_lower_bound(&candidates, demand.cpu_millis, demand.memory_bytes)
        .map_or(0.0, |b| b.cost_per_hour)
}

fn bench(c: &mut Criterion) {
    let catalog = Catalog::for_region("us-east-1", None);
    let node_price = catalog
        .offering(TYPE, ZONE, CapacityType::OnDemand)
        .map_or(0.0, |o| o.price_per_hour);
    let mut group = c.benchmark_group("consolidation");
    for &n in &[100usize, 500, 2_000] {
        let snap = cluster(n);
        let v = view(&snap, &catalog);
        let now = SystemTime::now();
        let start = Instant::now();
        let decision = black_box(decide(&v, now, &Options::default()));
        let secs = start.elapsed().as_secs_f64();
        // Where the time goes: reading the cluster into candidates, and one simulation of the
        // chosen command (multi-node consolidation runs ~log2(n) of them).
        let start = Instant::now();
        let (cands, _) = black_box(capstan::disruption::candidates::build(&v, now));
        let build_secs = start.elapsed().as_secs_f64();
        let chosen: Vec<&capstan::disruption::Candidate> = decision
            .commands
            .first()
            .map(|c| {
                cands
                    .iter()
                    .filter(|x| c.candidates.iter().any(|n| n == x.name()))
                    .collect()
            })
            .unwrap_or_default();
        let start = Instant::now();
        let _ = black_box(capstan::disruption::consolidation::compute(
            &v,
            &chosen,
            &Options::default(),
        ));
        let sim_secs = start.elapsed().as_secs_f64();
        println!(
            "nodes {n:>5}: candidates built in {build_secs:.3}s; one simulation of the chosen command {sim_secs:.3}s"
        );
        let mut demand = Resources::new();
        for p in &snap.pods {
            if let Ok(info) = PodInfo::from_pod(p) {
                demand += &info.requests;
            }
        }
        let before = node_price * n as f64;
        let removed: usize = decision.commands.iter().map(|c| c.candidates.len()).sum();
        let added: f64 = decision
            .commands
            .iter()
            .flat_map(|c| &c.replacements)
            .map(|r| r.cheapest().price_per_hour)
            .sum();
        let after = before - node_price * removed as f64 + added;
        let lb = lower_bound(&v, &demand);
        let ratio = |x: f64| if lb > 0.0 { x / lb } else { 0.0 };
        println!(
            "nodes {n:>5} pods {:>6}: decide {secs:.3}s; {} command(s) {:?} removing {removed} nodes, {} replacements; cost ${before:.2}/h -> ${after:.2}/h (LP bound ${lb:.2}/h: {:.2} -> {:.2})",
            snap.pods.len(),
            decision.commands.len(),
            decision
                .commands
                .iter()
                .fold(std::collections::BTreeMap::new(), |mut m, c| {
                    *m.entry((c.reason.as_str(), c.decision(), c.consolidation_type()))
                        .or_insert(0usize) += 1;
                    m
                }),
            decision
                .commands
                .iter()
                .map(|c| c.replacements.len())
                .sum::<usize>(),
            ratio(before),
            ratio(after),
        );
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if n >= 2_000 { 30 } else { 5 }));
        group.bench_with_input(BenchmarkId::from_parameter(n), &v, |b, v| {
            b.iter(|| decide(black_box(v), now, &Options::default()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

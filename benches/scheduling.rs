//! Scheduling throughput on Karpenter's benchmark mix: 400+ instance types and pods split five ways
//! (generic, zone spread, hostname spread, zone affinity, hostname anti-affinity), at 1 to 20,000
//! pods. Prints pods/s and the plan's cost against the LP lower bound for the generic mix.
//! Goal (issue 5): 20,000 pods in under 2 s on 2 cores; generic cost within 5% of the bound (from
//! 1,000 pods: 100 pods land on a handful of nodes, and whole nodes cannot match a fractional mix);
//! under 200 MiB for 20,000 pods (measured with a counting allocator: peak heap during the run).
//!
//! The cost ratio is reported for two pools: every amd64 type, and Karpenter's documented default
//! (instance categories c, m, r; generation > 2). The first bound is loose by construction: it
//! buys CPU fractionally from burstable t3a nodes that cannot hold the pods (see lower_bound.rs).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use capstan::apis::labels;
use capstan::cloud::catalog::{AllocatableSettings, Catalog, instance_options};
use capstan::scheduling::instance::InstanceOption;
use capstan::scheduling::lower_bound::{Candidate, lp_lower_bound};
use capstan::scheduling::pod::PodInfo;
use capstan::scheduling::requirements::{Requirement, Requirements};
use capstan::scheduling::resources::Resources;
use capstan::scheduling::scheduler::{Input, PoolTemplate, schedule};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn instance_types() -> Vec<Arc<InstanceOption>> {
    let catalog = Catalog::for_region("us-west-2", None);
    let settings = AllocatableSettings::from_kubelet(None).expect("default kubelet settings");
    instance_options(&catalog, &settings, SystemTime::now())
        .into_iter()
        .filter(|o| o.labels.get(labels::ARCH).is_some_and(|a| a == "amd64"))
        .collect()
}

/// Karpenter's documented default NodePool: categories c, m, r of generation 3 and later.
fn karpenter_default(types: &[Arc<InstanceOption>]) -> Vec<Arc<InstanceOption>> {
    types
        .iter()
        .filter(|o| {
            o.labels
                .get(labels::INSTANCE_CATEGORY)
                .is_some_and(|c| ["c", "m", "r"].contains(&c.as_str()))
                && o.labels
                    .get(labels::INSTANCE_GENERATION)
                    .and_then(|g| g.parse::<u32>().ok())
                    .is_some_and(|g| g > 2)
        })
        .cloned()
        .collect()
}

fn pool(types: Vec<Arc<InstanceOption>>) -> PoolTemplate {
    let mut requirements = Requirements::new();
    requirements.add(Requirement::single(labels::NODEPOOL, "default"));
    requirements.add(
        Requirement::new(labels::CAPACITY_TYPE, "In", &["on-demand".to_string()]).expect("valid"),
    );
    PoolTemplate {
        name: "default".into(),
        weight: 0,
        requirements,
        taints: Vec::new(),
        instance_types: types,
        limits: None,
        in_use: Resources::new(),
    }
}

/// Karpenter's `makeDiversePods`: the five kinds in equal parts, sizes from a fixed cycle.
fn pods(n: usize, generic_only: bool) -> Vec<PodInfo> {
    const CPU: [&str; 5] = ["100m", "250m", "500m", "1", "2"];
    const MEM: [&str; 5] = ["128Mi", "512Mi", "1Gi", "2Gi", "4Gi"];
    (0..n)
        .map(|i| {
            let kind = if generic_only { 0 } else { i % 5 };
            let app = ["generic", "zspread", "hspread", "zaff", "hanti"][kind];
            let extra = match kind {
                1 => "  topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: zspread}}}]\n",
                2 => "  topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: hspread}}}]\n",
                3 => "  affinity: {podAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: topology.kubernetes.io/zone, labelSelector: {matchLabels: {app: zaff}}}]}}\n",
                4 => "  affinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: hanti}}}]}}\n",
                _ => "",
            };
            let yaml = format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p-{i}, namespace: default, labels: {{app: {app}}}}}\nspec:\n  containers: [{{name: c, image: x, resources: {{requests: {{cpu: \"{}\", memory: {}}}}}}}]\n{extra}",
                CPU[i % 5],
                MEM[(i / 5) % 5]
            );
            let pod: Pod = serde_saphyr::from_str(&yaml).expect("valid pod");
            PodInfo::from_pod(&pod).expect("valid pod")
        })
        .collect()
}

/// Plan cost against the LP lower bound for the same pods (generic mix).
fn cost_ratio(types: &[Arc<InstanceOption>], n: usize) -> (f64, f64) {
    let input = Input {
        pods: pods(n, true),
        pools: vec![pool(types.to_vec())],
        ..Default::default()
    };
    let out = schedule(&input);
    let total: f64 = out.claims.iter().map(|c| c.cheapest().price_per_hour).sum();
    let demand = input
        .pods
        .iter()
        .fold(Resources::new(), |acc, p| &acc + &p.requests);
    let candidates: Vec<Candidate> = types
        .iter()
        .filter_map(|o| {
            o.offerings
                .iter()
                .find(|of| of.capacity_type == "on-demand")
                .map(|of| Candidate {
                    name: o.name.clone(),
                    price_per_hour: of.price_per_hour,
                    cpu_millis: o.allocatable.cpu_millis,
                    memory_bytes: o.allocatable.memory_bytes,
                })
        })
        .collect();
    let lb = lp_lower_bound(&candidates, demand.cpu_millis, demand.memory_bytes)
        .map_or(0.0, |l| l.cost_per_hour);
    (total, lb)
}

fn ratio((total, lb): (f64, f64)) -> String {
    let r = if lb > 0.0 { total / lb } else { 0.0 };
    format!("${total:.3}/h vs LP bound ${lb:.3}/h, ratio {r:.3}")
}

fn bench(c: &mut Criterion) {
    let types = instance_types();
    let default_types = karpenter_default(&types);
    println!(
        "instance types: {} amd64, {} in Karpenter's default c/m/r gen>2",
        types.len(),
        default_types.len()
    );
    let mut group = c.benchmark_group("schedule");
    for &n in &[1usize, 100, 1_000, 5_000, 20_000] {
        let input = Input {
            pods: pods(n, false),
            pools: vec![pool(types.clone())],
            ..Default::default()
        };
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let start = Instant::now();
        let out = black_box(schedule(&input));
        let secs = start.elapsed().as_secs_f64();
        let peak_mib = (PEAK.load(Ordering::Relaxed) - base) as f64 / (1 << 20) as f64;
        println!(
            "pods {n:>6}: {:>8.0} pods/s in one run ({secs:.3}s, peak heap {peak_mib:.1} MiB), {} nodeclaims, {} unschedulable",
            n as f64 / secs,
            out.claims.len(),
            out.unschedulable.len(),
        );
        println!(
            "             generic mix, all amd64 types: {}; Karpenter default pool: {}",
            ratio(cost_ratio(&types, n)),
            ratio(cost_ratio(&default_types, n)),
        );
        group.throughput(Throughput::Elements(n as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if n >= 5_000 { 20 } else { 5 }));
        group.bench_with_input(BenchmarkId::from_parameter(n), &input, |b, input| {
            b.iter(|| schedule(black_box(input)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

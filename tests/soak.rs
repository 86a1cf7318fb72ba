//! The chaos soak (issue 8): the sandbox with the simulated cloud and every controller, under
//! random workload churn (Deployments scaling, Jobs, a PDB-guarded Deployment, do-not-disrupt
//! pods, spot interruptions) and injected faults (insufficient capacity, API errors, slow
//! launches, the controllers killed and restarted, every watch connection dropped). Invariants
//! are checked four times a second the whole time:
//! - no instance without a NodeClaim once the GC grace period (plus slack) has passed;
//! - no more nodes voluntarily disrupted at once than the NodePool's budget allows;
//! - no PDB-guarded pod lost below `minAvailable` (evictions go through the PDB; nothing else
//!   may take them);
//! - no node of a do-not-disrupt pod disrupted (spot interruptions aside: they are involuntary);
//! - no more capacity launched than the NodePool's CPU limit.
//!
//! At the end, with churn and faults stopped, every pod runs and no instance is left over.
//!
//! Bounded by `SOAK_SECONDS` (default 60; `just soak` runs 600), seeded by `SOAK_SEED` (printed,
//! so that a failing run can be replayed). Prints operations, faults and violations (must be 0).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use capstan::apis::NodePool;
use capstan::apis::labels::{DISRUPTED_TAINT_KEY, DO_NOT_DISRUPT};
use capstan::cloud::catalog::CapacityType;
use capstan::cloud::provider::{OfferingKey, instance_id};
use capstan::cloud::queue::SimQueue;
use capstan::cloud::sim::{Faults, SimProvider};
use common::cluster::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::interruption::spot_warning;

/// The NodePool's voluntary-disruption budget and CPU limit.
const BUDGET_NODES: usize = 2;
const CPU_LIMIT_CORES: i64 = 48;
/// `minAvailable` of the guarded Deployment's PDB (of 4 replicas).
const GUARDED_MIN: usize = 3;
/// An instance may lack its NodeClaim this long: GC grace (1 s here), a controller restart and
/// the launch's own bookkeeping, with room for a loaded CI machine.
const ORPHAN_SLACK: Duration = Duration::from_secs(20);

/// xorshift64*: a seeded, reproducible sequence without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

#[derive(Default)]
struct Tally {
    operations: BTreeMap<&'static str, u64>,
    faults: BTreeMap<&'static str, u64>,
    violations: Vec<String>,
    checks: u64,
}

impl Tally {
    fn op(&mut self, what: &'static str) {
        *self.operations.entry(what).or_default() += 1;
    }
    fn fault(&mut self, what: &'static str) {
        *self.faults.entry(what).or_default() += 1;
    }
    fn violation(&mut self, v: String) {
        // The same breach seen by consecutive checks is one violation.
        if self.violations.last() != Some(&v) {
            eprintln!("soak: VIOLATION: {v}");
            self.violations.push(v);
        }
    }
}

fn total(m: &BTreeMap<&'static str, u64>) -> u64 {
    m.values().sum()
}

async fn deployment(client: &kube::Client, name: &str, replicas: i32, cpu: &str, pinned: bool) {
    let annotations = if pinned {
        json!({DO_NOT_DISRUPT: "true"})
    } else {
        json!({})
    };
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "c", "image": "pause",
                    "resources": {"requests": {"cpu": cpu, "memory": "512Mi"}}}]}
            }
        }
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
}

async fn scale(client: &kube::Client, name: &str, replicas: i64) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    // A failed write (a dropped connection, say) is churn that did not happen; not an error.
    let _ = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await;
}

async fn start_job(client: &kube::Client, n: u64, rng: &mut Rng) {
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": format!("batch-{n}"), "namespace": "default"},
        "spec": {
            "completions": 1 + rng.below(4),
            "parallelism": 2,
            "template": {
                "metadata": {"labels": {"app": "batch"},
                             "annotations": {"sandbox.capstan.dev/run-for": format!("{}ms", rng.millis(500, 4000).as_millis())}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}]}
            }
        }
    }))
    .expect("job");
    let _ = Api::<Job>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &job)
        .await;
}

/// Completed Jobs are deleted (with their pods), as a TTL controller would.
async fn reap_jobs(client: &kube::Client) {
    let api: Api<Job> = Api::namespaced(client.clone(), "default");
    let Ok(jobs) = api.list(&ListParams::default()).await else {
        return;
    };
    for j in jobs.items {
        let done = j
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            });
        if done {
            let _ = api
                .delete(
                    j.metadata.name.as_deref().unwrap_or(""),
                    &DeleteParams::background(),
                )
                .await;
        }
    }
}

fn is_running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && p.metadata.deletion_timestamp.is_none()
}

fn app(p: &Pod) -> &str {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app"))
        .map_or("", String::as_str)
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

fn cpu_cores(q: &str) -> f64 {
    q.strip_suffix('m').map_or_else(
        || q.parse().unwrap_or(0.0),
        |m| m.parse::<f64>().unwrap_or(0.0) / 1000.0,
    )
}

/// What the checker needs to know that the churn did.
#[derive(Default)]
struct Shared {
    /// NodeClaims a spot interruption was sent for (their disruption is involuntary).
    interrupted: BTreeSet<String>,
    /// Set once the guarded Deployment first had all its pods running.
    guarded_up: bool,
}

/// One pass over every invariant.
async fn check(
    cloud: &SimProvider,
    client: &kube::Client,
    shared: &Mutex<Shared>,
    tally: &Mutex<Tally>,
) {
    let (Ok(claims), Ok(nodes), Ok(pods)) = (
        Api::<capstan::apis::NodeClaim>::all(client.clone())
            .list(&ListParams::default())
            .await,
        Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
            .list(&ListParams::default())
            .await,
        Api::<Pod>::namespaced(client.clone(), "default")
            .list(&ListParams::default())
            .await,
    ) else {
        // The API is down only if the test broke it; a dropped watch does not stop lists.
        return;
    };
    let mut found = Vec::new();
    let (interrupted, guarded_up) = {
        let s = shared.lock().expect("shared");
        (s.interrupted.clone(), s.guarded_up)
    };
    let claim_names: BTreeSet<&str> = claims
        .items
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    let claim_of_node: BTreeMap<&str, &capstan::apis::NodeClaim> = claims
        .items
        .iter()
        .filter_map(|c| Some((c.status.as_ref()?.node_name.as_deref()?, c)))
        .collect();

    // No instance without a NodeClaim after the grace period.
    let now = SystemTime::now();
    for i in cloud.running() {
        let inst = &i.instance;
        let age = now.duration_since(inst.launch_time).unwrap_or_default();
        let owned = inst.nodeclaim().is_some_and(|c| claim_names.contains(c));
        if !owned && age > ORPHAN_SLACK {
            found.push(format!(
                "instance {} ({}) has had no NodeClaim for {:.0?}",
                inst.id, inst.instance_type, age
            ));
        }
    }

    // Voluntary disruptions at once within the budget: registered nodes tainted for disruption
    // or whose claim is going, spot interruptions aside.
    let disrupting: Vec<&str> = nodes
        .items
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.as_deref()?;
            let claim = claim_of_node.get(name)?;
            let claim_name = claim.metadata.name.as_deref()?;
            let tainted = n
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|ts| ts.iter().any(|t| t.key == DISRUPTED_TAINT_KEY));
            let going = claim.metadata.deletion_timestamp.is_some();
            ((tainted || going) && !interrupted.contains(claim_name)).then_some(claim_name)
        })
        .collect();
    if disrupting.len() > BUDGET_NODES {
        found.push(format!(
            "{} nodes disrupted at once (budget {BUDGET_NODES}): {disrupting:?}",
            disrupting.len()
        ));
    }

    // The PDB holds: once up, never fewer guarded pods running than minAvailable.
    let guarded = pods
        .items
        .iter()
        .filter(|p| app(p) == "guarded" && is_running(p))
        .count();
    if guarded_up && guarded < GUARDED_MIN {
        found.push(format!(
            "{guarded} guarded pods running, PDB minAvailable {GUARDED_MIN}"
        ));
    }
    if guarded >= 4 && !guarded_up {
        shared.lock().expect("shared").guarded_up = true;
    }

    // No node of a running do-not-disrupt pod is being disrupted (interruptions aside).
    for p in pods
        .items
        .iter()
        .filter(|p| app(p) == "pinned" && is_running(p))
    {
        let Some(claim) = node_of(p).and_then(|n| claim_of_node.get(n)) else {
            continue;
        };
        let claim_name = claim.metadata.name.as_deref().unwrap_or("");
        if claim.metadata.deletion_timestamp.is_some() && !interrupted.contains(claim_name) {
            found.push(format!(
                "nodeclaim {claim_name} is being deleted under do-not-disrupt pod {}",
                p.metadata.name.as_deref().unwrap_or("")
            ));
        }
    }

    // The NodePool's CPU limit: launched capacity never above it.
    let launched: f64 = claims
        .items
        .iter()
        .filter_map(|c| c.status.as_ref()?.capacity.as_ref()?.get("cpu"))
        .map(|q| cpu_cores(&q.0))
        .sum();
    if launched > CPU_LIMIT_CORES as f64 {
        found.push(format!(
            "{launched} CPUs launched, NodePool limit {CPU_LIMIT_CORES}"
        ));
    }

    let mut t = tally.lock().expect("tally");
    t.checks += 1;
    for v in found {
        t.violation(v);
    }
}

async fn inject_fault(cluster: &mut Cluster, rng: &mut Rng, tally: &Mutex<Tally>) {
    let mut faults = Faults::default();
    let kind = match rng.below(6) {
        0 => {
            // Insufficient capacity on some of what is running now: launches must fall back.
            for i in cluster.cloud.running() {
                if rng.below(2) == 0 {
                    faults.no_capacity.insert(OfferingKey {
                        instance_type: i.instance.instance_type.clone(),
                        zone: i.instance.zone.clone(),
                        capacity_type: i.instance.capacity_type,
                    });
                }
            }
            "insufficient capacity"
        }
        1 => {
            faults.failing_creates = 1 + rng.below(3) as u32;
            "API errors"
        }
        2 => {
            faults.slow_launch = rng.millis(500, 3000);
            "slow launches"
        }
        3 => {
            if let Some(c) = cluster.controllers.take() {
                c.shutdown();
            }
            tokio::time::sleep(rng.millis(200, 2000)).await;
            cluster.start_controllers().await;
            "controllers restarted"
        }
        4 => {
            cluster.env.sandbox.api().drop_watches();
            "watches dropped"
        }
        _ => "faults cleared",
    };
    if !matches!(kind, "controllers restarted" | "watches dropped") {
        cluster.cloud.set_faults(faults);
    }
    tally.lock().expect("tally").fault(kind);
}

async fn interrupt_spot(
    cluster: &Cluster,
    queue: &SimQueue,
    rng: &mut Rng,
    shared: &Mutex<Shared>,
) -> bool {
    let spot: Vec<_> = cluster
        .cloud
        .running()
        .into_iter()
        .filter(|i| i.instance.capacity_type == CapacityType::Spot)
        .collect();
    if spot.is_empty() {
        return false;
    }
    let victim = &spot[rng.below(spot.len() as u64) as usize].instance;
    let (Some(id), Some(claim)) = (instance_id(&victim.provider_id), victim.nodeclaim()) else {
        return false;
    };
    shared
        .lock()
        .expect("shared")
        .interrupted
        .insert(claim.to_string());
    queue.push(spot_warning(id));
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_keeps_every_invariant() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("soak: {seconds} s, seed {seed} (SOAK_SEED={seed} replays the same choices)");
    let mut rng = Rng(seed);

    let queue = Arc::new(SimQueue::new());
    let mut cluster = Cluster::without_controllers().await;
    cluster.interruption_queue = Some(queue.clone());
    cluster.start_controllers().await;
    let client = cluster.client();
    let mut requirements = generic_requirements();
    requirements
        .as_array_mut()
        .expect("list")
        .push(json!({"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}));
    // Small nodes (up to 8 vCPUs): many of them, so that disruption, budgets and limits are busy.
    requirements
        .as_array_mut()
        .expect("list")
        .push(json!({"key": "karpenter.k8s.aws/instance-cpu", "operator": "Lt", "values": ["9"]}));
    apply_pool_with(
        &client,
        requirements,
        json!({"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "2s",
               "budgets": [{"nodes": BUDGET_NODES.to_string()}]}),
    )
    .await;
    Api::<NodePool>::all(client.clone())
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"limits": {"cpu": CPU_LIMIT_CORES.to_string()}}})),
        )
        .await
        .expect("limit the pool");
    deployment(&client, "web-a", 4, "500m", false).await;
    deployment(&client, "web-b", 2, "1", false).await;
    deployment(&client, "guarded", 4, "250m", false).await;
    deployment(&client, "pinned", 2, "250m", true).await;
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "guarded", "namespace": "default"},
        "spec": {"minAvailable": GUARDED_MIN, "selector": {"matchLabels": {"app": "guarded"}}}
    }))
    .expect("pdb");
    Api::<PodDisruptionBudget>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pdb)
        .await
        .expect("create pdb");

    let shared = Arc::new(Mutex::new(Shared::default()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let cluster = Arc::new(tokio::sync::Mutex::new(cluster));
    let stop = Arc::new(AtomicBool::new(false));
    // The checker runs beside the churn, on the cloud and the API only: never held up by a
    // controller restart.
    let checker = {
        let cloud = cluster.lock().await.cloud.clone();
        let (client, shared, tally, stop) =
            (client.clone(), shared.clone(), tally.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                check(&cloud, &client, &shared, &tally).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let start = Instant::now();
    let mut jobs = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(rng.millis(200, 800)).await;
        let op = rng.below(10);
        let mut c = cluster.lock().await;
        let t = || tally.lock().expect("tally");
        match op {
            0..=3 => {
                let (name, most) = if op.is_multiple_of(2) {
                    ("web-a", 24)
                } else {
                    ("web-b", 12)
                };
                scale(&client, name, rng.below(most + 1) as i64).await;
                t().op("scale a Deployment");
            }
            4 | 5 => {
                jobs += 1;
                start_job(&client, jobs, &mut rng).await;
                reap_jobs(&client).await;
                t().op("start a Job");
            }
            6 => {
                if interrupt_spot(&c, &queue, &mut rng, &shared).await {
                    t().op("spot interruption");
                }
            }
            _ => inject_fault(&mut c, &mut rng, &tally).await,
        }
    }

    // Calm: no more faults or churn, a size within the limit; everything must settle.
    {
        let c = cluster.lock().await;
        c.cloud.set_faults(Faults::default());
    }
    scale(&client, "web-a", 6).await;
    scale(&client, "web-b", 3).await;
    let settle = Instant::now();
    let settled = loop {
        reap_jobs(&client).await;
        let pods = Api::<Pod>::namespaced(client.clone(), "default")
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let want = BTreeMap::from([("web-a", 6), ("web-b", 3), ("guarded", 4), ("pinned", 2)]);
        let running: BTreeMap<&str, usize> =
            pods.iter()
                .filter(|p| is_running(p))
                .fold(BTreeMap::new(), |mut m, p| {
                    *m.entry(app(p)).or_default() += 1;
                    m
                });
        let pending = pods
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"))
            .count();
        let ok = want.iter().all(|(a, n)| running.get(a) == Some(n)) && pending == 0;
        if ok {
            break Ok(settle.elapsed());
        }
        if settle.elapsed() > Duration::from_secs(120) {
            break Err(format!(
                "after 120 s of calm: running {running:?}, {pending} pending"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Let the checker see the calm cluster (orphans past their grace) before stopping it.
    tokio::time::sleep(ORPHAN_SLACK / 4).await;
    stop.store(true, Ordering::Relaxed);
    checker.await.expect("checker");
    let c = Arc::try_unwrap(cluster)
        .ok()
        .expect("the only owner")
        .into_inner();
    let launched = c.cloud.launches();
    let instances = c.cloud.all_instances().len();
    let running_now = c.cloud.running().len();
    c.stop().await;

    let t = tally.lock().expect("tally");
    println!(
        "soak: {} operations {:?}",
        total(&t.operations),
        t.operations
    );
    println!("soak: {} faults injected {:?}", total(&t.faults), t.faults);
    println!(
        "soak: {} invariant checks, {} violations; {launched} launches, {instances} instances \
         ({running_now} running at the end); settled in {:?}",
        t.checks,
        t.violations.len(),
        settled.as_ref().map_or(Duration::ZERO, |d| *d),
    );
    assert!(t.checks > 0, "the checker never ran");
    assert!(
        total(&t.operations) > 0 && total(&t.faults) > 0,
        "nothing happened"
    );
    assert!(t.violations.is_empty(), "{:#?}", t.violations);
    if let Err(e) = settled {
        panic!("pods did not all run once faults stopped: {e}");
    }
}

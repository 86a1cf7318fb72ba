//! Cost quality of the scheduling simulation on the embedded catalog (issue 5): the bench's
//! generic mix on Karpenter's default NodePool against the LP lower bound. Not timed.

use std::sync::Arc;
use std::time::SystemTime;

use capstan::apis::labels;
use capstan::cloud::catalog::{AllocatableSettings, Catalog, instance_options};
use capstan::scheduling::instance::InstanceOption;
use capstan::scheduling::lower_bound::{Candidate, lp_lower_bound};
use capstan::scheduling::pod::PodInfo;
use capstan::scheduling::requirements::{Requirement, Requirements};
use capstan::scheduling::resources::Resources;
use capstan::scheduling::scheduler::{Input, PoolTemplate, schedule};
use k8s_openapi::api::core::v1::Pod;

/// Karpenter's documented default NodePool (c, m, r of generation > 2), amd64, on-demand.
fn default_pool() -> PoolTemplate {
    let catalog = Catalog::for_region("us-west-2", None);
    let settings = AllocatableSettings::from_kubelet(None).expect("default kubelet settings");
    let types: Vec<Arc<InstanceOption>> = instance_options(&catalog, &settings, SystemTime::now())
        .into_iter()
        .filter(|o| {
            let label = |k: &str| o.labels.get(k).map(String::as_str).unwrap_or_default();
            label(labels::ARCH) == "amd64"
                && ["c", "m", "r"].contains(&label(labels::INSTANCE_CATEGORY))
                && label(labels::INSTANCE_GENERATION)
                    .parse::<u32>()
                    .is_ok_and(|g| g > 2)
        })
        .collect();
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

/// The bench's generic mix: 25 sizes, 100m to 2 CPU by 128Mi to 4Gi, in equal parts.
fn generic_pods(n: usize) -> Vec<PodInfo> {
    const CPU: [&str; 5] = ["100m", "250m", "500m", "1", "2"];
    const MEM: [&str; 5] = ["128Mi", "512Mi", "1Gi", "2Gi", "4Gi"];
    (0..n)
        .map(|i| {
            let yaml = format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p-{i}, namespace: default}}\nspec:\n  containers: [{{name: c, image: x, resources: {{requests: {{cpu: \"{}\", memory: {}}}}}}}]\n",
                CPU[i % 5],
                MEM[(i / 5) % 5]
            );
            let pod: Pod = serde_saphyr::from_str(&yaml).expect("valid pod");
            PodInfo::from_pod(&pod).expect("valid pod")
        })
        .collect()
}

/// (plan cost, LP bound) per hour, after checking every pod is placed exactly once and fits.
fn plan_and_bound(n: usize) -> (f64, f64, usize) {
    let pool = default_pool();
    let input = Input {
        pods: generic_pods(n),
        pools: vec![pool.clone()],
        ..Default::default()
    };
    let out = schedule(&input);
    assert!(out.unschedulable.is_empty(), "{:?}", out.unschedulable);
    let mut placed: Vec<&String> = out.claims.iter().flat_map(|c| &c.pods).collect();
    placed.sort();
    placed.dedup();
    assert_eq!(placed.len(), n, "every pod placed exactly once");
    for c in &out.claims {
        let chosen = pool
            .instance_types
            .iter()
            .find(|o| o.name == c.cheapest().name)
            .expect("a catalog type");
        assert!(
            c.requests.fits(&chosen.allocatable),
            "{} overfull",
            chosen.name
        );
    }
    let demand = input
        .pods
        .iter()
        .fold(Resources::new(), |acc, p| &acc + &p.requests);
    let candidates = Candidate::all_for(&pool.instance_types, &pool.requirements);
    let bound = lp_lower_bound(&candidates, demand.cpu_millis, demand.memory_bytes)
        .expect("a bound")
        .cost_per_hour;
    let total = out.claims.iter().map(|c| c.cheapest().price_per_hour).sum();
    (total, bound, out.claims.len())
}

#[test]
fn a_thousand_generic_pods_cost_within_five_percent_of_the_lp_bound() {
    let (total, bound, claims) = plan_and_bound(1_000);
    // Before the interleaved order, the efficiency-relative growth rule and the split of loose
    // claims this was 1.14 (many half-used r-type nodes for the memory-heavy pods left last).
    assert!(
        total <= 1.05 * bound,
        "${total:.3}/h for {claims} claims vs LP bound ${bound:.3}/h: ratio {:.3}",
        total / bound
    );
}

#[test]
fn a_hundred_pods_are_not_left_on_one_half_empty_node() {
    let (total, bound, claims) = plan_and_bound(100);
    // One claim grown to hold everything ends on a c6a.24xlarge ($3.67/h here, 1.23x the bound);
    // split into smaller claims it costs less. Granularity keeps 100 pods above 1.05.
    assert!(claims > 1, "{claims} claim(s), ${total:.3}/h");
    assert!(
        total <= 1.10 * bound,
        "${total:.3}/h for {claims} claims vs LP bound ${bound:.3}/h: ratio {:.3}",
        total / bound
    );
}

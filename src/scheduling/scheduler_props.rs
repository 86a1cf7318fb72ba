//! Property tests: whatever the pods and limits, every placed pod's constraints hold on the node
//! its claim would launch, and no NodePool limit is exceeded.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::scheduling::instance::OfferingOption;
use crate::scheduling::pod::Selector;

const GI: i64 = 1 << 30;

fn option(name: &str, cpu: i64, mem_gi: i64, arch: &str, price: f64) -> Arc<InstanceOption> {
    let labels: BTreeMap<String, String> = [(labels::INSTANCE_TYPE, name), (labels::ARCH, arch)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let res = Resources {
        cpu_millis: cpu * 1000,
        memory_bytes: mem_gi * GI,
        pods: 50,
        ..Default::default()
    };
    let offerings = ["z1", "z2", "z3"]
        .iter()
        .map(|z| OfferingOption {
            zone: z.to_string(),
            capacity_type: "on-demand".into(),
            price_per_hour: price,
        })
        .collect();
    Arc::new(InstanceOption::new(
        name,
        labels,
        res.clone(),
        res,
        offerings,
    ))
}

fn catalog() -> Vec<Arc<InstanceOption>> {
    vec![
        option("a.small", 2, 4, "amd64", 0.05),
        option("a.large", 8, 32, "amd64", 0.20),
        option("a.huge", 32, 128, "amd64", 0.80),
        option("g.small", 2, 4, "arm64", 0.04),
        option("g.large", 8, 32, "arm64", 0.16),
    ]
}

#[derive(Debug, Clone)]
struct PodSpec {
    cpu_millis: i64,
    mem_mi: i64,
    arch: Option<&'static str>,
    zone: Option<&'static str>,
    anti: bool,
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        100i64..6000,
        64i64..20_000,
        prop_oneof![Just(None), Just(Some("amd64")), Just(Some("arm64"))],
        prop_oneof![Just(None), Just(Some("z1")), Just(Some("z2"))],
        prop::bool::weighted(0.2),
    )
        .prop_map(|(cpu_millis, mem_mi, arch, zone, anti)| PodSpec {
            cpu_millis,
            mem_mi,
            arch,
            zone,
            anti,
        })
}

fn to_pod(i: usize, s: &PodSpec) -> PodInfo {
    let mut node_selector = Requirements::new();
    if let Some(a) = s.arch {
        node_selector.add(Requirement::single(labels::ARCH, a));
    }
    if let Some(z) = s.zone {
        node_selector.add(Requirement::single(ZONE, z));
    }
    let labels = BTreeMap::from([(
        "app".to_string(),
        if s.anti { "anti" } else { "plain" }.to_string(),
    )]);
    let anti_affinity = if s.anti {
        let sel = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(labels.clone()),
            ..Default::default()
        };
        vec![AffinityTerm {
            topology_key: labels::HOSTNAME.into(),
            selector: Selector::from_label_selector(Some(&sel)),
            namespaces: BTreeSet::from(["default".to_string()]),
        }]
    } else {
        Vec::new()
    };
    PodInfo {
        key: format!("default/p-{i}"),
        namespace: "default".into(),
        labels,
        requests: Resources {
            cpu_millis: s.cpu_millis,
            memory_bytes: s.mem_mi << 20,
            pods: 1,
            ..Default::default()
        },
        node_selector,
        required_terms: vec![Requirements::new()],
        preferred_terms: Vec::new(),
        tolerations: Vec::new(),
        spreads: Vec::new(),
        affinity: Vec::new(),
        anti_affinity,
        preferred_anti_affinity: Vec::new(),
        host_ports: Vec::new(),
        owned_by_daemonset: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn placements_hold_and_limits_are_kept(specs in prop::collection::vec(pod_spec(), 1..60), cpu_limit in 8i64..200) {
        let pods: Vec<PodInfo> = specs.iter().enumerate().map(|(i, s)| to_pod(i, s)).collect();
        let mut requirements = Requirements::new();
        requirements.add(Requirement::single(labels::NODEPOOL, "p"));
        let pool = PoolTemplate {
            name: "p".into(),
            weight: 0,
            requirements,
            taints: Vec::new(),
            instance_types: catalog(),
            limits: Some(Limits(BTreeMap::from([("cpu".to_string(), cpu_limit * 1000)]))),
            in_use: Resources::new(),
        };
        let out = schedule(&Input { pods: pods.clone(), pools: vec![pool], ..Default::default() });
        let by_key: BTreeMap<&str, &PodInfo> = pods.iter().map(|p| (p.key.as_str(), p)).collect();
        let cat = catalog();
        let mut launched_cpu = 0;
        let mut placed = 0;
        for claim in &out.claims {
            // Every instance type listed can hold every pod of the claim, within the claim's zone.
            for choice in &claim.instance_types {
                let it = cat.iter().find(|o| o.name == choice.name).expect("from the catalog");
                prop_assert!(claim.requests.fits(&it.allocatable), "{} cannot hold {}", it.name, claim.requests);
                let mut node_labels = it.labels.clone();
                node_labels.insert(ZONE.into(), choice.zone.clone());
                for key in &claim.pods {
                    prop_assert!(by_key[key.as_str()].node_selector.matches_labels(&node_labels).is_ok(), "{key} on {}", it.name);
                }
            }
            // Hostname anti-affinity: at most one `anti` pod per node.
            let anti = claim.pods.iter().filter(|k| by_key[k.as_str()].labels["app"] == "anti").count();
            prop_assert!(anti <= 1);
            // Limits count the largest type the claim may launch.
            launched_cpu += claim.instance_types.iter().map(|c| cat.iter().find(|o| o.name == c.name).map_or(0, |o| o.capacity.cpu_millis)).max().unwrap_or(0);
            placed += claim.pods.len();
        }
        prop_assert!(launched_cpu <= cpu_limit * 1000, "{launched_cpu} > {}", cpu_limit * 1000);
        prop_assert_eq!(placed + out.unschedulable.len(), pods.len(), "every pod is placed or reported");
    }
}

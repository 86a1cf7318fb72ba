use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::scheduling::instance::OfferingOption;
use crate::scheduling::resources::parse_quantity;

const GI: i64 = 1 << 30;

/// A small catalog with simple numbers: allocatable = capacity, prices linear in size, two zones.
fn option(name: &str, cpu: i64, mem_gi: i64, price: f64, arch: &str) -> Arc<InstanceOption> {
    let family = name.split('.').next().unwrap_or(name);
    let labels: BTreeMap<String, String> = [
        (labels::INSTANCE_TYPE, name),
        (labels::ARCH, arch),
        (labels::OS, "linux"),
        (labels::INSTANCE_FAMILY, family),
        (labels::INSTANCE_CATEGORY, &family[..1]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let res = Resources {
        cpu_millis: cpu * 1000,
        memory_bytes: mem_gi * GI,
        pods: 110,
        ..Default::default()
    };
    let offerings = ["zone-a", "zone-b"]
        .iter()
        .flat_map(|z| {
            [("on-demand", price), ("spot", price * 0.4)].map(|(ct, p)| OfferingOption {
                zone: z.to_string(),
                capacity_type: ct.to_string(),
                price_per_hour: p,
            })
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
        option("m.large", 2, 8, 0.10, "amd64"),
        option("m.xlarge", 4, 16, 0.20, "amd64"),
        option("m.4xlarge", 16, 64, 0.80, "amd64"),
        option("c.xlarge", 4, 8, 0.17, "amd64"),
        option("r.xlarge", 4, 32, 0.25, "amd64"),
        option("g.xlarge", 4, 16, 0.50, "arm64"),
    ]
}

fn pool(name: &str, reqs: &[(&str, &str, &[&str])]) -> PoolTemplate {
    let mut r = Requirements::new();
    for (k, op, v) in reqs {
        let values: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        r.add(Requirement::new(k, op, &values).expect("valid"));
    }
    PoolTemplate {
        name: name.into(),
        weight: 0,
        requirements: r,
        taints: Vec::new(),
        instance_types: catalog(),
        limits: None,
        in_use: Resources::new(),
    }
}

fn on_demand_pool(name: &str) -> PoolTemplate {
    pool(name, &[(labels::CAPACITY_TYPE, "In", &["on-demand"])])
}

/// Pods from compact YAML: `name cpu memory` plus an optional spec fragment.
fn pod(name: &str, cpu: &str, mem: &str, extra: &str) -> PodInfo {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{app: {app}}}}}\nspec:\n  containers: [{{name: c, image: x, resources: {{requests: {{cpu: \"{cpu}\", memory: {mem}}}}}}}]\n{extra}",
        app = name.rsplit_once('-').map_or(name, |(a, _)| a),
    );
    let p: Pod = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    PodInfo::from_pod(&p).expect("pod")
}

fn pods(prefix: &str, n: usize, cpu: &str, mem: &str, extra: &str) -> Vec<PodInfo> {
    (0..n)
        .map(|i| pod(&format!("{prefix}-{i}"), cpu, mem, extra))
        .collect()
}

#[test]
fn packs_generic_pods_onto_the_cheapest_fitting_types() {
    let input = Input {
        pods: pods("web", 10, "1", "2Gi", ""),
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    };
    let out = schedule(&input);
    assert!(out.unschedulable.is_empty(), "{:?}", out.unschedulable);
    let placed: usize = out.claims.iter().map(|c| c.pods.len()).sum();
    assert_eq!(placed, 10);
    // 10 CPUs / 20Gi: c.xlarge is the cheapest per CPU ($0.0425 vs m.4xlarge's $0.05), so two
    // full c.xlarge and an m.large for the last two pods ($0.44) beat one m.4xlarge ($0.80).
    let names: Vec<&str> = out
        .claims
        .iter()
        .map(|c| c.cheapest().name.as_str())
        .collect();
    assert_eq!(names, vec!["c.xlarge", "c.xlarge", "m.large"]);
    assert_eq!(
        out.claims.iter().map(|c| c.pods.len()).collect::<Vec<_>>(),
        vec![4, 4, 2]
    );
    assert_eq!(out.claims[0].cheapest().capacity_type, "on-demand");
    assert!(
        out.claims[0]
            .instance_types
            .windows(2)
            .all(|w| w[0].price_per_hour <= w[1].price_per_hour)
    );
}

#[test]
fn the_last_claim_gets_a_small_type() {
    let input = Input {
        pods: pods("web", 17, "1", "1Gi", ""),
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    };
    let out = schedule(&input);
    let names: Vec<&str> = out
        .claims
        .iter()
        .map(|c| c.cheapest().name.as_str())
        .collect();
    // Claims stop growing at c.xlarge, the cheapest per CPU (an m.4xlarge costs 18% more per
    // CPU); the 17th pod gets the cheapest type that holds one pod.
    assert_eq!(
        names,
        vec!["c.xlarge", "c.xlarge", "c.xlarge", "c.xlarge", "m.large"]
    );
    let total: f64 = out.claims.iter().map(|c| c.cheapest().price_per_hour).sum();
    assert!((total - 0.78).abs() < 1e-9, "{total}");
}

#[test]
fn spot_is_chosen_when_allowed_because_cheaper() {
    let p = pool(
        "spot",
        &[(labels::CAPACITY_TYPE, "In", &["spot", "on-demand"])],
    );
    let out = schedule(&Input {
        pods: pods("a", 1, "1", "1Gi", ""),
        pools: vec![p],
        ..Default::default()
    });
    assert_eq!(out.claims[0].cheapest().capacity_type, "spot");
}

#[test]
fn node_selector_and_affinity_narrow_the_types() {
    let arm = "  nodeSelector: {kubernetes.io/arch: arm64}\n";
    let mem = "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n          - matchExpressions: [{key: karpenter.k8s.aws/instance-family, operator: In, values: [r]}]\n";
    let input = Input {
        pods: vec![pod("arm-0", "1", "1Gi", arm), pod("mem-0", "1", "1Gi", mem)],
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    };
    let out = schedule(&input);
    let by_pod: BTreeMap<&str, &str> = out
        .claims
        .iter()
        .flat_map(|c| {
            c.pods
                .iter()
                .map(move |p| (p.as_str(), c.cheapest().name.as_str()))
        })
        .collect();
    assert_eq!(by_pod["default/arm-0"], "g.xlarge");
    assert_eq!(by_pod["default/mem-0"], "r.xlarge");
}

#[test]
fn taints_keep_pods_out_and_reasons_say_why() {
    let mut gpu = on_demand_pool("gpu");
    gpu.taints = vec![Taint {
        key: "nvidia.com/gpu".into(),
        value: Some("true".into()),
        effect: "NoSchedule".into(),
        time_added: None,
    }];
    gpu.weight = 10;
    let tolerating = "  tolerations: [{key: nvidia.com/gpu, operator: Exists}]\n";
    let pools = vec![gpu, on_demand_pool("default")];
    let alone = schedule(&Input {
        pods: vec![pod("train-0", "1", "1Gi", tolerating)],
        pools: pools.clone(),
        ..Default::default()
    });
    assert_eq!(
        alone.claims[0].nodepool, "gpu",
        "higher weight first when tolerated"
    );
    let input = Input {
        pods: vec![
            pod("plain-0", "1", "1Gi", ""),
            pod("train-0", "1", "1Gi", tolerating),
            pod("huge-0", "64", "1Gi", ""),
        ],
        pools,
        ..Default::default()
    };
    let out = schedule(&input);
    let pool_of: BTreeMap<&str, &str> = out
        .claims
        .iter()
        .flat_map(|c| {
            c.pods
                .iter()
                .map(move |p| (p.as_str(), c.nodepool.as_str()))
        })
        .collect();
    assert_eq!(pool_of["default/plain-0"], "default");
    // A claim already being planned is preferred to opening one more node, whatever its weight.
    assert_eq!(pool_of["default/train-0"], "default");
    let huge = out
        .unschedulable
        .iter()
        .find(|u| u.pod == "default/huge-0")
        .expect("64 CPUs fit nowhere");
    assert_eq!(
        huge.reasons["gpu"],
        "did not tolerate nvidia.com/gpu=true:NoSchedule"
    );
    assert!(
        huge.reasons["default"].contains("no instance type has enough resources"),
        "{:?}",
        huge.reasons
    );
}

#[test]
fn custom_labels_must_be_offered_by_the_pool() {
    let mut team = on_demand_pool("team-a");
    team.requirements.add(Requirement::single("team", "a"));
    let input = Input {
        pods: vec![
            pod("x-0", "1", "1Gi", "  nodeSelector: {team: a}\n"),
            pod("y-0", "1", "1Gi", "  nodeSelector: {team: b}\n"),
        ],
        pools: vec![team, on_demand_pool("default")],
        ..Default::default()
    };
    let out = schedule(&input);
    assert_eq!(out.claims.len(), 1);
    assert_eq!(out.claims[0].nodepool, "team-a");
    let y = &out.unschedulable[0];
    assert!(
        y.reasons["default"].contains("label \"team\" does not have known values"),
        "{:?}",
        y.reasons
    );
    assert!(y.reasons["team-a"].contains("conflicts"), "{:?}", y.reasons);
}

#[test]
fn existing_nodes_with_room_come_first() {
    let labels: BTreeMap<String, String> = [(labels::ARCH, "amd64"), (ZONE, "zone-a")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let node = ExistingNode {
        name: "node-1".into(),
        labels,
        taints: Vec::new(),
        available: Resources {
            cpu_millis: 2500,
            memory_bytes: 8 * GI,
            pods: 100,
            ..Default::default()
        },
        pods: Vec::new(),
    };
    let input = Input {
        pods: pods("w", 3, "1", "1Gi", ""),
        existing: vec![node],
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    };
    let out = schedule(&input);
    assert_eq!(out.existing.len(), 2, "two 1-CPU pods fit in 2.5 CPUs");
    assert_eq!(out.claims.len(), 1);
    assert_eq!(out.claims[0].pods.len(), 1);
}

#[test]
fn daemonset_overhead_is_added_to_new_nodes() {
    let ds = pod("agent-0", "1", "1Gi", "");
    let input = Input {
        pods: pods("w", 1, "1", "1Gi", ""),
        daemonsets: vec![ds],
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    };
    let out = schedule(&input);
    assert_eq!(out.claims[0].requests.cpu_millis, 2000);
    assert_eq!(out.claims[0].requests.pods, 2);
    assert_eq!(out.claims[0].cheapest().name, "m.large");
}

#[test]
fn limits_stop_new_claims_and_say_so() {
    let mut p = on_demand_pool("default");
    p.limits = Some(Limits(BTreeMap::from([("cpu".to_string(), 20_000)])));
    p.in_use = Resources {
        cpu_millis: 16_000,
        ..Default::default()
    };
    let out = schedule(&Input {
        pods: pods("w", 8, "1", "1Gi", ""),
        pools: vec![p],
        ..Default::default()
    });
    // Only 4 CPUs of the limit remain: the claims' largest options must fit in them together.
    let reserved: i64 = out.claims.iter().map(|c| c.requests.cpu_millis).sum();
    assert!(reserved <= 4_000, "{reserved}");
    assert!(
        out.claims
            .iter()
            .all(|c| c.instance_types.iter().all(|t| t.name != "m.4xlarge"))
    );
    assert!(!out.unschedulable.is_empty());
    assert!(
        out.unschedulable[0].reasons["default"].contains("exceed limits"),
        "{:?}",
        out.unschedulable[0].reasons
    );
    assert!(
        out.limit_messages
            .iter()
            .any(|m| m.contains("cpu resource usage of") && m.contains("exceeds limit of 20")),
        "{:?}",
        out.limit_messages
    );
}

#[test]
fn hostname_anti_affinity_gives_each_pod_its_own_node() {
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: db}}}\n";
    let out = schedule(&Input {
        pods: pods("db", 3, "500m", "1Gi", anti),
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    });
    assert_eq!(out.claims.len(), 3);
    assert!(
        out.claims
            .iter()
            .all(|c| c.pods.len() == 1 && c.cheapest().name == "m.large")
    );
}

#[test]
fn zone_spread_balances_across_zones() {
    let spread = "  topologySpreadConstraints:\n    - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}\n";
    let out = schedule(&Input {
        pods: pods("web", 4, "1", "1Gi", spread),
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    });
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for c in &out.claims {
        *per_zone.entry(c.cheapest().zone.clone()).or_default() += c.pods.len();
    }
    assert_eq!(
        per_zone,
        BTreeMap::from([("zone-a".to_string(), 2), ("zone-b".to_string(), 2)])
    );
}

#[test]
fn hostname_spread_caps_pods_per_node() {
    let spread = "  topologySpreadConstraints:\n    - {maxSkew: 2, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}\n";
    let out = schedule(&Input {
        pods: pods("web", 5, "100m", "128Mi", spread),
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    });
    assert_eq!(
        out.claims.iter().map(|c| c.pods.len()).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
}

#[test]
fn preferences_are_relaxed_when_they_cannot_be_met() {
    let pref = "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n        - weight: 10\n          preference: {matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [s390x]}]}\n";
    let out = schedule(&Input {
        pods: pods("p", 1, "1", "1Gi", pref),
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    });
    assert!(out.unschedulable.is_empty(), "{:?}", out.unschedulable);
    assert_eq!(out.claims.len(), 1);
}

#[test]
fn min_values_keep_enough_types() {
    let mut p = on_demand_pool("default");
    let mut r = Requirement::new(
        labels::INSTANCE_FAMILY,
        "In",
        &["m".into(), "c".into(), "r".into()],
    )
    .expect("valid");
    r.min_values = Some(3);
    p.requirements.add(r);
    // 4 CPUs / 12Gi: only m.xlarge (16Gi), r.xlarge, m.4xlarge fit — families m and r: 2 < 3.
    let out = schedule(&Input {
        pods: vec![pod("big-0", "4", "12Gi", "")],
        pools: vec![p.clone()],
        ..Default::default()
    });
    assert!(
        out.unschedulable[0].reasons["default"].contains("minValues"),
        "{:?}",
        out.unschedulable
    );
    // 2 CPUs / 4Gi fit every family.
    let out = schedule(&Input {
        pods: vec![pod("ok-0", "2", "4Gi", "")],
        pools: vec![p],
        ..Default::default()
    });
    assert!(out.unschedulable.is_empty());
    let families: BTreeSet<&str> = out.claims[0]
        .instance_types
        .iter()
        .map(|c| &c.name[..1])
        .collect();
    assert!(families.len() >= 3);
}

#[test]
fn host_ports_conflict() {
    let port = "  hostNetwork: true\n";
    let with_port = |n: &str| {
        let mut p = pod(n, "100m", "64Mi", port);
        p.host_ports = vec![("TCP".into(), 80)];
        p
    };
    let out = schedule(&Input {
        pods: vec![with_port("a-0"), with_port("a-1")],
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    });
    assert_eq!(
        out.claims.len(),
        2,
        "two pods on host port 80 need two nodes"
    );
}

#[test]
fn quantities_parse_for_tests() {
    assert_eq!(
        parse_quantity("1536Mi").map(|q| q.value()),
        Ok(1536 * 1024 * 1024)
    );
}

#[test]
fn zone_affinity_group_lands_in_one_zone_even_across_claims() {
    // Each pod needs most of an m.4xlarge, so the group spans several claims; the first claim
    // has no zone yet when the first pod lands, and the rest must follow it into one zone.
    let aff = "  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        - {topologyKey: topology.kubernetes.io/zone, labelSelector: {matchLabels: {app: cache}}}\n";
    let out = schedule(&Input {
        pods: pods("cache", 4, "10", "8Gi", aff),
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    });
    assert!(out.unschedulable.is_empty(), "{:?}", out.unschedulable);
    assert_eq!(out.claims.len(), 4);
    let zones: BTreeSet<&str> = out
        .claims
        .iter()
        .map(|c| c.cheapest().zone.as_str())
        .collect();
    assert_eq!(zones.len(), 1, "{zones:?}");
    for c in &out.claims {
        let z = c.requirements.get(labels::ZONE).and_then(|r| r.values());
        assert_eq!(
            z.map(|v| v.len()),
            Some(1),
            "claim zone pinned: {}",
            c.requirements_key()
        );
    }
}

#[test]
fn zone_anti_affinity_keeps_pods_in_different_zones() {
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        - {topologyKey: topology.kubernetes.io/zone, labelSelector: {matchLabels: {app: q}}}\n";
    let out = schedule(&Input {
        pods: pods("q", 3, "100m", "128Mi", anti),
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    });
    // Two zones: two pods placed in different zones, the third cannot go anywhere.
    assert_eq!(out.claims.len(), 2);
    assert_ne!(out.claims[0].cheapest().zone, out.claims[1].cheapest().zone);
    assert_eq!(out.unschedulable.len(), 1);
}

#[test]
fn claims_do_not_grow_onto_a_giant_that_costs_more_per_pod() {
    // A huge memory-optimised type holds everything in one node but costs 4x per CPU.
    let mut p = on_demand_pool("default");
    p.instance_types
        .push(option("u.huge", 100, 2000, 20.0, "amd64"));
    let out = schedule(&Input {
        pods: pods("web", 40, "1", "1Gi", ""),
        pools: vec![p],
        ..Default::default()
    });
    assert!(out.unschedulable.is_empty(), "{:?}", out.unschedulable);
    assert!(
        out.claims.iter().all(|c| c.cheapest().name != "u.huge"),
        "{:?}",
        out.claims
            .iter()
            .map(|c| c.cheapest().name.clone())
            .collect::<Vec<_>>()
    );
    let total: f64 = out.claims.iter().map(|c| c.cheapest().price_per_hour).sum();
    // 40 CPUs at c.xlarge's $0.0425 per CPU is $1.70; one u.huge would be $20.
    assert!(total <= 1.71, "{total}");
}

#[test]
fn a_claim_limit_stops_the_plan_and_leaves_the_rest_unschedulable() {
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: db}}}\n";
    let input = Input {
        pods: pods("db", 3, "500m", "1Gi", anti),
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    };
    // Unlimited: one node each.
    assert_eq!(schedule_limited(&input, None).claims.len(), 3);
    let out = schedule_limited(&input, Some(1));
    assert_eq!(out.claims.len(), 1, "{:?}", out.claims);
    assert_eq!(out.unschedulable.len(), 2, "{:?}", out.unschedulable);
    assert!(
        out.unschedulable
            .iter()
            .all(|u| u.reasons.get("(all)").map(String::as_str)
                == Some("more than 1 new node(s) would be needed")),
        "{:?}",
        out.unschedulable
    );
}

#[test]
fn cpu_heavy_and_memory_heavy_pods_are_interleaved_largest_first() {
    // Whole demand: 8 CPU and 18Gi. The toy catalog's LP mix buys it mostly as m-types (4Gi per
    // CPU), so the order keeps each prefix near 4Gi per CPU.
    let mut all = pods("cpu", 4, "2", "1Gi", "");
    all.extend(pods("mem", 4, "250m", "4Gi", ""));
    let input = Input {
        pods: all,
        pools: vec![on_demand_pool("default")],
        ..Default::default()
    };
    let order: Vec<&str> = placement_order(&input, &Scheduler::new(&input), true)
        .into_iter()
        .map(|i| input.pods[i].key.as_str())
        .collect();
    // Plain largest-first would be all four cpu pods, then all four mem pods.
    assert_ne!(
        order[..4],
        [
            "default/cpu-0",
            "default/cpu-1",
            "default/cpu-2",
            "default/cpu-3"
        ]
    );
    for w in order.windows(2) {
        let kind = |k: &str| {
            k.split('/')
                .nth(1)
                .and_then(|n| n.split('-').next())
                .map(str::to_owned)
        };
        if kind(w[0]) == kind(w[1]) {
            // Within a kind, the original (largest first, then by name) order holds.
            assert!(w[0] < w[1], "{order:?}");
        }
    }
    let first_mem = order
        .iter()
        .position(|k| k.contains("mem"))
        .expect("mem pods");
    assert!(
        first_mem <= 1,
        "a memory-heavy pod comes at once: {order:?}"
    );
}

#[test]
fn a_half_empty_claim_is_split_into_cheaper_ones() {
    // m types only, priced by the CPU: 5 CPUs of pods grow one claim onto m.4xlarge ($0.80,
    // 16 CPU) at no loss of efficiency per step; m.xlarge + m.large ($0.30) hold them too.
    let m_only = |name: &str| {
        pool(
            name,
            &[
                (labels::CAPACITY_TYPE, "In", &["on-demand"]),
                (labels::INSTANCE_FAMILY, "In", &["m"]),
            ],
        )
    };
    let input = Input {
        pods: pods("web", 5, "1", "1Gi", ""),
        pools: vec![m_only("default")],
        ..Default::default()
    };
    let out = schedule(&input);
    assert!(out.unschedulable.is_empty(), "{:?}", out.unschedulable);
    let total: f64 = out.claims.iter().map(|c| c.cheapest().price_per_hour).sum();
    assert!(
        total < 0.5,
        "${total}: {:?}",
        out.claims
            .iter()
            .map(|c| &c.cheapest().name)
            .collect::<Vec<_>>()
    );
    assert_eq!(out.claims.iter().map(|c| c.pods.len()).sum::<usize>(), 5);
}

#[test]
fn claims_with_pod_rules_are_not_split() {
    // A hostname spread decided against the plan as it was: splitting could break it.
    let spread = "  topologySpreadConstraints: [{maxSkew: 5, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}]\n";
    let input = Input {
        pods: pods("web", 5, "1", "1Gi", spread),
        pools: vec![pool(
            "default",
            &[
                (labels::CAPACITY_TYPE, "In", &["on-demand"]),
                (labels::INSTANCE_FAMILY, "In", &["m"]),
            ],
        )],
        ..Default::default()
    };
    let out = schedule(&input);
    let names = |o: &Outcome| {
        o.claims
            .iter()
            .map(|c| c.cheapest().name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&out), ["m.4xlarge"]);
    assert_eq!(names(&split_loose_claims(&input, out.clone())), names(&out));
}

/// A claim over `options` with the maxima `try_new_claim` gives it.
fn claim_over(options: &[Arc<InstanceOption>]) -> Claim {
    Claim {
        pool: 0,
        reqs: Requirements::new(),
        options: options.to_vec(),
        requests: Resources::new(),
        pods: Vec::new(),
        host_ports: BTreeSet::new(),
        headroom: max_allocatable(options),
        max_allocatable: max_allocatable(options),
        reserved: max_capacity(options),
    }
}

/// `option` with branch ENIs, as most EC2 types have (an extended resource on every type).
fn with_enis(o: &Arc<InstanceOption>, enis: i64) -> Arc<InstanceOption> {
    let mut r = o.allocatable.clone();
    r.set_extended("vpc.amazonaws.com/pod-eni", enis);
    Arc::new(InstanceOption::new(
        &o.name,
        o.labels.clone(),
        r.clone(),
        r,
        o.offerings.clone(),
    ))
}

#[test]
fn maxima_are_counted_again_only_when_no_kept_type_holds_them() {
    let c = catalog();
    // Cheapest first; every type allows 110 pods, and m.4xlarge holds the CPU and memory maxima.
    let options: Vec<_> = [&c[0], &c[3], &c[1], &c[4], &c[2]]
        .into_iter()
        .enumerate()
        .map(|(i, o)| with_enis(o, 10 * (i as i64 + 1)))
        .collect();
    let claim = claim_over(&options);
    // m.large goes: it ties on pods (110) with types that stay, and holds no other maximum.
    assert!(!removed_holds_a_maximum(&options, &options[1..], &claim));
    // Nothing removed: nothing to count.
    assert!(!removed_holds_a_maximum(&options, &options, &claim));
    // m.4xlarge goes: it alone held the CPU, memory and ENI maxima.
    assert!(removed_holds_a_maximum(&options, &options[..4], &claim));
    // r.xlarge goes: it held no maximum (m.4xlarge has more of everything).
    let kept: Vec<_> = [0, 1, 2, 4].map(|i| options[i].clone()).to_vec();
    assert!(!removed_holds_a_maximum(&options, &kept, &claim));
    // The recount then agrees: the maxima of what is kept are unchanged.
    assert_eq!(max_allocatable(&kept), claim.max_allocatable);
    assert_eq!(max_capacity(&kept), claim.reserved);
}

#[test]
fn maxima_held_checks_every_resource_including_extended_ones() {
    let c = catalog();
    let big = with_enis(&c[2], 50);
    let small_many_enis = with_enis(&c[0], 80);
    let all = vec![small_many_enis.clone(), big.clone()];
    let (alloc, cap) = (max_allocatable(&all), max_capacity(&all));
    let m = Maxima::new(&alloc, &cap);
    assert!(m.trackable());
    assert!(m.held(&all, m.all()));
    // Without the small type, the ENI maximum (80) is held by nobody: the memo's maxima would be
    // wrong for a claim of the big type alone.
    assert!(!m.held(std::slice::from_ref(&big), m.all()));
    assert!(!m.held(std::slice::from_ref(&small_many_enis), m.all()));
    // A zero maximum is never wanted.
    let none = Resources::new();
    assert_eq!(Maxima::new(&none, &none).all(), 0);
}

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

fn policy(name: &str, spec: Value) -> RequestPolicy {
    serde_json::from_value(json!({
        "apiVersion": "capstan.dev/v1alpha1", "kind": "RequestPolicy",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

fn team_a() -> RequestPolicy {
    policy(
        "team-a",
        json!({
            "namespaceSelector": {"matchLabels": {"team": "a"}},
            "containers": {
                "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
                "default": {"cpu": "1", "memory": "512Mi"},
                "min": {"cpu": "50m", "memory": "64Mi"},
                "max": {"cpu": "8", "memory": "32Gi"},
                "maxLimitRequestRatio": {"cpu": "4"}
            },
            "pod": {"max": {"cpu": "16", "memory": "64Gi"}}
        }),
    )
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "web"}}, "spec": {"containers": containers}})
}

fn ns_a() -> BTreeMap<String, String> {
    BTreeMap::from([("team".to_string(), "a".to_string())])
}

fn run(p: &Value, policies: &[RequestPolicy]) -> PodDefaults {
    apply_request_policies(p, "team-a", &ns_a(), policies, "capstan")
}

fn res(out: &PodDefaults, i: usize) -> Value {
    out.pod["spec"]["containers"][i]["resources"].clone()
}

#[test]
fn limitrange_defaulting_table() {
    // (container resources in, resources out)
    let cases = [
        // neither: both defaults
        (
            json!({}),
            json!({"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}),
        ),
        // only limits: requests copy the limits, as the API server does
        (
            json!({"limits": {"cpu": "2", "memory": "1Gi"}}),
            json!({"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "2", "memory": "1Gi"}}),
        ),
        // only requests: limits from default, requests kept
        (
            json!({"requests": {"cpu": "500m", "memory": "300Mi"}}),
            json!({"requests": {"cpu": "500m", "memory": "300Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}),
        ),
        // one of each key: per key
        (
            json!({"requests": {"cpu": "300m"}, "limits": {"memory": "400Mi"}}),
            json!({"requests": {"cpu": "300m", "memory": "400Mi"}, "limits": {"cpu": "1", "memory": "400Mi"}}),
        ),
        // numbers as the API server may keep them
        (
            json!({"requests": {"cpu": 1}}),
            json!({"requests": {"cpu": 1, "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}),
        ),
    ];
    for (input, want) in cases {
        let p = pod(json!([{"name": "app", "image": "x", "resources": input}]));
        let out = run(&p, &[team_a()]);
        assert_eq!(res(&out, 0), want, "input {input}");
        assert!(out.verdict().is_allowed(), "{input}: {:?}", out.violations);
    }
}

#[test]
fn default_limit_without_default_request_becomes_the_request() {
    let p = policy("lim", json!({"containers": {"default": {"cpu": "1"}}}));
    let out = apply_request_policies(
        &pod(json!([{"name": "app"}])),
        "x",
        &BTreeMap::new(),
        &[p],
        "capstan",
    );
    assert_eq!(
        res(&out, 0),
        json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}})
    );
}

#[test]
fn init_containers_are_defaulted_and_annotation_records_sources() {
    let p = json!({"metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": "setup"}],
        "containers": [{"name": "app", "resources": {"requests": {"cpu": "100m"}}}]
    }});
    let out = run(&p, &[team_a()]);
    assert_eq!(
        out.pod["spec"]["initContainers"][0]["resources"]["requests"]["cpu"],
        "250m"
    );
    let note = out.pod["metadata"]["annotations"][DEFAULTS_ANNOTATION]
        .as_str()
        .unwrap();
    assert!(
        note.contains("cpu request for container setup from policy team-a"),
        "{note}"
    );
    assert!(
        note.contains("memory limit for container app from policy team-a"),
        "{note}"
    );
    assert!(!note.contains("cpu request for container app"), "{note}");
}

#[test]
fn violations_table() {
    // (resources, expected message fragment)
    let cases = [
        (
            json!({"requests": {"cpu": "10m"}}),
            "minimum cpu per container (app) is 50m, but request is 10m",
        ),
        (
            json!({"limits": {"cpu": "10"}}),
            "maximum cpu per container (app) is 8, but limit is 10",
        ),
        (
            json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}),
            "cpu max limit to request ratio per container (app) is 4, but provided ratio is 10",
        ),
        (
            json!({"requests": {"memory": "40Gi"}, "limits": {"memory": "40Gi"}}),
            "maximum memory per container (app) is 34359738368, but limit is 42949672960",
        ),
    ];
    for (input, want) in cases {
        let p = pod(json!([{"name": "app", "resources": input}]));
        let out = run(&p, &[team_a()]);
        let v = out.verdict();
        assert!(!v.is_allowed(), "{input}");
        assert!(
            v.message().contains("spec.containers[0].resources"),
            "{}",
            v.message()
        );
        assert!(v.message().contains(want), "{input}: {}", v.message());
        // The same policy in Warn mode admits with the same message as a warning.
        let mut warn = team_a();
        warn.spec.mode = Some("Warn".into());
        let v = run(&p, &[warn]).verdict();
        assert!(v.is_allowed(), "{input}");
        assert!(
            v.warnings.iter().any(|w| w.contains(want)),
            "{:?}",
            v.warnings
        );
    }
}

#[test]
fn pod_totals_count_init_containers_and_sidecars() {
    let p = json!({"metadata": {"name": "p"}, "spec": {
        "initContainers": [
            {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "6"}, "limits": {"cpu": "6"}}},
            {"name": "setup", "resources": {"requests": {"cpu": "4"}, "limits": {"cpu": "4"}}}
        ],
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "6"}, "limits": {"cpu": "6"}}},
            {"name": "b", "resources": {"requests": {"cpu": "5"}, "limits": {"cpu": "5"}}}
        ]
    }});
    // containers 11 + sidecar 6 = 17 > 16
    let v = run(&p, &[team_a()]).verdict();
    assert!(
        v.message()
            .contains("maximum cpu per pod is 16, but limit is 17"),
        "{}",
        v.message()
    );
    // Without the sidecar: max(11, 4) = 11, within 16.
    let mut p2 = p.clone();
    p2["spec"]["initContainers"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    assert!(run(&p2, &[team_a()]).verdict().is_allowed());
    // A large init container dominates: max(11, 20) = 20.
    p2["spec"]["initContainers"][0]["resources"] =
        json!({"requests": {"cpu": "20"}, "limits": {"cpu": "20"}});
    let v = run(&p2, &[team_a()]).verdict();
    assert!(
        v.message().contains("per pod is 16, but limit is 20"),
        "{}",
        v.message()
    );
}

#[test]
fn priority_wins_per_key_and_ties_go_by_name() {
    let high = policy(
        "z-high",
        json!({"priority": 10, "containers": {"defaultRequest": {"cpu": "1"}}}),
    );
    let low = policy(
        "a-low",
        json!({"priority": 0, "containers": {"defaultRequest": {"cpu": "2", "memory": "1Gi"}}}),
    );
    let out = run(&pod(json!([{"name": "app"}])), &[low.clone(), high]);
    assert_eq!(
        res(&out, 0)["requests"],
        json!({"cpu": "1", "memory": "1Gi"})
    );
    let tie = policy(
        "b-tie",
        json!({"containers": {"defaultRequest": {"cpu": "3"}}}),
    );
    let out = run(&pod(json!([{"name": "app"}])), &[tie, low]);
    assert_eq!(res(&out, 0)["requests"]["cpu"], "2");
}

#[test]
fn memory_requests_equal_limits() {
    let p = policy(
        "m",
        json!({"containers": {"default": {"memory": "1Gi"}, "defaultRequest": {"memory": "256Mi"}, "memoryRequestsEqualLimits": true}}),
    );
    for (input, want) in [
        (
            json!({}),
            json!({"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}}),
        ),
        (
            json!({"requests": {"memory": "100Mi"}, "limits": {"memory": "200Mi"}}),
            json!({"requests": {"memory": "200Mi"}, "limits": {"memory": "200Mi"}}),
        ),
    ] {
        let out = apply_request_policies(
            &pod(json!([{"name": "app", "resources": input}])),
            "x",
            &BTreeMap::new(),
            std::slice::from_ref(&p),
            "capstan",
        );
        assert_eq!(res(&out, 0), want);
    }
}

#[test]
fn exempt_namespaces_and_unselected_pods_are_untouched() {
    let p = pod(json!([{"name": "app"}]));
    for ns in ["kube-system", "capstan"] {
        let out = apply_request_policies(&p, ns, &ns_a(), &[team_a()], "capstan");
        assert!(out.skipped);
        assert_eq!(out.pod, p);
        assert!(out.warnings.is_empty());
    }
    // Namespace not selected: nothing set, but the request-less container is flagged.
    let out = apply_request_policies(&p, "other", &BTreeMap::new(), &[team_a()], "capstan");
    assert_eq!(out.pod, p);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0].contains("spec.containers[0]"));
    // Pod selector.
    let only_db = policy(
        "db",
        json!({"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}, "containers": {"defaultRequest": {"cpu": "1"}}}),
    );
    let out = run(&p, &[only_db]);
    assert_eq!(out.pod, p);
}

#[test]
fn selectors() {
    let labels = BTreeMap::from([("a".to_string(), "1".to_string())]);
    let sel = |v: Value| serde_json::from_value::<LabelSelector>(v).unwrap();
    assert!(selector_matches(None, &labels));
    assert!(selector_matches(Some(&sel(json!({}))), &labels));
    assert!(selector_matches(
        Some(&sel(json!({"matchLabels": {"a": "1"}}))),
        &labels
    ));
    assert!(!selector_matches(
        Some(&sel(json!({"matchLabels": {"a": "2"}}))),
        &labels
    ));
    assert!(selector_matches(
        Some(&sel(
            json!({"matchExpressions": [{"key": "b", "operator": "DoesNotExist"}]})
        )),
        &labels
    ));
    assert!(selector_matches(
        Some(&sel(
            json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["2"]}]})
        )),
        &labels
    ));
    assert!(!selector_matches(
        Some(&sel(
            json!({"matchExpressions": [{"key": "a", "operator": "Exists2"}]})
        )),
        &labels
    ));
}

use std::collections::BTreeMap;

use super::*;

/// (operator, values)
type Op<'a> = (&'a str, &'a [&'a str]);
/// (key, operator, values)
type Term<'a> = (&'a str, &'a str, &'a [&'a str]);

fn req(key: &str, op: &str, values: &[&str]) -> Requirement {
    let values: Vec<String> = values.iter().map(|s| s.to_string()).collect();
    Requirement::new(key, op, &values).expect("valid requirement")
}

fn reqs(items: &[Term]) -> Requirements {
    let mut out = Requirements::new();
    for (k, op, v) in items {
        out.add(req(k, op, v));
    }
    out
}

#[test]
fn membership_per_operator() {
    let cases: &[(&str, &[&str], &str, bool)] = &[
        ("In", &["a", "b"], "a", true),
        ("In", &["a", "b"], "c", false),
        ("NotIn", &["a"], "a", false),
        ("NotIn", &["a"], "b", true),
        ("Exists", &[], "anything", true),
        ("DoesNotExist", &[], "anything", false),
        ("Gt", &["2"], "3", true),
        ("Gt", &["2"], "2", false),
        ("Gt", &["2"], "x", false),
        ("Gte", &["2"], "2", true),
        ("Lt", &["8"], "7", true),
        ("Lt", &["8"], "8", false),
        ("Lte", &["8"], "8", true),
    ];
    for (op, values, probe, want) in cases {
        assert_eq!(
            req("k", op, values).has(probe),
            *want,
            "{op} {values:?} has {probe}"
        );
    }
}

#[test]
fn bad_operators_and_values_are_errors() {
    assert!(matches!(
        Requirement::new("k", "Like", &[]),
        Err(RequirementError::UnknownOperator { .. })
    ));
    assert!(matches!(
        Requirement::new("k", "Gt", &["two".into()]),
        Err(RequirementError::NotAnInteger { .. })
    ));
    assert!(matches!(
        Requirement::new("k", "Lt", &["1".into(), "2".into()]),
        Err(RequirementError::NotAnInteger { .. })
    ));
}

#[test]
fn intersections() {
    let cases: &[(Op, Op, &str)] = &[
        (("In", &["a", "b"]), ("In", &["b", "c"]), "k In [b]"),
        (("In", &["a", "b"]), ("NotIn", &["a"]), "k In [b]"),
        (("NotIn", &["a"]), ("In", &["a", "c"]), "k In [c]"),
        (("NotIn", &["a"]), ("NotIn", &["b"]), "k NotIn [a, b]"),
        (("Exists", &[]), ("In", &["x"]), "k In [x]"),
        (("In", &["1", "3", "5"]), ("Gt", &["2"]), "k In [3, 5]"),
        (("Gt", &["2"]), ("Lt", &["10"]), "k Gt 2 Lt 10"),
        (("In", &["a"]), ("In", &["b"]), "k DoesNotExist"),
    ];
    for ((op1, v1), (op2, v2), want) in cases {
        let got = req("k", op1, v1).intersect(&req("k", op2, v2));
        assert_eq!(got.to_string(), *want, "{op1} {v1:?} ∩ {op2} {v2:?}");
        let flipped = req("k", op2, v2).intersect(&req("k", op1, v1));
        assert_eq!(flipped.to_string(), *want, "intersection commutes");
    }
    assert!(
        req("k", "Gt", &["5"])
            .intersect(&req("k", "Lt", &["6"]))
            .is_empty()
    );
    assert!(
        !req("k", "Gt", &["5"])
            .intersect(&req("k", "Lt", &["7"]))
            .is_empty()
    );
}

#[test]
fn compatibility_of_pods_with_pools() {
    let well_known =
        |k: &str| k.starts_with("kubernetes.io/") || k.starts_with("karpenter.k8s.aws/");
    let pool = reqs(&[
        ("kubernetes.io/arch", "In", &["amd64"]),
        ("karpenter.sh/capacity-type", "In", &["spot", "on-demand"]),
        ("team", "In", &["a"]),
    ]);
    let cases: &[(&[Term], Option<&str>)] = &[
        (&[("kubernetes.io/arch", "In", &["amd64", "arm64"])], None),
        (
            &[("kubernetes.io/arch", "In", &["arm64"])],
            Some("conflicts"),
        ),
        (&[("karpenter.sh/capacity-type", "In", &["spot"])], None),
        (&[("team", "In", &["a"])], None),
        (&[("team", "In", &["b"])], Some("conflicts")),
        // Well-known keys the pool leaves open are fine; unknown custom ones are not.
        (
            &[("karpenter.k8s.aws/instance-family", "In", &["m5"])],
            None,
        ),
        (
            &[("gpu-type", "In", &["a100"])],
            Some("does not have known values"),
        ),
        (
            &[("gpu-type", "Exists", &[])],
            Some("does not have known values"),
        ),
        // A pod that only excludes a custom label the pool doesn't set is fine.
        (&[("gpu-type", "NotIn", &["a100"])], None),
        (&[("gpu-type", "DoesNotExist", &[])], None),
    ];
    for (pod, want) in cases {
        let result = pool.compatible(&reqs(pod), &well_known);
        match want {
            None => assert!(result.is_ok(), "{pod:?}: {result:?}"),
            Some(msg) => assert!(
                result.as_ref().is_err_and(|e| e.contains(msg)),
                "{pod:?}: {result:?}"
            ),
        }
    }
}

#[test]
fn min_values_must_survive_intersection() {
    let mut pool_req = req(
        "karpenter.k8s.aws/instance-family",
        "In",
        &["m5", "c5", "r5"],
    );
    pool_req.min_values = Some(3);
    let mut pool = Requirements::new();
    pool.add(pool_req);
    let any = |_: &str| true;
    assert!(
        pool.compatible(
            &reqs(&[("karpenter.k8s.aws/instance-family", "NotIn", &["x"])]),
            &any
        )
        .is_ok()
    );
    let narrowed = reqs(&[("karpenter.k8s.aws/instance-family", "In", &["m5", "c5"])]);
    let err = pool
        .compatible(&narrowed, &any)
        .expect_err("two values left, three needed");
    assert!(err.contains("minValues 3"), "{err}");
}

#[test]
fn node_labels_against_requirements() {
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/arch", "amd64"),
        ("karpenter.k8s.aws/instance-cpu", "8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let ok: &[&[Term]] = &[
        &[("kubernetes.io/arch", "In", &["amd64"])],
        &[("karpenter.k8s.aws/instance-cpu", "Gt", &["4"])],
        &[("missing", "NotIn", &["x"])],
        &[("missing", "DoesNotExist", &[])],
    ];
    for r in ok {
        assert!(reqs(r).matches_labels(&labels).is_ok(), "{r:?}");
    }
    let bad: &[&[Term]] = &[
        &[("kubernetes.io/arch", "In", &["arm64"])],
        &[("karpenter.k8s.aws/instance-cpu", "Lt", &["8"])],
        &[("missing", "Exists", &[])],
        &[("kubernetes.io/arch", "DoesNotExist", &[])],
    ];
    for r in bad {
        assert!(reqs(r).matches_labels(&labels).is_err(), "{r:?}");
    }
}

#[test]
fn round_trip_to_node_selector() {
    for (op, values) in [
        ("In", vec!["a", "b"]),
        ("NotIn", vec!["a"]),
        ("Exists", vec![]),
        ("DoesNotExist", vec![]),
        ("Gt", vec!["3"]),
        ("Lt", vec!["3"]),
    ] {
        let r = req("k", op, &values);
        let back = r.to_node_selector();
        assert_eq!(back.len(), 1);
        let again =
            Requirement::new(&back[0].key, &back[0].operator, back[0].values()).expect("valid");
        assert_eq!(again, r, "{op}");
    }
}

//! Property tests ("fuzzing") of every endpoint with objects shaped like their kind: each field
//! at its real spec path is absent, a plausible value (valid or nearly so: the edge cases the
//! validators check) or arbitrary JSON. Random keys alone (server.rs's proptest) rarely reach
//! `spec.template.spec.requirements[0].minValues`; these do.
//!
//! For every endpoint and operation, through the same `handle` the server uses:
//! - no panic; HTTP 200 with an AdmissionReview echoing the uid;
//! - a denial has a non-empty message, warnings are non-empty strings;
//! - validating endpoints never patch; mutating ones always allow, and their patch (base64 in
//!   the response) applies cleanly to the object, and defaulting the result again changes
//!   nothing (the API server may re-invoke mutating webhooks).

use std::collections::BTreeMap;

use base64::Engine;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::cache::WebhookCache;
use super::nodepool::default_instance_options;
use super::requestpolicy::validate_requestpolicy;
use super::review::{AdmissionRequest, handle};
use super::server::{Context, Endpoint, decide};
use crate::apis::RequestPolicy;
use crate::apis::requestpolicy::DEFAULTS_ANNOTATION;

/// Cases per property: each runs several endpoints and operations; the file stays within a few
/// seconds in a debug build.
const CASES: u32 = 64;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        "(|-1|0|1Gi|250m|10%|8h|Never|In|[a-zA-Z0-9./%@*-]{0,8}|\\PC{0,4})".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{0,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly `plausible`, rarely anything at all: a wrong type ends a validator's decoding early,
/// so it must be rare enough for many objects to get through to the deeper checks.
fn value(plausible: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![40 => plausible, 1 => arb_json()].boxed()
}

/// A required field: nearly always there.
fn required(plausible: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop::option::weighted(0.97, value(plausible)).boxed()
}

/// Mostly a valid string, sometimes an invalid one.
fn choice(valid: &'static str, invalid: &'static str) -> BoxedStrategy<Value> {
    prop_oneof![6 => text(valid), 1 => text(invalid)].boxed()
}

/// A field that may be absent.
fn field(plausible: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop::option::weighted(0.75, value(plausible)).boxed()
}

fn text(pattern: &'static str) -> BoxedStrategy<Value> {
    pattern.prop_map(Value::String).boxed()
}

fn list(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(item, 0..=max)
        .prop_map(Value::Array)
        .boxed()
}

fn map(key: &'static str, val: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop::collection::btree_map(key, val, 0..=max)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

/// An object of the fields present.
fn object(fields: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect::<Map<_, _>>(),
    )
}

fn quantity() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => choice(
            "(0|1|2|4|16|100m|250m|0\\.5|1\\.5|1e3|512Mi|1Gi|64Gi|2Ti|1000)",
            "(-1|-100m|10%|1Qi|abc|)"
        ),
        1 => (-5i64..100_000).prop_map(|n| json!(n)),
        1 => (-1.0f64..100.0).prop_map(|n| json!(n)),
    ]
    .boxed()
}

fn duration() -> BoxedStrategy<Value> {
    choice("(1m|5m|30s|720h|8h|1h30m|500ms|0s|Never)", "(-1h|1d|10|x|)")
}

fn label_key() -> BoxedStrategy<Value> {
    text(
        "(kubernetes.io/arch|kubernetes.io/os|karpenter.sh/capacity-type|karpenter.k8s.aws/instance-category|karpenter.k8s.aws/instance-generation|karpenter.k8s.aws/instance-cpu|node.kubernetes.io/instance-type|topology.kubernetes.io/zone|karpenter.sh/nodepool|kubernetes.io/hostname|team|[a-z][a-z0-9./-]{0,10}|)",
    )
}

fn label_map() -> BoxedStrategy<Value> {
    map(
        "(team|app|karpenter.sh/nodepool|kubernetes.io/arch|[a-z./]{0,8})",
        text("(a|b|amd64|[a-z0-9-]{0,6})"),
        3,
    )
}

fn resource_list() -> BoxedStrategy<Value> {
    map(
        "(cpu|memory|ephemeral-storage|pods|nvidia.com/gpu|[a-z]{0,4})",
        quantity(),
        3,
    )
}

fn requirement() -> BoxedStrategy<Value> {
    (
        field(label_key()),
        required(choice(
            "(In|NotIn|Exists|DoesNotExist|Gt|Lt|Gte|Lte)",
            "(Foo|in|)",
        )),
        field(list(
            text("(amd64|arm64|linux|spot|on-demand|c|m|r|g|2|3|-1|us-west-2a|[a-z0-9.]{0,5})"),
            4,
        )),
        field((-2i64..60).prop_map(|n| json!(n))),
    )
        .prop_map(|(key, operator, values, min_values)| {
            object(vec![
                ("key", key),
                ("operator", operator),
                ("values", values),
                ("minValues", min_values),
            ])
        })
        .boxed()
}

fn taint() -> BoxedStrategy<Value> {
    (
        field(label_key()),
        field(text("(true|a|[a-z]{0,4})")),
        field(text("(NoSchedule|PreferNoSchedule|NoExecute|Sometimes)")),
    )
        .prop_map(|(key, v, effect)| object(vec![("key", key), ("value", v), ("effect", effect)]))
        .boxed()
}

fn budget() -> BoxedStrategy<Value> {
    let window = prop::option::weighted(
        0.4,
        (
            value(choice(
                "(@daily|@hourly|@weekly|0 9 \\* \\* mon-fri|0 9 \\* \\* 1-5|\\* \\* \\* \\* \\*)",
                "(0 0 31 2 \\*|61 \\* \\* \\* \\*|[0-9* /-]{0,12})",
            )),
            prop::option::weighted(0.9, value(duration())),
        ),
    );
    (
        field(choice("(0|1|5|10%|100%)", "(150%|-1|abc|)")),
        window,
        field(list(choice("(Underutilized|Empty|Drifted)", "(Bored)"), 3)),
    )
        .prop_map(|(nodes, window, reasons)| {
            let (schedule, duration) = match window {
                Some((s, d)) => (Some(s), d),
                None => (None, None),
            };
            object(vec![
                ("nodes", nodes),
                ("schedule", schedule),
                ("duration", duration),
                ("reasons", reasons),
            ])
        })
        .boxed()
}

fn nodepool() -> BoxedStrategy<Value> {
    let node_class_ref = (
        required(choice("karpenter.k8s.aws", "(example.com|)")),
        required(choice("EC2NodeClass", "(NodeClass|)")),
        field(text("(default|gpu|[a-z]{0,4})")),
    )
        .prop_map(|(g, k, n)| object(vec![("group", g), ("kind", k), ("name", n)]));
    let template_spec = (
        required(node_class_ref),
        required(list(requirement(), 4)),
        field(list(taint(), 2)),
        field(list(taint(), 2)),
        field(duration()),
        field(duration()),
    )
        .prop_map(|(r, reqs, taints, startup, expire, grace)| {
            object(vec![
                ("nodeClassRef", r),
                ("requirements", reqs),
                ("taints", taints),
                ("startupTaints", startup),
                ("expireAfter", expire),
                ("terminationGracePeriod", grace),
            ])
        });
    let template = (
        field(label_map().prop_map(|l| json!({"labels": l}))),
        required(template_spec),
    )
        .prop_map(|(m, s)| object(vec![("metadata", m), ("spec", s)]));
    let disruption = (
        field(choice(
            "(WhenEmpty|WhenEmptyOrUnderutilized)",
            "(WhenUnderutilized|)",
        )),
        field(duration()),
        field(list(budget(), 3)),
    )
        .prop_map(|(p, after, budgets)| {
            object(vec![
                ("consolidationPolicy", p),
                ("consolidateAfter", after),
                ("budgets", budgets),
            ])
        });
    (
        required(template),
        field(disruption),
        field(resource_list()),
        field(prop_oneof![8 => 0i64..=100, 1 => -5i64..200].prop_map(|n| json!(n))),
    )
        .prop_map(|(template, disruption, limits, weight)| {
            json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "fuzz"},
                   "spec": object(vec![("template", template), ("disruption", disruption),
                                       ("limits", limits), ("weight", weight)])})
        })
        .boxed()
}

fn selector_term(alias: bool) -> BoxedStrategy<Value> {
    (
        field(map(
            "(karpenter.sh/discovery|Name|[a-z]{0,4})",
            text("(my-cluster|\\*|[a-z]{0,4})"),
            2,
        )),
        field(text("(subnet-0123abcd|sg-1|ami-0abc|[a-z0-9-]{0,8})")),
        field(text("(my-ami|[a-z*]{0,5})")),
        field(if alias {
            text("(al2023@latest|al2023@v20250116|bottlerocket@latest|al2@latest|windows2022@latest|al2023|@latest|[a-z0-9@]{0,8})")
        } else {
            Just(Value::Null).boxed()
        }),
        field(text("(self|amazon|123456789012|)")),
    )
        .prop_map(|(tags, id, name, alias, owner)| {
            object(vec![
                ("tags", tags),
                ("id", id),
                ("name", name),
                ("alias", alias),
                ("owner", owner),
            ])
        })
        .boxed()
}

fn ec2nodeclass() -> BoxedStrategy<Value> {
    let ebs = (
        field(quantity()),
        field(text("(gp3|gp2|io2|standard|st1|[a-z0-9]{0,3})")),
        field((-1i64..100_000).prop_map(|n| json!(n))),
        field((-1i64..2_000).prop_map(|n| json!(n))),
        field(any::<bool>().prop_map(Value::Bool)),
        field(any::<bool>().prop_map(Value::Bool)),
    )
        .prop_map(|(size, t, iops, tput, enc, del)| {
            object(vec![
                ("volumeSize", size),
                ("volumeType", t),
                ("iops", iops),
                ("throughput", tput),
                ("encrypted", enc),
                ("deleteOnTermination", del),
            ])
        });
    let bdm = (
        field(text("(/dev/xvda|/dev/xvdb|[a-z/]{0,6})")),
        field(any::<bool>().prop_map(Value::Bool)),
        field(ebs),
    )
        .prop_map(|(d, root, ebs)| {
            object(vec![("deviceName", d), ("rootVolume", root), ("ebs", ebs)])
        });
    let eviction = map(
        "(memory\\.available|nodefs\\.available|imagefs\\.available|pid\\.available|[a-z.]{0,6})",
        text("(100Mi|10%|5%|110%|-1|[0-9a-zA-Z%.]{0,4})"),
        2,
    );
    let kubelet = (
        field((-1i64..400).prop_map(|n| json!(n))),
        field((-1i64..50).prop_map(|n| json!(n))),
        field(resource_list()),
        field(resource_list()),
        field(eviction.clone()),
        field(eviction.clone()),
        field(map("(memory\\.available|[a-z.]{0,4})", duration(), 2)),
        field((-10i64..110).prop_map(|n| json!(n))),
        field((-10i64..110).prop_map(|n| json!(n))),
        field((-1i64..1000).prop_map(|n| json!(n))),
    )
        .prop_map(
            |(max_pods, ppc, sys, kube, hard, soft, soft_grace, hi, lo, grace)| {
                object(vec![
                    ("maxPods", max_pods),
                    ("podsPerCore", ppc),
                    ("systemReserved", sys),
                    ("kubeReserved", kube),
                    ("evictionHard", hard),
                    ("evictionSoft", soft),
                    ("evictionSoftGracePeriod", soft_grace),
                    ("imageGCHighThresholdPercent", hi),
                    ("imageGCLowThresholdPercent", lo),
                    ("evictionMaxPodGracePeriod", grace),
                ])
            },
        );
    let metadata_options = (
        field(text("(enabled|disabled|sometimes)")),
        field(text("(required|optional|lots)")),
        field((-1i64..100).prop_map(|n| json!(n))),
        field(text("(enabled|disabled|x)")),
    )
        .prop_map(|(ep, tokens, hops, v6)| {
            object(vec![
                ("httpEndpoint", ep),
                ("httpTokens", tokens),
                ("httpPutResponseHopLimit", hops),
                ("httpProtocolIPv6", v6),
            ])
        });
    let spec = (
        field(text(
            "(KarpenterNodeRole-my-cluster|arn:aws:iam::1:role/x|)",
        )),
        field(text("(my-profile|)")),
        field(choice(
            "(AL2023|AL2|Bottlerocket|Windows2022|Custom)",
            "(Gentoo|)",
        )),
        required(list(selector_term(true), 3)),
        required(list(selector_term(false), 2)),
        required(list(selector_term(false), 2)),
        field(list(bdm.boxed(), 2)),
        field(map(
            "(team|Name|karpenter.sh/nodepool|kubernetes.io/cluster/x|aws:x|[a-z]{0,4})",
            text("([a-z]{0,4})"),
            3,
        )),
        field(kubelet),
        field(metadata_options),
        field(text("(#!/bin/bash\necho hi|\\PC{0,8})")),
        field(any::<bool>().prop_map(Value::Bool)),
    )
        .prop_map(
            |(role, profile, family, amis, subnets, sgs, bdms, tags, kubelet, md, ud, mon)| {
                object(vec![
                    ("role", role),
                    ("instanceProfile", profile),
                    ("amiFamily", family),
                    ("amiSelectorTerms", amis),
                    ("subnetSelectorTerms", subnets),
                    ("securityGroupSelectorTerms", sgs),
                    ("blockDeviceMappings", bdms),
                    ("tags", tags),
                    ("kubelet", kubelet),
                    ("metadataOptions", md),
                    ("userData", ud),
                    ("detailedMonitoring", mon),
                ])
            },
        );
    spec.prop_map(|spec| {
        json!({"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
               "metadata": {"name": "fuzz"}, "spec": spec})
    })
    .boxed()
}

fn label_selector() -> BoxedStrategy<Value> {
    let expr = (
        field(text("(team|app|[a-z]{0,3})")),
        field(text("(In|NotIn|Exists|DoesNotExist|Gt)")),
        field(list(text("(a|b|[a-z]{0,2})"), 2)),
    )
        .prop_map(|(k, op, vals)| object(vec![("key", k), ("operator", op), ("values", vals)]));
    (field(label_map()), field(list(expr.boxed(), 2)))
        .prop_map(|(ml, me)| object(vec![("matchLabels", ml), ("matchExpressions", me)]))
        .boxed()
}

fn requestpolicy() -> BoxedStrategy<Value> {
    let containers = (
        field(resource_list()),
        field(resource_list()),
        field(resource_list()),
        field(resource_list()),
        field(resource_list()),
        field(any::<bool>().prop_map(Value::Bool)),
    )
        .prop_map(|(req, def, min, max, ratio, eq)| {
            object(vec![
                ("defaultRequest", req),
                ("default", def),
                ("min", min),
                ("max", max),
                ("maxLimitRequestRatio", ratio),
                ("memoryRequestsEqualLimits", eq),
            ])
        });
    let pod = (field(resource_list()), field(resource_list()))
        .prop_map(|(min, max)| object(vec![("min", min), ("max", max)]));
    (
        field(label_selector()),
        field(label_selector()),
        field(text("(Enforce|Warn|Audit|)")),
        field((-5i64..5).prop_map(|n| json!(n))),
        field(containers),
        field(pod),
    )
        .prop_map(|(ns, pods, mode, priority, containers, pod)| {
            json!({"apiVersion": "capstan.dev/v1alpha1", "kind": "RequestPolicy",
                   "metadata": {"name": "fuzz"},
                   "spec": object(vec![("namespaceSelector", ns), ("podSelector", pods),
                                       ("mode", mode), ("priority", priority),
                                       ("containers", containers), ("pod", pod)])})
        })
        .boxed()
}

fn pod() -> BoxedStrategy<Value> {
    let container = |init: bool| {
        (
            field(text("(app|sidecar|[a-z]{0,3})")),
            field(
                (field(resource_list()), field(resource_list()))
                    .prop_map(|(r, l)| object(vec![("requests", r), ("limits", l)])),
            ),
            field(if init {
                text("(Always|Never|)")
            } else {
                Just(Value::Null).boxed()
            }),
        )
            .prop_map(|(n, res, rp)| {
                object(vec![("name", n), ("resources", res), ("restartPolicy", rp)])
            })
            .boxed()
    };
    let metadata = (
        field(text("(p|team-a-app-x|)")),
        field(text("(team-a|default|capstan|)")),
        field(label_map()),
        field(map(
            "(capstan\\.dev/request-defaults|a)",
            text("(|x|\\{\\})"),
            1,
        )),
    )
        .prop_map(|(n, ns, l, a)| {
            object(vec![
                ("name", n),
                ("namespace", ns),
                ("labels", l),
                ("annotations", a),
            ])
        });
    (
        field(metadata),
        field(list(container(false), 3)),
        field(list(container(true), 2)),
        field(resource_list()),
    )
        .prop_map(|(metadata, containers, init, overhead)| {
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": metadata.unwrap_or(json!({})),
                   "spec": object(vec![("containers", containers), ("initContainers", init),
                                       ("overhead", overhead)])})
        })
        .boxed()
}

/// The cache as the API server would leave it: the example policy, plus `extra` when it would
/// have been admitted.
fn context_cache(extra: Option<&Value>) -> WebhookCache {
    let example = json!({"apiVersion": "capstan.dev/v1alpha1", "kind": "RequestPolicy",
        "metadata": {"name": "team-a-defaults"},
        "spec": {"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {}, "mode": "Enforce",
                 "containers": {"defaultRequest": {"cpu": "250m", "memory": "256Mi"},
                                "default": {"cpu": "1", "memory": "512Mi"},
                                "min": {"cpu": "50m", "memory": "64Mi"}, "max": {"cpu": "8", "memory": "32Gi"},
                                "maxLimitRequestRatio": {"cpu": "4"}, "memoryRequestsEqualLimits": true},
                 "pod": {"max": {"cpu": "16", "memory": "64Gi"}}}});
    let mut policies: Vec<RequestPolicy> = vec![serde_json::from_value(example).unwrap()];
    if let Some(p) = extra.filter(|p| validate_requestpolicy(p).is_allowed())
        && let Ok(p) = serde_json::from_value::<RequestPolicy>(p.clone())
    {
        policies.push(p);
    }
    let cache = WebhookCache::new();
    cache.set_policies(policies);
    cache.set_namespaces(BTreeMap::from([(
        "team-a".to_string(),
        BTreeMap::from([
            ("team".to_string(), "a".to_string()),
            (
                "kubernetes.io/metadata.name".to_string(),
                "team-a".to_string(),
            ),
        ]),
    )]));
    cache
}

fn review_body(
    operation: &str,
    namespace: Option<&str>,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<u8> {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "request": {"uid": "fuzz-uid", "operation": operation, "namespace": namespace,
                       "object": obj, "oldObject": old}})
    .to_string()
    .into_bytes()
}

/// One endpoint, one operation, through the server's `handle`; returns the patched object.
fn check(
    endpoint: Endpoint,
    operation: &str,
    obj: &Value,
    old: Option<&Value>,
    ctx: &Context<'_>,
) -> Result<Value, TestCaseError> {
    let namespace = obj.pointer("/metadata/namespace").and_then(Value::as_str);
    let body = review_body(operation, namespace, obj, old);
    let (status, out, _) = handle(&body, |req: &AdmissionRequest| decide(endpoint, req, ctx));
    prop_assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let v: Value = serde_json::from_slice(&out)
        .map_err(|e| TestCaseError::fail(format!("response is not JSON: {e}")))?;
    let r = &v["response"];
    prop_assert_eq!(&v["kind"], "AdmissionReview");
    prop_assert_eq!(&r["uid"], "fuzz-uid");
    let allowed = r["allowed"]
        .as_bool()
        .ok_or_else(|| TestCaseError::fail(format!("allowed missing: {v}")))?;
    if !allowed {
        let message = r["status"]["message"].as_str().unwrap_or_default();
        prop_assert!(
            !message.trim().is_empty(),
            "denial without a message: {}",
            v
        );
        prop_assert_eq!(&r["status"]["code"], 403);
    }
    if let Some(w) = r.get("warnings") {
        let w = w.as_array().cloned().unwrap_or_default();
        prop_assert!(
            w.iter()
                .all(|w| w.as_str().is_some_and(|s| !s.trim().is_empty())),
            "bad warnings: {}",
            v
        );
    }
    let mut patched = obj.clone();
    match (r.get("patchType"), r.get("patch")) {
        (None, None) => {}
        (Some(t), Some(p)) => {
            prop_assert_eq!(t, "JSONPatch");
            let mutating = matches!(
                endpoint,
                Endpoint::MutateNodePool | Endpoint::MutateEc2NodeClass | Endpoint::MutatePod
            );
            prop_assert!(mutating, "{:?} patched: {}", endpoint, v);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(p.as_str().unwrap_or_default())
                .map_err(|e| TestCaseError::fail(format!("patch is not base64: {e}")))?;
            let patch: json_patch::Patch = serde_json::from_slice(&bytes)
                .map_err(|e| TestCaseError::fail(format!("patch is not a JSON Patch: {e}")))?;
            prop_assert!(!patch.0.is_empty(), "empty patch sent");
            json_patch::patch(&mut patched, &patch).map_err(|e| {
                TestCaseError::fail(format!("{endpoint:?} patch does not apply: {e}\n{obj}"))
            })?;
        }
        _ => prop_assert!(false, "patchType without patch or the reverse: {}", v),
    }
    Ok(patched)
}

/// Validating and mutating endpoints of one kind on CREATE, UPDATE (against `old`) and DELETE;
/// mutation is idempotent.
fn check_kind(
    mutate: Option<Endpoint>,
    validate: Endpoint,
    obj: &Value,
    old: &Value,
    ctx: &Context<'_>,
) -> Result<(), TestCaseError> {
    for (op, old) in [("CREATE", None), ("UPDATE", Some(old))] {
        check(validate, op, obj, old, ctx)?;
        if let Some(mutate) = mutate {
            let once = check(mutate, op, obj, old, ctx)?;
            // What the API server validates is the mutated object.
            check(validate, op, &once, old, ctx)?;
            let twice = check(mutate, op, &once, old, ctx)?;
            prop_assert_eq!(&twice, &once, "{:?} is not idempotent on {}", mutate, obj);
        }
    }
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                      "request": {"uid": "fuzz-uid", "operation": "DELETE", "oldObject": obj}});
    let (status, out, _) = handle(body.to_string().as_bytes(), |req| {
        decide(validate, req, ctx)
    });
    prop_assert_eq!(status, 200);
    prop_assert!(String::from_utf8_lossy(&out).contains("\"allowed\":true"));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn nodepool_endpoints_are_total(obj in nodepool(), old in nodepool()) {
        let snapshot = context_cache(None).snapshot();
        let types = default_instance_options();
        let ctx = Context { snapshot: &snapshot, own_namespace: "capstan", instance_types: &types };
        check_kind(Some(Endpoint::MutateNodePool), Endpoint::ValidateNodePool, &obj, &old, &ctx)?;
    }

    #[test]
    fn ec2nodeclass_endpoints_are_total(obj in ec2nodeclass(), old in ec2nodeclass()) {
        let snapshot = context_cache(None).snapshot();
        let ctx = Context { snapshot: &snapshot, own_namespace: "capstan", instance_types: &[] };
        check_kind(Some(Endpoint::MutateEc2NodeClass), Endpoint::ValidateEc2NodeClass, &obj, &old, &ctx)?;
    }

    #[test]
    fn requestpolicy_endpoint_is_total(obj in requestpolicy(), old in requestpolicy()) {
        let snapshot = context_cache(None).snapshot();
        let ctx = Context { snapshot: &snapshot, own_namespace: "capstan", instance_types: &[] };
        check_kind(None, Endpoint::ValidateRequestPolicy, &obj, &old, &ctx)?;
    }

    /// Pods against the example policy plus an arbitrary admitted one.
    #[test]
    fn pod_endpoints_are_total(obj in pod(), policy in requestpolicy()) {
        let snapshot = context_cache(Some(&policy)).snapshot();
        let ctx = Context { snapshot: &snapshot, own_namespace: "capstan", instance_types: &[] };
        check_kind(Some(Endpoint::MutatePod), Endpoint::ValidatePod, &obj, &obj, &ctx)?;
        // A defaulted pod records what was applied.
        let once = check(Endpoint::MutatePod, "CREATE", &obj, None, &ctx)?;
        if once != obj {
            prop_assert!(once.pointer(&format!("/metadata/annotations/{}", DEFAULTS_ANNOTATION.replace('/', "~1"))).is_some(), "{}", once);
        }
    }
}

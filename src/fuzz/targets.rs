//! The fuzz targets: each is the function capstan calls with bytes from outside, plus the checks
//! that hold for any input (beyond not panicking). A broken check panics, which counts as a crash.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{Value, json};

use super::{Harness, MAIN_STACK, Seen, Target, WORKER_STACK};
use crate::apis::ec2nodeclass::KubeletConfiguration;
use crate::apis::nodepool::Budget;
use crate::apis::{EC2NodeClass, NodePool, RequestPolicy, common::parse_duration};
use crate::cloud::catalog::{AllocatableSettings, Catalog, allocatable_with};
use crate::convert::{check_v1, convert_document};
use crate::disruption::Reason;
use crate::disruption::budgets::{allowance, is_active};
use crate::interruption;
use crate::manifest::{ManifestErrors, Object, decode_object, parse_documents};
use crate::plan::{pools::pool_templates, workload};
use crate::scheduling::pod::PodInfo;
use crate::scheduling::resources::{Resources, parse_quantity};
use crate::webhook::budgets::{check_budget_duration, check_schedule, validate_budgets};
use crate::webhook::cache::WebhookCache;
use crate::webhook::common::{check_duration, check_quantity};
use crate::webhook::nodepool::default_instance_options;
use crate::webhook::review::{decode_review, handle};
use crate::webhook::server::{Context, Endpoint, decide};

pub const TARGETS: &[Target] = &[
    Target {
        name: "admission",
        about: "AdmissionReview bodies through every webhook endpoint (NodePool, EC2NodeClass and \
                RequestPolicy validation and defaulting, pod defaults)",
        dictionary: &[
            "apiVersion",
            "kind",
            "request",
            "uid",
            "operation",
            "object",
            "oldObject",
            "CREATE",
            "UPDATE",
            "DELETE",
            "admission.k8s.io/v1",
            "AdmissionReview",
            "spec",
            "metadata",
            "requirements",
            "operator",
            "minValues",
            "In",
            "NotIn",
            "Exists",
            "Gt",
            "Lt",
            "budgets",
            "schedule",
            "duration",
            "nodes",
            "limits",
            "cpu",
            "memory",
            "250m",
            "1Gi",
            "Never",
            "expireAfter",
            "consolidateAfter",
            "amiSelectorTerms",
            "alias",
            "al2023@latest",
            "containers",
            "resources",
            "requests",
            "limits",
            "namespace",
            "team-a",
            "kubelet",
            "evictionHard",
            "10%",
            "blockDeviceMappings",
            "volumeSize",
        ],
        stack_bytes: WORKER_STACK,
        max_len: 128 << 10,
        harness: admission,
    },
    Target {
        name: "plan",
        about: "multi-document YAML as `capstan plan` reads it: documents, typed objects, \
                workloads expanded to pods, NodePools to the simulation's templates",
        dictionary: &[
            "apiVersion",
            "kind",
            "metadata",
            "name",
            "namespace",
            "spec",
            "replicas",
            "template",
            "containers",
            "resources",
            "requests",
            "cpu",
            "memory",
            "NodePool",
            "EC2NodeClass",
            "Deployment",
            "StatefulSet",
            "Job",
            "DaemonSet",
            "Pod",
            "karpenter.sh/v1",
            "apps/v1",
            "requirements",
            "key",
            "operator",
            "values",
            "In",
            "Gt",
            "minValues",
            "kubelet",
            "maxPods",
            "parallelism",
            "completions",
            "topologySpreadConstraints",
            "affinity",
            "nodeSelector",
            "tolerations",
            "maxSkew",
            "1Gi",
            "100m",
            "8Ei",
        ],
        stack_bytes: MAIN_STACK,
        max_len: 128 << 10,
        harness: plan,
    },
    Target {
        name: "convert",
        about: "multi-document YAML as `capstan convert` reads it: v1alpha5 / v1beta1 Karpenter \
                objects to v1 (the output must decode as v1 and serialise)",
        dictionary: &[
            "apiVersion",
            "kind",
            "karpenter.sh/v1alpha5",
            "karpenter.sh/v1beta1",
            "karpenter.k8s.aws/v1alpha1",
            "karpenter.k8s.aws/v1beta1",
            "Provisioner",
            "AWSNodeTemplate",
            "NodePool",
            "EC2NodeClass",
            "List",
            "items",
            "spec",
            "ttlSecondsAfterEmpty",
            "ttlSecondsUntilExpired",
            "consolidation",
            "enabled",
            "providerRef",
            "subnetSelector",
            "securityGroupSelector",
            "amiSelector",
            "aws-ids",
            "amiFamily",
            "AL2",
            "Bottlerocket",
            "expireAfter",
            "consolidationPolicy",
            "WhenUnderutilized",
            "limits",
            "resources",
            "kubeletConfiguration",
            "weight",
        ],
        stack_bytes: MAIN_STACK,
        max_len: 128 << 10,
        harness: convert,
    },
    Target {
        name: "budget",
        about: "NodePool disruption budgets (JSON list): the webhook's validation, then the \
                disruption controller's allowance at several instants",
        dictionary: &[
            "nodes",
            "schedule",
            "duration",
            "reasons",
            "Empty",
            "Underutilized",
            "Drifted",
            "%",
            "@daily",
            "@hourly",
            "* * * * *",
            "mon-fri",
            "8h",
            "30m",
            "0s",
            "100%",
        ],
        stack_bytes: WORKER_STACK,
        max_len: 16 << 10,
        harness: budget,
    },
    Target {
        name: "cron",
        about: "a budget's cron schedule: the webhook's check and the controller's next firing",
        dictionary: &[
            "*", "/", "-", ",", "?", "L", "W", "#", "@daily", "@yearly", "@reboot", "jan", "dec",
            "sun", "sat", "mon-fri", "31", "29", "60", "24", "0", "7",
        ],
        stack_bytes: WORKER_STACK,
        max_len: 4 << 10,
        harness: cron,
    },
    Target {
        name: "duration",
        about: "Go durations (expireAfter, consolidateAfter, budget durations, \
                terminationGracePeriod): webhook checks against the controllers' parser",
        dictionary: &[
            "h", "m", "s", "ms", "us", "µs", "ns", "Never", ".", "-", "+",
        ],
        stack_bytes: WORKER_STACK,
        max_len: 4 << 10,
        harness: duration,
    },
    Target {
        name: "quantity",
        about: "Kubernetes quantities: parse_quantity, resource lists, kubelet reserved and \
                eviction settings to allocatable",
        dictionary: &[
            "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "e",
            "E-", ".", "%", "+", "-",
        ],
        stack_bytes: WORKER_STACK,
        max_len: 4 << 10,
        harness: quantity,
    },
    Target {
        name: "sqs",
        about: "interruption queue message bodies (EventBridge envelopes)",
        dictionary: &[
            "detail-type",
            "detail",
            "instance-id",
            "state",
            "stopping",
            "running",
            "EC2 Spot Instance Interruption Warning",
            "EC2 Instance Rebalance Recommendation",
            "EC2 Instance State-change Notification",
            "AWS Health Event",
            "service",
            "EC2",
            "eventTypeCategory",
            "scheduledChange",
            "affectedEntities",
            "entityValue",
            "i-",
        ],
        stack_bytes: WORKER_STACK,
        max_len: 64 << 10,
        harness: sqs,
    },
];

pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Instants the time-dependent checks run at: the epoch, a Thursday in business hours, a leap
/// day, the 32-bit rollover and 2100.
fn instants() -> [SystemTime; 5] {
    [
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_secs(1_795_683_600),
        UNIX_EPOCH + Duration::from_secs(1_835_395_230),
        UNIX_EPOCH + Duration::from_secs(2_147_483_647),
        UNIX_EPOCH + Duration::from_secs(4_102_444_800),
    ]
}

fn text(input: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(input)
}

// ---------------------------------------------------------------------------------------------
// admission

const EXAMPLE_POLICY: &str = include_str!("../../manifests/examples/requestpolicy.yaml");

fn admission() -> Harness {
    let cache = WebhookCache::new();
    if let Ok(policy) = serde_saphyr::from_str::<RequestPolicy>(EXAMPLE_POLICY) {
        cache.set_policies(vec![policy]);
    }
    cache.set_namespaces(BTreeMap::from([(
        "team-a".to_string(),
        BTreeMap::from([("team".to_string(), "a".to_string())]),
    )]));
    let snapshot = cache.snapshot();
    let types = default_instance_options();
    Box::new(move |input, seen| {
        let ctx = Context {
            snapshot: &snapshot,
            own_namespace: "capstan",
            instance_types: &types,
        };
        for endpoint in Endpoint::ALL {
            let (status, out, _) = handle(input, |req| decide(endpoint, req, &ctx));
            check_answer(endpoint, input, status, &out, seen);
        }
    })
}

/// What the API server needs of an answer: 4xx with a reason, or an AdmissionReview for the same
/// uid whose denial says why and whose patch applies to the object.
fn check_answer(endpoint: Endpoint, input: &[u8], status: u16, out: &[u8], seen: &mut Seen) {
    let path = endpoint.path();
    if status != 200 {
        assert!(matches!(status, 400 | 413), "{path}: HTTP {status}");
        let body = String::from_utf8_lossy(out);
        assert!(
            !body.trim().is_empty(),
            "{path}: HTTP {status} without a reason"
        );
        seen.note(&body);
        return;
    }
    let review = decode_review(input).expect("HTTP 200 for a body that does not decode");
    let v: Value = serde_json::from_slice(out).expect("the answer is JSON");
    let r = &v["response"];
    assert_eq!(v["kind"], "AdmissionReview", "{path}: {v}");
    assert_eq!(r["uid"], review.request.uid.as_str(), "{path}: {v}");
    let allowed = r["allowed"].as_bool().expect("response.allowed is a bool");
    if allowed {
        seen.note(&format!("{path}: allowed"));
    } else {
        let message = r["status"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.trim().is_empty(),
            "{path}: denied without a message: {v}"
        );
        for part in message.split("; ") {
            seen.note(&format!("{path}: {part}"));
        }
    }
    for w in r["warnings"].as_array().into_iter().flatten() {
        let w = w.as_str().expect("a warning is a string");
        assert!(!w.trim().is_empty(), "{path}: empty warning");
        seen.note(&format!("{path}: warning {w}"));
    }
    if let Some(patch) = r.get("patch") {
        assert_eq!(r["patchType"], "JSONPatch", "{path}: {v}");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch.as_str().expect("the patch is a string"))
            .expect("the patch is base64");
        let patch: json_patch::Patch =
            serde_json::from_slice(&bytes).expect("the patch is a JSON Patch");
        let mut object = review.request.object.clone().unwrap_or(Value::Null);
        if let Err(e) = json_patch::patch(&mut object, &patch) {
            panic!("{path}: the patch does not apply to the object: {e}");
        }
        seen.note(&format!("{path}: patched"));
    }
}

// ---------------------------------------------------------------------------------------------
// manifests

/// Documents and their typed objects, as `plan` and `check` read them; errors noted.
fn decode(input: &[u8], seen: &mut Seen) -> Option<(Vec<crate::manifest::Document>, Vec<Object>)> {
    let docs = match parse_documents(Path::new("fuzz.yaml"), &text(input)) {
        Ok(d) => d,
        Err(e) => {
            seen.note(&e.message);
            return None;
        }
    };
    let mut objects = Vec::new();
    for doc in &docs {
        match decode_object(doc) {
            Ok(o) => objects.push(o),
            Err(ManifestErrors(errors)) => {
                for e in errors {
                    seen.note(&e.message);
                }
            }
        }
    }
    Some((docs, objects))
}

fn plan() -> Harness {
    let catalog = Catalog::for_region("us-west-2", None);
    let now = instants()[1];
    Box::new(move |input, seen| {
        let Some((_, objects)) = decode(input, seen) else {
            return;
        };
        // `plan` stops at the first decoding error; going on with what decoded reaches further.
        let workloads = match workload::expand(&objects) {
            Ok(w) => w,
            Err(e) => return seen.note(&e),
        };
        for pod in workloads.pods.iter().chain(&workloads.daemonsets) {
            match PodInfo::from_pod(pod) {
                Ok(_) => seen.note("pod"),
                Err(e) => seen.note(&e.to_string()),
            }
        }
        let pools: Vec<NodePool> = objects
            .iter()
            .filter_map(|o| match o {
                Object::NodePool(p) => Some((**p).clone()),
                _ => None,
            })
            .collect();
        let classes: Vec<EC2NodeClass> = objects
            .iter()
            .filter_map(|o| match o {
                Object::EC2NodeClass(c) => Some((**c).clone()),
                _ => None,
            })
            .collect();
        match pool_templates(&pools, &classes, &catalog, now) {
            Ok((templates, warnings)) => {
                seen.note(&format!("{} templates", templates.len()));
                for w in warnings {
                    seen.note(&w);
                }
            }
            Err(e) => seen.note(&e),
        }
    })
}

fn convert() -> Harness {
    Box::new(|input, seen| {
        let docs = match parse_documents(Path::new("fuzz.yaml"), &text(input)) {
            Ok(d) => d,
            Err(e) => return seen.note(&e.message),
        };
        for doc in &docs {
            let converted = match convert_document(&doc.value) {
                Ok(c) => c,
                Err(e) => {
                    seen.note(&e.to_string());
                    continue;
                }
            };
            for note in &converted.notes {
                seen.note(note);
            }
            if !converted.unknown_fields.is_empty() {
                seen.note("unknown fields");
            }
            let items = doc.value.get("items").and_then(Value::as_array);
            for object in &converted.objects {
                // Objects passed through unchanged are the input's to get right, not convert's.
                let passed_through =
                    *object == doc.value || items.is_some_and(|items| items.contains(object));
                if !passed_through && let Err(e) = check_v1(object) {
                    panic!("converted object does not decode as v1: {e}\n{object:#}");
                }
                match serde_saphyr::to_string(object) {
                    Ok(_) => seen.note("converted"),
                    Err(e) => seen.note(&e.to_string()),
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// budgets, cron, durations

fn budget() -> Harness {
    Box::new(|input, seen| {
        let budgets: Value = match serde_json::from_slice(input) {
            Ok(v) => v,
            Err(e) => return seen.note(&e.to_string()),
        };
        let verdict = validate_budgets(&budgets, "spec.disruption.budgets");
        for e in &verdict.errors {
            seen.note(&e.message);
        }
        let pool: NodePool = match serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "fuzz"},
            "spec": {"template": {"spec": {"requirements": [], "nodeClassRef":
                        {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}}},
                     "disruption": {"budgets": budgets}}}))
        {
            Ok(p) => p,
            Err(e) => return seen.note(&e.to_string()),
        };
        for now in instants() {
            for (total, reason) in [
                (0, Reason::Empty),
                (7, Reason::Underutilized),
                (1000, Reason::Drifted),
            ] {
                let a = allowance(&pool, total, 1, now, reason);
                seen.note(&format!("allowed {}", a.allowed.min(total + 1)));
            }
            for b in pool.budgets() {
                match is_active(&b, now) {
                    Ok(active) => seen.note(&format!("active {active}")),
                    // Admitted budgets the controller cannot read would freeze the pool.
                    Err(e) if verdict.is_allowed() => {
                        panic!("the webhook admits {b:?} but disruption cannot read it: {e}")
                    }
                    Err(e) => seen.note(&e),
                }
            }
        }
    })
}

fn cron() -> Harness {
    Box::new(|input, seen| {
        let schedule = text(input).into_owned();
        let admitted = check_schedule(&schedule);
        if let Err(e) = &admitted {
            seen.note(e);
        }
        let b = Budget {
            nodes: "1".into(),
            schedule: Some(schedule),
            duration: Some("1h".into()),
            reasons: None,
        };
        // A rejected schedule may cost a search up to year 5000 per call: one instant will do.
        let instants = if admitted.is_ok() {
            &instants()[..]
        } else {
            &instants()[..1]
        };
        for &now in instants {
            match is_active(&b, now) {
                Ok(active) => seen.note(&format!("active {active}")),
                Err(e) if admitted.is_ok() => {
                    panic!(
                        "the webhook admits schedule {:?} but disruption cannot read it: {e}",
                        b.schedule
                    )
                }
                Err(e) => seen.note(&e),
            }
        }
    })
}

fn duration() -> Harness {
    Box::new(|input, seen| {
        let s = text(input);
        let parsed = parse_duration(&s);
        for allow_never in [true, false] {
            match check_duration(&s, allow_never) {
                // What the webhook admits, the controllers read as the same number of seconds.
                Ok(Some(secs)) => assert_eq!(
                    parsed.map(|d| d.as_secs()),
                    Some(secs),
                    "{s:?}: webhook and controllers disagree"
                ),
                Ok(None) => assert!(parsed.is_none(), "{s:?}: Never read as a duration"),
                Err(e) => seen.note(&e),
            }
        }
        match check_budget_duration(&s) {
            Ok(()) => assert!(
                parsed.is_some(),
                "{s:?}: admitted budget duration unreadable"
            ),
            Err(e) => seen.note(&e),
        }
        seen.note(&format!("parsed {}", parsed.is_some()));
    })
}

// ---------------------------------------------------------------------------------------------
// quantities

fn quantity() -> Harness {
    let catalog = Catalog::for_region("us-west-2", None);
    // The smallest, a typical and the largest instance types: overhead depends on size.
    let mut types: Vec<_> = catalog.iter().map(|e| e.instance_type.clone()).collect();
    types.sort_by_key(|t| (t.vcpu, t.memory_mib));
    let types: Vec<_> = [0, types.len() / 2, types.len().saturating_sub(1)]
        .iter()
        .filter_map(|&i| types.get(i).cloned())
        .collect();
    Box::new(move |input, seen| {
        let s = text(input).into_owned();
        match parse_quantity(&s) {
            Ok(q) => {
                let _ = (q.value(), q.milli_value(), q.as_f64());
                seen.note(&format!("ok {}", q.nanos().signum()));
            }
            Err(e) => seen.note(&e.to_string()),
        }
        if let Err(e) = check_quantity(&s) {
            seen.note(&e);
        }
        let list: BTreeMap<String, String> = ["cpu", "memory", "pods", "nvidia.com/gpu"]
            .iter()
            .map(|k| (k.to_string(), s.clone()))
            .collect();
        match Resources::from_strings(&list) {
            Ok(r) => {
                let _ = r.to_strings();
                let _ = r.display_one("cpu");
                let _ = r.display_one("memory");
            }
            Err(e) => seen.note(&e.to_string()),
        }
        let reserved: BTreeMap<String, String> = ["cpu", "memory", "ephemeral-storage"]
            .iter()
            .map(|k| (k.to_string(), s.clone()))
            .collect();
        let eviction: BTreeMap<String, String> = ["memory.available", "nodefs.available"]
            .iter()
            .map(|k| (k.to_string(), s.clone()))
            .collect();
        let kubelet = KubeletConfiguration {
            kube_reserved: Some(reserved.clone()),
            system_reserved: Some(reserved),
            eviction_hard: Some(eviction),
            ..KubeletConfiguration::default()
        };
        match AllocatableSettings::from_kubelet(Some(&kubelet)) {
            Ok(settings) => {
                for t in &types {
                    let _ = allocatable_with(t, &settings);
                }
                seen.note("kubelet ok");
            }
            Err(e) => seen.note(&e.to_string()),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// interruption messages

fn sqs() -> Harness {
    Box::new(|input, seen| match interruption::parse(&text(input)) {
        Ok(m) => {
            assert!(
                !m.instance_ids.is_empty(),
                "a message about no instance: {m:?}"
            );
            let _ = (m.kind.action(), m.kind.event(), m.kind.metric_label());
            seen.note(&format!("{:?}", m.kind.action()));
        }
        Err(e) => seen.note(&e.to_string()),
    })
}

//! Pod request and limit defaults from RequestPolicies, with LimitRange's semantics.
//!
//! Per container and init container, per resource key, in the API server's order:
//! 1. a limit with no request: the request becomes the limit (the API server's own pod defaulting);
//! 2. no limit: the limit becomes the policy's `default`;
//! 3. still no request: the request becomes `defaultRequest`, or else the (defaulted) limit;
//! 4. `memoryRequestsEqualLimits`: the memory request becomes the limit (or the limit the request);
//!
//! then min / max / maxLimitRequestRatio per container and on the pod's totals (init containers
//! and sidecars counted as the scheduler counts them). Enforce denies; Warn admits with warnings.
//! When several policies select a pod, each resource key is governed by the policy with the
//! highest priority that mentions it (ties: name order).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value, json};

use super::common::{Verdict, quantity_text};
use crate::apis::RequestPolicy;
use crate::apis::requestpolicy::{DEFAULTS_ANNOTATION, MODE_WARN, ResourceList};
use crate::scheduling::resources::{MEMORY, Quantity, parse_quantity};

/// Namespaces whose pods are never touched, besides capstan's own.
pub const EXEMPT_NAMESPACES: &[&str] = &["kube-system"];

/// One broken min / max / ratio rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
    /// From an `Enforce` policy (deny) rather than `Warn` (admit with a warning).
    pub enforce: bool,
}

/// What the policies did to a pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodDefaults {
    /// The pod with defaults applied (equal to the input when nothing applied).
    pub pod: Value,
    /// `cpu request for container app from policy team-a`, one per value set.
    pub applied: Vec<String>,
    pub violations: Vec<Violation>,
    pub warnings: Vec<String>,
    /// Exempt namespace: nothing was looked at.
    pub skipped: bool,
}

impl PodDefaults {
    /// Enforced violations as errors; warned ones and advice as warnings.
    pub fn verdict(&self) -> Verdict {
        let mut v = Verdict::default();
        for x in &self.violations {
            if x.enforce {
                v.error(&x.path, &x.message);
            } else {
                v.warn(format!("{}: {}", x.path, x.message));
            }
        }
        v.warnings.extend(self.warnings.iter().cloned());
        v
    }
}

/// Whether `labels` satisfy a label selector; an absent or empty selector selects everything.
pub fn selector_matches(sel: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = sel else { return true };
    for (k, v) in sel.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        let got = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => got.is_some_and(|g| values.contains(g)),
            "NotIn" => got.is_none_or(|g| !values.contains(g)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            // An unknown operator selects nothing, as apimachinery does.
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The rules governing one resource key, from its winning policy.
#[derive(Debug, Clone, Default)]
struct KeyRule {
    policy: String,
    enforce: bool,
    default_request: Option<String>,
    default: Option<String>,
    min: Option<Quantity>,
    max: Option<Quantity>,
    ratio: Option<Quantity>,
    memory_equal: bool,
    pod_min: Option<Quantity>,
    pod_max: Option<Quantity>,
    pod_ratio: Option<Quantity>,
}

fn keys_of(list: &Option<ResourceList>) -> impl Iterator<Item = &String> {
    list.iter().flat_map(|l| l.keys())
}

fn text(list: &Option<ResourceList>, key: &str) -> Option<String> {
    let s = &list.as_ref()?.get(key)?.0;
    // A value that does not parse was rejected when the policy was admitted; skip it if one slips by.
    parse_quantity(s).ok().map(|_| s.clone())
}

fn quantity(list: &Option<ResourceList>, key: &str) -> Option<Quantity> {
    parse_quantity(&list.as_ref()?.get(key)?.0).ok()
}

/// Picks, per resource key, the rule of the highest-priority policy that mentions the key.
fn rules(policies: &[&RequestPolicy]) -> BTreeMap<String, KeyRule> {
    let mut ordered: Vec<&RequestPolicy> = policies.to_vec();
    ordered.sort_by(|a, b| {
        b.priority()
            .cmp(&a.priority())
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let mut out: BTreeMap<String, KeyRule> = BTreeMap::new();
    for p in ordered {
        let name = p.metadata.name.clone().unwrap_or_default();
        let c = p.spec.containers.clone().unwrap_or_default();
        let pod = p.spec.pod.clone().unwrap_or_default();
        let mut keys: BTreeSet<String> = BTreeSet::new();
        for list in [
            &c.default_request,
            &c.default,
            &c.min,
            &c.max,
            &c.max_limit_request_ratio,
            &pod.min,
            &pod.max,
            &pod.max_limit_request_ratio,
        ] {
            keys.extend(keys_of(list).cloned());
        }
        if c.memory_requests_equal_limits.is_some() {
            keys.insert(MEMORY.to_string());
        }
        for key in keys {
            if out.contains_key(&key) {
                continue;
            }
            out.insert(
                key.clone(),
                KeyRule {
                    policy: name.clone(),
                    enforce: p.mode() != MODE_WARN,
                    default_request: text(&c.default_request, &key),
                    default: text(&c.default, &key),
                    min: quantity(&c.min, &key),
                    max: quantity(&c.max, &key),
                    ratio: quantity(&c.max_limit_request_ratio, &key),
                    memory_equal: key == MEMORY && c.memory_requests_equal_limits == Some(true),
                    pod_min: quantity(&pod.min, &key),
                    pod_max: quantity(&pod.max, &key),
                    pod_ratio: quantity(&pod.max_limit_request_ratio, &key),
                },
            );
        }
    }
    out
}

fn labels_of(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Applies the policies that select `pod` (in `namespace`, whose labels are `namespace_labels`).
/// `own_namespace` is capstan's, exempt like kube-system.
pub fn apply_request_policies(
    pod: &Value,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    policies: &[RequestPolicy],
    own_namespace: &str,
) -> PodDefaults {
    let mut out = PodDefaults {
        pod: pod.clone(),
        ..Default::default()
    };
    if EXEMPT_NAMESPACES.contains(&namespace) || namespace == own_namespace {
        out.skipped = true;
        return out;
    }
    let pod_labels = labels_of(pod.pointer("/metadata/labels"));
    let selected: Vec<&RequestPolicy> = policies
        .iter()
        .filter(|p| {
            selector_matches(p.spec.namespace_selector.as_ref(), namespace_labels)
                && selector_matches(p.spec.pod_selector.as_ref(), &pod_labels)
        })
        .collect();
    let rules = rules(&selected);

    // Per container: defaults, then the container rules. Totals are gathered for the pod rules.
    let mut regular: Vec<(List, List)> = Vec::new();
    let mut init: Vec<(bool, List, List)> = Vec::new();
    for list in ["containers", "initContainers"] {
        let Some(containers) = out
            .pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for (i, c) in containers.iter_mut().enumerate() {
            let Some(c) = c.as_object_mut() else { continue };
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let path = format!("spec.{list}[{i}]");
            let (reqs, lims) = default_container(c, &name, &rules, &mut out.applied);
            check_container(&reqs, &lims, &rules, &path, &name, &mut out.violations);
            if list == "containers" {
                if reqs.values().all(|q| q.nanos() == 0) {
                    out.warnings.push(format!(
                        "{path} (container {name}) has no resource requests; capstan provisions nodes by requests, so it is counted as needing nothing"
                    ));
                }
                regular.push((reqs, lims));
            } else {
                let sidecar = c.get("restartPolicy").and_then(Value::as_str) == Some("Always");
                init.push((sidecar, reqs, lims));
            }
        }
    }
    check_pod(&regular, &init, &rules, &mut out.violations);

    if !out.applied.is_empty() {
        let note = out.applied.join("; ");
        if let Some(meta) = out
            .pod
            .as_object_mut()
            .map(|p| p.entry("metadata").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        {
            let ann = meta.entry("annotations").or_insert_with(|| json!({}));
            if !ann.is_object() {
                *ann = json!({});
            }
            if let Some(ann) = ann.as_object_mut() {
                ann.insert(DEFAULTS_ANNOTATION.into(), Value::String(note));
            }
        }
    }
    out
}

fn read_list(res: Option<&Value>) -> BTreeMap<String, String> {
    res.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| quantity_text(v).map(|s| (k.clone(), s)))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_list(list: &BTreeMap<String, String>) -> BTreeMap<String, Quantity> {
    list.iter()
        .filter_map(|(k, v)| parse_quantity(v).ok().map(|q| (k.clone(), q)))
        .collect()
}

/// Applies steps 1-4 to one container's JSON; returns its requests and limits afterwards.
fn default_container(
    c: &mut Map<String, Value>,
    name: &str,
    rules: &BTreeMap<String, KeyRule>,
    applied: &mut Vec<String>,
) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let resources = c.get("resources");
    let mut requests = read_list(resources.and_then(|r| r.get("requests")));
    let mut limits = read_list(resources.and_then(|r| r.get("limits")));
    let mut set_requests: Vec<String> = Vec::new();
    let mut set_limits: Vec<String> = Vec::new();
    for (key, rule) in rules {
        // A request missing next to a limit is the limit, as the API server defaults it (it
        // does so before admission, so this only shows where there is no API server before us).
        if !requests.contains_key(key)
            && let Some(l) = limits.get(key).cloned()
        {
            requests.insert(key.clone(), l);
            set_requests.push(key.clone());
            applied.push(format!(
                "{key} request = limit for container {name} (policy {})",
                rule.policy
            ));
        }
        if !limits.contains_key(key)
            && let Some(d) = &rule.default
        {
            limits.insert(key.clone(), d.clone());
            set_limits.push(key.clone());
            applied.push(format!(
                "{key} limit for container {name} from policy {}",
                rule.policy
            ));
        }
        if !requests.contains_key(key) {
            let from = rule
                .default_request
                .clone()
                .or_else(|| limits.get(key).cloned());
            if let Some(r) = from {
                requests.insert(key.clone(), r);
                set_requests.push(key.clone());
                applied.push(format!(
                    "{key} request for container {name} from policy {}",
                    rule.policy
                ));
            }
        }
        if rule.memory_equal {
            match (requests.get(key).cloned(), limits.get(key).cloned()) {
                (r, Some(l))
                    if r.as_deref().and_then(|r| parse_quantity(r).ok())
                        != parse_quantity(&l).ok() =>
                {
                    requests.insert(key.clone(), l);
                    set_requests.push(key.clone());
                    applied.push(format!(
                        "{key} request = limit for container {name} from policy {}",
                        rule.policy
                    ));
                }
                (Some(r), None) => {
                    limits.insert(key.clone(), r);
                    set_limits.push(key.clone());
                    applied.push(format!(
                        "{key} limit = request for container {name} from policy {}",
                        rule.policy
                    ));
                }
                _ => {}
            }
        }
    }
    if !set_requests.is_empty() || !set_limits.is_empty() {
        let res = c.entry("resources").or_insert_with(|| json!({}));
        if !res.is_object() {
            *res = json!({});
        }
        if let Some(res) = res.as_object_mut() {
            for (field, keys, list) in [
                ("requests", &set_requests, &requests),
                ("limits", &set_limits, &limits),
            ] {
                if keys.is_empty() {
                    continue;
                }
                let target = res.entry(field).or_insert_with(|| json!({}));
                if !target.is_object() {
                    *target = json!({});
                }
                if let Some(t) = target.as_object_mut() {
                    for k in keys {
                        if let Some(v) = list.get(k) {
                            t.insert(k.clone(), Value::String(v.clone()));
                        }
                    }
                }
            }
        }
    }
    (parse_list(&requests), parse_list(&limits))
}

fn show(q: Quantity) -> String {
    // Integral values print as integers, the rest in milli-units: exact and short.
    if q.nanos() % 1_000_000_000 == 0 {
        (q.nanos() / 1_000_000_000).to_string()
    } else {
        format!("{}m", q.milli_value())
    }
}

#[allow(clippy::too_many_arguments)]
fn bounds(
    scope: &str,
    key: &str,
    req: Option<Quantity>,
    lim: Option<Quantity>,
    min: Option<Quantity>,
    max: Option<Quantity>,
    ratio: Option<Quantity>,
    policy: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let by = format!("(policy {policy})");
    if let Some(min) = min {
        match req {
            None => out.push(format!(
                "minimum {key} {scope} is {}, but no request is specified {by}",
                show(min)
            )),
            Some(r) if r < min => out.push(format!(
                "minimum {key} {scope} is {}, but request is {} {by}",
                show(min),
                show(r)
            )),
            _ => {}
        }
        if let Some(l) = lim.filter(|l| *l < min) {
            out.push(format!(
                "minimum {key} {scope} is {}, but limit is {} {by}",
                show(min),
                show(l)
            ));
        }
    }
    if let Some(max) = max {
        match lim {
            None => out.push(format!(
                "maximum {key} {scope} is {}, but no limit is specified {by}",
                show(max)
            )),
            Some(l) if l > max => out.push(format!(
                "maximum {key} {scope} is {}, but limit is {} {by}",
                show(max),
                show(l)
            )),
            _ => {}
        }
        if let Some(r) = req.filter(|r| *r > max) {
            out.push(format!(
                "maximum {key} {scope} is {}, but request is {} {by}",
                show(max),
                show(r)
            ));
        }
    }
    if let Some(ratio) = ratio {
        match (req.filter(|r| r.nanos() > 0), lim.filter(|l| l.nanos() > 0)) {
            (None, _) => out.push(format!("{key} max limit to request ratio {scope} is {}, but no request is specified or request is 0 {by}", show(ratio))),
            (_, None) => out.push(format!("{key} max limit to request ratio {scope} is {}, but no limit is specified or limit is 0 {by}", show(ratio))),
            (Some(r), Some(l)) => {
                let observed = l.as_f64() / r.as_f64();
                if observed > ratio.as_f64() {
                    out.push(format!("{key} max limit to request ratio {scope} is {}, but provided ratio is {observed:.6} {by}", show(ratio)));
                }
            }
        }
    }
    out
}

fn check_container(
    reqs: &BTreeMap<String, Quantity>,
    lims: &BTreeMap<String, Quantity>,
    rules: &BTreeMap<String, KeyRule>,
    path: &str,
    name: &str,
    violations: &mut Vec<Violation>,
) {
    for (key, rule) in rules {
        let scope = format!("per container ({name})");
        for message in bounds(
            &scope,
            key,
            reqs.get(key).copied(),
            lims.get(key).copied(),
            rule.min,
            rule.max,
            rule.ratio,
            &rule.policy,
        ) {
            violations.push(Violation {
                path: format!("{path}.resources"),
                message,
                enforce: rule.enforce,
            });
        }
    }
}

type List = BTreeMap<String, Quantity>;

fn add(a: &mut List, b: &List) {
    for (k, v) in b {
        let e = a.entry(k.clone()).or_insert(Quantity::ZERO);
        *e = Quantity::from_nanos(e.nanos() + v.nanos());
    }
}

fn max_into(a: &mut List, b: &List) {
    for (k, v) in b {
        let e = a.entry(k.clone()).or_insert(Quantity::ZERO);
        if *v > *e {
            *e = *v;
        }
    }
}

/// The pod's effective total, as the scheduler computes it: containers plus sidecars, or the
/// largest init container step (plus the sidecars started before it) if that is larger.
fn pod_total(regular: &[&List], init: &[(bool, &List)]) -> List {
    let mut total = List::new();
    for c in regular {
        add(&mut total, c);
    }
    let mut sidecars = List::new();
    let mut init_max = List::new();
    for (sidecar, c) in init {
        let mut step = sidecars.clone();
        add(&mut step, c);
        if *sidecar {
            add(&mut total, c);
            sidecars = step.clone();
        }
        max_into(&mut init_max, &step);
    }
    max_into(&mut total, &init_max);
    total
}

fn check_pod(
    regular: &[(List, List)],
    init: &[(bool, List, List)],
    rules: &BTreeMap<String, KeyRule>,
    violations: &mut Vec<Violation>,
) {
    if !rules
        .values()
        .any(|r| r.pod_min.is_some() || r.pod_max.is_some() || r.pod_ratio.is_some())
    {
        return;
    }
    let reqs = pod_total(
        &regular.iter().map(|(r, _)| r).collect::<Vec<_>>(),
        &init.iter().map(|(s, r, _)| (*s, r)).collect::<Vec<_>>(),
    );
    let lims = pod_total(
        &regular.iter().map(|(_, l)| l).collect::<Vec<_>>(),
        &init.iter().map(|(s, _, l)| (*s, l)).collect::<Vec<_>>(),
    );
    for (key, rule) in rules {
        for message in bounds(
            "per pod",
            key,
            reqs.get(key).copied(),
            lims.get(key).copied(),
            rule.pod_min,
            rule.pod_max,
            rule.pod_ratio,
            &rule.policy,
        ) {
            violations.push(Violation {
                path: "spec".into(),
                message,
                enforce: rule.enforce,
            });
        }
    }
}

#[cfg(test)]
#[path = "pod_defaults_tests.rs"]
mod tests;

//! RequestPolicy validation, LimitRange's own rules: valid quantities, for each resource
//! min ≤ defaultRequest ≤ default ≤ max, maxLimitRequestRatio ≥ 1 (and within max / min), a known
//! mode, well-formed selectors.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use super::common::{Verdict, check_label_value, check_qualified_name, check_quantity, decode};
use crate::apis::RequestPolicySpec;
use crate::apis::requestpolicy::{MODE_ENFORCE, MODE_WARN, ResourceList};
use crate::scheduling::resources::Quantity;

pub fn validate_requestpolicy(obj: &Value) -> Verdict {
    let mut v = Verdict::default();
    let Some(spec_value) = obj.get("spec").filter(|s| s.is_object()) else {
        v.error("spec", "required");
        return v;
    };
    let spec: RequestPolicySpec = match decode(spec_value, "spec") {
        Ok(s) => s,
        Err(e) => {
            v.errors.push(e);
            return v;
        }
    };
    if let Some(m) = &spec.mode
        && m != MODE_ENFORCE
        && m != MODE_WARN
    {
        v.error(
            "spec.mode",
            format!("unsupported value {m:?}: supported values: {MODE_ENFORCE}, {MODE_WARN}"),
        );
    }
    for (name, sel) in [
        ("namespaceSelector", &spec.namespace_selector),
        ("podSelector", &spec.pod_selector),
    ] {
        if let Some(s) = sel {
            selector(s, &format!("spec.{name}"), &mut v);
        }
    }
    if let Some(c) = &spec.containers {
        let p = "spec.containers";
        let min = parsed(&c.min, &format!("{p}.min"), &mut v);
        let max = parsed(&c.max, &format!("{p}.max"), &mut v);
        let default = parsed(&c.default, &format!("{p}.default"), &mut v);
        let default_request = parsed(&c.default_request, &format!("{p}.defaultRequest"), &mut v);
        let ratio = parsed(
            &c.max_limit_request_ratio,
            &format!("{p}.maxLimitRequestRatio"),
            &mut v,
        );
        // LimitRange's order: min ≤ defaultRequest ≤ default ≤ max (and min ≤ max).
        let chain = [
            ("min", &min),
            ("defaultRequest", &default_request),
            ("default", &default),
            ("max", &max),
        ];
        for (i, (lo_name, lo)) in chain.iter().enumerate() {
            for (hi_name, hi) in &chain[i + 1..] {
                for (key, l) in lo.iter() {
                    if let Some(h) = hi.get(key)
                        && l > h
                    {
                        v.error(
                            format!("{p}.{hi_name}[{key}]"),
                            format!("{hi_name} {key} must be at least {lo_name} {key}"),
                        );
                    }
                }
            }
        }
        ratio_rules(&ratio, &min, &max, p, &mut v);
    }
    if let Some(pod) = &spec.pod {
        let p = "spec.pod";
        let min = parsed(&pod.min, &format!("{p}.min"), &mut v);
        let max = parsed(&pod.max, &format!("{p}.max"), &mut v);
        let ratio = parsed(
            &pod.max_limit_request_ratio,
            &format!("{p}.maxLimitRequestRatio"),
            &mut v,
        );
        for (key, l) in &min {
            if max.get(key).is_some_and(|h| l > h) {
                v.error(
                    format!("{p}.max[{key}]"),
                    format!("max {key} must be at least min {key}"),
                );
            }
        }
        ratio_rules(&ratio, &min, &max, p, &mut v);
    }
    v
}

fn ratio_rules(
    ratio: &BTreeMap<String, Quantity>,
    min: &BTreeMap<String, Quantity>,
    max: &BTreeMap<String, Quantity>,
    p: &str,
    v: &mut Verdict,
) {
    for (key, r) in ratio {
        let path = format!("{p}.maxLimitRequestRatio[{key}]");
        if r.as_f64() < 1.0 {
            v.error(&path, "must be at least 1");
        } else if let (Some(lo), Some(hi)) = (min.get(key), max.get(key))
            && lo.as_f64() > 0.0
            && r.as_f64() > hi.as_f64() / lo.as_f64()
        {
            v.error(
                &path,
                format!(
                    "is more than max/min ({:.3}) can ever reach",
                    hi.as_f64() / lo.as_f64()
                ),
            );
        }
    }
}

fn parsed(list: &Option<ResourceList>, path: &str, v: &mut Verdict) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    for (key, q) in list.iter().flatten() {
        let p = format!("{path}[{key}]");
        if let Err(e) = check_qualified_name(key) {
            v.error(&p, format!("invalid resource name: {e}"));
            continue;
        }
        match check_quantity(&q.0) {
            Ok(x) => {
                out.insert(key.clone(), x);
            }
            Err(e) => v.error(&p, e),
        }
    }
    out
}

fn selector(s: &LabelSelector, path: &str, v: &mut Verdict) {
    for (k, val) in s.match_labels.iter().flatten() {
        if let Err(e) = check_qualified_name(k) {
            v.error(format!("{path}.matchLabels[{k}]"), e);
        }
        if let Err(e) = check_label_value(val) {
            v.error(format!("{path}.matchLabels[{k}]"), e);
        }
    }
    for (i, e) in s.match_expressions.iter().flatten().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        if let Err(msg) = check_qualified_name(&e.key) {
            v.error(format!("{p}.key"), msg);
        }
        let n = e.values.as_ref().map_or(0, Vec::len);
        match e.operator.as_str() {
            "In" | "NotIn" if n == 0 => v.error(
                format!("{p}.values"),
                format!("operator {} needs at least one value", e.operator),
            ),
            "Exists" | "DoesNotExist" if n > 0 => v.error(
                format!("{p}.values"),
                format!("operator {} takes no values", e.operator),
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => v.error(
                format!("{p}.operator"),
                format!(
                    "unsupported value {other:?}: supported values: In, NotIn, Exists, DoesNotExist"
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(spec: Value) -> Value {
        json!({"apiVersion": "capstan.dev/v1alpha1", "kind": "RequestPolicy", "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn issue_example_is_valid() {
        let p = policy(json!({
            "namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {}, "mode": "Enforce", "priority": 0,
            "containers": {"defaultRequest": {"cpu": "250m", "memory": "256Mi"}, "default": {"cpu": "1", "memory": "512Mi"},
                           "min": {"cpu": "50m", "memory": "64Mi"}, "max": {"cpu": "8", "memory": "32Gi"},
                           "maxLimitRequestRatio": {"cpu": "4"}, "memoryRequestsEqualLimits": true},
            "pod": {"max": {"cpu": "16", "memory": "64Gi"}}
        }));
        let v = validate_requestpolicy(&p);
        assert!(v.is_allowed(), "{:?}", v.errors);
    }

    #[test]
    fn invalid_cases_name_their_field() {
        let cases = [
            (json!({"mode": "Audit"}), "spec.mode"),
            (
                json!({"containers": {"min": {"cpu": "lots"}}}),
                "spec.containers.min[cpu]",
            ),
            (
                json!({"containers": {"min": {"cpu": "2"}, "max": {"cpu": "1"}}}),
                "spec.containers.max[cpu]",
            ),
            (
                json!({"containers": {"defaultRequest": {"cpu": "2"}, "default": {"cpu": "1"}}}),
                "spec.containers.default[cpu]",
            ),
            (
                json!({"containers": {"default": {"memory": "2Gi"}, "max": {"memory": "1Gi"}}}),
                "spec.containers.max[memory]",
            ),
            (
                json!({"containers": {"min": {"memory": "1Gi"}, "defaultRequest": {"memory": "1Mi"}}}),
                "spec.containers.defaultRequest[memory]",
            ),
            (
                json!({"containers": {"maxLimitRequestRatio": {"cpu": "0.5"}}}),
                "spec.containers.maxLimitRequestRatio[cpu]",
            ),
            (
                json!({"containers": {"min": {"cpu": "1"}, "max": {"cpu": "2"}, "maxLimitRequestRatio": {"cpu": "3"}}}),
                "spec.containers.maxLimitRequestRatio[cpu]",
            ),
            (
                json!({"pod": {"min": {"cpu": "2"}, "max": {"cpu": "1"}}}),
                "spec.pod.max[cpu]",
            ),
            (
                json!({"pod": {"max": {"memory": "-1Gi"}}}),
                "spec.pod.max[memory]",
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}}),
                "spec.namespaceSelector.matchExpressions[0].values",
            ),
            (
                json!({"podSelector": {"matchExpressions": [{"key": "team", "operator": "Near"}]}}),
                "spec.podSelector.matchExpressions[0].operator",
            ),
            (json!({"priority": "high"}), "spec.priority"),
        ];
        for (spec, path) in cases {
            let v = validate_requestpolicy(&policy(spec.clone()));
            assert!(
                v.errors.iter().any(|e| e.path == path),
                "{spec}: want {path}, got {:?}",
                v.errors
            );
        }
    }
}

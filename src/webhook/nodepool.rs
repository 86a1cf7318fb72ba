//! NodePool defaulting (Karpenter v1's defaults, plus requirement defaults for a NodePool that
//! has none) and validation, each error carrying its field path.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde_json::{Value, json};

use super::budgets::validate_budgets;
use super::common::{
    FieldError, Verdict, check_duration, check_label_value, check_qualified_name, check_quantity,
    decode, quantity_text,
};
use crate::apis::common::REQUIREMENT_OPERATORS;
use crate::apis::labels::{self, restricted_reason};
use crate::apis::nodepool::{
    CONSOLIDATION_POLICY_WHEN_EMPTY, CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED,
    DEFAULT_BUDGET_NODES, DEFAULT_CONSOLIDATE_AFTER, DEFAULT_EXPIRE_AFTER, NodeClaimTemplate,
};
use crate::apis::{NodeSelectorRequirementWithMinValues, Taint};
use crate::cloud::catalog::{AllocatableSettings, Catalog, instance_options};
use crate::scheduling::instance::InstanceOption;
use crate::scheduling::requirements::Requirements;

pub const DEFAULT_NODECLASS_GROUP: &str = "karpenter.k8s.aws";
pub const DEFAULT_NODECLASS_KIND: &str = "EC2NodeClass";
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// The requirements a NodePool gets when it has none: a minimal NodePool then launches ordinary,
/// current, on-demand Linux x86 nodes rather than anything in the catalog.
pub fn default_requirements() -> Value {
    json!([
        {"key": labels::OS, "operator": "In", "values": ["linux"]},
        {"key": labels::ARCH, "operator": "In", "values": ["amd64"]},
        {"key": labels::CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]},
        {"key": labels::INSTANCE_CATEGORY, "operator": "In", "values": ["c", "m", "r"]},
        {"key": labels::INSTANCE_GENERATION, "operator": "Gt", "values": ["2"]},
    ])
}

/// Applies the defaults to a NodePool object, returning the defaulted copy (diff it for a patch).
/// Fields already set, even to odd values, are left for validation to judge.
pub fn default_nodepool(obj: &Value) -> Value {
    let mut out = obj.clone();
    let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) else {
        return out;
    };
    let disruption = spec.entry("disruption").or_insert_with(|| json!({}));
    if let Some(d) = disruption.as_object_mut() {
        d.entry("consolidationPolicy")
            .or_insert_with(|| json!(CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED));
        d.entry("consolidateAfter")
            .or_insert_with(|| json!(DEFAULT_CONSOLIDATE_AFTER));
        d.entry("budgets")
            .or_insert_with(|| json!([{"nodes": DEFAULT_BUDGET_NODES}]));
    }
    let Some(tspec) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    else {
        return out;
    };
    tspec
        .entry("expireAfter")
        .or_insert_with(|| json!(DEFAULT_EXPIRE_AFTER));
    if let Some(r) = tspec.get_mut("nodeClassRef").and_then(Value::as_object_mut) {
        r.entry("group")
            .or_insert_with(|| json!(DEFAULT_NODECLASS_GROUP));
        r.entry("kind")
            .or_insert_with(|| json!(DEFAULT_NODECLASS_KIND));
    }
    let no_requirements = match tspec.get("requirements") {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    if no_requirements {
        tspec.insert("requirements".into(), default_requirements());
    }
    out
}

/// The instance types "no instance type can satisfy" is judged against: the embedded us-east-1
/// catalog, built once (about a millisecond per validation afterwards).
pub fn default_instance_options() -> Arc<Vec<Arc<InstanceOption>>> {
    static OPTIONS: OnceLock<Arc<Vec<Arc<InstanceOption>>>> = OnceLock::new();
    OPTIONS
        .get_or_init(|| {
            let catalog = Catalog::for_region("us-east-1", None);
            let options = match AllocatableSettings::from_kubelet(None) {
                Ok(settings) => instance_options(&catalog, &settings, SystemTime::now()),
                Err(_) => Vec::new(),
            };
            Arc::new(options)
        })
        .clone()
}

/// Validates a NodePool (`obj`), and on update the transition from `old`. `instance_types` are
/// what requirement sets are checked against for a warning; empty skips that check.
pub fn validate_nodepool(
    obj: &Value,
    old: Option<&Value>,
    instance_types: &[Arc<InstanceOption>],
) -> Verdict {
    let mut v = Verdict::default();
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        v.error("spec", "required");
        return v;
    };

    // Budgets first, on JSON, so every budget mistake is reported even if the rest fails to decode.
    let disruption = spec.get("disruption");
    if let Some(budgets) = disruption
        .and_then(|d| d.get("budgets"))
        .filter(|b| !b.is_null())
    {
        v.extend(validate_budgets(budgets, "spec.disruption.budgets"));
    }
    if let Some(d) = disruption.filter(|d| !d.is_null()) {
        validate_disruption(d, &mut v);
    }

    match spec.get("template") {
        None => v.error("spec.template", "required"),
        Some(t) => match decode::<NodeClaimTemplate>(t, "spec.template") {
            Ok(template) => validate_template(&template, instance_types, &mut v),
            Err(e) => v.errors.push(e),
        },
    }

    if let Some(limits) = spec.get("limits").filter(|l| !l.is_null()) {
        match limits.as_object() {
            Some(map) => {
                for (name, q) in map {
                    let path = format!("spec.limits[{name}]");
                    match quantity_text(q) {
                        Some(s) => {
                            if let Err(e) = check_quantity(&s) {
                                v.error(path, e);
                            }
                        }
                        None => v.error(path, "must be a quantity such as 100, 1000Gi or 500m"),
                    }
                }
            }
            None => v.error("spec.limits", "must be a map of resource name to quantity"),
        }
    }

    match spec.get("weight") {
        None | Some(Value::Null) => {}
        Some(w) => match w.as_i64() {
            Some(n) if (1..=100).contains(&n) => {}
            _ => v.error(
                "spec.weight",
                format!("invalid value {w}: must be an integer from 1 to 100"),
            ),
        },
    }

    if let Some(old) = old {
        validate_update(obj, old, &mut v);
    }
    v
}

fn validate_disruption(d: &Value, v: &mut Verdict) {
    let Some(d) = d.as_object() else {
        v.error("spec.disruption", "must be an object");
        return;
    };
    let policy = d.get("consolidationPolicy").and_then(Value::as_str);
    match d.get("consolidationPolicy") {
        None | Some(Value::Null) => {}
        Some(p)
            if policy.is_some_and(|p| {
                p == CONSOLIDATION_POLICY_WHEN_EMPTY
                    || p == CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED
            }) =>
        {
            let _ = p;
        }
        Some(p) => {
            let mut msg = format!(
                "unsupported value {p}: supported values: {CONSOLIDATION_POLICY_WHEN_EMPTY}, {CONSOLIDATION_POLICY_WHEN_EMPTY_OR_UNDERUTILIZED}"
            );
            if d.contains_key("consolidateAfter") {
                msg.push_str(" (consolidateAfter needs a known policy to apply to)");
            }
            v.error("spec.disruption.consolidationPolicy", msg);
        }
    }
    match d.get("consolidateAfter") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if let Err(e) = check_duration(s, true) {
                v.error("spec.disruption.consolidateAfter", e);
            }
        }
        Some(other) => v.error(
            "spec.disruption.consolidateAfter",
            format!("invalid value {other}: must be a duration string such as 30s or Never"),
        ),
    }
}

fn validate_template(
    t: &NodeClaimTemplate,
    instance_types: &[Arc<InstanceOption>],
    v: &mut Verdict,
) {
    const P: &str = "spec.template";
    if let Some(meta) = &t.metadata {
        for (k, val) in meta.labels.iter().flatten() {
            let path = format!("{P}.metadata.labels[{k}]");
            if let Err(e) = check_qualified_name(k) {
                v.error(&path, format!("invalid label key: {e}"));
            } else if let Some(r) = restricted_reason(k) {
                v.error(&path, r);
            }
            if let Err(e) = check_label_value(val) {
                v.error(&path, format!("invalid label value: {e}"));
            }
        }
    }
    validate_taints(&t.spec.taints, &format!("{P}.spec.taints"), v);
    validate_taints(
        &t.spec.startup_taints,
        &format!("{P}.spec.startupTaints"),
        v,
    );

    let reqs_path = format!("{P}.spec.requirements");
    if t.spec.requirements.len() > 100 {
        v.error(&reqs_path, "must have at most 100 requirements");
    }
    let mut all_ok = true;
    for (i, r) in t.spec.requirements.iter().enumerate() {
        all_ok &= validate_requirement(r, &format!("{reqs_path}[{i}]"), v);
    }
    if all_ok && !instance_types.is_empty() {
        warn_unsatisfiable(t, instance_types, v);
    }

    let r = &t.spec.node_class_ref;
    let rp = format!("{P}.spec.nodeClassRef");
    for (field, value) in [("group", &r.group), ("kind", &r.kind), ("name", &r.name)] {
        if value.is_empty() {
            v.error(format!("{rp}.{field}"), "required");
        } else if value.contains('/') {
            v.error(format!("{rp}.{field}"), "must not contain '/'");
        }
    }
    if let Some(e) = &t.spec.expire_after
        && let Err(msg) = check_duration(e, true)
    {
        v.error(format!("{P}.spec.expireAfter"), msg);
    }
    if let Some(g) = &t.spec.termination_grace_period
        && let Err(msg) = check_duration(g, false)
    {
        v.error(format!("{P}.spec.terminationGracePeriod"), msg);
    }
}

fn validate_taints(taints: &[Taint], path: &str, v: &mut Verdict) {
    for (i, t) in taints.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if let Err(e) = check_qualified_name(&t.key) {
            v.error(format!("{p}.key"), format!("invalid taint key: {e}"));
        }
        if let Some(val) = &t.value
            && let Err(e) = check_label_value(val)
        {
            v.error(format!("{p}.value"), format!("invalid taint value: {e}"));
        }
        if !TAINT_EFFECTS.contains(&t.effect.as_str()) {
            v.error(
                format!("{p}.effect"),
                format!(
                    "unsupported value {:?}: supported values: {}",
                    t.effect,
                    TAINT_EFFECTS.join(", ")
                ),
            );
        }
    }
}

/// Values the well-known labels may take; None where any value is fine.
fn known_values(key: &str) -> Option<&'static [&'static str]> {
    match key {
        labels::CAPACITY_TYPE => Some(&[
            labels::CAPACITY_TYPE_SPOT,
            labels::CAPACITY_TYPE_ON_DEMAND,
            labels::CAPACITY_TYPE_RESERVED,
        ]),
        labels::ARCH => Some(&["amd64", "arm64"]),
        labels::OS => Some(&["linux", "windows"]),
        _ => None,
    }
}

/// Returns whether the requirement is well-formed (so the set may be checked against the catalog).
fn validate_requirement(
    r: &NodeSelectorRequirementWithMinValues,
    path: &str,
    v: &mut Verdict,
) -> bool {
    let before = v.errors.len();
    if let Err(e) = check_qualified_name(&r.key) {
        v.error(format!("{path}.key"), format!("invalid label key: {e}"));
    } else if let Some(reason) = restricted_reason(&r.key) {
        v.error(format!("{path}.key"), reason);
    }
    let op = r.operator.as_str();
    let values = r.values();
    if !REQUIREMENT_OPERATORS.contains(&op) {
        v.error(
            format!("{path}.operator"),
            format!(
                "unsupported value {op:?}: supported values: {}",
                REQUIREMENT_OPERATORS.join(", ")
            ),
        );
    } else {
        match op {
            "In" | "NotIn" if values.is_empty() => v.error(
                format!("{path}.values"),
                format!("operator {op} needs at least one value"),
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => v.error(
                format!("{path}.values"),
                format!("operator {op} takes no values"),
            ),
            "Gt" | "Lt" | "Gte" | "Lte" => match values {
                [one] if one.parse::<i64>().is_ok_and(|n| n >= 0) => {}
                _ => v.error(
                    format!("{path}.values"),
                    format!(
                        "operator {op} needs exactly one non-negative integer value, got {values:?}"
                    ),
                ),
            },
            _ => {}
        }
        if op == "In" || op == "NotIn" {
            for (j, val) in values.iter().enumerate() {
                if let Err(e) = check_label_value(val) {
                    v.error(
                        format!("{path}.values[{j}]"),
                        format!("invalid label value: {e}"),
                    );
                } else if let Some(known) = known_values(&r.key)
                    && !known.contains(&val.as_str())
                {
                    v.error(
                        format!("{path}.values[{j}]"),
                        format!(
                            "unsupported value {val:?} for {}: supported values: {}",
                            r.key,
                            known.join(", ")
                        ),
                    );
                }
            }
        }
    }
    if let Some(m) = r.min_values {
        if !(1..=50).contains(&m) {
            v.error(
                format!("{path}.minValues"),
                format!("invalid value {m}: must be from 1 to 50"),
            );
        } else if op == "In" && (m as usize) > values.len() {
            v.error(
                format!("{path}.minValues"),
                format!(
                    "minValues {m} is more than the {} value(s) listed; list at least {m}",
                    values.len()
                ),
            );
        }
    }
    v.errors.len() == before
}

fn warn_unsatisfiable(
    t: &NodeClaimTemplate,
    instance_types: &[Arc<InstanceOption>],
    v: &mut Verdict,
) {
    let Ok(mut reqs) = Requirements::from_nodepool(&t.spec.requirements) else {
        return;
    };
    if let Some(l) = t.metadata.as_ref().and_then(|m| m.labels.as_ref()) {
        reqs.add_all(&Requirements::from_labels(l));
    }
    if !instance_types.iter().any(|it| it.compatible(&reqs)) {
        v.warn(
            "spec.template.spec.requirements: no instance type in the catalog can satisfy these requirements; this NodePool will launch nothing",
        );
        return;
    }
    // minValues: the compatible types must still offer that many distinct values.
    for r in reqs.iter() {
        let Some(min) = r.min_values else { continue };
        let mut seen = std::collections::BTreeSet::new();
        for it in instance_types.iter().filter(|it| it.compatible(&reqs)) {
            seen.extend(it.values_for(&r.key, &reqs));
        }
        if seen.len() < min {
            v.warn(format!(
                "spec.template.spec.requirements: {} has minValues {min} but the catalog's compatible instance types offer only {} value(s)",
                r.key,
                seen.len()
            ));
        }
    }
}

fn validate_update(obj: &Value, old: &Value, v: &mut Verdict) {
    const REF: &str = "/spec/template/spec/nodeClassRef";
    let (Some(new_ref), Some(old_ref)) = (obj.pointer(REF), old.pointer(REF)) else {
        return;
    };
    for field in ["group", "kind"] {
        let (n, o) = (new_ref.get(field), old_ref.get(field));
        if n != o {
            v.errors.push(FieldError::new(
                format!("spec.template.spec.nodeClassRef.{field}"),
                format!(
                    "is immutable: was {}, now {}; create a new NodePool instead",
                    o.cloned().unwrap_or(Value::Null),
                    n.cloned().unwrap_or(Value::Null)
                ),
            ));
        }
    }
    // Karpenter allows a new name (it drifts the nodes); say what that costs.
    if new_ref.get("name") != old_ref.get("name") {
        v.warn(
            "spec.template.spec.nodeClassRef.name changed: every node of this NodePool is now drifted and will be replaced",
        );
    }
}

#[cfg(test)]
#[path = "nodepool_tests.rs"]
mod tests;

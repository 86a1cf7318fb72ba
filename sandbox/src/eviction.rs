//! `pods/<name>/eviction` and PodDisruptionBudget status: the disruption controller's
//! arithmetic, done inline since there is no controller manager.
//!
//! For each PDB: `expectedPods` = pods its selector matches in its namespace (the real
//! controller asks the pods' owners for their scale; counting pods is the same for pods that
//! exist), `currentHealthy` = those Running with condition Ready=True and not being deleted,
//! `desiredHealthy` from `minAvailable` or `expectedPods - maxUnavailable` (percentages rounded
//! up, as the real controller), `disruptionsAllowed = max(0, currentHealthy - desiredHealthy)`.
//! An eviction of a healthy pod needs one allowed disruption from every PDB covering it (more
//! than one PDB is a 500, as on the real server); otherwise 429 TooManyRequests with the real
//! message. Pending or finished pods, and pods already being deleted, are evicted without
//! checks; an unhealthy pod may go while the budget is met (`IfHealthyBudget`).

use serde_json::{Value, json};

use crate::api::{Api, DeleteOptions};
use crate::errors::{ApiError, Cause, Details};
use crate::object::{labels, name, parse_rv, resource_version};
use crate::registry::{GroupResource, ResourceType};
use crate::selectors::matches_label_selector;

fn pdb_gr() -> GroupResource {
    GroupResource {
        group: "policy".into(),
        resource: "poddisruptionbudgets".into(),
    }
}

fn pods_gr() -> GroupResource {
    GroupResource {
        group: String::new(),
        resource: "pods".into(),
    }
}

/// A PDB's selector against a pod. An empty selector matches every pod in the namespace
/// (policy/v1 semantics); a malformed one matches none.
fn selects(selector: Option<&Value>, pod: &Value) -> bool {
    selector.is_some_and(|sel| matches_label_selector(sel, labels(pod)))
}

fn is_healthy(pod: &Value) -> bool {
    let running = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        });
    running && ready && pod.pointer("/metadata/deletionTimestamp").is_none()
}

/// An int-or-percent scaled against `total`, rounding up (as `GetScaledValueFromIntOrPercent`
/// with roundUp = true).
fn scaled(v: &Value, total: i64) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("invalid value {n}")),
        Value::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok((pct * total + 99) / 100)
        }
        other => Err(format!("invalid value {other}")),
    }
}

/// The status numbers of one PDB given the pods of its namespace.
struct Budget {
    expected: i64,
    healthy: i64,
    desired: i64,
    allowed: i64,
}

fn budget(pdb: &Value, pods: &[std::sync::Arc<Value>]) -> Result<Budget, String> {
    let selector = pdb.pointer("/spec/selector");
    let matched: Vec<&Value> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| selects(selector, p))
        .collect();
    let expected = matched.len() as i64;
    let healthy = matched.iter().filter(|p| is_healthy(p)).count() as i64;
    let desired = if let Some(min) = pdb.pointer("/spec/minAvailable") {
        scaled(min, expected)?
    } else if let Some(max) = pdb.pointer("/spec/maxUnavailable") {
        (expected - scaled(max, expected)?).max(0)
    } else {
        0
    };
    Ok(Budget {
        expected,
        healthy,
        desired,
        allowed: (healthy - desired).max(0),
    })
}

fn status_of(pdb: &Value, b: &Budget) -> Value {
    let allowed = b.allowed > 0;
    let previous = pdb
        .pointer("/status/conditions/0")
        .filter(|c| {
            c.get("status").and_then(Value::as_str) == Some(if allowed { "True" } else { "False" })
        })
        .and_then(|c| c.get("lastTransitionTime").cloned());
    json!({
        "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        "expectedPods": b.expected,
        "currentHealthy": b.healthy,
        "desiredHealthy": b.desired,
        "disruptionsAllowed": b.allowed,
        "conditions": [{
            "type": "DisruptionAllowed",
            "status": if allowed { "True" } else { "False" },
            "reason": if allowed { "SufficientPods" } else { "InsufficientPods" },
            "message": "",
            "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "lastTransitionTime": previous.unwrap_or_else(|| json!(crate::object::now_rfc3339())),
        }],
    })
}

/// Recompute the status of every PDB in `ns` (after a pod or PDB changed there). Status writes
/// go straight to the store, so they do not trigger this again; a concurrent write wins and the
/// next change recomputes.
pub fn refresh_pdb_status(api: &Api, ns: &str) {
    let (pdbs, _) = api.store.list(&pdb_gr(), Some(ns), |_| true);
    if pdbs.is_empty() {
        return;
    }
    let (pods, _) = api.store.list(&pods_gr(), Some(ns), |_| true);
    for pdb in pdbs {
        let Ok(b) = budget(&pdb, &pods) else {
            continue;
        };
        let status = status_of(&pdb, &b);
        let same = [
            "expectedPods",
            "currentHealthy",
            "desiredHealthy",
            "disruptionsAllowed",
            "observedGeneration",
        ]
        .iter()
        .all(|k| pdb.pointer(&format!("/status/{k}")) == status.get(*k));
        if same {
            continue;
        }
        let mut new = (*pdb).clone();
        if let Some(o) = new.as_object_mut() {
            o.insert("status".into(), status);
        }
        if let Ok(Some(rv)) = parse_rv(resource_version(&pdb)) {
            let _ = api.store.update(&pdb_gr(), new, rv);
        }
    }
}

fn too_many_requests(pdb: &str, b: &Budget) -> ApiError {
    let mut err = ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    err.details = Some(Box::new(Details {
        name: String::new(),
        group: String::new(),
        kind: String::new(),
        causes: vec![Cause {
            reason: "DisruptionBudget",
            message: format!(
                "The disruption budget {pdb} needs {} healthy pods and has {} currently",
                b.desired, b.healthy
            ),
            field: String::new(),
        }],
    }));
    err
}

/// POST `pods/<name>/eviction`: delete the pod unless a PodDisruptionBudget forbids it.
pub fn evict(
    api: &Api,
    pods: &ResourceType,
    ns: &str,
    pod_name: &str,
    eviction: &Value,
) -> Result<(), ApiError> {
    let body_name = name(eviction);
    if !body_name.is_empty() && body_name != pod_name {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object: {pod_name} != {body_name}"
        )));
    }
    let pod = api.get(pods, ns, pod_name)?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    let exempt = matches!(phase, "Pending" | "Succeeded" | "Failed" | "")
        || pod.pointer("/metadata/deletionTimestamp").is_some();
    if !exempt {
        let (pdbs, _) = api.store.list(&pdb_gr(), Some(ns), |p| {
            selects(p.pointer("/spec/selector"), &pod)
        });
        if pdbs.len() > 1 {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        if let Some(pdb) = pdbs.first() {
            let (all, _) = api.store.list(&pods_gr(), Some(ns), |_| true);
            let b = budget(pdb, &all).map_err(ApiError::internal)?;
            let ok = if is_healthy(&pod) {
                b.allowed >= 1
            } else {
                b.healthy >= b.desired
            };
            if !ok {
                return Err(too_many_requests(name(pdb), &b));
            }
        }
    }
    let opts = DeleteOptions {
        precondition_uid: eviction
            .pointer("/deleteOptions/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..DeleteOptions::default()
    };
    api.delete(pods, ns, pod_name, &opts)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pod(app: &str, healthy: bool) -> Arc<Value> {
        Arc::new(json!({"metadata": {"labels": {"app": app}}, "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": if healthy { "True" } else { "False" }}]}}))
    }

    #[test]
    fn budgets() {
        let pods = vec![
            pod("a", true),
            pod("a", true),
            pod("a", false),
            pod("b", true),
        ];
        let pdb = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "minAvailable": 2}});
        let b = budget(&pdb, &pods).expect("budget");
        assert_eq!((b.expected, b.healthy, b.desired, b.allowed), (3, 2, 2, 0));
        let pdb =
            json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "maxUnavailable": "50%"}});
        let b = budget(&pdb, &pods).expect("budget");
        assert_eq!((b.desired, b.allowed), (1, 1));
        let pdb = json!({"spec": {"selector": {}, "minAvailable": "50%"}});
        let b = budget(&pdb, &pods).expect("budget");
        assert_eq!((b.expected, b.desired, b.allowed), (4, 2, 1));
    }
}

//! Which pods ask for new capacity: the ones kube-scheduler gave up on.

use k8s_openapi::api::core::v1::Pod;

/// Pending, unbound, not being deleted, marked `PodScheduled=False` with reason `Unschedulable`
/// by the scheduler, and not a DaemonSet's (those follow nodes; they never cause one).
pub fn is_provisionable(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() || owned_by_daemonset(pod) {
        return false;
    }
    let spec_bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if spec_bound {
        return false;
    }
    let Some(status) = &pod.status else {
        return false;
    };
    if status.phase.as_deref().is_some_and(|p| p != "Pending") {
        return false;
    }
    status.conditions.iter().flatten().any(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    })
}

pub fn owned_by_daemonset(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true))
}

/// Not finished: its requests still hold room on its node.
pub fn is_active(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn unschedulable() -> serde_json::Value {
        json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]})
    }

    #[test]
    fn only_unschedulable_unbound_non_daemonset_pods() {
        let p = pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": []}, "status": unschedulable()}),
        );
        assert!(is_provisionable(&p));

        let fresh = pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": []}, "status": {"phase": "Pending"}}),
        );
        assert!(!is_provisionable(&fresh), "not yet seen by the scheduler");

        let bound = pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "nodeName": "n1"}, "status": unschedulable()}),
        );
        assert!(!is_provisionable(&bound));

        let ds = pod(json!({"metadata": {"name": "a", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u", "controller": true}]},
            "spec": {"containers": []}, "status": unschedulable()}));
        assert!(!is_provisionable(&ds));

        let deleting = pod(
            json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": []}, "status": unschedulable()}),
        );
        assert!(!is_provisionable(&deleting));
    }
}

//! A kubelet stand-in for every node at once: pods bound to a Ready node start at once —
//! phase `Running`, every container running and ready, conditions `Initialized`,
//! `ContainersReady`, `Ready` and `PodScheduled` all `True`, a host IP from the node and a
//! made-up pod IP. Nothing else a kubelet does is simulated (probes, restarts, termination
//! grace, node status heartbeats).

use serde_json::{Value, json};

use crate::api::{Api, Sub};
use crate::object::{deletion_timestamp, name, namespace, now_rfc3339, uid};
use crate::registry::ResourceType;
use crate::scheduler::is_ready;

/// A stable fake pod IP in 10.244.0.0/16, from the pod's uid.
fn pod_ip(pod: &Value) -> String {
    let h = uid(pod).bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("10.244.{}.{}", (h >> 8) & 0xff, (h & 0xff).max(1))
}

fn host_ip(node: &Value) -> String {
    node.pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
        })
        .and_then(|x| x.get("address").and_then(Value::as_str))
        .unwrap_or("")
        .to_string()
}

/// The status of a pod that just started on `node`.
fn running_status(pod: &Value, node: &Value) -> Value {
    let now = now_rfc3339();
    let statuses: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    json!({
                        "name": c.get("name").cloned().unwrap_or(json!("")),
                        "image": c.get("image").cloned().unwrap_or(json!("")),
                        "imageID": "",
                        "ready": true,
                        "started": true,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let condition = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    let ip = pod_ip(pod);
    let host = host_ip(node);
    json!({
        "phase": "Running",
        "conditions": [
            condition("PodReadyToStartContainers"),
            condition("Initialized"),
            condition("Ready"),
            condition("ContainersReady"),
            condition("PodScheduled"),
        ],
        "hostIP": host,
        "hostIPs": if host.is_empty() { json!([]) } else { json!([{"ip": host}]) },
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "containerStatuses": statuses,
    })
}

/// Start every pod bound to a Ready node that has not started yet.
pub fn run_pods(api: &Api, pods_rt: &ResourceType, nodes_rt: &ResourceType) {
    let (pods, _) = api.store.list(&pods_rt.gr(), None, |p| {
        let bound = p
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let phase = p.pointer("/status/phase").and_then(Value::as_str);
        bound && deletion_timestamp(p).is_none() && matches!(phase, None | Some("Pending"))
    });
    for pod in pods {
        let node_name = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(node) = api.store.get(&nodes_rt.gr(), "", node_name) else {
            continue;
        };
        if !is_ready(&node) {
            continue;
        }
        let mut new = (*pod).clone();
        if let Some(o) = new.as_object_mut() {
            o.insert("status".into(), running_status(&pod, &node));
        }
        if let Err(e) = api.update(pods_rt, namespace(&pod), name(&pod), new, Sub::Status) {
            tracing::debug!(pod = name(&pod), error = %e, "starting pod");
        }
    }
}

//! The kubelet of every simulated instance: once an instance has booted, its Node registers
//! through the Kubernetes API with the labels and taints its user data would give it (the
//! NodeClaim's, plus `karpenter.sh/unregistered:NoExecute` as Karpenter v1's bootstrap adds),
//! its capacity and allocatable, and Ready. Pods are then run by the API server's own kubelet
//! (the sandbox's).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::task::JoinHandle;

use crate::apis::labels::{HOSTNAME, UNREGISTERED_TAINT_KEY};

use super::sim::{LaunchedNode, SimProvider};

/// How often booted instances are looked for.
const POLL: Duration = Duration::from_millis(100);

pub struct SimKubelet {
    task: JoinHandle<()>,
}

impl SimKubelet {
    /// Registers the Node of each instance `boot_delay` after its launch.
    pub fn spawn(client: Client, cloud: Arc<SimProvider>, boot_delay: Duration) -> Self {
        let task = tokio::spawn(async move {
            let nodes: Api<Node> = Api::all(client);
            let mut registered: BTreeSet<String> = BTreeSet::new();
            loop {
                for launched in cloud.running() {
                    if registered.contains(&launched.instance.id) {
                        continue;
                    }
                    let booted = launched
                        .instance
                        .launch_time
                        .elapsed()
                        .is_ok_and(|e| e >= boot_delay);
                    if !booted {
                        continue;
                    }
                    match nodes
                        .create(&PostParams::default(), &node_for(&launched))
                        .await
                    {
                        Ok(_) => {
                            registered.insert(launched.instance.id.clone());
                        }
                        Err(kube::Error::Api(e)) if e.code == 409 => {
                            registered.insert(launched.instance.id.clone());
                        }
                        Err(e) => tracing::warn!(
                            instance = %launched.instance.id,
                            "simulated kubelet could not register its Node: {e}"
                        ),
                    }
                }
                tokio::time::sleep(POLL).await;
            }
        });
        SimKubelet { task }
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// `ip-10-0-1-23.<region>.compute.internal`-style names, derived from the instance id so that
/// they are stable and unique.
pub fn node_name(instance_id: &str, region: &str) -> String {
    let n = u64::from_str_radix(instance_id.trim_start_matches("i-"), 16).unwrap_or(0);
    let (a, b, c) = ((n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    format!("ip-10-{a}-{b}-{c}.{region}.compute.internal")
}

pub fn node_for(launched: &LaunchedNode) -> Node {
    let region = launched
        .labels
        .get(crate::apis::labels::REGION)
        .cloned()
        .unwrap_or_default();
    let name = node_name(&launched.instance.id, &region);
    let mut labels = launched.labels.clone();
    labels.insert(HOSTNAME.into(), name.clone());
    let mut taints: Vec<k8s_openapi::api::core::v1::Taint> = launched
        .taints
        .iter()
        .map(|t| k8s_openapi::api::core::v1::Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            time_added: None,
        })
        .collect();
    taints.push(k8s_openapi::api::core::v1::Taint {
        key: UNREGISTERED_TAINT_KEY.into(),
        value: None,
        effect: "NoExecute".into(),
        time_added: None,
    });
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    Node {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some(launched.instance.provider_id.clone()),
            taints: Some(taints),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            capacity: Some(launched.capacity.clone()),
            allocatable: Some(launched.allocatable.clone()),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("kubelet is posting ready status (simulated)".into()),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(now),
            }]),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_stable_and_distinct() {
        let a = node_name("i-0000000000005a0001", "us-east-1");
        let b = node_name("i-0000000000005a0002", "us-east-1");
        assert_eq!(a, "ip-10-90-0-1.us-east-1.compute.internal");
        assert_ne!(a, b);
    }
}

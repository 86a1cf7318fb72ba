//! The background loop standing in for kube-controller-manager, kube-scheduler and the
//! kubelets: whenever pods, nodes, Deployments, ReplicaSets, DaemonSets or Jobs change (the
//! store's event fan-out, no polling), one pass runs the workload controllers
//! ([`crate::workloads`], [`crate::jobs`]), the scheduler ([`crate::scheduler`]) and the kubelet
//! ([`crate::kubelet`]) over the in-memory store; a Job's pod that is due to finish also wakes it. Passes are level-triggered and write only
//! differences, so the loop settles and then sleeps until the next change: no CPU when idle.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::select_all;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::jobs;
use crate::kubelet;
use crate::scheduler;
use crate::store::StoreEvent;
use crate::workloads::{self, Kinds};

/// Changes arriving this close together are handled by one pass.
const SETTLE: Duration = Duration::from_millis(10);
/// Safety net: a pass at least this often even without events (a write that lost a race is
/// retried; nothing else depends on it).
const RESYNC: Duration = Duration::from_secs(5);

/// One pass of every controller; the time until a Job's pod is due to finish, if one runs.
pub async fn reconcile(api: &Api, k: &Kinds) -> Option<Duration> {
    workloads::sync_deployments(api, k);
    workloads::sync_replicasets(api, k).await;
    workloads::sync_daemonsets(api, k).await;
    jobs::sync_jobs(api, k).await;
    scheduler::schedule(api, &k.pods, &k.nodes);
    kubelet::run_pods(api, &k.pods, &k.nodes);
    jobs::finish_job_pods(api, &k.pods)
}

/// Wait for the next event on any receiver (a lagged receiver counts as an event).
async fn next_change(receivers: &mut [broadcast::Receiver<Arc<StoreEvent>>]) {
    let waits = receivers.iter_mut().map(|rx| Box::pin(rx.recv()));
    let _ = select_all(waits).await;
}

fn drain(receivers: &mut [broadcast::Receiver<Arc<StoreEvent>>]) {
    for rx in receivers {
        while !matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
        ) {}
    }
}

/// Start the loop; it ends when `shutdown` turns true.
pub fn spawn(api: Arc<Api>, mut shutdown: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
    let kinds = Kinds::lookup(&api)?;
    let mut receivers: Vec<_> = [
        &kinds.pods,
        &kinds.nodes,
        &kinds.deployments,
        &kinds.replicasets,
        &kinds.daemonsets,
        &kinds.jobs,
    ]
    .iter()
    .map(|rt| api.store.subscribe(&rt.gr()))
    .collect();
    Some(tokio::spawn(async move {
        loop {
            let due = reconcile(&api, &kinds).await;
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                _ = next_change(&mut receivers) => {}
                _ = tokio::time::sleep(due.map_or(RESYNC, |d| d.min(RESYNC))) => {}
            }
            tokio::time::sleep(SETTLE).await;
            drain(&mut receivers);
        }
    }))
}

//! `capstan bench provisioning`: pending-pod → NodeClaim-created latency, measured as a client of
//! a running capstan (e.g. `capstan sandbox`): bursts of pods are created that only a NodePool
//! of the bench's own can host; the time from the last pod of a burst to the first NodeClaim the
//! burst causes is one sample. Between bursts the pods and NodeClaims are deleted, so each burst
//! needs new capacity.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde_json::json;

use crate::apis::{EC2NodeClass, NodeClaim, NodePool};

pub const POOL: &str = "capstan-bench";
const NAMESPACE: &str = "capstan-bench";
const FIELD_MANAGER: &str = "capstan-bench";

#[derive(Debug, Clone)]
pub struct Options {
    pub bursts: usize,
    pub pods_per_burst: usize,
    /// Give up on a burst after this long without a NodeClaim.
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub bursts: usize,
    pub pods_per_burst: usize,
    /// Seconds from the last pod of each burst to its first NodeClaim.
    pub samples_s: Vec<f64>,
    pub p50_s: f64,
    pub p90_s: f64,
    pub max_s: f64,
    pub timeouts: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Setup(String),
}

pub async fn run(client: Client, opts: &Options) -> Result<Report, BenchError> {
    setup(&client).await?;
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let mut samples = Vec::new();
    let mut timeouts = 0;
    for burst in 0..opts.bursts {
        cleanup(&client).await?;
        // Watch from now, so only this burst's claims count.
        let selector = format!("karpenter.sh/nodepool={POOL}");
        let mut stream = Box::pin(watcher(
            claims.clone(),
            watcher::Config::default().labels(&selector),
        ));
        // The watch's first list (empty after the cleanup) marks it running.
        while let Some(ev) = stream.next().await {
            if matches!(ev, Ok(Event::InitDone)) {
                break;
            }
        }
        for i in 0..opts.pods_per_burst {
            pods.create(&PostParams::default(), &bench_pod(burst, i))
                .await?;
        }
        let last = Instant::now();
        let waited = tokio::time::timeout(opts.timeout, async {
            while let Some(ev) = stream.next().await {
                if let Ok(Event::Apply(_)) = ev {
                    return true;
                }
            }
            false
        })
        .await;
        match waited {
            Ok(true) => samples.push(last.elapsed().as_secs_f64()),
            _ => timeouts += 1,
        }
    }
    cleanup(&client).await?;
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    let pick = |q: f64| -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i]
    };
    Ok(Report {
        bursts: opts.bursts,
        pods_per_burst: opts.pods_per_burst,
        p50_s: pick(0.5),
        p90_s: pick(0.9),
        max_s: sorted.last().copied().unwrap_or(0.0),
        samples_s: samples,
        timeouts,
    })
}

fn bench_pod(burst: usize, i: usize) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("burst-{burst}-{i}"), "namespace": NAMESPACE,
                     "labels": {"app": "capstan-bench"}},
        "spec": {
            "nodeSelector": {"karpenter.sh/nodepool": POOL},
            "tolerations": [{"key": POOL, "operator": "Exists"}],
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "pause",
                "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}]
        }
    }))
    .unwrap_or_default()
}

/// A NodePool (tainted, so other pods stay off its nodes) and an EC2NodeClass of the bench's own.
async fn setup(client: &Client) -> Result<(), BenchError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.patch(
        NAMESPACE,
        &params,
        &Patch::Apply(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        ),
    )
    .await?;
    let classes: Api<EC2NodeClass> = Api::all(client.clone());
    classes
        .patch(
            POOL,
            &params,
            &Patch::Apply(json!({
                "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
                "metadata": {"name": POOL},
                "spec": {
                    "role": "KarpenterNodeRole-bench",
                    "amiSelectorTerms": [{"alias": "al2023@latest"}],
                    "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "bench"}}],
                    "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "bench"}}]
                }
            })),
        )
        .await
        .map_err(|e| {
            BenchError::Setup(format!(
                "EC2NodeClass {POOL}: {e} (are capstan's CRDs installed?)"
            ))
        })?;
    let pools: Api<NodePool> = Api::all(client.clone());
    pools
        .patch(
            POOL,
            &params,
            &Patch::Apply(json!({
                "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
                "metadata": {"name": POOL},
                "spec": {
                    "template": {"spec": {
                        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": POOL},
                        "taints": [{"key": POOL, "effect": "NoSchedule"}],
                        "requirements": [
                            {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m"]},
                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                        ]
                    }}
                }
            })),
        )
        .await?;
    Ok(())
}

/// Deletes the bench's pods and NodeClaims and waits until they are gone.
async fn cleanup(client: &Client) -> Result<(), BenchError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let selector = ListParams::default().labels(&format!("karpenter.sh/nodepool={POOL}"));
    for p in pods.list(&ListParams::default()).await?.items {
        let _ = pods
            .delete(&p.name_any(), &DeleteParams::default().grace_period(0))
            .await;
    }
    for c in claims.list(&selector).await?.items {
        let _ = claims.delete(&c.name_any(), &DeleteParams::default()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let left = pods.list(&ListParams::default()).await?.items.len()
            + claims.list(&selector).await?.items.len();
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::Setup(
        "the bench's pods and NodeClaims were not gone within 60 s".into(),
    ))
}

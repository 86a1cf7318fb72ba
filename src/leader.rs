//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! every replica serves webhooks; only the holder of the Lease runs controllers. The holder
//! renews every `retry_period`; a candidate takes the Lease over once `renewTime + lease_duration`
//! has passed; a holder that cannot renew within `renew_deadline` gives up at once (its
//! controllers stop before another replica can take over). On shutdown the Lease is released,
//! so a standby takes over immediately instead of after the lease duration.
//!
//! Writes carry the resourceVersion they read: of two candidates racing for an expired Lease,
//! the API server lets exactly one win (409 for the other).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct ElectionConfig {
    pub namespace: String,
    pub lease_name: String,
    /// This replica (its pod name).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl ElectionConfig {
    /// client-go's and Karpenter's timings: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(namespace: &str, identity: &str) -> Self {
        ElectionConfig {
            namespace: namespace.to_string(),
            lease_name: "capstan-leader-election".to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do with the Lease as it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Renew,
    TakeOver,
    /// Someone else holds a live Lease.
    Follow,
}

/// Pure: the step for `identity` given the Lease (if any) at `now`.
pub fn step(
    lease: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> Step {
    let Some(spec) = lease else {
        return Step::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::TakeOver;
    }
    let duration = spec
        .lease_duration_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
        .unwrap_or(default_duration);
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
    match renewed {
        // A renew time in the future (clock skew) counts as fresh.
        Some(t) if t.0 >= now || now.duration_since(t.0).unsigned_abs() <= duration => Step::Follow,
        _ => Step::TakeOver,
    }
}

/// A running election. `is_leader` flips to true when this replica holds the Lease and to false
/// the moment it may no longer act.
pub struct Election {
    pub is_leader: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Election {
    pub fn start(client: Client, config: ElectionConfig) -> Election {
        let (leader_tx, is_leader) = watch::channel(false);
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let api: Api<Lease> = Api::namespaced(client, &config.namespace);
            let mut last_renew = tokio::time::Instant::now();
            loop {
                let held = match try_acquire_or_renew(&api, &config).await {
                    Ok(held) => held,
                    Err(e) => {
                        tracing::debug!(lease = %config.lease_name, "leader election: {e}");
                        // Keep leading through a blip, never past the renew deadline.
                        *leader_tx.borrow() && last_renew.elapsed() < config.renew_deadline
                    }
                };
                if held {
                    last_renew = tokio::time::Instant::now();
                }
                if held != *leader_tx.borrow() {
                    if held {
                        tracing::info!(identity = %config.identity, lease = %config.lease_name, "became leader");
                    } else {
                        tracing::warn!(identity = %config.identity, lease = %config.lease_name, "lost leadership");
                    }
                    let _ = leader_tx.send(held);
                }
                tokio::select! {
                    _ = tokio::time::sleep(config.retry_period) => {}
                    _ = stopped.changed() => break,
                }
            }
            if *leader_tx.borrow() {
                let _ = leader_tx.send(false);
                if let Err(e) = release(&api, &config).await {
                    tracing::warn!(lease = %config.lease_name, "releasing the lease: {e}");
                } else {
                    tracing::info!(lease = %config.lease_name, "released the lease");
                }
            }
        });
        Election {
            is_leader,
            stop,
            task,
        }
    }

    /// Stops campaigning and releases the Lease if held.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Stops at once, without releasing (as a killed process would).
    pub fn abort(self) {
        self.task.abort();
    }
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &ElectionConfig,
) -> Result<bool, kube::Error> {
    let current = api.get_opt(&config.lease_name).await?;
    let now = Timestamp::now();
    let seconds = i32::try_from(config.lease_duration.as_secs()).unwrap_or(15);
    match step(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        &config.identity,
        now,
        config.lease_duration,
    ) {
        Step::Follow => Ok(false),
        Step::Create => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.lease_name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(micro_now()),
                    renew_time: Some(micro_now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        step @ (Step::Renew | Step::TakeOver) => {
            let Some(mut lease) = current else {
                return Ok(false);
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if step == Step::TakeOver {
                spec.holder_identity = Some(config.identity.clone());
                spec.acquire_time = Some(micro_now());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(seconds);
            spec.renew_time = Some(micro_now());
            // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
            match api
                .replace(&config.lease_name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

async fn release(api: &Api<Lease>, config: &ElectionConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&config.lease_name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(micro_now());
    api.replace(&config.lease_name, &PostParams::default(), &lease)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            holder_identity: (!holder.is_empty()).then(|| holder.to_string()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(
                now - k8s_openapi::jiff::SignedDuration::from_secs(renewed_secs_ago),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn steps() {
        let now = Timestamp::now();
        let d = Duration::from_secs(15);
        assert_eq!(step(None, "a", now, d), Step::Create);
        assert_eq!(step(Some(&lease("a", 3, 15)), "a", now, d), Step::Renew);
        assert_eq!(step(Some(&lease("b", 3, 15)), "a", now, d), Step::Follow);
        assert_eq!(step(Some(&lease("b", 20, 15)), "a", now, d), Step::TakeOver);
        assert_eq!(
            step(Some(&lease("", 0, 1)), "a", now, d),
            Step::TakeOver,
            "released"
        );
    }
}

//! The Job controller and the part of the kubelet that finishes a Job's pods, reduced to what
//! autoscaling tests need: a Job runs `min(parallelism, completions - succeeded)` pods at a time
//! (both default 1; `generateName: <job>-`, owned by the Job, labelled `job-name` and
//! `batch.kubernetes.io/job-name` as the real controller labels them) until `completions` pods
//! have succeeded; then `Complete`. A pod of a Job succeeds once it has run for
//! `sandbox.capstan.dev/run-for` (an annotation on the pod template: `500ms`, `3s`, `2m`;
//! default [`DEFAULT_RUN_FOR`]); no pod ever fails.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{Api, Sub};
use crate::object::{deletion_timestamp, name, namespace, now_rfc3339, uid};
use crate::registry::ResourceType;
use crate::workloads::{Kinds, controller_uid, create_pod, write_status};

/// How long a Job's pod runs when its template does not say.
pub const DEFAULT_RUN_FOR: Duration = Duration::from_secs(2);
pub const RUN_FOR_ANNOTATION: &str = "sandbox.capstan.dev/run-for";

fn count(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0)
}

fn phase(pod: &Value) -> Option<&str> {
    pod.pointer("/status/phase").and_then(Value::as_str)
}

fn is_complete(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Complete")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// The pod the Job controller creates from the Job's template.
fn pod_for(job: &Value, template: &Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": format!("{}-", name(job)),
            "namespace": namespace(job),
            "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
            "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "Job", "name": name(job), "uid": uid(job),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    });
    if let Some(labels) = pod
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for key in ["job-name", "batch.kubernetes.io/job-name"] {
            labels.insert(key.into(), json!(name(job)));
        }
        for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
            labels.insert(key.into(), json!(uid(job)));
        }
    }
    pod
}

pub async fn sync_jobs(api: &Api, k: &Kinds) {
    let (jobs, _) = api.store.list(&k.jobs.gr(), None, |_| true);
    for job in jobs {
        if deletion_timestamp(&job).is_some() || is_complete(&job) {
            continue;
        }
        let Some(template) = job.pointer("/spec/template") else {
            continue;
        };
        let job_uid = uid(&job);
        let (pods, _) = api.store.list(&k.pods.gr(), Some(namespace(&job)), |p| {
            controller_uid(p) == Some(job_uid)
        });
        let succeeded = pods
            .iter()
            .filter(|p| phase(p) == Some("Succeeded"))
            .count() as i64;
        let active = pods
            .iter()
            .filter(|p| {
                deletion_timestamp(p).is_none() && !matches!(phase(p), Some("Succeeded" | "Failed"))
            })
            .count() as i64;
        let completions = count(&job, "/spec/completions");
        let want = count(&job, "/spec/parallelism").min(completions - succeeded);
        let mut created = 0;
        for _ in active..want {
            if !create_pod(api, k, pod_for(&job, template), "job-controller").await {
                break;
            }
            created += 1;
        }
        let start = job
            .pointer("/status/startTime")
            .cloned()
            .unwrap_or_else(|| json!(now_rfc3339()));
        let mut status = json!({
            "startTime": start,
            "active": active + created,
            "succeeded": succeeded,
        });
        if succeeded >= completions {
            let now = now_rfc3339();
            status = json!({
                "startTime": start,
                "completionTime": now,
                "succeeded": succeeded,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": now, "lastTransitionTime": now},
                    {"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now},
                ],
            });
        }
        write_status(api, &k.jobs, &job, status);
    }
}

/// `500ms`, `3s`, `2m`; `None` for anything else.
fn parse_run_for(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = digits.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

fn run_for(pod: &Value) -> Duration {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(RUN_FOR_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(parse_run_for)
        .unwrap_or(DEFAULT_RUN_FOR)
}

/// The status of a pod whose containers all exited 0.
fn succeeded_status(pod: &Value) -> Value {
    let now = now_rfc3339();
    let mut status = pod.get("status").cloned().unwrap_or(json!({}));
    if let Some(s) = status.as_object_mut() {
        s.insert("phase".into(), json!("Succeeded"));
        let statuses: Vec<Value> = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let mut c = c.clone();
                        if let Some(o) = c.as_object_mut() {
                            o.insert("ready".into(), json!(false));
                            o.insert("started".into(), json!(false));
                            o.insert(
                                "state".into(),
                                json!({"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}}),
                            );
                        }
                        c
                    })
                    .collect()
            })
            .unwrap_or_default();
        s.insert("containerStatuses".into(), json!(statuses));
        s.insert(
            "conditions".into(),
            json!([
                {"type": "Initialized", "status": "True", "reason": "PodCompleted", "lastTransitionTime": now},
                {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ]),
        );
    }
    status
}

/// Finish the running pods of Jobs that have run long enough; the time until the next one is
/// due, so that the controller loop wakes for it.
pub fn finish_job_pods(api: &Api, pods_rt: &ResourceType) -> Option<Duration> {
    let (pods, _) = api.store.list(&pods_rt.gr(), None, |p| {
        phase(p) == Some("Running")
            && deletion_timestamp(p).is_none()
            && p.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|rs| {
                    rs.iter()
                        .any(|r| r.get("kind").and_then(Value::as_str) == Some("Job"))
                })
    });
    let now = jiff::Timestamp::now();
    let mut next: Option<Duration> = None;
    for pod in pods {
        let started = pod
            .pointer("/status/startTime")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .unwrap_or(now);
        let ran = Duration::try_from(now.duration_since(started)).unwrap_or_default();
        let due = run_for(&pod);
        if ran < due {
            let left = due - ran;
            next = Some(next.map_or(left, |n| n.min(left)));
            continue;
        }
        finish(api, pods_rt, &pod);
    }
    next
}

fn finish(api: &Api, pods_rt: &ResourceType, pod: &Arc<Value>) {
    let mut new = (**pod).clone();
    if let Some(o) = new.as_object_mut() {
        o.insert("status".into(), succeeded_status(pod));
    }
    if let Err(e) = api.update(pods_rt, namespace(pod), name(pod), new, Sub::Status) {
        tracing::debug!(pod = name(pod), error = %e, "finishing a Job's pod");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_for_parses_the_usual_units_and_nothing_else() {
        assert_eq!(parse_run_for("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_run_for("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_run_for("2m"), Some(Duration::from_secs(120)));
        for bad in ["", "s", "3", "3h", "-1s", "1.5s", "99999999999999999999s"] {
            assert_eq!(parse_run_for(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_jobs_pod_is_labelled_and_owned_as_the_real_controller_does() {
        let job = json!({"metadata": {"name": "batch", "namespace": "ns", "uid": "u-1"}});
        let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}});
        let pod = pod_for(&job, &template);
        assert_eq!(
            pod.pointer("/metadata/generateName"),
            Some(&json!("batch-"))
        );
        assert_eq!(
            pod.pointer("/metadata/labels/job-name"),
            Some(&json!("batch"))
        );
        assert_eq!(pod.pointer("/metadata/labels/app"), Some(&json!("x")));
        assert_eq!(
            pod.pointer("/metadata/ownerReferences/0/uid"),
            Some(&json!("u-1"))
        );
        assert_eq!(
            pod.pointer("/metadata/ownerReferences/0/kind"),
            Some(&json!("Job"))
        );
    }
}

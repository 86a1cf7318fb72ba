//! Events on the objects the controllers act on (`kubectl describe` shows them): why a pod
//! cannot be scheduled, why a NodeClaim failed to launch, what blocks a drain. Repeats of the
//! same event become a series (kube-runtime's recorder); a failure to write one is logged and
//! never fails the caller.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder as KubeRecorder, Reporter};
use kube::{Client, Resource};
use sha2::{Digest, Sha256};

pub const REPORTER: &str = "karpenter";

#[derive(Clone)]
pub struct Recorder {
    inner: KubeRecorder,
}

impl Recorder {
    pub fn new(client: Client) -> Self {
        let reporter = Reporter {
            controller: REPORTER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Recorder {
            inner: KubeRecorder::new(client, reporter),
        }
    }

    pub async fn normal<K>(&self, obj: &K, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish(obj.object_ref(&()), EventType::Normal, reason, note)
            .await;
    }

    pub async fn warning<K>(&self, obj: &K, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish(obj.object_ref(&()), EventType::Warning, reason, note)
            .await;
    }

    async fn publish(
        &self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        // events.k8s.io caps a note at 1 kB.
        let note = truncate(note, 1000);
        // kube-runtime folds repeats into a series by (reason, action, object), keeping the
        // first note: a new note must be a new event, so the action carries the note's digest.
        let digest: String = Sha256::digest(note.as_bytes())
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: format!("{reason}-{digest}"),
            secondary: None,
        };
        if let Err(e) = self.inner.publish(&event, &reference).await {
            tracing::debug!(
                object = reference.name.as_deref().unwrap_or(""),
                reason,
                "could not record an event: {e}"
            );
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

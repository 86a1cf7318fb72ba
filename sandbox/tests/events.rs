//! core/v1 and events.k8s.io/v1 Events are one stored resource: what kube-rs's `Recorder`
//! posts (events.k8s.io) is what `kubectl get events` and `kubectl describe` read (core), and
//! the other way round, for get, list, field selectors, patch, delete and watch.

use crate::common;

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use k8s_openapi::api::events::v1::Event as EventV1;
use kube::Resource;
use kube::api::WatchParams;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;

use common::{Env, api_status, start_with};

async fn sandbox() -> Env {
    // No controllers: nothing but the test writes events or touches the pod.
    start_with(|c| c.controllers = false).await
}

async fn pod(env: &Env, name: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod")
}

fn reporter() -> Reporter {
    Reporter {
        controller: "capstan".into(),
        instance: Some("capstan-0".into()),
    }
}

fn failed_scheduling() -> Event {
    Event {
        type_: EventType::Warning,
        reason: "FailedScheduling".into(),
        note: Some("0/3 nodes are available".into()),
        action: "Scheduling".into(),
        secondary: None,
    }
}

async fn core_events(api: &Api<CoreEvent>, selector: &str) -> Vec<CoreEvent> {
    api.list(&ListParams::default().fields(selector))
        .await
        .unwrap_or_else(|e| panic!("list core events with {selector}: {e}"))
        .items
}

async fn v1_events(api: &Api<EventV1>, selector: &str) -> Vec<EventV1> {
    api.list(&ListParams::default().fields(selector))
        .await
        .unwrap_or_else(|e| panic!("list events.k8s.io events with {selector}: {e}"))
        .items
}

#[tokio::test]
async fn recorder_events_read_through_core_v1() {
    let env = sandbox().await;
    let web = pod(&env, "web-0").await;
    let uid = web.metadata.uid.clone().expect("pod uid");
    let recorder = Recorder::new(env.client.clone(), reporter());
    recorder
        .publish(&failed_scheduling(), &web.object_ref(&()))
        .await
        .expect("publish");

    let core: Api<CoreEvent> = Api::namespaced(env.client.clone(), "default");
    let found = core_events(&core, "involvedObject.name=web-0").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let e = &found[0];
    assert_eq!(e.message.as_deref(), Some("0/3 nodes are available"));
    assert_eq!(e.reason.as_deref(), Some("FailedScheduling"));
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.action.as_deref(), Some("Scheduling"));
    assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(e.involved_object.name.as_deref(), Some("web-0"));
    assert_eq!(e.involved_object.namespace.as_deref(), Some("default"));
    assert_eq!(e.involved_object.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(e.reporting_component.as_deref(), Some("capstan"));
    assert_eq!(e.reporting_instance.as_deref(), Some("capstan-0"));
    let source = e.source.as_ref().expect("source");
    assert_eq!(source.component.as_deref(), Some("capstan"));
    assert_eq!(source.host.as_deref(), Some("capstan-0"));
    assert_eq!(e.count, Some(1));
    assert!(e.event_time.is_some() && e.first_timestamp.is_some() && e.last_timestamp.is_some());

    // kubectl describe's selector, and the other core labels.
    for selector in [
        format!(
            "involvedObject.name=web-0,involvedObject.namespace=default,involvedObject.kind=Pod,involvedObject.uid={uid}"
        ),
        "reason=FailedScheduling,type=Warning".into(),
        "source=capstan,reportingComponent=capstan".into(),
    ] {
        assert_eq!(core_events(&core, &selector).await.len(), 1, "{selector}");
    }
    assert!(
        core_events(&core, "involvedObject.name=web-1")
            .await
            .is_empty()
    );
    assert!(core_events(&core, "type=Normal").await.is_empty());

    // The same object through both APIs: name, uid, resourceVersion.
    let name = e.metadata.name.clone().expect("name");
    let v1: Api<EventV1> = Api::namespaced(env.client.clone(), "default");
    let same = v1.get(&name).await.expect("get through events.k8s.io");
    assert_eq!(same.metadata.uid, e.metadata.uid);
    assert_eq!(same.metadata.resource_version, e.metadata.resource_version);
    assert_eq!(same.note.as_deref(), Some("0/3 nodes are available"));
    assert!(same.deprecated_source.is_none() && same.deprecated_count.is_none());

    // The Recorder's repeat patches `series`; core readers see the count and last time move.
    recorder
        .publish(&failed_scheduling(), &web.object_ref(&()))
        .await
        .expect("publish again");
    let again = core.get(&name).await.expect("get core");
    assert_eq!(again.count, Some(2));
    assert_eq!(again.series.as_ref().and_then(|s| s.count), Some(2));
    assert_ne!(again.metadata.resource_version, e.metadata.resource_version);

    // Deleted through core, gone through events.k8s.io (named as the real server names it).
    core.delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    let gone = api_status(v1.get(&name).await);
    assert_eq!(gone.code, 404);
    assert_eq!(
        gone.message,
        format!("events.events.k8s.io \"{name}\" not found")
    );
}

#[tokio::test]
async fn core_events_read_through_events_k8s_io() {
    let env = sandbox().await;
    let core: Api<CoreEvent> = Api::namespaced(env.client.clone(), "default");
    let created = core
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "n1.1"},
                "involvedObject": {"kind": "Node", "name": "n1", "uid": "n1-uid"},
                "reason": "NodeReady",
                "message": "Node n1 status is now: NodeReady",
                "type": "Normal",
                "source": {"component": "kubelet", "host": "n1"},
                "firstTimestamp": "2025-03-01T09:00:00Z",
                "lastTimestamp": "2025-03-01T10:00:00Z",
                "count": 3,
            }))
            .expect("core event"),
        )
        .await
        .expect("create core event");

    let v1: Api<EventV1> = Api::namespaced(env.client.clone(), "default");
    let found = v1_events(&v1, "regarding.name=n1").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let e = &found[0];
    assert_eq!(e.note.as_deref(), Some("Node n1 status is now: NodeReady"));
    assert_eq!(e.reason.as_deref(), Some("NodeReady"));
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    let regarding = e.regarding.as_ref().expect("regarding");
    assert_eq!(regarding.kind.as_deref(), Some("Node"));
    assert_eq!(regarding.name.as_deref(), Some("n1"));
    assert_eq!(regarding.uid.as_deref(), Some("n1-uid"));
    assert_eq!(e.deprecated_count, Some(3));
    assert_eq!(
        e.deprecated_source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("kubelet")
    );
    assert!(e.deprecated_first_timestamp.is_some() && e.deprecated_last_timestamp.is_some());
    assert_eq!(e.metadata.uid, created.metadata.uid);
    assert_eq!(
        e.metadata.resource_version,
        created.metadata.resource_version
    );

    for selector in [
        "regarding.kind=Node,regarding.uid=n1-uid,regarding.namespace=",
        "reason=NodeReady,type=Normal",
        "metadata.name=n1.1",
    ] {
        assert_eq!(v1_events(&v1, selector).await.len(), 1, "{selector}");
    }
    assert!(v1_events(&v1, "regarding.name=n2").await.is_empty());
    // Only the labels events.k8s.io serves.
    let bad = api_status(
        v1.list(&ListParams::default().fields("involvedObject.name=n1"))
            .await,
    );
    assert_eq!(bad.code, 400);

    // A patch through events.k8s.io lands in the one stored object.
    let patched = v1
        .patch(
            "n1.1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"note": "Node n1 status is now: NodeNotReady", "deprecatedCount": 4}),
            ),
        )
        .await
        .expect("patch through events.k8s.io");
    let again = core.get("n1.1").await.expect("get core");
    assert_eq!(
        again.message.as_deref(),
        Some("Node n1 status is now: NodeNotReady")
    );
    assert_eq!(again.count, Some(4));
    assert_eq!(
        again.metadata.resource_version,
        patched.metadata.resource_version
    );
    assert_eq!(
        again.source.as_ref().and_then(|s| s.host.as_deref()),
        Some("n1")
    );
}

async fn next<K>(stream: &mut (impl Stream<Item = kube::Result<WatchEvent<K>>> + Unpin)) -> K
where
    K: std::fmt::Debug,
{
    match tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event decodes as the watched API's kind")
    {
        WatchEvent::Added(obj) => obj,
        other => panic!("expected ADDED, got {other:?}"),
    }
}

#[tokio::test]
async fn watches_see_writes_through_the_other_api() {
    let env = sandbox().await;
    let core: Api<CoreEvent> = Api::namespaced(env.client.clone(), "default");
    let v1: Api<EventV1> = Api::namespaced(env.client.clone(), "default");
    let rv = core
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("list rv");
    // Typed watch events only decode with the right apiVersion and kind.
    let mut core_watch = core
        .watch(
            &WatchParams::default().fields("involvedObject.name=web-0"),
            &rv,
        )
        .await
        .expect("core watch")
        .boxed();
    let mut v1_watch = v1
        .watch(&WatchParams::default().fields("regarding.name=n1"), &rv)
        .await
        .expect("events.k8s.io watch")
        .boxed();

    let web = pod(&env, "web-0").await;
    Recorder::new(env.client.clone(), reporter())
        .publish(&failed_scheduling(), &web.object_ref(&()))
        .await
        .expect("publish");
    let seen = next(&mut core_watch).await;
    assert_eq!(seen.message.as_deref(), Some("0/3 nodes are available"));
    assert_eq!(seen.involved_object.name.as_deref(), Some("web-0"));

    core.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "n1.2"},
            "involvedObject": {"kind": "Node", "name": "n1"},
            "reason": "NodeReady",
            "message": "ready",
            "type": "Normal",
        }))
        .expect("core event"),
    )
    .await
    .expect("create core event");
    let seen = next(&mut v1_watch).await;
    assert_eq!(seen.metadata.name.as_deref(), Some("n1.2"));
    assert_eq!(seen.note.as_deref(), Some("ready"));
    assert_eq!(
        seen.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("n1")
    );
    // Each watch saw only its selection: the first event of the other is not replayed.
    let quiet = tokio::time::timeout(Duration::from_millis(300), core_watch.next()).await;
    assert!(quiet.is_err(), "unexpected core event: {quiet:?}");
}

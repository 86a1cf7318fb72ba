//! Watches: raw WatchEvents, kube-rs `watcher` (list+watch and streaming list), `reflector`
//! convergence, 410 for a too-old resourceVersion, bookmarks, selectors and timeouts.

use crate::common;

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use common::{eventually, start, start_with};

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
        "data": {"v": "0"}
    }))
    .expect("cm")
}

fn rv_of(c: &ConfigMap) -> String {
    c.metadata.resource_version.clone().expect("rv")
}

async fn next_event(
    stream: &mut (impl futures_util::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> WatchEvent<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event ok")
}

fn describe(ev: &WatchEvent<ConfigMap>) -> (String, String) {
    match ev {
        WatchEvent::Added(c) => ("ADDED".into(), c.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Modified(c) => (
            "MODIFIED".into(),
            c.metadata.name.clone().unwrap_or_default(),
        ),
        WatchEvent::Deleted(c) => (
            "DELETED".into(),
            c.metadata.name.clone().unwrap_or_default(),
        ),
        WatchEvent::Bookmark(b) => ("BOOKMARK".into(), b.metadata.resource_version.clone()),
        WatchEvent::Error(s) => ("ERROR".into(), s.code.to_string()),
    }
}

#[tokio::test]
async fn raw_watch_from_resource_version_sees_every_change() {
    let env = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let list = cms.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("list rv");
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();

    let pp = PostParams::default();
    cms.create(&pp, &cm("w", &[])).await.expect("create");
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "1"}})),
    )
    .await
    .expect("patch");
    cms.delete("w", &DeleteParams::default())
        .await
        .expect("delete");
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(describe(&next_event(&mut stream).await));
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED".to_string(), "w".to_string()),
            ("MODIFIED".to_string(), "w".to_string()),
            ("DELETED".to_string(), "w".to_string()),
        ]
    );

    // Watching again from the same resourceVersion replays the changes from history.
    let mut replay = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch again")
        .boxed();
    assert_eq!(describe(&next_event(&mut replay).await).0, "ADDED");
}

#[tokio::test]
async fn watcher_and_reflector_converge() {
    let env = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let pp = PostParams::default();
    cms.create(&pp, &cm("before", &[])).await.expect("create");

    // kube-rs watcher (default config: paged list, then watch with bookmarks).
    let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let reflect = reflector(writer, watcher(cms.clone(), watcher::Config::default()))
        .applied_objects()
        .for_each(|_| async {});
    let reflect = tokio::spawn(reflect);

    // Wait for the initial list to finish before changing things.
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("in time")
            .expect("ok")
            .expect("open");
        if matches!(ev, watcher::Event::InitDone) {
            break;
        }
    }
    for i in 0..20 {
        cms.create(&pp, &cm(&format!("cm-{i}"), &[]))
            .await
            .expect("create");
    }
    for i in 0..5 {
        cms.delete(&format!("cm-{i}"), &DeleteParams::default())
            .await
            .expect("delete");
    }
    cms.patch(
        "cm-10",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "changed"}})),
    )
    .await
    .expect("patch");

    let (mut applied, mut deleted) = (0, 0);
    while applied < 21 || deleted < 5 {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("in time")
            .expect("ok")
            .expect("open")
        {
            watcher::Event::Apply(_) => applied += 1,
            watcher::Event::Delete(_) => deleted += 1,
            _ => {}
        }
    }
    assert_eq!((applied, deleted), (21, 5));

    let reader2 = reader.clone();
    eventually("reflector has 16 objects", move || {
        let reader = reader2.clone();
        async move { reader.state().len() == 16 }
    })
    .await;
    let changed = reader
        .state()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some("cm-10"))
        .expect("cm-10");
    assert_eq!(
        changed
            .data
            .as_ref()
            .and_then(|d| d.get("v"))
            .map(String::as_str),
        Some("changed")
    );
    reflect.abort();
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events() {
    let env = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    for i in 0..3 {
        cms.create(&PostParams::default(), &cm(&format!("s-{i}"), &[]))
            .await
            .expect("create");
    }
    let mut events = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut initial = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("in time")
            .expect("ok")
            .expect("open")
        {
            watcher::Event::InitApply(_) => initial += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, 3);
}

#[tokio::test]
async fn too_old_resource_version_is_a_410_error_event() {
    let env = start_with(|c| c.limits.history = 3).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &cm("old-0", &[]))
        .await
        .expect("create");
    for i in 1..10 {
        cms.create(&PostParams::default(), &cm(&format!("old-{i}"), &[]))
            .await
            .expect("create");
    }
    let mut stream = cms
        .watch(&WatchParams::default(), &rv_of(&first))
        .await
        .expect("watch")
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.starts_with("too old resource version"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {:?}", describe(&other)),
    }
}

#[tokio::test]
async fn bookmarks_selectors_and_timeout() {
    let env = start_with(|c| c.bookmark_interval = Duration::from_millis(200)).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");

    // Label-selected watch: leaving the selection is DELETED, entering it ADDED.
    let wp = WatchParams::default().labels("app=web").disable_bookmarks();
    let mut stream = cms.watch(&wp, &rv).await.expect("watch").boxed();
    cms.create(&PostParams::default(), &cm("other", &[("app", "db")]))
        .await
        .expect("create");
    cms.create(&PostParams::default(), &cm("web", &[("app", "web")]))
        .await
        .expect("create");
    let label = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"app": v}}}));
    cms.patch("web", &PatchParams::default(), &label("db"))
        .await
        .expect("patch");
    cms.patch("web", &PatchParams::default(), &label("web"))
        .await
        .expect("patch");
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(describe(&next_event(&mut stream).await).0);
    }
    assert_eq!(seen, ["ADDED", "DELETED", "ADDED"]);

    // Bookmarks arrive periodically with a usable resourceVersion.
    let wp = WatchParams::default();
    let mut stream = cms.watch(&wp, &rv).await.expect("watch").boxed();
    let mut bookmark = None;
    for _ in 0..10 {
        if let WatchEvent::Bookmark(b) = next_event(&mut stream).await {
            bookmark = Some(b.metadata.resource_version);
            break;
        }
    }
    let bookmark: u64 = bookmark.expect("a bookmark").parse().expect("numeric");
    assert!(bookmark >= rv.parse::<u64>().expect("rv"));

    // timeoutSeconds ends the stream.
    let wp = WatchParams::default().timeout(1);
    let stream = cms.watch(&wp, &bookmark.to_string()).await.expect("watch");
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>()).await;
    assert!(ended.is_ok(), "the watch should end after timeoutSeconds");
}

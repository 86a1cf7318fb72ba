//! `?watch=true`: a stream of newline-delimited JSON WatchEvents, one task per watcher, fed by
//! the resource's broadcast channel. Semantics follow the real server:
//! - from a resourceVersion: replay recorded events after it; older than the history → one
//!   `ERROR` event with a 410 `Expired` Status (HTTP 200), and the client relists;
//! - without one (or `0`), and for `sendInitialEvents=true`: synthetic ADDED events for what
//!   exists now, then live events (watch-list ends the initial part with a BOOKMARK annotated
//!   `k8s.io/initial-events-end: "true"`);
//! - selectors apply to both the old and new state, so an object leaving the selection is a
//!   DELETED event and one entering it is ADDED;
//! - `allowWatchBookmarks`: periodic BOOKMARKs carrying a resourceVersion to resume from;
//! - `timeoutSeconds` ends the stream; so does server shutdown or the client going away;
//! - a watch of an alias (events.k8s.io Events) follows its storage's events, converted.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::api::Api;
use crate::errors::ApiError;
use crate::object::namespace;
use crate::registry::ResourceType;
use crate::selectors::Selectors;
use crate::store::{EventType, StoreEvent};

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFrom {
    /// No resourceVersion (or "0"): current state as ADDED events, then changes.
    Now,
    /// Changes after this resourceVersion.
    After(u64),
}

#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub rt: Arc<ResourceType>,
    pub namespace: Option<String>,
    pub selectors: Selectors,
    pub from: WatchFrom,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

fn line(kind: &str, object: &Value) -> Bytes {
    // Serialising a Value cannot fail; an empty line would be skipped by clients anyway.
    let mut buf = serde_json::to_vec(&Line { kind, object }).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

struct Watcher {
    api: Arc<Api>,
    req: WatchRequest,
    tx: mpsc::Sender<Bytes>,
    last_rv: u64,
}

impl Watcher {
    fn in_scope(&self, obj: &Value) -> bool {
        self.req
            .namespace
            .as_deref()
            .is_none_or(|ns| namespace(obj) == ns)
            && self.req.selectors.matches(obj)
    }

    /// The event this watcher should see for a stored change, if any.
    fn translate(&self, ev: &StoreEvent) -> Option<EventType> {
        let now = self.in_scope(&ev.object);
        match ev.kind {
            EventType::Added | EventType::Deleted => now.then_some(ev.kind),
            EventType::Modified => {
                let before = ev.old.as_deref().is_some_and(|o| self.in_scope(o));
                match (before, now) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        }
    }

    /// Send one event; false when the client has gone.
    async fn send_event(&mut self, ev: &StoreEvent) -> bool {
        if ev.rv <= self.last_rv {
            return true;
        }
        self.last_rv = ev.rv;
        match self.translate(ev) {
            Some(kind) => {
                let obj = Api::at_version(&self.req.rt, &ev.object);
                self.tx.send(line(kind.as_str(), &obj)).await.is_ok()
            }
            None => true,
        }
    }

    async fn send_bookmark(&mut self, rv: u64, initial_end: bool) -> bool {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({
            "kind": self.req.rt.kind,
            "apiVersion": self.req.rt.api_version(),
            "metadata": metadata,
        });
        self.last_rv = self.last_rv.max(rv);
        self.tx.send(line("BOOKMARK", &obj)).await.is_ok()
    }

    async fn send_error(&self, err: &ApiError) {
        let _ = self.tx.send(line("ERROR", &err.to_status())).await;
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let gr = self.req.rt.stored_as().gr();
        let api = self.api.clone();
        let store = &api.store;
        let mut live = match self.req.from {
            WatchFrom::After(rv) if !self.req.send_initial_events => {
                match store.watch_from(&gr, rv) {
                    Ok((replay, live)) => {
                        self.last_rv = rv;
                        for ev in replay {
                            if !self.send_event(&ev).await {
                                return;
                            }
                        }
                        live
                    }
                    Err(e) => {
                        self.send_error(&e).await;
                        return;
                    }
                }
            }
            _ => {
                let (objects, rv, live) = store.watch_now(&gr);
                for obj in objects.iter().filter(|o| self.in_scope(o)) {
                    let obj = Api::at_version(&self.req.rt, obj);
                    if self.tx.send(line("ADDED", &obj)).await.is_err() {
                        return;
                    }
                }
                self.last_rv = rv;
                if self.req.send_initial_events && !self.send_bookmark(rv, true).await {
                    return;
                }
                live
            }
        };

        let deadline = Instant::now() + self.req.timeout;
        let every = self.req.bookmark_interval.max(Duration::from_millis(10));
        let mut bookmarks = tokio::time::interval_at(Instant::now() + every, every);
        bookmarks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let tx = self.tx.clone();
        let mut dropped = api.watch_drop_signal();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = dropped.changed() => return,
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                received = live.recv() => match received {
                    Ok(ev) => {
                        if !self.send_event(&ev).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow to keep up: the real server also drops such watchers with 410.
                        self.send_error(&ApiError::gone(self.last_rv, store.current_rv())).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = bookmarks.tick(), if self.req.allow_bookmarks => {
                    let (pending, rv) = store.drain_for_bookmark(&gr, &mut live);
                    for ev in pending {
                        let ok = match ev {
                            Ok(ev) => self.send_event(&ev).await,
                            Err(()) => {
                                self.send_error(&ApiError::gone(self.last_rv, rv)).await;
                                false
                            }
                        };
                        if !ok {
                            return;
                        }
                    }
                    if !self.send_bookmark(rv, false).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Start a watch and return the streaming response body.
pub fn start(api: Arc<Api>, mut req: WatchRequest, shutdown: watch::Receiver<bool>) -> Body {
    // Selectors run on stored objects.
    req.selectors = Api::storage_selectors(&req.rt, &req.selectors).into_owned();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let watcher = Watcher {
        api,
        req,
        tx,
        last_rv: 0,
    };
    tokio::spawn(watcher.run(shutdown));
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }))
}

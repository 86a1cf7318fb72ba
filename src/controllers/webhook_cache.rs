//! Keeps the webhook server's [`WebhookCache`] filled from two watches: RequestPolicies and
//! Namespaces (for their labels). The webhook reads the cache per request and never calls the
//! API server itself, so while a watch is down it keeps answering from the last state.
//!
//! After any watch error the stream is dropped and, after a backoff, started afresh: a new
//! watcher begins with a full list, which replaces the cached list whole, so objects deleted
//! while we were not watching disappear too.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::apis::RequestPolicy;
use crate::webhook::cache::{NAMESPACE_NAME_LABEL, WebhookCache};

/// What one watcher event means for the cache.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<K> {
    /// A complete (re-)list: the new contents.
    Replace(Vec<K>),
    Upsert(K),
    Remove(K),
}

/// Buffers a (re-)list from `Init` to `InitDone`, so that the cache swaps whole lists and never
/// serves half of one.
#[derive(Debug)]
pub struct ListBuffer<K> {
    pending: Option<Vec<K>>,
}

impl<K> Default for ListBuffer<K> {
    fn default() -> Self {
        Self { pending: None }
    }
}

impl<K> ListBuffer<K> {
    /// The change an event makes, if any yet.
    pub fn step(&mut self, event: Event<K>) -> Option<Change<K>> {
        match event {
            Event::Init => {
                self.pending = Some(Vec::new());
                None
            }
            Event::InitApply(obj) => {
                self.pending.get_or_insert_with(Vec::new).push(obj);
                None
            }
            Event::InitDone => Some(Change::Replace(self.pending.take().unwrap_or_default())),
            Event::Apply(obj) => Some(Change::Upsert(obj)),
            Event::Delete(obj) => Some(Change::Remove(obj)),
        }
    }
}

pub fn apply_policy_change(cache: &WebhookCache, change: Change<RequestPolicy>) {
    match change {
        Change::Replace(list) => cache.set_policies(list),
        Change::Upsert(policy) => cache.upsert_policy(policy),
        Change::Remove(policy) => cache.remove_policy(&policy.name_any()),
    }
}

/// A namespace's name and labels. The API server always sets `kubernetes.io/metadata.name`;
/// it is added here too so name-based selectors never depend on that.
pub fn namespace_entry(ns: &Namespace) -> (String, BTreeMap<String, String>) {
    let name = ns.name_any();
    let mut labels = ns.labels().clone();
    labels
        .entry(NAMESPACE_NAME_LABEL.to_string())
        .or_insert_with(|| name.clone());
    (name, labels)
}

pub fn apply_namespace_change(cache: &WebhookCache, change: Change<Namespace>) {
    match change {
        Change::Replace(list) => cache.set_namespaces(list.iter().map(namespace_entry).collect()),
        Change::Upsert(ns) => {
            let (name, labels) = namespace_entry(&ns);
            cache.upsert_namespace(&name, labels);
        }
        Change::Remove(ns) => cache.remove_namespace(&ns.name_any()),
    }
}

/// Delay before re-listing after an error: doubles from `min` up to `max`, and starts over once
/// a list has completed.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

/// The two running watches. Dropping this stops them (as does [`CacheWatcher::shutdown`]).
pub struct CacheWatcher {
    stop: watch::Sender<bool>,
    synced: Vec<watch::Receiver<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl CacheWatcher {
    /// Starts watching RequestPolicies and Namespaces into `cache`. Must run inside a Tokio
    /// runtime.
    pub fn spawn(client: Client, cache: WebhookCache) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let mut synced = Vec::new();
        let mut tasks = Vec::new();
        let (tx, rx) = watch::channel(false);
        synced.push(rx);
        tasks.push(tokio::spawn(run_watch(
            Api::<RequestPolicy>::all(client.clone()),
            cache.clone(),
            apply_policy_change,
            tx,
            stop_rx.clone(),
        )));
        let (tx, rx) = watch::channel(false);
        synced.push(rx);
        tasks.push(tokio::spawn(run_watch(
            Api::<Namespace>::all(client),
            cache,
            apply_namespace_change,
            tx,
            stop_rx,
        )));
        Self {
            stop,
            synced,
            tasks,
        }
    }

    /// Whether both lists have been read at least once.
    pub fn is_synced(&self) -> bool {
        self.synced.iter().all(|rx| *rx.borrow())
    }

    /// Waits until both lists have been read at least once (returns early if the watches stop).
    pub async fn wait_synced(&self) {
        for rx in &self.synced {
            let mut rx = rx.clone();
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Stops both watches and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// One watch, for ever: list, follow events, and on any error re-list after a backoff. The
/// cache keeps its last contents meanwhile. Ends only when `stop` turns true or its sender goes.
async fn run_watch<K>(
    api: Api<K>,
    cache: WebhookCache,
    apply: fn(&WebhookCache, Change<K>),
    synced: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let mut backoff = Backoff::default();
    loop {
        let mut buffer = ListBuffer::default();
        let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
        let failure = loop {
            let next = tokio::select! {
                next = stream.next() => next,
                _ = stop.wait_for(|s| *s) => return,
            };
            match next {
                Some(Ok(event)) => {
                    let listed = matches!(event, Event::InitDone);
                    if let Some(change) = buffer.step(event) {
                        apply(&cache, change);
                    }
                    if listed {
                        tracing::debug!(%kind, "webhook cache listed");
                        synced.send_replace(true);
                        backoff.reset();
                    }
                }
                Some(Err(e)) => break e.to_string(),
                None => break "watch stream ended".to_string(),
            }
        };
        let delay = backoff.next_delay();
        tracing::warn!(%kind, error = %failure, retry_in = ?delay, "webhook cache watch failed; serving the last state and re-listing");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(name: &str, mode: &str) -> RequestPolicy {
        serde_json::from_value(json!({
            "apiVersion": "capstan.dev/v1alpha1", "kind": "RequestPolicy",
            "metadata": {"name": name}, "spec": {"mode": mode}
        }))
        .unwrap()
    }

    fn namespace(name: &str, labels: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    fn names(cache: &WebhookCache) -> Vec<(String, String)> {
        let mut out: Vec<_> = cache
            .snapshot()
            .policies
            .iter()
            .map(|p| (p.name_any(), p.mode().to_string()))
            .collect();
        out.sort();
        out
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn a_list_is_applied_whole_at_init_done() {
        let cache = WebhookCache::new();
        let mut buf = ListBuffer::default();
        let mut feed = |e| {
            if let Some(c) = buf.step(e) {
                apply_policy_change(&cache, c);
            }
        };
        feed(Event::Init);
        feed(Event::InitApply(policy("a", "Enforce")));
        feed(Event::InitApply(policy("b", "Warn")));
        assert!(names(&cache).is_empty(), "half a list must not be served");
        feed(Event::InitDone);
        assert_eq!(names(&cache), pairs(&[("a", "Enforce"), ("b", "Warn")]));

        feed(Event::Apply(policy("a", "Warn")));
        feed(Event::Apply(policy("c", "Enforce")));
        feed(Event::Delete(policy("b", "Warn")));
        assert_eq!(names(&cache), pairs(&[("a", "Warn"), ("c", "Enforce")]));

        // A re-list after an outage: "c" was deleted meanwhile; the old state serves until done.
        feed(Event::Init);
        feed(Event::InitApply(policy("a", "Warn")));
        assert_eq!(names(&cache), pairs(&[("a", "Warn"), ("c", "Enforce")]));
        feed(Event::InitDone);
        assert_eq!(names(&cache), pairs(&[("a", "Warn")]));

        // An empty list empties the cache.
        feed(Event::Init);
        feed(Event::InitDone);
        assert!(names(&cache).is_empty());
    }

    #[test]
    fn init_done_without_init_replaces_with_what_was_buffered() {
        let mut buf: ListBuffer<u32> = ListBuffer::default();
        assert_eq!(
            buf.step(Event::InitApply(1)),
            None,
            "buffered even without Init"
        );
        assert_eq!(buf.step(Event::InitDone), Some(Change::Replace(vec![1])));
        assert_eq!(buf.step(Event::InitDone), Some(Change::Replace(vec![])));
        assert_eq!(buf.step(Event::Apply(2)), Some(Change::Upsert(2)));
        assert_eq!(buf.step(Event::Delete(2)), Some(Change::Remove(2)));
    }

    #[test]
    fn namespaces_keep_labels_and_always_carry_their_name() {
        let cache = WebhookCache::new();
        apply_namespace_change(
            &cache,
            Change::Replace(vec![
                namespace("team-a", json!({"team": "a"})),
                namespace(
                    "plain",
                    json!({"kubernetes.io/metadata.name": "plain", "x": "y"}),
                ),
            ]),
        );
        let snap = cache.snapshot();
        assert_eq!(
            snap.namespaces["team-a"],
            BTreeMap::from([
                ("team".to_string(), "a".to_string()),
                (NAMESPACE_NAME_LABEL.to_string(), "team-a".to_string()),
            ])
        );
        assert_eq!(snap.namespaces["plain"]["x"], "y");

        apply_namespace_change(
            &cache,
            Change::Upsert(namespace("team-a", json!({"team": "b"}))),
        );
        apply_namespace_change(&cache, Change::Remove(namespace("plain", json!({}))));
        let snap = cache.snapshot();
        assert_eq!(snap.namespaces["team-a"]["team"], "b");
        assert!(!snap.namespaces.contains_key("plain"));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let got: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    /// Against an address nobody listens on: the watches fail, back off and retry without
    /// panicking, the cache keeps what it had, and shutdown is prompt.
    #[tokio::test]
    async fn unreachable_api_server_keeps_the_cache_and_stops_cleanly() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let cache = WebhookCache::new();
        cache.set_policies(vec![policy("kept", "Warn")]);
        let watcher = CacheWatcher::spawn(client, cache.clone());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(!watcher.is_synced());
        assert_eq!(names(&cache), pairs(&[("kept", "Warn")]));
        tokio::time::timeout(Duration::from_secs(5), watcher.shutdown())
            .await
            .expect("shutdown while backing off");
    }
}

//! The in-memory object store: plain JSON objects, one shard per resource (group + plural), one
//! global resourceVersion counter, and per-shard bounded event history for watches.
//!
//! Why sharded: a pod list or a pod write never waits for node traffic, and a watch only sees
//! its resource's events (scale target: 50,000 pods, 5,000 nodes). Why one counter anyway:
//! resourceVersions are comparable across resources, as on the real server. Ordering stays
//! sound because each shard assigns its rvs while holding its own write lock, so within a shard
//! rvs are strictly increasing in history order, and any rv read under a shard's read lock
//! bounds exactly the events that shard has already recorded.
//!
//! The store is policy-free: it checks existence and resourceVersion preconditions and records
//! events. Defaults, status/spec separation, finalizers and garbage collection live in `api.rs`
//! (where the admission chain will also go).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::errors::ApiError;
use crate::object::{lock, meta_mut, name, namespace, owner_uids, read_lock, uid, write_lock};
use crate::registry::GroupResource;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in history and fanned out to watchers. `old` (the previous state of a
/// modified object) lets a selector-filtered watch turn a MODIFIED into ADDED or DELETED when
/// the object enters or leaves the selection, as the real server does.
#[derive(Debug)]
pub struct StoreEvent {
    pub kind: EventType,
    pub rv: u64,
    pub object: Arc<Value>,
    pub old: Option<Arc<Value>>,
}

/// Identifies one stored object across shards (for the garbage collector's index).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub gr: GroupResource,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Default)]
struct ShardState {
    /// Keyed by (namespace, name): lists come out in the order etcd would return them.
    objects: BTreeMap<(String, String), Arc<Value>>,
    history: VecDeque<Arc<StoreEvent>>,
    /// rv of the newest event dropped from history: watches from before it get 410.
    compacted_rv: u64,
}

#[derive(Debug)]
struct Shard {
    state: RwLock<ShardState>,
    tx: broadcast::Sender<Arc<StoreEvent>>,
}

#[derive(Debug, Default)]
struct Indexes {
    /// owner uid → objects naming it in ownerReferences.
    dependents: HashMap<String, HashSet<ObjectKey>>,
    /// uids of live objects (an owner "exists" for the garbage collector).
    live: HashSet<String>,
}

/// Sizes of the watch machinery.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Events kept per resource for watches that resume from an older resourceVersion.
    pub history: usize,
    /// Events buffered per watcher before it is told 410 and must relist.
    pub watch_buffer: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            history: 10_000,
            watch_buffer: 16_384,
        }
    }
}

#[derive(Debug)]
pub struct Store {
    rv: AtomicU64,
    shards: RwLock<HashMap<GroupResource, Arc<Shard>>>,
    // Lock order: a shard's lock, then `indexes`; never the other way round.
    indexes: Mutex<Indexes>,
    limits: StoreLimits,
}

/// A watch's starting point: history to replay and the live receiver subscribed atomically.
pub type WatchStart = (Vec<Arc<StoreEvent>>, broadcast::Receiver<Arc<StoreEvent>>);

impl Store {
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            rv: AtomicU64::new(1),
            shards: RwLock::new(HashMap::new()),
            indexes: Mutex::new(Indexes::default()),
            limits: StoreLimits {
                history: limits.history.max(1),
                watch_buffer: limits.watch_buffer.max(16),
            },
        }
    }

    /// The newest resourceVersion handed out (what a list reports).
    pub fn current_rv(&self) -> u64 {
        self.rv.load(Ordering::SeqCst)
    }

    fn next_rv(&self) -> u64 {
        self.rv.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn shard(&self, gr: &GroupResource) -> Arc<Shard> {
        if let Some(s) = read_lock(&self.shards).get(gr) {
            return s.clone();
        }
        write_lock(&self.shards)
            .entry(gr.clone())
            .or_insert_with(|| {
                Arc::new(Shard {
                    state: RwLock::new(ShardState::default()),
                    tx: broadcast::channel(self.limits.watch_buffer).0,
                })
            })
            .clone()
    }

    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        let shard = self.shard(gr);
        let state = read_lock(&shard.state);
        state
            .objects
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of one resource (in one namespace if given) that pass `keep`, with the
    /// resourceVersion the list is consistent with.
    pub fn list(
        &self,
        gr: &GroupResource,
        ns: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> (Vec<Arc<Value>>, u64) {
        let shard = self.shard(gr);
        let state = read_lock(&shard.state);
        let rv = self.current_rv();
        let items = match ns {
            Some(ns) => state
                .objects
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .filter(|(_, o)| keep(o))
                .map(|(_, o)| o.clone())
                .collect(),
            None => state
                .objects
                .values()
                .filter(|o| keep(o))
                .cloned()
                .collect(),
        };
        (items, rv)
    }

    fn record(&self, shard: &Shard, state: &mut ShardState, event: StoreEvent) {
        let event = Arc::new(event);
        state.history.push_back(event.clone());
        while state.history.len() > self.limits.history {
            if let Some(old) = state.history.pop_front() {
                state.compacted_rv = old.rv;
            }
        }
        // No receivers is fine: nobody is watching this resource.
        let _ = shard.tx.send(event);
    }

    fn set_rv(obj: &mut Value, rv: u64) -> Result<(), ApiError> {
        meta_mut(obj)?.insert("resourceVersion".into(), json!(rv.to_string()));
        Ok(())
    }

    /// Insert a new object (its name and namespace already final). 409 if it exists.
    pub fn create(&self, gr: &GroupResource, mut obj: Value) -> Result<Arc<Value>, ApiError> {
        let key = (namespace(&obj).to_string(), name(&obj).to_string());
        let shard = self.shard(gr);
        let mut state = write_lock(&shard.state);
        if state.objects.contains_key(&key) {
            return Err(ApiError::already_exists(gr, &key.1));
        }
        let rv = self.next_rv();
        Self::set_rv(&mut obj, rv)?;
        let obj = Arc::new(obj);
        state.objects.insert(key, obj.clone());
        self.reindex(gr, None, Some(&obj));
        self.record(
            &shard,
            &mut state,
            StoreEvent {
                kind: EventType::Added,
                rv,
                object: obj.clone(),
                old: None,
            },
        );
        Ok(obj)
    }

    /// Replace an existing object if its stored resourceVersion is still `expected_rv`.
    pub fn update(
        &self,
        gr: &GroupResource,
        mut obj: Value,
        expected_rv: u64,
    ) -> Result<Arc<Value>, ApiError> {
        let key = (namespace(&obj).to_string(), name(&obj).to_string());
        let shard = self.shard(gr);
        let mut state = write_lock(&shard.state);
        let Some(old) = state.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(gr, &key.1));
        };
        if crate::object::resource_version(&old) != expected_rv.to_string() {
            return Err(ApiError::conflict(gr, &key.1));
        }
        let rv = self.next_rv();
        Self::set_rv(&mut obj, rv)?;
        let obj = Arc::new(obj);
        state.objects.insert(key, obj.clone());
        self.reindex(gr, Some(&old), Some(&obj));
        self.record(
            &shard,
            &mut state,
            StoreEvent {
                kind: EventType::Modified,
                rv,
                object: obj.clone(),
                old: Some(old),
            },
        );
        Ok(obj)
    }

    /// Remove an object (finalizers are the caller's business). `expected_rv` is a delete
    /// precondition; `last_state` replaces the stored object in the DELETED event (an update
    /// that removed the last finalizer). The returned object carries the deletion's
    /// resourceVersion.
    pub fn remove(
        &self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        expected_rv: Option<u64>,
        last_state: Option<Value>,
    ) -> Result<Arc<Value>, ApiError> {
        let key = (ns.to_string(), name.to_string());
        let shard = self.shard(gr);
        let mut state = write_lock(&shard.state);
        let Some(old) = state.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(gr, name));
        };
        if let Some(want) = expected_rv
            && crate::object::resource_version(&old) != want.to_string()
        {
            return Err(ApiError::conflict(gr, name));
        }
        state.objects.remove(&key);
        let rv = self.next_rv();
        let mut last = last_state.unwrap_or_else(|| (*old).clone());
        Self::set_rv(&mut last, rv)?;
        let last = Arc::new(last);
        self.reindex(gr, Some(&old), None);
        self.record(
            &shard,
            &mut state,
            StoreEvent {
                kind: EventType::Deleted,
                rv,
                object: last.clone(),
                old: None,
            },
        );
        Ok(last)
    }

    /// Keep the garbage collector's indexes in step with one write (called under the shard lock).
    fn reindex(&self, gr: &GroupResource, old: Option<&Arc<Value>>, new: Option<&Arc<Value>>) {
        let old_owners: HashSet<String> = old
            .map(|o| owner_uids(o))
            .unwrap_or_default()
            .into_iter()
            .collect();
        let new_owners: HashSet<String> = new
            .map(|o| owner_uids(o))
            .unwrap_or_default()
            .into_iter()
            .collect();
        let Some(any) = new.or(old) else {
            return;
        };
        let key = ObjectKey {
            gr: gr.clone(),
            namespace: namespace(any).to_string(),
            name: name(any).to_string(),
        };
        let mut idx = lock(&self.indexes);
        for gone in old_owners.difference(&new_owners) {
            if let Some(set) = idx.dependents.get_mut(gone) {
                set.remove(&key);
                if set.is_empty() {
                    idx.dependents.remove(gone);
                }
            }
        }
        for added in new_owners.difference(&old_owners) {
            idx.dependents
                .entry(added.clone())
                .or_default()
                .insert(key.clone());
        }
        match (old, new) {
            (None, Some(n)) => {
                idx.live.insert(uid(n).to_string());
            }
            (Some(o), None) => {
                idx.live.remove(uid(o));
            }
            _ => {}
        }
    }

    /// Objects whose ownerReferences name `owner_uid`.
    pub fn dependents(&self, owner_uid: &str) -> Vec<ObjectKey> {
        lock(&self.indexes)
            .dependents
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether an object with this uid is stored (of any resource).
    pub fn uid_exists(&self, uid: &str) -> bool {
        lock(&self.indexes).live.contains(uid)
    }

    /// A receiver of this resource's events from now on (the in-process controllers' wake-up).
    pub fn subscribe(&self, gr: &GroupResource) -> broadcast::Receiver<Arc<StoreEvent>> {
        self.shard(gr).tx.subscribe()
    }

    /// Start a watch after `from_rv`: the recorded events newer than it, plus a receiver for
    /// what follows, taken under one read lock so nothing falls in between. 410 when the
    /// history no longer reaches back to `from_rv`.
    pub fn watch_from(&self, gr: &GroupResource, from_rv: u64) -> Result<WatchStart, ApiError> {
        let shard = self.shard(gr);
        let state = read_lock(&shard.state);
        if from_rv < state.compacted_rv {
            return Err(ApiError::gone(from_rv, state.compacted_rv + 1));
        }
        let replay = state
            .history
            .iter()
            .filter(|e| e.rv > from_rv)
            .cloned()
            .collect();
        Ok((replay, shard.tx.subscribe()))
    }

    /// Start a watch at "now": the current objects (sent as synthetic ADDED events) and a
    /// receiver for later changes, consistent with the returned resourceVersion.
    pub fn watch_now(
        &self,
        gr: &GroupResource,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<StoreEvent>>) {
        let shard = self.shard(gr);
        let state = read_lock(&shard.state);
        let objects = state.objects.values().cloned().collect();
        (objects, self.current_rv(), shard.tx.subscribe())
    }

    /// For a bookmark: drain what `rx` has pending and return it with a resourceVersion that
    /// covers every event of this resource recorded so far (taken under the shard's read lock,
    /// so no event can slip in between the drain and the rv).
    pub fn drain_for_bookmark(
        &self,
        gr: &GroupResource,
        rx: &mut broadcast::Receiver<Arc<StoreEvent>>,
    ) -> (Vec<Result<Arc<StoreEvent>, ()>>, u64) {
        let shard = self.shard(gr);
        let _state = read_lock(&shard.state);
        let mut pending = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(e) => pending.push(Ok(e)),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    pending.push(Err(()));
                    break;
                }
                Err(_) => break,
            }
        }
        (pending, self.current_rv())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gr() -> GroupResource {
        GroupResource {
            group: String::new(),
            resource: "configmaps".into(),
        }
    }

    fn cm(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")}})
    }

    #[test]
    fn rv_conflict_and_history() {
        let store = Store::new(StoreLimits {
            history: 2,
            watch_buffer: 16,
        });
        let a = store.create(&gr(), cm("a")).expect("create");
        let rv_a: u64 = crate::object::resource_version(&a).parse().expect("rv");
        assert_eq!(store.create(&gr(), cm("a")).expect_err("dup").code, 409);
        let updated = store.update(&gr(), cm("a"), rv_a).expect("update");
        assert_eq!(
            store.update(&gr(), cm("a"), rv_a).expect_err("stale").code,
            409
        );
        assert!(
            crate::object::resource_version(&updated)
                .parse::<u64>()
                .expect("rv")
                > rv_a
        );
        store.create(&gr(), cm("b")).expect("b");
        // history holds 2 events: the create of `a` is gone.
        assert_eq!(
            store.watch_from(&gr(), rv_a - 1).err().map(|e| e.code),
            Some(410)
        );
        let (replay, _rx) = store.watch_from(&gr(), rv_a).expect("watch");
        assert_eq!(replay.len(), 2);
        let (items, _) = store.list(&gr(), Some("default"), |_| true);
        assert_eq!(items.len(), 2);
        store
            .remove(&gr(), "default", "a", None, None)
            .expect("remove");
        assert!(store.get(&gr(), "default", "a").is_none());
        assert!(!store.uid_exists("uid-a") && store.uid_exists("uid-b"));
    }
}

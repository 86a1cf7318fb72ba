//! What the pod webhook needs from the cluster, held in memory: RequestPolicies and namespace
//! labels. Controllers fill it from their watches; requests only read a snapshot, so the webhook
//! never calls the API server per request and keeps serving from the last state if it cannot.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::apis::RequestPolicy;

/// The label the API server puts on every namespace with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A consistent view for one request.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub policies: Arc<Vec<RequestPolicy>>,
    pub namespaces: Arc<BTreeMap<String, BTreeMap<String, String>>>,
}

impl Snapshot {
    /// The namespace's labels; a namespace not (yet) in the cache gets the one label the API
    /// server guarantees, so name-based selectors still work.
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.namespaces.get(namespace).cloned().unwrap_or_else(|| {
            BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string())])
        })
    }
}

/// Shared, cheaply cloned handle. Writers replace whole lists (what a watch's re-list gives).
#[derive(Debug, Clone, Default)]
pub struct WebhookCache {
    inner: Arc<RwLock<Snapshot>>,
}

impl WebhookCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> Snapshot {
        // A poisoned lock only means a writer panicked mid-replace of an Arc: the value is whole.
        match self.inner.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn write(&self, f: impl FnOnce(&mut Snapshot)) {
        match self.inner.write() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    pub fn set_policies(&self, policies: Vec<RequestPolicy>) {
        self.write(|s| s.policies = Arc::new(policies));
    }

    pub fn set_namespaces(&self, namespaces: BTreeMap<String, BTreeMap<String, String>>) {
        self.write(|s| s.namespaces = Arc::new(namespaces));
    }

    /// Adds or replaces one policy (by name), for watch events.
    pub fn upsert_policy(&self, policy: RequestPolicy) {
        self.write(|s| {
            let mut list: Vec<RequestPolicy> = s.policies.as_ref().clone();
            list.retain(|p| p.metadata.name != policy.metadata.name);
            list.push(policy);
            s.policies = Arc::new(list);
        });
    }

    pub fn remove_policy(&self, name: &str) {
        self.write(|s| {
            let mut list: Vec<RequestPolicy> = s.policies.as_ref().clone();
            list.retain(|p| p.metadata.name.as_deref() != Some(name));
            s.policies = Arc::new(list);
        });
    }

    pub fn upsert_namespace(&self, name: &str, labels: BTreeMap<String, String>) {
        self.write(|s| {
            let mut map = s.namespaces.as_ref().clone();
            map.insert(name.to_string(), labels);
            s.namespaces = Arc::new(map);
        });
    }

    pub fn remove_namespace(&self, name: &str) {
        self.write(|s| {
            let mut map = s.namespaces.as_ref().clone();
            map.remove(name);
            s.namespaces = Arc::new(map);
        });
    }
}

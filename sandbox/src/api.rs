//! The verbs, independent of HTTP: decode-free operations on generic objects that apply the
//! real server's object semantics (server-set metadata, generateName, status subresources,
//! generation, defaults, finalizers, ownerReference garbage collection, CRD installation) on
//! top of the policy-free [`Store`].
//!
//! Admission: the `*_admitted` verbs run the webhook chain ([`crate::admission`]) when the
//! request names a user (`WriteChecks::user`): mutating webhooks after defaulting, validating
//! webhooks on the final object, then the store — all async, and no store lock is held
//! meanwhile, which is why writes use optimistic concurrency (read, compute,
//! write-if-unchanged, retry; webhooks run again on a retry, as on the real server). The sync
//! verbs are the sandbox's own bookkeeping (garbage collection, CRD preloading), which no
//! webhook sees; they share the async code and complete at the first poll.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use futures_util::FutureExt;
use serde_json::{Map, Value, json};

use crate::admission::{Admission, Attributes, Operation};
use crate::crd;
use crate::defaults::{apply_built_in_defaults, apply_schema_defaults};
use crate::errors::ApiError;
use crate::events;
use crate::object::{
    deletion_timestamp, finalizers, generate_name, meta_mut, name, namespace, new_uid, now_rfc3339,
    owner_uids, parse_rv, random_suffix, resource_version, uid,
};
use crate::patch::{PatchType, apply_merge, parse_apply_body, patch_object};
use crate::registry::{GroupResource, NameRule, Registry, ResourceType};
use crate::selectors::Selectors;
use crate::store::{Store, StoreLimits};
use crate::validation::{self, WriteChecks};

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
}

/// `DeleteOptions.propagationPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// The parts of `DeleteOptions` the sandbox honours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteOptions {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<u64>,
}

/// Optimistic-concurrency retries for writes the client did not pin to a resourceVersion.
const MAX_RETRIES: usize = 16;
/// Attempts at a free `generateName` name before giving up (the real server also retries).
const GENERATE_NAME_ATTEMPTS: usize = 8;

pub struct Api {
    pub store: Store,
    pub registry: Registry,
    pub admission: Admission,
    /// Bumped to end every open watch at once (a fault the chaos soak injects: clients must
    /// re-watch, as after an API server restart or a dropped connection).
    watch_drops: tokio::sync::watch::Sender<u64>,
}

/// The result of a write run without webhooks: with nothing to await, its future is ready at
/// the first poll, so the sync entry points share the async code path.
fn unreviewed<T>(ready: Option<Result<T, ApiError>>) -> Result<T, ApiError> {
    ready.unwrap_or_else(|| Err(ApiError::internal("a write without webhooks had to wait")))
}

fn namespaces_gr() -> GroupResource {
    GroupResource {
        group: String::new(),
        resource: "namespaces".into(),
    }
}

fn is_crd(rt: &ResourceType) -> bool {
    rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions"
}

fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "namespaces"
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
    alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
    (e.g. 'example.com', regex used for validation is \
    '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
    characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  \
    or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Why `name` is not acceptable under `rule`, if it is not.
fn name_problem(rule: NameRule, name: &str) -> Option<String> {
    let ok = match rule {
        NameRule::Subdomain => name.len() <= 253 && name.split('.').all(is_dns_label),
        NameRule::Label => is_dns_label(name),
        NameRule::PathSegment => {
            name != "." && name != ".." && !name.contains('/') && !name.contains('%')
        }
    };
    if ok {
        return None;
    }
    Some(match rule {
        NameRule::Subdomain => format!("Invalid value: {name:?}: {SUBDOMAIN_MSG}"),
        NameRule::Label => format!("Invalid value: {name:?}: {LABEL_MSG}"),
        NameRule::PathSegment => {
            format!("Invalid value: {name:?}: may not be '.' or '..' or contain '/' or '%'")
        }
    })
}

/// The object without `metadata` (and without `status` when status is a subresource): what a
/// generation bump compares.
fn spec_part(rt: &ResourceType, v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        if rt.status {
            o.remove("status");
        }
    }
    v
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    match value {
        Some(v) => {
            map.insert(key.to_string(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

impl Api {
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            store: Store::new(limits),
            registry: Registry::with_built_ins(),
            admission: Admission::default(),
            watch_drops: tokio::sync::watch::channel(0).0,
        }
    }

    /// Ends every open watch (their streams close as a dropped connection would); returns how
    /// many there were.
    pub fn drop_watches(&self) -> usize {
        let open = self.watch_drops.receiver_count();
        self.watch_drops.send_modify(|n| *n += 1);
        open
    }

    /// What a watch selects on to end when [`Api::drop_watches`] is called.
    pub fn watch_drop_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watch_drops.subscribe()
    }

    /// The body must be an object whose kind and group (when given) match the URL's.
    fn check_type(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
        let Some(map) = obj.as_object_mut() else {
            return Err(ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {})",
                rt.kind
            )));
        };
        if let Some(kind) = map.get("kind").and_then(Value::as_str)
            && !kind.is_empty()
            && kind != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({kind}) does not match the kind of the URL ({})",
                rt.kind
            )));
        }
        if let Some(av) = map.get("apiVersion").and_then(Value::as_str) {
            let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            if !av.is_empty() && group != rt.group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    rt.api_version()
                )));
            }
        }
        map.insert("apiVersion".into(), json!(rt.api_version()));
        map.insert("kind".into(), json!(rt.kind));
        Ok(())
    }

    /// An incoming object of `rt` (type-checked) in the shape it is stored in: converted when
    /// `rt` is an alias. The write then goes on as one of the storage's type.
    fn to_storage(rt: &ResourceType, obj: Value) -> Value {
        match &rt.storage {
            Some(storage) => events::convert(&obj, &storage.api_version()).unwrap_or(obj),
            None => obj,
        }
    }

    /// Selectors of a request on `rt` as they apply to stored objects: an alias's field labels
    /// renamed to its storage's (events.k8s.io Events are the only alias).
    pub fn storage_selectors<'a>(
        rt: &ResourceType,
        selectors: &'a Selectors,
    ) -> Cow<'a, Selectors> {
        if rt.storage.is_none() {
            return Cow::Borrowed(selectors);
        }
        Cow::Owned(Selectors {
            labels: selectors.labels.clone(),
            fields: selectors.fields.relabel(events::core_field_label),
        })
    }

    /// Namespace of the body vs the URL: filled in when empty, 400 when different, cleared for
    /// cluster-scoped kinds.
    fn settle_namespace(rt: &ResourceType, ns: &str, obj: &mut Value) -> Result<(), ApiError> {
        let body_ns = namespace(obj).to_string();
        let m = meta_mut(obj)?;
        if rt.namespaced {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        Ok(())
    }

    fn apply_defaults(rt: &ResourceType, obj: &mut Value) {
        match rt.custom.as_ref().and_then(|c| c.schema.as_ref()) {
            Some(schema) => apply_schema_defaults(schema, obj),
            None => apply_built_in_defaults(&rt.group, &rt.kind, obj),
        }
    }

    /// Unknown fields of a custom resource pruned (and reported per `fieldValidation`).
    fn prune_custom(
        rt: &ResourceType,
        obj: &mut Value,
        checks: &mut WriteChecks,
    ) -> Result<(), ApiError> {
        match rt.custom.as_ref().and_then(|c| c.schema.as_ref()) {
            Some(schema) => validation::prune_checked(schema, &rt.kind, &rt.version, obj, checks),
            None => Ok(()),
        }
    }

    /// A custom resource against its schema and CEL rules: 422 with every failing field.
    fn validate_custom(
        rt: &ResourceType,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let Some(schema) = rt.custom.as_ref().and_then(|c| c.schema.as_ref()) else {
            return Ok(());
        };
        let causes = validation::validate_object(schema, obj, old);
        if causes.is_empty() {
            return Ok(());
        }
        // The message names the qualified kind (`NodePool.karpenter.sh`), details the plain
        // one plus the group, as the real server; kubectl rebuilds the former from the latter.
        let mut err = ApiError::invalid(
            &format!("{}.{}", rt.kind, rt.group),
            &rt.gr(),
            name(obj),
            causes,
        );
        if let Some(d) = err.details.as_mut() {
            d.kind = rt.kind.clone();
        }
        Err(err)
    }

    /// POST: a new object. `ns` is "" for cluster-scoped kinds.
    pub fn create(&self, rt: &ResourceType, ns: &str, obj: Value) -> Result<Arc<Value>, ApiError> {
        self.create_with(rt, ns, obj, &mut WriteChecks::default())
    }

    /// [`Api::create`] with the request's write checks (`fieldValidation`, warnings out). The
    /// sandbox's own writes: no webhook is called, whatever `checks.user` says.
    pub fn create_with(
        &self,
        rt: &ResourceType,
        ns: &str,
        obj: Value,
        checks: &mut WriteChecks,
    ) -> Result<Arc<Value>, ApiError> {
        let user = checks.user.take();
        let result = self.create_admitted(rt, ns, obj, checks).now_or_never();
        checks.user = user;
        unreviewed(result)
    }

    /// A create through the admission chain when `checks.user` is set: mutating webhooks
    /// after defaulting, validating webhooks on the final object (name generated), then the
    /// store (skipped on dry-run).
    pub async fn create_admitted(
        &self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        checks: &mut WriteChecks,
    ) -> Result<Arc<Value>, ApiError> {
        Self::check_type(rt, &mut obj)?;
        let mut obj = Self::to_storage(rt, obj);
        let rt = rt.stored_as();
        Self::settle_namespace(rt, ns, &mut obj)?;
        Self::prune_custom(rt, &mut obj, checks)?;
        if rt.namespaced && self.store.get(&namespaces_gr(), "", ns).is_none() {
            return Err(ApiError::not_found(&namespaces_gr(), ns));
        }
        if !resource_version(&obj).is_empty() {
            // The real server's (odd) answer, kept so clients that forget to clear it fail here too.
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        Self::apply_defaults(rt, &mut obj);
        let user = checks.user.clone();
        if let Some(user) = &user {
            let attrs = self.attributes(rt, "", Operation::Create, ns, name(&obj), checks, user);
            self.admission
                .mutate(self, &attrs, Some(&mut obj), None, &mut checks.warnings)
                .await?;
            // Webhooks may have changed anything: settle again, and default what they added
            // (the real server re-defaults after each patch).
            Self::check_type(rt, &mut obj)?;
            Self::settle_namespace(rt, ns, &mut obj)?;
            Self::prune_custom(rt, &mut obj, checks)?;
            Self::apply_defaults(rt, &mut obj);
        }
        let given_name = name(&obj).to_string();
        let prefix = generate_name(&obj).to_string();
        if given_name.is_empty() && prefix.is_empty() {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.gr(),
                "",
                vec![(
                    "metadata.name".into(),
                    "FieldValueRequired",
                    "Required value: name or generateName is required".into(),
                )],
            ));
        }
        {
            let m = meta_mut(&mut obj)?;
            m.insert("uid".into(), json!(new_uid()?));
            m.insert("creationTimestamp".into(), json!(now_rfc3339()));
            for k in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "resourceVersion",
            ] {
                m.remove(k);
            }
            if rt.tracks_generation() {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        if let Some(o) = obj.as_object_mut() {
            if rt.group.is_empty() && rt.kind == "Pod" {
                // As the real server: a new pod's status is the server's, not the client's.
                o.insert("status".into(), json!({"phase": "Pending"}));
            } else if rt.custom.is_some() && rt.status {
                o.remove("status");
            }
        }
        {
            let mut named = obj.clone();
            if given_name.is_empty() {
                // Rules reading `self.metadata.name` see the prefix; close enough for a check.
                meta_mut(&mut named)?.insert("name".into(), json!(prefix));
            }
            Self::validate_custom(rt, &named, None)?;
        }
        let crd_types = if is_crd(rt) {
            let types = crd::resource_types(&obj)?;
            let status = crd::accepted_status(&obj, None);
            if let Some(o) = obj.as_object_mut() {
                o.insert("status".into(), status);
            }
            Some(types)
        } else {
            None
        };
        if is_namespace(rt) {
            self.namespace_fields(&mut obj)?;
        }

        for attempt in 0..GENERATE_NAME_ATTEMPTS {
            let mut candidate = obj.clone();
            let name = if given_name.is_empty() {
                format!("{prefix}{}", random_suffix()?)
            } else {
                given_name.clone()
            };
            if let Some(problem) = name_problem(rt.name_rule, &name) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &rt.gr(),
                    &name,
                    vec![("metadata.name".into(), "FieldValueInvalid", problem)],
                ));
            }
            meta_mut(&mut candidate)?.insert("name".into(), json!(name));
            let retry_name = given_name.is_empty() && attempt + 1 < GENERATE_NAME_ATTEMPTS;
            if checks.dry_run && self.store.get(&rt.gr(), ns, &name).is_some() {
                if retry_name {
                    continue;
                }
                return Err(ApiError::already_exists(&rt.gr(), &name));
            }
            if let Some(user) = &user {
                let attrs = self.attributes(rt, "", Operation::Create, ns, &name, checks, user);
                self.admission
                    .validate(self, &attrs, Some(&candidate), None, &mut checks.warnings)
                    .await?;
            }
            if checks.dry_run {
                return Ok(Arc::new(candidate));
            }
            match self.store.create(&rt.gr(), candidate) {
                Err(e) if e.code == 409 && retry_name => continue,
                Err(e) => return Err(e),
                Ok(created) => {
                    if let Some(types) = crd_types {
                        self.registry.install_crd(&name, types);
                    }
                    self.after_write(rt, ns);
                    return Ok(created);
                }
            }
        }
        Err(ApiError::internal("could not generate a free name"))
    }

    /// What webhooks are told about a write of `rt` by `user`.
    #[allow(clippy::too_many_arguments)]
    fn attributes(
        &self,
        rt: &ResourceType,
        subresource: &str,
        op: Operation,
        ns: &str,
        name: &str,
        checks: &WriteChecks,
        user: &Value,
    ) -> Attributes {
        Attributes::of(
            rt,
            subresource,
            op,
            if rt.namespaced { ns } else { "" },
            name,
            checks.dry_run,
            checks.field_manager.as_deref(),
            user.clone(),
        )
    }

    /// Fields the namespace "controller" maintains, set at once since there is none.
    fn namespace_fields(&self, obj: &mut Value) -> Result<(), ApiError> {
        let n = name(obj).to_string();
        let m = meta_mut(obj)?;
        let labels = m.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), json!(n));
        }
        if let Some(o) = obj.as_object_mut() {
            o.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
            o.insert("status".into(), json!({"phase": "Active"}));
        }
        Ok(())
    }

    /// The stored object (in its storage's shape for an alias: see [`Api::at_version`]).
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        self.store
            .get(&rt.stored_as().gr(), ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.gr(), name))
    }

    /// Objects of `rt` (in `ns` when given) matching the selectors, and the list's rv.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        selectors: &Selectors,
    ) -> (Vec<Arc<Value>>, u64) {
        let selectors = Self::storage_selectors(rt, selectors);
        self.store
            .list(&rt.stored_as().gr(), ns, |o| selectors.matches(o))
    }

    /// The incoming object with what the client may not change restored from the stored one:
    /// server-owned metadata, and status or everything-but-status depending on `sub`. Pruned
    /// and defaulted. Run before and again after the mutating webhooks.
    fn merge_update(
        rt: &ResourceType,
        current: &Value,
        incoming: Value,
        sub: Sub,
        checks: &mut WriteChecks,
    ) -> Result<Value, ApiError> {
        let mut new = match sub {
            Sub::Status => {
                // Only status changes; metadata and spec stay as stored.
                let mut new = current.clone();
                if let Some(o) = new.as_object_mut() {
                    set_or_remove(o, "status", incoming.get("status"));
                }
                new
            }
            Sub::Main => {
                let mut new = incoming;
                Self::check_type(rt, &mut new)?;
                let cur_meta = crate::object::meta(current).cloned().unwrap_or_default();
                {
                    let m = meta_mut(&mut new)?;
                    for k in [
                        "name",
                        "namespace",
                        "uid",
                        "creationTimestamp",
                        "deletionTimestamp",
                        "deletionGracePeriodSeconds",
                        "generation",
                    ] {
                        set_or_remove(m, k, cur_meta.get(k));
                    }
                }
                if rt.status
                    && let Some(o) = new.as_object_mut()
                {
                    set_or_remove(o, "status", current.get("status"));
                }
                new
            }
        };
        Self::prune_custom(rt, &mut new, checks)?;
        Self::apply_defaults(rt, &mut new);
        Ok(new)
    }

    /// Checks and server-maintained fields of an update's final object: validation, CRD
    /// status, finalizer rules, generation.
    fn finish_update(
        &self,
        rt: &ResourceType,
        current: &Value,
        mut new: Value,
        sub: Sub,
    ) -> Result<Value, ApiError> {
        Self::validate_custom(rt, &new, Some(current))?;
        if sub == Sub::Main {
            if is_crd(rt) {
                crd::resource_types(&new)?;
                let status = crd::accepted_status(&new, current.get("status"));
                if let Some(o) = new.as_object_mut() {
                    o.insert("status".into(), status);
                }
            }
            if is_namespace(rt)
                && let Some(o) = new.as_object_mut()
            {
                set_or_remove(o, "spec", current.get("spec"));
                set_or_remove(o, "status", current.get("status"));
            }
            if deletion_timestamp(current).is_some() {
                let before: HashSet<String> = finalizers(current).into_iter().collect();
                if finalizers(&new).iter().any(|f| !before.contains(f)) {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        &rt.gr(),
                        name(current),
                        vec![(
                            "metadata.finalizers".into(),
                            "FieldValueForbidden",
                            "Forbidden: no new finalizers can be added if the object is being deleted"
                                .into(),
                        )],
                    ));
                }
            }
            if rt.tracks_generation() && spec_part(rt, &new) != spec_part(rt, current) {
                let generation = crate::object::meta(current)
                    .and_then(|m| m.get("generation"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                meta_mut(&mut new)?.insert("generation".into(), json!(generation + 1));
            }
        }
        // The store assigns the new rv; compare against the stored one meanwhile.
        meta_mut(&mut new)?.insert("resourceVersion".into(), json!(resource_version(current)));
        Ok(new)
    }

    /// One attempt at an update of `current`: merge, mutating webhooks, checks, validating
    /// webhooks, store (or, on dry-run, the object that would have been stored).
    async fn write_update(
        &self,
        rt: &ResourceType,
        current: &Arc<Value>,
        incoming: Value,
        sub: Sub,
        checks: &mut WriteChecks,
    ) -> Result<Arc<Value>, ApiError> {
        let mut new = Self::merge_update(rt, current, incoming, sub, checks)?;
        let user = checks.user.clone();
        let subresource = if sub == Sub::Status { "status" } else { "" };
        let (ns, n) = (namespace(current), name(current));
        if let Some(user) = &user {
            let attrs = self.attributes(rt, subresource, Operation::Update, ns, n, checks, user);
            self.admission
                .mutate(
                    self,
                    &attrs,
                    Some(&mut new),
                    Some(current),
                    &mut checks.warnings,
                )
                .await?;
            new = Self::merge_update(rt, current, new, sub, checks)?;
        }
        let new = self.finish_update(rt, current, new, sub)?;
        if let Some(user) = &user {
            let attrs = self.attributes(rt, subresource, Operation::Update, ns, n, checks, user);
            self.admission
                .validate(
                    self,
                    &attrs,
                    Some(&new),
                    Some(current),
                    &mut checks.warnings,
                )
                .await?;
        }
        if checks.dry_run {
            return Ok(Arc::new(new));
        }
        self.commit(rt, current, new)
    }

    /// Store `new` over `current` (unless nothing changed), or finish a pending deletion when
    /// the last finalizer is gone.
    fn commit(
        &self,
        rt: &ResourceType,
        current: &Arc<Value>,
        new: Value,
    ) -> Result<Arc<Value>, ApiError> {
        if new == **current {
            // No-op writes do not bump the resourceVersion, so controllers do not loop.
            return Ok(current.clone());
        }
        let expected = parse_rv(resource_version(current))?.unwrap_or(0);
        if deletion_timestamp(&new).is_some() && finalizers(&new).is_empty() {
            let removed = self.store.remove(
                &rt.gr(),
                namespace(current),
                name(current),
                Some(expected),
                Some(new),
            )?;
            self.on_removed(rt, &removed, Propagation::Background);
            self.after_write(rt, namespace(current));
            return Ok(removed);
        }
        let stored = self.store.update(&rt.gr(), new, expected)?;
        self.after_write(rt, namespace(current));
        if is_crd(rt)
            && let Ok(types) = crd::resource_types(&stored)
        {
            self.registry.install_crd(name(&stored), types);
        }
        Ok(stored)
    }

    /// PUT: replace an object (or its status).
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: &str,
        url_name: &str,
        obj: Value,
        sub: Sub,
    ) -> Result<Arc<Value>, ApiError> {
        self.update_with(rt, ns, url_name, obj, sub, &mut WriteChecks::default())
    }

    /// [`Api::update`] with the request's write checks; no webhook is called.
    pub fn update_with(
        &self,
        rt: &ResourceType,
        ns: &str,
        url_name: &str,
        obj: Value,
        sub: Sub,
        checks: &mut WriteChecks,
    ) -> Result<Arc<Value>, ApiError> {
        let user = checks.user.take();
        let result = self
            .update_admitted(rt, ns, url_name, obj, sub, checks)
            .now_or_never();
        checks.user = user;
        unreviewed(result)
    }

    /// PUT through the admission chain when `checks.user` is set.
    pub async fn update_admitted(
        &self,
        rt: &ResourceType,
        ns: &str,
        url_name: &str,
        mut obj: Value,
        sub: Sub,
        checks: &mut WriteChecks,
    ) -> Result<Arc<Value>, ApiError> {
        Self::check_type(rt, &mut obj)?;
        let mut obj = Self::to_storage(rt, obj);
        let served = rt;
        let rt = rt.stored_as();
        Self::settle_namespace(rt, ns, &mut obj)?;
        let body_name = name(&obj).to_string();
        if body_name.is_empty() {
            meta_mut(&mut obj)?.insert("name".into(), json!(url_name));
        } else if body_name != url_name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
            )));
        }
        let pinned = parse_rv(resource_version(&obj))?;
        if pinned.is_none() && !rt.allows_unconditional_update() {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.gr(),
                url_name,
                vec![(
                    "metadata.resourceVersion".into(),
                    "FieldValueInvalid",
                    "Invalid value: 0x0: must be specified for an update".into(),
                )],
            ));
        }
        for _ in 0..MAX_RETRIES {
            let current = self.get(served, ns, url_name)?;
            if let Some(rv) = pinned
                && resource_version(&current) != rv.to_string()
            {
                return Err(ApiError::conflict(&rt.gr(), url_name));
            }
            match self
                .write_update(rt, &current, obj.clone(), sub, checks)
                .await
            {
                Err(e) if e.reason == "Conflict" && pinned.is_none() => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(&rt.gr(), url_name))
    }

    /// PATCH without webhooks (the sandbox's own writes). Returns the object and whether it
    /// was created (apply on an absent object).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: &str,
        url_name: &str,
        kind: PatchType,
        body: &[u8],
        sub: Sub,
        field_manager: Option<&str>,
        checks: &mut WriteChecks,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let user = checks.user.take();
        let result = self
            .patch_admitted(rt, ns, url_name, kind, body, sub, field_manager, checks)
            .now_or_never();
        checks.user = user;
        unreviewed(result)
    }

    /// PATCH through the admission chain when `checks.user` is set (an UPDATE to webhooks, or
    /// a CREATE when an apply patch creates).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch_admitted(
        &self,
        rt: &ResourceType,
        ns: &str,
        url_name: &str,
        kind: PatchType,
        body: &[u8],
        sub: Sub,
        field_manager: Option<&str>,
        checks: &mut WriteChecks,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        if kind == PatchType::Apply && field_manager.is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                "PatchOptions",
                &GroupResource {
                    group: "meta.k8s.io".into(),
                    resource: "patchoptions".into(),
                },
                "",
                vec![(
                    "fieldManager".into(),
                    "FieldValueRequired",
                    "Required value: is required for apply patch".into(),
                )],
            ));
        }
        if checks.field_manager.is_none() {
            checks.field_manager = field_manager.map(str::to_string);
        }
        // Patches apply to the object as the client sees it (an alias's shape), the write
        // goes on in the storage's.
        let served = rt;
        let rt = rt.stored_as();
        for _ in 0..MAX_RETRIES {
            let Some(current) = self.store.get(&rt.gr(), ns, url_name) else {
                if kind == PatchType::Apply && sub == Sub::Main {
                    let mut applied = parse_apply_body(body)?;
                    Self::require_kind(served, &applied)?;
                    let n = name(&applied).to_string();
                    if !n.is_empty() && n != url_name {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({n}) does not match the name on the URL ({url_name})"
                        )));
                    }
                    meta_mut(&mut applied)?.insert("name".into(), json!(url_name));
                    match self.create_admitted(served, ns, applied, checks).await {
                        Err(e) if e.reason == "AlreadyExists" => continue,
                        other => return other.map(|o| (o, true)),
                    }
                }
                return Err(ApiError::not_found(&served.gr(), url_name));
            };
            let view = Self::at_version(served, &current);
            let mut patched = if kind == PatchType::Apply {
                let applied = parse_apply_body(body)?;
                Self::require_kind(served, &applied)?;
                let mut doc = (*view).clone();
                apply_merge(&mut doc, &applied);
                doc
            } else {
                patch_object(kind, &view, body)?
            };
            Self::check_type(served, &mut patched)?;
            let patched = Self::to_storage(served, patched);
            if name(&patched) != url_name || namespace(&patched) != namespace(&current) {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({url_name})",
                    name(&patched)
                )));
            }
            // A resourceVersion in the patch is a precondition, as on the real server.
            let pinned = resource_version(&patched) != resource_version(&current);
            if pinned {
                return Err(ApiError::conflict(&rt.gr(), url_name));
            }
            match self.write_update(rt, &current, patched, sub, checks).await {
                Err(e) if e.reason == "Conflict" => continue,
                other => return other.map(|o| (o, false)),
            }
        }
        Err(ApiError::conflict(&rt.gr(), url_name))
    }

    /// Apply configurations must say what they are.
    fn require_kind(rt: &ResourceType, applied: &Value) -> Result<(), ApiError> {
        let kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
        let av = applied
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if kind.is_empty() || av.is_empty() {
            return Err(ApiError::bad_request(format!(
                "invalid object type: apply patches must set apiVersion and kind (expected {} {})",
                rt.api_version(),
                rt.kind
            )));
        }
        Ok(())
    }

    /// DELETE without webhooks. Returns the object and whether it is gone (false: finalizers
    /// hold it).
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name_: &str,
        opts: &DeleteOptions,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let mut checks = WriteChecks::default();
        unreviewed(
            self.delete_admitted(rt, ns, name_, opts, &mut checks)
                .now_or_never(),
        )
    }

    /// DELETE through the admission chain when `checks.user` is set (webhooks see the stored
    /// object as `oldObject`). On dry-run nothing is removed and nothing is collected.
    pub async fn delete_admitted(
        &self,
        rt: &ResourceType,
        ns: &str,
        name_: &str,
        opts: &DeleteOptions,
        checks: &mut WriteChecks,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let served = rt;
        let rt = rt.stored_as();
        for _ in 0..MAX_RETRIES {
            let current = self.get(served, ns, name_)?;
            if let Some(want) = &opts.precondition_uid
                && want != uid(&current)
            {
                return Err(ApiError::conflict_msg(
                    &rt.gr(),
                    name_,
                    &format!(
                        "Precondition failed: UID in precondition: {want}, UID in object meta: {}",
                        uid(&current)
                    ),
                ));
            }
            if let Some(want) = opts.precondition_rv
                && want.to_string() != resource_version(&current)
            {
                return Err(ApiError::conflict(&rt.gr(), name_));
            }
            if let Some(user) = checks.user.clone() {
                let mut attrs =
                    self.attributes(rt, "", Operation::Delete, ns, name_, checks, &user);
                attrs.options["propagationPolicy"] = json!(match opts.propagation {
                    Propagation::Background => "Background",
                    Propagation::Foreground => "Foreground",
                    Propagation::Orphan => "Orphan",
                });
                self.admission
                    .mutate(self, &attrs, None, Some(&current), &mut checks.warnings)
                    .await?;
                self.admission
                    .validate(self, &attrs, None, Some(&current), &mut checks.warnings)
                    .await?;
            }
            let held = !finalizers(&current).is_empty();
            if checks.dry_run {
                if held && deletion_timestamp(&current).is_none() {
                    let mut marked = (*current).clone();
                    let m = meta_mut(&mut marked)?;
                    m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                    m.insert("deletionGracePeriodSeconds".into(), json!(0));
                    return Ok((Arc::new(marked), false));
                }
                return Ok((current, !held));
            }
            let expected = parse_rv(resource_version(&current))?.unwrap_or(0);
            match opts.propagation {
                Propagation::Orphan => self.orphan_dependents(uid(&current)),
                // Approximation: dependents go first, synchronously, instead of the owner
                // waiting behind a `foregroundDeletion` finalizer.
                Propagation::Foreground => self.collect_garbage(uid(&current)),
                Propagation::Background => {}
            }
            if is_namespace(rt) {
                self.delete_namespace_contents(name_);
            }
            if held {
                if deletion_timestamp(&current).is_some() {
                    return Ok((current, false));
                }
                let mut marked = (*current).clone();
                {
                    let m = meta_mut(&mut marked)?;
                    m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                    m.insert("deletionGracePeriodSeconds".into(), json!(0));
                }
                match self.store.update(&rt.gr(), marked, expected) {
                    Err(e) if e.reason == "Conflict" && opts.precondition_rv.is_none() => continue,
                    other => {
                        self.after_write(rt, ns);
                        return other.map(|o| (o, false));
                    }
                }
            }
            match self.store.remove(&rt.gr(), ns, name_, Some(expected), None) {
                Err(e) if e.reason == "Conflict" && opts.precondition_rv.is_none() => continue,
                Err(e) => return Err(e),
                Ok(removed) => {
                    self.on_removed(rt, &removed, opts.propagation);
                    self.after_write(rt, ns);
                    return Ok((removed, true));
                }
            }
        }
        Err(ApiError::conflict(&rt.gr(), name_))
    }

    /// Derived state kept in step with writes: PodDisruptionBudget status follows its pods.
    fn after_write(&self, rt: &ResourceType, ns: &str) {
        let pods = rt.group.is_empty() && rt.plural == "pods";
        let pdbs = rt.group == "policy" && rt.plural == "poddisruptionbudgets";
        if pods || pdbs {
            crate::eviction::refresh_pdb_status(self, ns);
        }
    }

    /// What follows an object's removal: CRDs stop being served (and their objects go), and
    /// dependents are garbage-collected unless orphaned.
    fn on_removed(&self, rt: &ResourceType, removed: &Value, propagation: Propagation) {
        if is_crd(rt) {
            self.uninstall_crd(removed);
        }
        if propagation != Propagation::Orphan {
            self.collect_garbage(uid(removed));
        }
    }

    fn uninstall_crd(&self, crd: &Value) {
        self.registry.remove_crd(name(crd));
        let gr = GroupResource {
            group: crd
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            resource: crd
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        };
        let (objects, _) = self.store.list(&gr, None, |_| true);
        for o in objects {
            // Custom resources go with their definition, finalizers or not.
            let _ = self.store.remove(&gr, namespace(&o), name(&o), None, None);
        }
    }

    /// The garbage collector, run inline when an owner goes: each dependent whose owners are
    /// now all gone is deleted (in turn collecting its own dependents); a dependent with a
    /// surviving owner just loses the dangling reference.
    fn collect_garbage(&self, owner_uid: &str) {
        if owner_uid.is_empty() {
            return;
        }
        for key in self.store.dependents(owner_uid) {
            let Some(rt) = self.registry.by_gr(&key.gr) else {
                continue;
            };
            let Some(obj) = self.store.get(&key.gr, &key.namespace, &key.name) else {
                continue;
            };
            let others_alive = owner_uids(&obj)
                .iter()
                .any(|u| u != owner_uid && self.store.uid_exists(u));
            if others_alive {
                self.drop_owner_reference(&rt, &obj, owner_uid);
            } else {
                let _ = self.delete(&rt, &key.namespace, &key.name, &DeleteOptions::default());
            }
        }
    }

    fn orphan_dependents(&self, owner_uid: &str) {
        for key in self.store.dependents(owner_uid) {
            if let (Some(rt), Some(obj)) = (
                self.registry.by_gr(&key.gr),
                self.store.get(&key.gr, &key.namespace, &key.name),
            ) {
                self.drop_owner_reference(&rt, &obj, owner_uid);
            }
        }
    }

    fn drop_owner_reference(&self, rt: &ResourceType, obj: &Arc<Value>, owner_uid: &str) {
        let mut new = (**obj).clone();
        if let Ok(m) = meta_mut(&mut new)
            && let Some(Value::Array(refs)) = m.get_mut("ownerReferences")
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
            if refs.is_empty() {
                m.remove("ownerReferences");
            }
        }
        // A concurrent write wins; the next collection pass sees the reference again.
        let _ = self.commit(rt, obj, new);
    }

    /// The namespace controller's job, done inline: everything in the namespace is deleted.
    /// TODO(milestone: namespaces) a Terminating phase that waits for finalizers.
    fn delete_namespace_contents(&self, ns: &str) {
        let mut seen = HashSet::new();
        for rt in self.registry.all() {
            // An alias's objects go with its storage's.
            if !rt.namespaced || rt.storage.is_some() || !seen.insert(rt.gr()) {
                continue;
            }
            let (objects, _) = self.store.list(&rt.gr(), Some(ns), |_| true);
            for o in objects {
                let _ = self.delete(&rt, ns, name(&o), &DeleteOptions::default());
            }
        }
    }

    /// `pods/binding`: what the scheduler posts. Sets `spec.nodeName` once; 409 if already bound.
    pub fn bind_pod(
        &self,
        rt: &ResourceType,
        ns: &str,
        pod: &str,
        binding: &Value,
    ) -> Result<(), ApiError> {
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() {
            return Err(ApiError::invalid(
                "Binding",
                &rt.gr(),
                pod,
                vec![(
                    "target.name".into(),
                    "FieldValueRequired",
                    "Required value".into(),
                )],
            ));
        }
        for _ in 0..MAX_RETRIES {
            let current = self.get(rt, ns, pod)?;
            let bound = current
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !bound.is_empty() {
                return Err(ApiError::conflict_msg(
                    &rt.gr(),
                    pod,
                    &format!("pod {pod} is already assigned to node \"{bound}\""),
                ));
            }
            let mut new = (*current).clone();
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("nodeName".into(), json!(node));
            }
            let status = new
                .as_object_mut()
                .map(|o| o.entry("status").or_insert_with(|| json!({})));
            if let Some(Value::Object(status)) = status {
                let conds = status.entry("conditions").or_insert_with(|| json!([]));
                if let Value::Array(conds) = conds {
                    conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
                    conds.push(json!({"type": "PodScheduled", "status": "True",
                        "lastTransitionTime": now_rfc3339()}));
                }
            }
            match self.commit(rt, &current, new) {
                Err(e) if e.reason == "Conflict" => continue,
                other => return other.map(|_| ()),
            }
        }
        Err(ApiError::conflict(&rt.gr(), pod))
    }

    /// The object as served at `rt`'s version: an alias's converted from its storage's shape;
    /// custom resources are stored once for all versions, with conversion `None` (only
    /// apiVersion changes).
    pub fn at_version(rt: &ResourceType, obj: &Arc<Value>) -> Arc<Value> {
        let want = rt.api_version();
        if obj.get("apiVersion").and_then(Value::as_str) == Some(want.as_str()) {
            return obj.clone();
        }
        if let Some(converted) = events::convert(obj, &want) {
            return Arc::new(converted);
        }
        let mut o = (**obj).clone();
        if let Some(m) = o.as_object_mut() {
            m.insert("apiVersion".into(), json!(want));
        }
        Arc::new(o)
    }

    /// CRDs from a YAML stream (preloading); other documents are ignored.
    pub fn install_crds_yaml(&self, yaml: &str) -> Result<usize, ApiError> {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)
            .map_err(|e| ApiError::bad_request(format!("CRD YAML: {e}")))?;
        let rt = self
            .registry
            .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .ok_or_else(|| ApiError::internal("CRDs are not served"))?;
        let mut n = 0;
        for doc in docs {
            if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            let crd_name = name(&doc).to_string();
            match self.create(&rt, "", doc.clone()) {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {
                    self.update(&rt, "", &crd_name, doc, Sub::Main)?;
                }
                Err(e) => return Err(e),
            }
            n += 1;
        }
        Ok(n)
    }

    /// The namespaces every cluster has.
    pub fn bootstrap(&self) -> Result<(), ApiError> {
        let rt = self
            .registry
            .lookup("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("namespaces are not served"))?;
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.create(&rt, "", json!({"metadata": {"name": ns}}))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name_problem(NameRule::Subdomain, "a.b-c").is_none());
        assert!(name_problem(NameRule::Subdomain, "Foo").is_some());
        assert!(name_problem(NameRule::Label, "a.b").is_some());
        assert!(name_problem(NameRule::PathSegment, "system:x").is_none());
    }
}

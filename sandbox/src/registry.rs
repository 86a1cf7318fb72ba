//! Which resources the server serves: a table of built-in kinds plus the kinds CRDs add at run
//! time. Everything else (store, discovery, routing) is generic over a [`ResourceType`], so a new
//! built-in kind is one row below.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::object::{read_lock, write_lock};

/// A resource independent of version: the storage key (`pods`, `nodepools.karpenter.sh`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl fmt::Display for GroupResource {
    /// `pods`, `deployments.apps`: the form the real server uses in error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// How `metadata.name` is validated (the real server differs per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: most kinds.
    Subdomain,
    /// RFC 1123 label: namespaces.
    Label,
    /// Anything usable as a path segment: RBAC objects (`system:controller:x`).
    PathSegment,
}

/// A subresource other than `status` (which [`ResourceType::status`] covers), as listed in
/// discovery: `pods/eviction` is served under `pods` but its kind is `policy/v1 Eviction`.
#[derive(Debug, Clone, PartialEq)]
pub struct Subresource {
    pub name: String,
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: String,
    pub verbs: Vec<String>,
}

/// What a CRD contributes to a served version beyond the table columns.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomInfo {
    /// `metadata.name` of the CRD that serves this version.
    pub crd_name: String,
    /// `openAPIV3Schema` of this version: defaults, pruning and validation come from it.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns` of this version (the columns of `kubectl get`).
    pub printer_columns: Vec<Value>,
}

/// One served group/version/resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `status` subresource: main writes keep the stored status, status writes keep the rest.
    pub status: bool,
    pub subresources: Vec<Subresource>,
    /// Field selector labels beyond `metadata.name` / `metadata.namespace`.
    pub field_selectors: Vec<String>,
    pub name_rule: NameRule,
    /// Set for kinds served because of a CRD.
    pub custom: Option<CustomInfo>,
    /// Set for an alias: another API onto this resource's objects, stored once in its shape
    /// (events.k8s.io/v1 Events are core/v1 Events, as on the real server). Requests convert
    /// at the API boundary; see [`crate::events`].
    pub storage: Option<Arc<ResourceType>>,
}

impl ResourceType {
    pub fn gr(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            resource: self.plural.clone(),
        }
    }

    /// The type this resource's objects are stored as: itself unless an alias.
    pub fn stored_as(&self) -> &ResourceType {
        self.storage.as_deref().unwrap_or(self)
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether `metadata.generation` is maintained: kinds with a spec/status split and all
    /// custom resources, as the real server does.
    pub fn tracks_generation(&self) -> bool {
        self.status || self.custom.is_some()
    }

    /// Custom resources must carry `metadata.resourceVersion` on PUT; most built-ins allow an
    /// unconditional update.
    pub fn allows_unconditional_update(&self) -> bool {
        self.custom.is_none()
    }

    /// Reviews (`authorization.k8s.io`): created and answered, never stored.
    pub fn create_only(&self) -> bool {
        self.group == REVIEWS_GROUP && self.custom.is_none()
    }

    /// The verbs discovery advertises for the main resource.
    pub fn verbs(&self) -> Vec<&'static str> {
        if self.create_only() {
            return vec!["create"];
        }
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

/// The group of the access reviews (see [`crate::reviews`]).
pub const REVIEWS_GROUP: &str = "authorization.k8s.io";

/// One row of the built-in table.
struct BuiltIn {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
    fields: &'static [&'static str],
    name_rule: NameRule,
    /// (group, plural) of the built-in whose storage this row aliases.
    stored_as: Option<(&'static str, &'static str)>,
}

const fn row(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> BuiltIn {
    BuiltIn {
        group,
        version,
        kind,
        plural,
        namespaced,
        short_names,
        categories: &[],
        status: false,
        fields: &[],
        name_rule: NameRule::Subdomain,
        stored_as: None,
    }
}

impl BuiltIn {
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn all(mut self) -> Self {
        self.categories = &["all"];
        self
    }
    const fn fields(mut self, fields: &'static [&'static str]) -> Self {
        self.fields = fields;
        self
    }
    const fn names(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }
    const fn stored_as(mut self, group: &'static str, plural: &'static str) -> Self {
        self.stored_as = Some((group, plural));
        self
    }
}

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
const CORE_EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
const EVENTS_V1_FIELDS: &[&str] = &[
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "reason",
    "reportingController",
    "type",
];

/// The built-in kinds capstan and its tests use. Rows mirror `kubectl api-resources`.
const BUILT_INS: &[BuiltIn] = &[
    row("", "v1", "Namespace", "namespaces", false, &["ns"])
        .status()
        .fields(&["status.phase"])
        .names(NameRule::Label),
    row("", "v1", "Pod", "pods", true, &["po"])
        .status()
        .all()
        .fields(POD_FIELDS),
    row("", "v1", "Node", "nodes", false, &["no"])
        .status()
        .fields(&["spec.unschedulable"]),
    row("", "v1", "Event", "events", true, &["ev"]).fields(CORE_EVENT_FIELDS),
    row("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
    row("", "v1", "Secret", "secrets", true, &[]).fields(&["type"]),
    row("", "v1", "Service", "services", true, &["svc"])
        .status()
        .all(),
    row("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
    row("", "v1", "LimitRange", "limitranges", true, &["limits"]),
    row("events.k8s.io", "v1", "Event", "events", true, &["ev"])
        .fields(EVENTS_V1_FIELDS)
        .stored_as("", "events"),
    row(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
    )
    .status(),
    row("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"])
        .status()
        .all(),
    row("apps", "v1", "Deployment", "deployments", true, &["deploy"])
        .status()
        .all(),
    row("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"])
        .status()
        .all(),
    row("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"])
        .status()
        .all(),
    row("batch", "v1", "Job", "jobs", true, &[])
        .status()
        .all()
        .fields(&["status.successful"]),
    row("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
    // Stored and served, no controller behind them: a team's manifests often carry them.
    row("batch", "v1", "CronJob", "cronjobs", true, &["cj"])
        .status()
        .all(),
    row(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        true,
        &["quota"],
    )
    .status(),
    row(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
    )
    .status(),
    row(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
        &["pc"],
    ),
    row(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
    )
    .status(),
    row(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
        &[],
    ),
    row(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
        &[],
    ),
    // What `kubectl auth can-i` asks (see reviews.rs).
    row(
        REVIEWS_GROUP,
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
        &[],
    ),
    row(
        REVIEWS_GROUP,
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        false,
        &[],
    ),
    row(
        REVIEWS_GROUP,
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        false,
        &[],
    ),
    row(
        REVIEWS_GROUP,
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        true,
        &[],
    ),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
    )
    .names(NameRule::PathSegment),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
    )
    .names(NameRule::PathSegment),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
    )
    .names(NameRule::PathSegment),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
    )
    .names(NameRule::PathSegment),
];

fn subresource(name: &str, group: &str, version: &str, kind: &str, verbs: &[&str]) -> Subresource {
    Subresource {
        name: name.to_string(),
        group: (!group.is_empty()).then(|| group.to_string()),
        version: (!version.is_empty()).then(|| version.to_string()),
        kind: kind.to_string(),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
    }
}

fn built_in(b: &BuiltIn) -> ResourceType {
    let subresources = match (b.group, b.plural) {
        // pods/eviction checks PodDisruptionBudgets (see eviction.rs).
        ("", "pods") => vec![
            subresource("binding", "", "", "Binding", &["create"]),
            subresource("eviction", "policy", "v1", "Eviction", &["create"]),
        ],
        // TokenRequest: `kubectl create token`.
        ("", "serviceaccounts") => vec![subresource(
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            &["create"],
        )],
        // autoscaling/v1 Scale, what `kubectl scale` and HorizontalPodAutoscalers use.
        ("apps", "deployments" | "replicasets" | "statefulsets") => vec![subresource(
            "scale",
            "autoscaling",
            "v1",
            "Scale",
            &["get", "patch", "update"],
        )],
        _ => Vec::new(),
    };
    ResourceType {
        group: b.group.to_string(),
        version: b.version.to_string(),
        kind: b.kind.to_string(),
        plural: b.plural.to_string(),
        singular: b.kind.to_lowercase(),
        namespaced: b.namespaced,
        short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
        categories: b.categories.iter().map(|s| s.to_string()).collect(),
        status: b.status,
        subresources,
        field_selectors: b.fields.iter().map(|s| s.to_string()).collect(),
        name_rule: b.name_rule,
        custom: None,
        storage: None,
    }
}

/// Served resources keyed by (group, version).
type ByGroupVersion = BTreeMap<(String, String), Vec<Arc<ResourceType>>>;

/// Served resources by (group, version). Reads vastly outnumber writes (CRD installs), so a
/// plain RwLock over a small map is enough.
#[derive(Debug)]
pub struct Registry {
    by_gv: RwLock<ByGroupVersion>,
}

impl Registry {
    pub fn with_built_ins() -> Self {
        let mut by_gv = ByGroupVersion::new();
        // Aliases last: they point at the types they are stored as.
        let (plain, aliases): (Vec<&BuiltIn>, Vec<&BuiltIn>) =
            BUILT_INS.iter().partition(|b| b.stored_as.is_none());
        for b in plain.into_iter().chain(aliases) {
            let mut rt = built_in(b);
            if let Some((group, plural)) = b.stored_as {
                // The table guarantees the target (see the `aliases_share_storage` test).
                let Some(target) = by_gv
                    .iter()
                    .filter(|((g, _), _)| g == group)
                    .flat_map(|(_, types)| types.iter())
                    .find(|t| t.plural == plural)
                else {
                    continue;
                };
                rt.storage = Some(target.clone());
            }
            by_gv
                .entry((rt.group.clone(), rt.version.clone()))
                .or_default()
                .push(Arc::new(rt));
        }
        Self {
            by_gv: RwLock::new(by_gv),
        }
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        read_lock(&self.by_gv)
            .get(&(group.to_string(), version.to_string()))?
            .iter()
            .find(|rt| rt.plural == plural)
            .cloned()
    }

    /// The resources of one group/version, for discovery.
    pub fn resources(&self, group: &str, version: &str) -> Option<Vec<Arc<ResourceType>>> {
        read_lock(&self.by_gv)
            .get(&(group.to_string(), version.to_string()))
            .cloned()
    }

    /// Served groups with their versions, most preferred version first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (group, version) in read_lock(&self.by_gv).keys() {
            groups
                .entry(group.clone())
                .or_default()
                .push(version.clone());
        }
        groups
            .into_iter()
            .map(|(g, mut versions)| {
                versions.sort_by(|a, b| version_priority(a, b));
                (g, versions)
            })
            .collect()
    }

    /// The preferred served version of a resource (for work keyed by storage, such as the
    /// garbage collector's).
    pub fn by_gr(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        read_lock(&self.by_gv)
            .iter()
            .filter(|((g, _), _)| *g == gr.group)
            .flat_map(|(_, types)| types.iter())
            .filter(|rt| rt.plural == gr.resource)
            .min_by(|a, b| version_priority(&a.version, &b.version))
            .cloned()
    }

    /// Every served version of every resource (namespace cleanup, garbage collection).
    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        read_lock(&self.by_gv).values().flatten().cloned().collect()
    }

    /// Serve (or re-serve, after an update) the versions a CRD declares.
    pub fn install_crd(&self, crd_name: &str, types: Vec<ResourceType>) {
        let mut by_gv = write_lock(&self.by_gv);
        remove_crd_locked(&mut by_gv, crd_name);
        for rt in types {
            by_gv
                .entry((rt.group.clone(), rt.version.clone()))
                .or_default()
                .push(Arc::new(rt));
        }
    }

    pub fn remove_crd(&self, crd_name: &str) {
        remove_crd_locked(&mut write_lock(&self.by_gv), crd_name);
    }
}

fn remove_crd_locked(by_gv: &mut ByGroupVersion, crd_name: &str) {
    for types in by_gv.values_mut() {
        types.retain(|rt| rt.custom.as_ref().is_none_or(|c| c.crd_name != crd_name));
    }
    by_gv.retain(|_, types| !types.is_empty());
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first, then
/// non-conforming names alphabetically (as `kubectl` and discovery order them).
pub fn version_priority(a: &str, b: &str) -> Ordering {
    fn key(v: &str) -> (u8, u64, u64, String) {
        let parse = || -> Option<(u8, u64, u64)> {
            let rest = v.strip_prefix('v')?;
            let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
            let major: u64 = rest.get(..digits)?.parse().ok()?;
            let tail = rest.get(digits..)?;
            if tail.is_empty() {
                return Some((0, major, 0));
            }
            let (level, n) = if let Some(n) = tail.strip_prefix("beta") {
                (1, n)
            } else if let Some(n) = tail.strip_prefix("alpha") {
                (2, n)
            } else {
                return None;
            };
            Some((level, major, n.parse().ok()?))
        };
        match parse() {
            // Reverse the numbers so that higher sorts first.
            Some((level, major, minor)) => {
                (level, u64::MAX - major, u64::MAX - minor, String::new())
            }
            None => (3, 0, 0, v.to_string()),
        }
    }
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "foo", "v1beta2", "v2", "v1", "v1beta1", "v10"];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(
            v,
            vec!["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn built_ins_are_served() {
        let r = Registry::with_built_ins();
        let pods = r.lookup("", "v1", "pods").expect("pods");
        assert!(pods.namespaced && pods.status);
        assert_eq!(pods.gr().to_string(), "pods");
        let deploy = r.lookup("apps", "v1", "deployments").expect("deployments");
        assert_eq!(deploy.gr().to_string(), "deployments.apps");
        assert!(r.lookup("", "v1", "nosuch").is_none());
    }

    #[test]
    fn aliases_share_storage() {
        let r = Registry::with_built_ins();
        let core = r.lookup("", "v1", "events").expect("core events");
        let v1 = r
            .lookup("events.k8s.io", "v1", "events")
            .expect("events.k8s.io");
        assert!(core.storage.is_none());
        assert_eq!(core.stored_as(), &*core);
        assert_eq!(v1.stored_as(), &*core);
        assert_eq!(v1.gr().to_string(), "events.events.k8s.io");
        // Garbage collection and namespace cleanup find stored objects by their storage key.
        assert_eq!(r.by_gr(&v1.stored_as().gr()).as_deref(), Some(&*core));
    }
}

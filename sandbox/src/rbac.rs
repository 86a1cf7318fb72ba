//! RBAC authorization, pure: the request attributes kube-apiserver computes from a request
//! (verb, API group, resource, subresource, namespace, name), and the decision the RBAC
//! authorizer makes for them from Roles, ClusterRoles and their bindings. No I/O: the server
//! hands in the stored RBAC objects ([`Policy`]) and the authenticated [`UserInfo`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use axum::http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::registry::GroupResource;

/// Who is asking: `user.Info` of the real server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

/// The group whose members pass every check (the real server's superuser group).
pub const MASTERS: &str = "system:masters";

impl UserInfo {
    /// A ServiceAccount's identity: `system:serviceaccount:<ns>:<name>` in the groups every
    /// ServiceAccount token carries.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    pub fn is_superuser(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }

    /// `AdmissionReview.request.userInfo`.
    pub fn to_admission(&self) -> Value {
        json!({"username": self.name, "groups": self.groups})
    }
}

/// What a resource request asks for, as kube-apiserver's RequestInfo has it. `namespace` is
/// empty for cluster-scoped requests and for lists across all namespaces; `name` is empty for
/// collections (unless a `metadata.name` field selector names one object).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestAttributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl RequestAttributes {
    /// The attributes of a request on `resource` (`/<group>/<version>/[namespaces/<ns>/]<resource>
    /// [/<name>[/<subresource>]]`) with `query`.
    pub fn of(
        method: &Method,
        group: &str,
        resource: &str,
        subresource: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
        query: &HashMap<String, String>,
    ) -> Self {
        let collection = name.is_none();
        let verb = match *method {
            Method::GET | Method::HEAD if collection && watching(query) => "watch",
            Method::GET | Method::HEAD if collection => "list",
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if collection => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        };
        let mut name = name.unwrap_or_default().to_string();
        // A list or watch of one object by name is authorized as that object.
        if matches!(verb, "list" | "watch") && name.is_empty() {
            name = query
                .get("fieldSelector")
                .and_then(|s| exact_name(s))
                .unwrap_or_default();
        }
        // `/api/v1/namespaces/<name>` is in the namespace it names.
        let mut namespace = namespace.unwrap_or_default().to_string();
        if group.is_empty() && resource == "namespaces" && !name.is_empty() {
            namespace = name.clone();
        }
        RequestAttributes {
            verb: verb.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            subresource: subresource.unwrap_or_default().to_string(),
            namespace,
            name,
        }
    }

    /// `pods` or `pods/eviction`: the form rules and messages use.
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

impl fmt::Display for RequestAttributes {
    /// `list pods in API group "" in the namespace "default"`: the words of the 403 message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resource {:?} in API group {:?}",
            self.verb,
            self.resource_path(),
            self.group
        )?;
        if self.namespace.is_empty() {
            f.write_str(" at the cluster scope")
        } else {
            write!(f, " in the namespace {:?}", self.namespace)
        }
    }
}

fn watching(query: &HashMap<String, String>) -> bool {
    query
        .get("watch")
        .is_some_and(|v| matches!(v.as_str(), "true" | "1"))
}

/// `X` of a field selector requiring `metadata.name=X` (or `==X`), as `RequiresExactMatch`.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let (key, value) = term.split_once("==").or_else(|| term.split_once('='))?;
        (key.trim() == "metadata.name").then(|| value.trim().to_string())
    })
}

/// One PolicyRule of a Role or ClusterRole (non-resource URLs are not modelled: those paths
/// are open to every authenticated user here).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyRule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub resource_names: Vec<String>,
}

impl PolicyRule {
    /// `RuleAllows` of the RBAC authorizer.
    pub fn allows(&self, attrs: &RequestAttributes) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        any(&self.verbs, &attrs.verb)
            && any(&self.api_groups, &attrs.group)
            && self.matches_resource(attrs)
            && (self.resource_names.is_empty()
                || (!attrs.name.is_empty() && self.resource_names.contains(&attrs.name)))
    }

    fn matches_resource(&self, attrs: &RequestAttributes) -> bool {
        let wanted = attrs.resource_path();
        self.resources.iter().any(|r| {
            r == "*"
                || *r == wanted
                || (!attrs.subresource.is_empty() && *r == format!("*/{}", attrs.subresource))
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct RoleObject {
    rules: Vec<PolicyRule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RoleRef {
    kind: String,
    name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct BindingObject {
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

impl Subject {
    /// `appliesToUser`: a ServiceAccount subject without a namespace is in the binding's.
    fn applies_to(&self, user: &UserInfo, binding_namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.groups.contains(&self.name),
            "ServiceAccount" => {
                let ns = if self.namespace.is_empty() {
                    binding_namespace
                } else {
                    &self.namespace
                };
                user.name == format!("system:serviceaccount:{ns}:{}", self.name)
            }
            _ => false,
        }
    }
}

/// The stored RBAC objects a decision reads: every ClusterRole, Role, ClusterRoleBinding and
/// RoleBinding, as the API serves them.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub cluster_roles: Vec<Arc<Value>>,
    pub roles: Vec<Arc<Value>>,
    pub cluster_role_bindings: Vec<Arc<Value>>,
    pub role_bindings: Vec<Arc<Value>>,
}

/// Whether a request may proceed; a denial carries the RBAC authorizer's reason (roles that
/// bindings name but that do not exist), empty when there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny { reason: String },
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn parse<T: for<'de> Deserialize<'de> + Default>(obj: &Value) -> T {
    // A stored object that does not decode grants nothing (the real server validates them).
    T::deserialize(obj).unwrap_or_default()
}

impl Policy {
    /// The rules of the role a binding in `binding_ns` (empty: a ClusterRoleBinding) refers to.
    fn rules_of(&self, role_ref: &RoleRef, binding_ns: &str) -> Result<Vec<PolicyRule>, String> {
        let (objects, ns, what) = match role_ref.kind.as_str() {
            "ClusterRole" => (&self.cluster_roles, "", "clusterrole"),
            "Role" => (&self.roles, binding_ns, "role"),
            other => return Err(format!("unsupported role reference kind: {other:?}")),
        };
        objects
            .iter()
            .find(|o| meta_str(o, "name") == role_ref.name && meta_str(o, "namespace") == ns)
            .map(|o| parse::<RoleObject>(o).rules)
            .ok_or_else(|| {
                format!(
                    "{what}.rbac.authorization.k8s.io {:?} not found",
                    role_ref.name
                )
            })
    }

    /// For each binding of `user` that applies in `namespace` (every ClusterRoleBinding, and
    /// the namespace's RoleBindings when one is named), the rules of its role, or why it has
    /// none (the role does not exist).
    fn bound_rules<'a>(
        &'a self,
        user: &'a UserInfo,
        namespace: &'a str,
    ) -> impl Iterator<Item = Result<Vec<PolicyRule>, String>> + 'a {
        let cluster = self.cluster_role_bindings.iter().map(|b| (b, ""));
        let namespaced = self
            .role_bindings
            .iter()
            .filter(move |b| !namespace.is_empty() && meta_str(b, "namespace") == namespace)
            .map(|b| (b, meta_str(b, "namespace")));
        cluster.chain(namespaced).filter_map(move |(binding, ns)| {
            let binding: BindingObject = parse(binding);
            binding
                .subjects
                .iter()
                .any(|s| s.applies_to(user, ns))
                .then(|| self.rules_of(&binding.role_ref, ns))
        })
    }

    /// Every rule that applies to `user` in `namespace`, with the roles bindings name that do
    /// not exist: a SelfSubjectRulesReview.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let (mut rules, mut missing) = (Vec::new(), Vec::new());
        for bound in self.bound_rules(user, namespace) {
            match bound {
                Ok(r) => rules.extend(r),
                Err(e) => missing.push(e),
            }
        }
        (rules, missing)
    }

    /// The RBAC authorizer's decision; members of `system:masters` pass everything.
    pub fn authorize(&self, user: &UserInfo, attrs: &RequestAttributes) -> Decision {
        if user.is_superuser() {
            return Decision::Allow;
        }
        let mut missing = Vec::new();
        for bound in self.bound_rules(user, &attrs.namespace) {
            match bound {
                Ok(rules) if rules.iter().any(|r| r.allows(attrs)) => return Decision::Allow,
                Ok(_) => {}
                Err(e) => missing.push(e),
            }
        }
        let reason = match missing.as_slice() {
            [] => String::new(),
            [one] => format!("RBAC: {one}"),
            many => format!("RBAC: [{}]", many.join(", ")),
        };
        Decision::Deny { reason }
    }
}

/// The real server's 403: `pods "x" is forbidden: User "u" cannot get resource "pods" in API
/// group "" in the namespace "default"`, with the authorizer's reason appended when it has one.
pub fn forbidden(user: &UserInfo, attrs: &RequestAttributes, reason: &str) -> ApiError {
    let gr = GroupResource {
        group: attrs.group.clone(),
        resource: attrs.resource.clone(),
    };
    let subject = if attrs.name.is_empty() {
        format!("{gr}")
    } else {
        format!("{gr} {:?}", attrs.name)
    };
    let mut message = format!(
        "{subject} is forbidden: User {:?} cannot {attrs}",
        user.name
    );
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    ApiError::forbidden(&gr, &attrs.name, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn attrs(verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> RequestAttributes {
        let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
        RequestAttributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn verbs_come_from_the_method_the_name_and_watch() {
        let verb = |m: Method, name: Option<&str>, query: &[(&str, &str)]| {
            RequestAttributes::of(&m, "", "pods", None, Some("default"), name, &q(query)).verb
        };
        assert_eq!(verb(Method::GET, None, &[]), "list");
        assert_eq!(verb(Method::GET, None, &[("watch", "true")]), "watch");
        assert_eq!(
            verb(
                Method::GET,
                None,
                &[("watch", "1"), ("sendInitialEvents", "true")]
            ),
            "watch"
        );
        assert_eq!(verb(Method::GET, Some("p"), &[]), "get");
        assert_eq!(verb(Method::POST, None, &[]), "create");
        assert_eq!(verb(Method::PUT, Some("p"), &[]), "update");
        assert_eq!(verb(Method::PATCH, Some("p"), &[]), "patch");
        assert_eq!(verb(Method::DELETE, Some("p"), &[]), "delete");
        assert_eq!(verb(Method::DELETE, None, &[]), "deletecollection");
    }

    #[test]
    fn a_name_field_selector_names_the_object_of_a_list_or_watch() {
        let of = |sel: &str| {
            RequestAttributes::of(
                &Method::GET,
                "",
                "secrets",
                None,
                Some("capstan"),
                None,
                &q(&[("fieldSelector", sel), ("watch", "true")]),
            )
            .name
        };
        assert_eq!(of("metadata.name=cert"), "cert");
        assert_eq!(of("type=x,metadata.name==cert"), "cert");
        assert_eq!(of("metadata.name!=cert"), "");
        assert_eq!(of("metadata.namespace=capstan"), "");
    }

    #[test]
    fn a_namespace_is_in_itself_and_subresources_are_kept_apart() {
        let ns = RequestAttributes::of(
            &Method::GET,
            "",
            "namespaces",
            None,
            None,
            Some("team-a"),
            &q(&[]),
        );
        assert_eq!(ns.namespace, "team-a");
        let eviction = RequestAttributes::of(
            &Method::POST,
            "",
            "pods",
            Some("eviction"),
            Some("default"),
            Some("web-0"),
            &q(&[]),
        );
        assert_eq!(eviction.verb, "create");
        assert_eq!(eviction.resource_path(), "pods/eviction");
    }

    fn rule(v: Value) -> PolicyRule {
        serde_json::from_value(v).expect("rule")
    }

    #[test]
    fn rules_match_groups_resources_subresources_verbs_and_names() {
        let r = rule(
            json!({"apiGroups": [""], "resources": ["pods", "pods/eviction"], "verbs": ["get", "create"]}),
        );
        assert!(r.allows(&attrs("get", "", "pods", "default", "p")));
        assert!(r.allows(&attrs("create", "", "pods/eviction", "default", "p")));
        assert!(!r.allows(&attrs("get", "", "pods/status", "default", "p")));
        assert!(!r.allows(&attrs("list", "", "pods", "default", "")));
        assert!(!r.allows(&attrs("get", "apps", "pods", "default", "p")));

        let named = rule(
            json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "watch"], "resourceNames": ["lock"]}),
        );
        assert!(named.allows(&attrs("get", "coordination.k8s.io", "leases", "x", "lock")));
        assert!(!named.allows(&attrs("get", "coordination.k8s.io", "leases", "x", "other")));
        // A collection request has no name: resourceNames rules never allow it.
        assert!(!named.allows(&attrs("watch", "coordination.k8s.io", "leases", "x", "")));

        let wild = rule(json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}));
        assert!(wild.allows(&attrs(
            "patch",
            "karpenter.sh",
            "nodeclaims/status",
            "",
            "c"
        )));
        assert!(!wild.allows(&attrs("patch", "karpenter.sh", "nodeclaims", "", "c")));
    }

    fn policy() -> Policy {
        let arc = |v: Value| Arc::new(v);
        Policy {
            cluster_roles: vec![arc(json!({
                "metadata": {"name": "node-reader"},
                "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]
            }))],
            roles: vec![arc(json!({
                "metadata": {"name": "pod-reader", "namespace": "team-a"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
            }))],
            cluster_role_bindings: vec![arc(json!({
                "metadata": {"name": "sa-nodes"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "team-a"}]
            }))],
            role_bindings: vec![
                arc(json!({
                    "metadata": {"name": "pods", "namespace": "team-a"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                    // No namespace: the binding's own.
                    "subjects": [{"kind": "ServiceAccount", "name": "bot"}]
                })),
                arc(json!({
                    "metadata": {"name": "nodes-by-group", "namespace": "team-b"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-reader"},
                    "subjects": [{"kind": "Group", "name": "system:serviceaccounts:team-a"}]
                })),
                arc(json!({
                    "metadata": {"name": "dangling", "namespace": "team-c"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gone"},
                    "subjects": [{"kind": "User", "name": "system:serviceaccount:team-a:bot"}]
                })),
            ],
        }
    }

    #[test]
    fn bindings_grant_their_roles_to_their_subjects_in_their_scope() {
        let p = policy();
        let bot = UserInfo::service_account("team-a", "bot");
        let other = UserInfo::service_account("team-b", "bot");
        let deny = Decision::Deny {
            reason: String::new(),
        };
        assert_eq!(
            p.authorize(&bot, &attrs("list", "", "nodes", "", "")),
            Decision::Allow
        );
        assert_eq!(
            p.authorize(&other, &attrs("list", "", "nodes", "", "")),
            deny
        );
        assert_eq!(
            p.authorize(&bot, &attrs("list", "", "pods", "team-a", "")),
            Decision::Allow
        );
        // The Role's binding is in team-a only; across all namespaces is cluster scope.
        assert_eq!(
            p.authorize(&bot, &attrs("list", "", "pods", "team-b", "")),
            deny
        );
        assert_eq!(p.authorize(&bot, &attrs("list", "", "pods", "", "")), deny);
        // A RoleBinding of a ClusterRole grants its rules in the binding's namespace only.
        assert_eq!(
            p.authorize(&bot, &attrs("list", "", "nodes", "team-b", "")),
            Decision::Allow
        );
        // A binding to a missing Role: denied, and the reason says so.
        assert_eq!(
            p.authorize(&bot, &attrs("get", "", "pods", "team-c", "p")),
            Decision::Deny {
                reason: "RBAC: role.rbac.authorization.k8s.io \"gone\" not found".into()
            }
        );
        let admin = UserInfo {
            name: "admin".into(),
            groups: vec![MASTERS.into()],
        };
        assert_eq!(
            p.authorize(&admin, &attrs("delete", "", "nodes", "", "n")),
            Decision::Allow
        );
    }

    #[test]
    fn denials_read_as_the_real_servers() {
        let bot = UserInfo::service_account("capstan", "capstan");
        let e = forbidden(&bot, &attrs("list", "", "pods", "default", ""), "");
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            "pods is forbidden: User \"system:serviceaccount:capstan:capstan\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let e = forbidden(&bot, &attrs("list", "", "nodes", "", ""), "");
        assert!(
            e.message
                .ends_with("cannot list resource \"nodes\" in API group \"\" at the cluster scope")
        );
        let e = forbidden(
            &bot,
            &attrs("create", "", "pods/eviction", "default", "web-0"),
            "",
        );
        assert!(
            e.message.starts_with("pods \"web-0\" is forbidden: User"),
            "{}",
            e.message
        );
        assert!(e.message.contains("cannot create resource \"pods/eviction\" in API group \"\" in the namespace \"default\""));
        let e = forbidden(
            &bot,
            &attrs("patch", "karpenter.sh", "nodeclaims", "", "c"),
            "",
        );
        assert!(
            e.message
                .starts_with("nodeclaims.karpenter.sh \"c\" is forbidden")
        );
    }
}

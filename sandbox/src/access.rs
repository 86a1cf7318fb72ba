//! Authorization of resource requests against the RBAC objects in the store, and the record
//! of what was asked: every denial (tests read them; each is logged), and, when enabled, every
//! distinct request of a non-admin user (tests replay them against other roles).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;

use crate::api::Api;
use crate::errors::ApiError;
use crate::object::lock;
use crate::rbac::{self, Decision, Policy, RequestAttributes, UserInfo};
use crate::selectors::Selectors;

/// One request of one user: a denial, or an entry of the request record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Access {
    pub user: UserInfo,
    pub attributes: RequestAttributes,
}

/// Decides resource requests and remembers them.
pub struct AccessControl {
    api: Arc<Api>,
    denials: Mutex<Vec<Access>>,
    /// `Some` when requests are recorded ([`crate::SandboxConfig::record_requests`]).
    requests: Option<Mutex<BTreeSet<Access>>>,
}

impl AccessControl {
    pub fn new(api: Arc<Api>, record_requests: bool) -> Self {
        AccessControl {
            api,
            denials: Mutex::new(Vec::new()),
            requests: record_requests.then(|| Mutex::new(BTreeSet::new())),
        }
    }

    /// The stored Roles, ClusterRoles and bindings.
    pub fn policy(&self) -> Policy {
        let all = |plural: &str| {
            self.api
                .registry
                .lookup("rbac.authorization.k8s.io", "v1", plural)
                .map(|rt| self.api.list(&rt, None, &Selectors::default()).0)
                .unwrap_or_default()
        };
        Policy {
            cluster_roles: all("clusterroles"),
            roles: all("roles"),
            cluster_role_bindings: all("clusterrolebindings"),
            role_bindings: all("rolebindings"),
        }
    }

    /// The decision for `user`'s request, without recording it.
    pub fn decide(&self, user: &UserInfo, attributes: &RequestAttributes) -> Decision {
        if user.is_superuser() {
            return Decision::Allow;
        }
        self.policy().authorize(user, attributes)
    }

    /// Ok, or the 403 the real server sends; denials are logged and kept.
    pub fn authorize(
        &self,
        user: &UserInfo,
        attributes: &RequestAttributes,
    ) -> Result<(), ApiError> {
        if user.is_superuser() {
            return Ok(());
        }
        if let Some(requests) = &self.requests {
            lock(requests).insert(Access {
                user: user.clone(),
                attributes: attributes.clone(),
            });
        }
        match self.decide(user, attributes) {
            Decision::Allow => Ok(()),
            Decision::Deny { reason } => {
                let error = rbac::forbidden(user, attributes, &reason);
                tracing::warn!(user = %user.name, "RBAC denied: {}", error.message);
                lock(&self.denials).push(Access {
                    user: user.clone(),
                    attributes: attributes.clone(),
                });
                Err(error)
            }
        }
    }

    /// The user a request acts as: `actor`, or whom it impersonates (`Impersonate-User` and
    /// `Impersonate-Group`, what `kubectl --as` and `--as-group` send) if `actor` may
    /// impersonate them: the `impersonate` verb on `users`, `groups`, or, for a ServiceAccount's
    /// name, `serviceaccounts` in its namespace, as on the real server.
    pub fn impersonate(&self, actor: UserInfo, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
        let values = |name: &str| -> Result<Vec<String>, ApiError> {
            headers
                .get_all(name)
                .iter()
                .map(|v| {
                    v.to_str().map(str::to_string).map_err(|_| {
                        ApiError::bad_request(format!("{name}: not a valid header value"))
                    })
                })
                .collect()
        };
        let users = values("Impersonate-User")?;
        let groups = values("Impersonate-Group")?;
        let Some(name) = users.first() else {
            if groups.is_empty() {
                return Ok(actor);
            }
            return Err(ApiError::bad_request(
                "requested to impersonate groups without impersonating a user",
            ));
        };
        let check = |resource: &str, namespace: &str, name: &str| {
            self.authorize(
                &actor,
                &RequestAttributes {
                    verb: "impersonate".into(),
                    group: String::new(),
                    resource: resource.into(),
                    subresource: String::new(),
                    namespace: namespace.into(),
                    name: name.into(),
                },
            )
        };
        let service_account = name
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'));
        let mut user = match service_account {
            Some((ns, sa)) => {
                check("serviceaccounts", ns, sa)?;
                UserInfo::service_account(ns, sa)
            }
            None => {
                check("users", "", name)?;
                UserInfo {
                    name: name.clone(),
                    groups: vec!["system:authenticated".into()],
                }
            }
        };
        if !groups.is_empty() {
            for g in &groups {
                check("groups", "", g)?;
            }
            user.groups = groups;
            if !user.groups.iter().any(|g| g == "system:authenticated") {
                user.groups.push("system:authenticated".into());
            }
        }
        Ok(user)
    }

    /// Every request denied so far, oldest first.
    pub fn denials(&self) -> Vec<Access> {
        lock(&self.denials).clone()
    }

    /// The distinct requests of non-admin users so far (empty unless recording).
    pub fn requests(&self) -> Vec<Access> {
        self.requests
            .as_ref()
            .map(|r| lock(r).iter().cloned().collect())
            .unwrap_or_default()
    }
}

//! Authentication: bearer tokens → users. The sandbox's admin token (in the kubeconfig it
//! writes) is a member of `system:masters`; ServiceAccount tokens, issued by the TokenRequest
//! subresource or [`crate::SandboxHandle::issue_service_account_token`], are
//! `system:serviceaccount:<ns>:<name>` and subject to RBAC.

use std::sync::RwLock;
use std::time::Duration;

use axum::http::HeaderValue;

use crate::errors::ApiError;
use crate::object::{new_token, read_lock, write_lock};
use crate::rbac::{MASTERS, UserInfo};

/// The admin's identity (what admission webhooks see for the kubeconfig's user).
pub fn admin() -> UserInfo {
    UserInfo {
        name: "sandbox-admin".into(),
        groups: vec![MASTERS.into(), "system:authenticated".into()],
    }
}

struct IssuedToken {
    token: String,
    user: UserInfo,
    expires: jiff::Timestamp,
}

/// The tokens the server accepts.
pub struct Authenticator {
    admin_token: String,
    issued: RwLock<Vec<IssuedToken>>,
}

/// Constant-time comparison, so a token cannot be guessed byte by byte from timings.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator {
    pub fn new(admin_token: String) -> Self {
        Authenticator {
            admin_token,
            issued: RwLock::new(Vec::new()),
        }
    }

    /// A new token for ServiceAccount `namespace/name`, valid for `ttl`; returns it and its
    /// expiry. The caller checks that the ServiceAccount exists.
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        ttl: Duration,
    ) -> Result<(String, jiff::Timestamp), ApiError> {
        let token = new_token()?;
        let ttl = jiff::SignedDuration::try_from(ttl)
            .map_err(|e| ApiError::bad_request(format!("expirationSeconds: {e}")))?;
        let expires = jiff::Timestamp::now()
            .checked_add(ttl)
            .map_err(|e| ApiError::bad_request(format!("expirationSeconds: {e}")))?;
        let mut issued = write_lock(&self.issued);
        let now = jiff::Timestamp::now();
        issued.retain(|t| t.expires > now);
        issued.push(IssuedToken {
            token: token.clone(),
            user: UserInfo::service_account(namespace, name),
            expires,
        });
        Ok((token, expires))
    }

    /// The user of a request's `Authorization` header. Without one, `public` paths (health,
    /// version) are served anonymously (`None`) and everything else is 401; an unknown or
    /// expired token is 401 everywhere.
    pub fn authenticate(
        &self,
        header: Option<&HeaderValue>,
        public: bool,
    ) -> Result<Option<UserInfo>, ApiError> {
        let Some(value) = header else {
            return if public {
                Ok(None)
            } else {
                Err(ApiError::unauthorized())
            };
        };
        let given = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("")
            .as_bytes();
        if same_token(given, self.admin_token.as_bytes()) {
            return Ok(Some(admin()));
        }
        let now = jiff::Timestamp::now();
        read_lock(&self.issued)
            .iter()
            .find(|t| same_token(given, t.token.as_bytes()) && t.expires > now)
            .map(|t| Some(t.user.clone()))
            .ok_or_else(ApiError::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header")
    }

    #[test]
    fn tokens_map_to_their_users() {
        let auth = Authenticator::new("admin-token".into());
        let admin_user = auth.authenticate(Some(&bearer("admin-token")), false);
        assert_eq!(admin_user, Ok(Some(admin())));
        let (token, _) = auth
            .issue("capstan", "capstan", Duration::from_secs(600))
            .expect("issue");
        let sa = auth
            .authenticate(Some(&bearer(&token)), false)
            .expect("known token")
            .expect("a user");
        assert_eq!(sa.name, "system:serviceaccount:capstan:capstan");
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:capstan",
                "system:authenticated"
            ]
        );
        assert_eq!(
            auth.authenticate(Some(&bearer("guess")), true)
                .map_err(|e| e.code),
            Err(401)
        );
        assert_eq!(auth.authenticate(None, true), Ok(None));
        assert_eq!(auth.authenticate(None, false).map_err(|e| e.code), Err(401));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let auth = Authenticator::new("admin-token".into());
        let (token, _) = auth.issue("ns", "sa", Duration::ZERO).expect("issue");
        assert_eq!(
            auth.authenticate(Some(&bearer(&token)), false)
                .map_err(|e| e.code),
            Err(401)
        );
    }
}

//! The kubeconfig a sandbox writes: one cluster (server URL + CA), one token user, one context.

use std::path::Path;

use base64::Engine as _;

use crate::errors::SandboxError;

pub const NAME: &str = "capstan-sandbox";

/// Render the kubeconfig YAML. Every value is quoted JSON-style, which YAML reads verbatim.
pub fn render(server_url: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {name}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n\
         - name: {name}\n  user:\n    token: {token}\n\
         contexts:\n\
         - name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n    namespace: default\n\
         current-context: {name}\n",
        name = NAME,
        server = q(server_url),
        ca = q(&ca),
        token = q(token),
    )
}

/// Write it (creating parent directories); owner-only permissions, since it holds a token.
pub fn write(path: &Path, contents: &str) -> Result<(), SandboxError> {
    let err = |source| SandboxError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, contents).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(())
}

//! The webhook configurations (manifests/30-webhooks.yaml) pointed at a server reached by URL
//! instead of the in-cluster Service: for `capstan sandbox` and tests, where the API server and
//! capstan run on this machine and there is no Service to route through.

use serde_json::Value;

use crate::certs::inject_ca_bundle;

/// manifests/30-webhooks.yaml, as built into the binary.
pub const WEBHOOK_CONFIGURATIONS_YAML: &str = include_str!("../../manifests/30-webhooks.yaml");

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("parsing the webhook configurations: {0}")]
    Yaml(#[source] serde_saphyr::Error),
    #[error(
        "webhook base URL {0:?} must be https://host[:port] (the API server only calls webhooks over TLS; no path, query or fragment)"
    )]
    BaseUrl(String),
}

/// The documents of a YAML stream, e.g. [`WEBHOOK_CONFIGURATIONS_YAML`].
pub fn parse_documents(yaml: &str) -> Result<Vec<Value>, InstallError> {
    serde_saphyr::from_multiple(yaml).map_err(InstallError::Yaml)
}

/// Returns `docs` with every webhook of the Mutating- and ValidatingWebhookConfigurations calling
/// `base_url` + its `service.path` (`clientConfig.url`, the Service dropped) and trusting
/// `ca_pem` (`clientConfig.caBundle`). Other documents, and webhooks that already use a URL,
/// keep their target; all webhook configurations get the caBundle.
pub fn point_at_url(
    docs: &[Value],
    base_url: &str,
    ca_pem: &str,
) -> Result<Vec<Value>, InstallError> {
    let base = check_base_url(base_url)?;
    let mut out = docs.to_vec();
    for doc in &mut out {
        // Only webhook configurations get a caBundle; that also tells us which docs to rewrite.
        if inject_ca_bundle(doc, ca_pem) == 0 {
            continue;
        }
        let webhooks = doc.get_mut("webhooks").and_then(Value::as_array_mut);
        for client in webhooks
            .into_iter()
            .flatten()
            .filter_map(|w| w.get_mut("clientConfig").and_then(Value::as_object_mut))
        {
            let Some(service) = client.remove("service") else {
                continue;
            };
            // The Service's port is dropped with it: the base URL says where the server listens.
            let path = service.get("path").and_then(Value::as_str).unwrap_or("/");
            let sep = if path.starts_with('/') { "" } else { "/" };
            client.insert("url".into(), Value::String(format!("{base}{sep}{path}")));
        }
    }
    Ok(out)
}

/// `https://host[:port]`, without a trailing slash.
fn check_base_url(base_url: &str) -> Result<&str, InstallError> {
    let base = base_url.trim_end_matches('/');
    let bad = || InstallError::BaseUrl(base_url.to_string());
    let authority = base.strip_prefix("https://").ok_or_else(bad)?;
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use serde_json::json;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn configs() -> Vec<Value> {
        parse_documents(WEBHOOK_CONFIGURATIONS_YAML).unwrap()
    }

    #[test]
    fn every_webhook_of_the_manifest_calls_the_url_with_the_ca() {
        let docs = point_at_url(&configs(), "https://127.0.0.1:8443/", CA).unwrap();
        let mut urls = Vec::new();
        for doc in &docs {
            for w in doc["webhooks"].as_array().unwrap() {
                let client = w["clientConfig"].as_object().unwrap();
                assert!(!client.contains_key("service"), "{client:?}");
                let bundle = BASE64.decode(client["caBundle"].as_str().unwrap()).unwrap();
                assert_eq!(bundle, CA.as_bytes());
                urls.push(client["url"].as_str().unwrap().to_string());
            }
        }
        urls.sort();
        let mut want: Vec<String> = crate::webhook::server::Endpoint::ALL
            .iter()
            .map(|e| format!("https://127.0.0.1:8443{}", e.path()))
            .collect();
        want.sort();
        assert_eq!(urls, want);
    }

    #[test]
    fn everything_else_is_kept() {
        let before = configs();
        let after = point_at_url(&before, "https://localhost:1", CA).unwrap();
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            let (mut b, mut a) = (b.clone(), a.clone());
            for doc in [&mut b, &mut a] {
                for w in doc["webhooks"].as_array_mut().unwrap() {
                    w.as_object_mut().unwrap().remove("clientConfig");
                }
            }
            assert_eq!(a, b);
        }
        // The input is not modified.
        assert_eq!(before, configs());
    }

    #[test]
    fn other_documents_and_url_webhooks_keep_their_target() {
        let docs = vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "capstan"},
                   "spec": {"clientConfig": {"service": {"path": "/x"}}}}),
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "v"},
            "webhooks": [
                {"name": "a", "clientConfig": {"url": "https://elsewhere/x"}},
                {"name": "b", "clientConfig": {"service": {"name": "s", "namespace": "n"}}},
                {"name": "c", "clientConfig": {"service": {"name": "s", "namespace": "n", "path": "relative"}}}
            ]}),
        ];
        let out = point_at_url(&docs, "https://127.0.0.1:9", CA).unwrap();
        assert_eq!(out[0], docs[0]);
        let hooks = &out[1]["webhooks"];
        assert_eq!(hooks[0]["clientConfig"]["url"], "https://elsewhere/x");
        assert!(hooks[0]["clientConfig"]["caBundle"].is_string());
        assert_eq!(hooks[1]["clientConfig"]["url"], "https://127.0.0.1:9/");
        assert_eq!(
            hooks[2]["clientConfig"]["url"],
            "https://127.0.0.1:9/relative"
        );
    }

    #[test]
    fn base_url_must_be_https_host_and_port_only() {
        for bad in [
            "http://127.0.0.1:8443",
            "127.0.0.1:8443",
            "https://",
            "https://127.0.0.1:8443/webhooks",
            "https://127.0.0.1:8443?x=1",
            "https://user@127.0.0.1",
        ] {
            let err = point_at_url(&configs(), bad, CA).unwrap_err();
            assert!(matches!(err, InstallError::BaseUrl(_)), "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(matches!(
            parse_documents("a: [").unwrap_err(),
            InstallError::Yaml(_)
        ));
    }
}

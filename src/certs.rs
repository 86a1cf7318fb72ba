//! Webhook certificates: a private CA plus a serving certificate for the webhook Service,
//! the TLS Secret that carries them, and the `caBundle` the API server needs to trust them.
//!
//! The API server calls webhooks at `https://<service>.<namespace>.svc`, so that name (and its
//! short and long forms) must be in the serving certificate, and the CA that signed it must be in
//! every webhook's `clientConfig.caBundle`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

/// Common name of the generated CA.
pub const CA_COMMON_NAME: &str = "capstan-webhook-ca";
/// Name of the TLS Secret that `render_install` emits.
pub const SECRET_NAME: &str = "capstan-webhook-cert";
/// File names inside a Secret of type `kubernetes.io/tls` (and inside `write_files`' directory).
pub const CA_CERT_FILE: &str = "ca.crt";
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";

const WEBHOOK_API_VERSION: &str = "admissionregistration.k8s.io/v1";
const WEBHOOK_KINDS: [&str; 2] = [
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];
/// 100 years; also keeps the date arithmetic far from the X.509 / `time` range limits.
const MAX_VALID_DAYS: u32 = 36_500;
/// Tolerates clocks on other nodes (and the API server) running a little behind ours.
const BACKDATE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(
        "{what} {value:?} is not a valid DNS label (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit)"
    )]
    InvalidName { what: &'static str, value: String },
    #[error("validity of {0} days is out of range: use 1 to {MAX_VALID_DAYS} days")]
    InvalidValidity(u32),
    #[error("SAN {san:?} is neither an IP address nor an ASCII DNS name")]
    InvalidSan { san: String },
    #[error("the system clock is before 1970; fix the clock before generating certificates")]
    Clock,
    #[error("{step} failed: {source}")]
    Generate {
        step: &'static str,
        source: rcgen::Error,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading PEM from {path}: {source}")]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} contains no PEM certificate (expected a \"BEGIN CERTIFICATE\" block)")]
    NoCertificate { path: PathBuf },
    #[error("{path} contains no PEM private key (expected PKCS#8, PKCS#1 or SEC1)")]
    NoPrivateKey { path: PathBuf },
    #[error("building the TLS server config from {cert} and {key}: {source}")]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("parsing the webhook configuration YAML: {0}")]
    YamlParse(#[source] serde_saphyr::Error),
    #[error("writing YAML: {0}")]
    YamlWrite(#[source] serde_saphyr::SerializeError),
    #[error("converting the TLS Secret to JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error(
        "{kind} {name:?}, webhook {webhook:?}, calls service {target}, but the certificate is for {expected}; \
         pass the service and namespace the webhook configuration uses"
    )]
    ServiceMismatch {
        kind: String,
        name: String,
        webhook: String,
        target: String,
        expected: String,
    },
}

/// A CA and a serving certificate signed by it, all PEM.
#[derive(Clone)]
pub struct CertBundle {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

// Hand-written so that keys never end up in logs via `{:?}`.
impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("ca_key_pem", &"<redacted>")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The names the API server (and anything else in-cluster) may use to reach the Service.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Generates a fresh CA (ECDSA P-256) and a serving certificate for `service` in `namespace`.
/// `extra_sans` that parse as IP addresses become IP SANs (e.g. `127.0.0.1` for local runs).
pub fn generate(
    service: &str,
    namespace: &str,
    extra_sans: &[String],
    valid_days: u32,
) -> Result<CertBundle, CertError> {
    check_dns_label("service name", service)?;
    check_dns_label("namespace", namespace)?;
    if valid_days == 0 || valid_days > MAX_VALID_DAYS {
        return Err(CertError::InvalidValidity(valid_days));
    }

    // rcgen takes `time::OffsetDateTime`, which this crate does not depend on; build it from
    // the epoch so the type is only ever inferred.
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CertError::Clock)?;
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let not_before = epoch + since_epoch.saturating_sub(BACKDATE);
    let not_after = epoch + since_epoch + Duration::from_secs(u64::from(valid_days) * 86_400);

    let ca_key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| CertError::Generate {
            step: "generating the CA key",
            source,
        })?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    // Path length 0: this CA only ever signs leaf certificates.
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|source| CertError::Generate {
            step: "self-signing the CA certificate",
            source,
        })?;

    let mut sans: Vec<SanType> = Vec::new();
    for name in service_dns_names(service, namespace)
        .iter()
        .chain(extra_sans)
    {
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) if !name.is_empty() => SanType::DnsName(
                name.as_str()
                    .try_into()
                    .map_err(|_| CertError::InvalidSan { san: name.clone() })?,
            ),
            Err(_) => return Err(CertError::InvalidSan { san: name.clone() }),
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }

    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| CertError::Generate {
            step: "generating the serving key",
            source,
        })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{service}.{namespace}.svc"));
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|source| CertError::Generate {
            step: "signing the serving certificate",
            source,
        })?;

    Ok(CertBundle {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// RFC 1123 label, the rule Kubernetes applies to Service and Namespace names.
fn check_dns_label(what: &'static str, value: &str) -> Result<(), CertError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let valid = !value.is_empty()
        && value.len() <= 63
        && value.chars().all(ok_char)
        && !value.starts_with('-')
        && !value.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(CertError::InvalidName {
            what,
            value: value.to_string(),
        })
    }
}

/// The Secret (type `kubernetes.io/tls`) the webhook server mounts. The CA key is deliberately
/// left out: the cluster only needs to serve with the leaf, not to issue new certificates.
pub fn tls_secret(bundle: &CertBundle, name: &str, namespace: &str) -> Secret {
    let data = [
        (CERT_FILE, &bundle.cert_pem),
        (KEY_FILE, &bundle.key_pem),
        (CA_CERT_FILE, &bundle.ca_cert_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

fn is_webhook_configuration(doc: &Value) -> bool {
    doc.get("apiVersion").and_then(Value::as_str) == Some(WEBHOOK_API_VERSION)
        && doc
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| WEBHOOK_KINDS.contains(&k))
}

/// Sets `webhooks[].clientConfig.caBundle` to base64(`ca_pem`) in a v1 Mutating- or
/// ValidatingWebhookConfiguration. Returns how many webhooks were set; other objects are left
/// alone and give 0. Webhooks without a `clientConfig` mapping are skipped (the API server
/// would reject them anyway).
pub fn inject_ca_bundle(doc: &mut Value, ca_pem: &str) -> usize {
    if !is_webhook_configuration(doc) {
        return 0;
    }
    let Some(webhooks) = doc.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return 0;
    };
    let encoded = BASE64.encode(ca_pem.as_bytes());
    let mut set = 0;
    for webhook in webhooks {
        if let Some(client) = webhook
            .get_mut("clientConfig")
            .and_then(Value::as_object_mut)
        {
            client.insert("caBundle".to_string(), Value::String(encoded.clone()));
            set += 1;
        }
    }
    set
}

/// A webhook that calls a different Service than the certificate names would fail every TLS
/// handshake at admission time; catch that while installing instead.
fn check_service_targets(doc: &Value, service: &str, namespace: &str) -> Result<(), CertError> {
    if !is_webhook_configuration(doc) {
        return Ok(());
    }
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let webhooks = doc.get("webhooks").and_then(Value::as_array);
    for webhook in webhooks.into_iter().flatten() {
        let Some(svc) = webhook.pointer("/clientConfig/service") else {
            continue;
        };
        let target_name = text(svc.get("name"));
        let target_ns = text(svc.get("namespace"));
        if target_name != service || target_ns != namespace {
            return Err(CertError::ServiceMismatch {
                kind: text(doc.get("kind")),
                name: text(doc.pointer("/metadata/name")),
                webhook: text(webhook.get("name")),
                target: format!("{target_ns}/{target_name}"),
                expected: format!("{namespace}/{service}"),
            });
        }
    }
    Ok(())
}

/// Reads a PEM certificate chain and private key and builds the webhook server's TLS config:
/// TLS 1.3 and 1.2 on aws-lc-rs, ALPN `h2` then `http/1.1`.
pub fn load_server_config(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
) -> Result<rustls::ServerConfig, CertError> {
    let cert_path = cert_path.as_ref();
    let key_path = key_path.as_ref();
    let read = |path: &Path| {
        fs::read(path).map_err(|source| CertError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        })
    };
    let pem_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CertError::Pem { path, source }
    };

    let cert_pem = read(cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(cert_path))?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key_pem = read(key_path)?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            return Err(CertError::NoPrivateKey {
                path: key_path.to_path_buf(),
            });
        }
        Err(e) => return Err(pem_err(key_path)(e)),
    };

    let tls_err = |source| CertError::Tls {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(tls_err)?
        .with_no_client_auth()
        // Also checks that the key belongs to the leaf certificate.
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` into `dir` (created if missing), the layout of a
/// mounted `kubernetes.io/tls` Secret. The key is mode 0600.
pub fn write_files(bundle: &CertBundle, dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        action: "creating directory",
        path: dir.to_path_buf(),
        source,
    })?;
    write_file(&dir.join(CA_CERT_FILE), &bundle.ca_cert_pem, false)?;
    write_file(&dir.join(CERT_FILE), &bundle.cert_pem, false)?;
    write_file(&dir.join(KEY_FILE), &bundle.key_pem, true)?;
    Ok(())
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), CertError> {
    let io_err = |action: &'static str| {
        move |source| CertError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err("opening"))?;
    // `mode` only applies to new files: tighten an existing one before the key goes into it.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err("setting mode 0600 on"))?;
    }
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err("writing"))
}

/// What `capstan certs` prints: the TLS Secret `capstan-webhook-cert`, then every document of
/// `webhook_config_yaml` with the CA injected into the webhook configurations, as one YAML
/// stream for `kubectl apply -f -`.
pub fn render_install(
    bundle: &CertBundle,
    service: &str,
    namespace: &str,
    webhook_config_yaml: &str,
) -> Result<String, CertError> {
    let mut docs: Vec<Value> =
        serde_saphyr::from_multiple(webhook_config_yaml).map_err(CertError::YamlParse)?;
    for doc in &mut docs {
        check_service_targets(doc, service, namespace)?;
        inject_ca_bundle(doc, &bundle.ca_cert_pem);
    }
    let secret = serde_json::to_value(tls_secret(bundle, SECRET_NAME, namespace))
        .map_err(CertError::Json)?;

    let mut out = String::new();
    for doc in std::iter::once(&secret).chain(&docs) {
        let mut text = serde_saphyr::to_string(doc).map_err(CertError::YamlWrite)?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::{CertificateError, ClientConfig, RootCertStore};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    const SERVICE: &str = "capstan-webhook";
    const NAMESPACE: &str = "capstan";

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// A fresh directory under the system temp dir; removed by the caller.
    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!(
            "capstan-certs-{tag}-{}-{nanos}",
            std::process::id()
        ))
    }

    fn roots(ca_pem: &str) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        assert_eq!(roots.len(), 1);
        roots
    }

    fn client(ca_pem: &str) -> TlsConnector {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(ca_pem))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        TlsConnector::from(Arc::new(config))
    }

    fn bundle() -> CertBundle {
        generate(SERVICE, NAMESPACE, &["127.0.0.1".to_string()], 30).unwrap()
    }

    #[tokio::test]
    async fn tls_handshake_trusts_only_the_generated_ca() {
        let bundle = bundle();
        let dir = temp_dir("tls");
        write_files(&bundle, &dir).unwrap();
        let config = load_server_config(dir.join(CERT_FILE), dir.join(KEY_FILE)).unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // Echo server; failed handshakes are expected for the untrusted client.
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let mut buf = [0u8; 64];
                        if let Ok(n) = tls.read(&mut buf).await {
                            let _ = tls.write_all(&buf[..n]).await;
                            let _ = tls.shutdown().await;
                        }
                    }
                });
            }
        });

        // Trusted CA, by service DNS name and by the IP SAN.
        let names = [
            ServerName::try_from("capstan-webhook.capstan.svc").unwrap(),
            ServerName::try_from("127.0.0.1").unwrap(),
        ];
        for name in names {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut tls = client(&bundle.ca_cert_pem)
                .connect(name.clone(), tcp)
                .await
                .unwrap_or_else(|e| panic!("handshake as {name:?}: {e}"));
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            tls.write_all(b"admission").await.unwrap();
            let mut got = Vec::new();
            tls.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"admission");
        }

        // A different CA must not be able to vouch for our server.
        let other = generate(SERVICE, NAMESPACE, &[], 30).unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let err = client(&other.ca_cert_pem)
            .connect(
                ServerName::try_from("capstan-webhook.capstan.svc").unwrap(),
                tcp,
            )
            .await
            .expect_err("handshake with an unrelated CA must fail");
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        assert!(
            matches!(
                inner,
                // Both CAs share the CN, so webpki finds an issuer by name and then rejects
                // its signature; with a different name it would be UnknownIssuer.
                Some(rustls::Error::InvalidCertificate(
                    CertificateError::BadSignature | CertificateError::UnknownIssuer
                ))
            ),
            "unexpected error: {err}"
        );

        server.abort();
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn serving_cert_names_cover_the_service() {
        let bundle = bundle();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots(&bundle.ca_cert_pem)),
            provider(),
        )
        .build()
        .unwrap();
        let leaf = CertificateDer::from_pem_slice(bundle.cert_pem.as_bytes()).unwrap();
        let verify = |name: &str| {
            verifier.verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
        };

        let expected = [
            "capstan-webhook",
            "capstan-webhook.capstan",
            "capstan-webhook.capstan.svc",
            "capstan-webhook.capstan.svc.cluster.local",
        ];
        assert_eq!(service_dns_names(SERVICE, NAMESPACE), expected);
        for name in expected.into_iter().chain(["127.0.0.1"]) {
            verify(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for name in [
            "other.capstan.svc",
            "capstan-webhook.default.svc",
            "10.0.0.1",
        ] {
            assert!(verify(name).is_err(), "{name} must not be covered");
        }
    }

    #[test]
    fn generate_rejects_bad_input() {
        assert!(matches!(
            generate("Capstan", NAMESPACE, &[], 30),
            Err(CertError::InvalidName { .. })
        ));
        assert!(matches!(
            generate(SERVICE, "", &[], 30),
            Err(CertError::InvalidName { .. })
        ));
        assert!(matches!(
            generate(SERVICE, NAMESPACE, &[], 0),
            Err(CertError::InvalidValidity(0))
        ));
        assert!(matches!(
            generate(SERVICE, NAMESPACE, &["bad\u{e9}.example".to_string()], 30),
            Err(CertError::InvalidSan { .. })
        ));
    }

    #[test]
    fn load_server_config_reports_the_file() {
        let dir = temp_dir("load");
        let missing = dir.join("nope.crt");
        let err = load_server_config(&missing, dir.join(KEY_FILE)).unwrap_err();
        assert!(err.to_string().contains("nope.crt"), "{err}");

        // Key and certificate from different bundles must be refused up front.
        let a = bundle();
        let b = bundle();
        write_files(&a, &dir).unwrap();
        fs::write(dir.join("other.key"), &b.key_pem).unwrap();
        let err = load_server_config(dir.join(CERT_FILE), dir.join("other.key")).unwrap_err();
        assert!(matches!(err, CertError::Tls { .. }), "{err}");
        let err = load_server_config(dir.join(CA_CERT_FILE), dir.join(CERT_FILE)).unwrap_err();
        assert!(matches!(err, CertError::NoPrivateKey { .. }), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    fn validating_config() -> Value {
        serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "validation.capstan.sh"},
            "webhooks": [
                {
                    "name": "nodepools.capstan.sh",
                    "clientConfig": {"service": {"name": SERVICE, "namespace": NAMESPACE, "path": "/validate/nodepool"}},
                },
                {
                    "name": "nodeclasses.capstan.sh",
                    "clientConfig": {"service": {"name": SERVICE, "namespace": NAMESPACE, "path": "/validate/nodeclass"}, "caBundle": "b2xk"},
                },
            ],
        })
    }

    fn decoded_bundles(doc: &Value) -> Vec<String> {
        doc["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                let b64 = w["clientConfig"]["caBundle"].as_str().unwrap();
                String::from_utf8(BASE64.decode(b64).unwrap()).unwrap()
            })
            .collect()
    }

    #[test]
    fn inject_ca_bundle_sets_every_webhook() {
        let ca = bundle().ca_cert_pem;
        let mut doc = validating_config();
        assert_eq!(inject_ca_bundle(&mut doc, &ca), 2);
        assert_eq!(decoded_bundles(&doc), [ca.clone(), ca.clone()]);

        let mut secret = serde_json::to_value(tls_secret(&bundle(), "x", "y")).unwrap();
        let before = secret.clone();
        assert_eq!(inject_ca_bundle(&mut secret, &ca), 0);
        assert_eq!(secret, before);

        // Same kind, older API group version: not ours to touch.
        let mut old = validating_config();
        old["apiVersion"] = "admissionregistration.k8s.io/v1beta1".into();
        let before = old.clone();
        assert_eq!(inject_ca_bundle(&mut old, &ca), 0);
        assert_eq!(old, before);
    }

    #[test]
    fn render_install_emits_secret_then_patched_configs() {
        let bundle = bundle();
        let input = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: validation.capstan.sh
webhooks:
  - name: nodepools.capstan.sh
    admissionReviewVersions: ["v1"]
    sideEffects: None
    clientConfig:
      service: {name: capstan-webhook, namespace: capstan, path: /validate/nodepool}
  - name: nodeclasses.capstan.sh
    admissionReviewVersions: ["v1"]
    sideEffects: None
    clientConfig:
      service: {name: capstan-webhook, namespace: capstan, path: /validate/nodeclass}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: defaulting.capstan.sh
webhooks:
  - name: nodepools.defaulting.capstan.sh
    admissionReviewVersions: ["v1"]
    sideEffects: None
    clientConfig:
      service: {name: capstan-webhook, namespace: capstan, path: /mutate/nodepool}
"#;
        let out = render_install(&bundle, SERVICE, NAMESPACE, input).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&out).unwrap();
        assert_eq!(docs.len(), 3, "{out}");

        let secret: Secret = serde_json::from_value(docs[0].clone()).unwrap();
        assert_eq!(docs[0]["kind"], "Secret");
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(secret.metadata.name.as_deref(), Some(SECRET_NAME));
        assert_eq!(secret.metadata.namespace.as_deref(), Some(NAMESPACE));
        let data = secret.data.unwrap();
        assert_eq!(data[CERT_FILE].0, bundle.cert_pem.as_bytes());
        assert_eq!(data[KEY_FILE].0, bundle.key_pem.as_bytes());
        assert_eq!(data[CA_CERT_FILE].0, bundle.ca_cert_pem.as_bytes());

        assert_eq!(docs[1]["kind"], "ValidatingWebhookConfiguration");
        assert_eq!(docs[1]["webhooks"][0]["sideEffects"], "None");
        assert_eq!(
            decoded_bundles(&docs[1]),
            [bundle.ca_cert_pem.clone(), bundle.ca_cert_pem.clone()]
        );
        assert_eq!(docs[2]["kind"], "MutatingWebhookConfiguration");
        assert_eq!(
            decoded_bundles(&docs[2]),
            std::slice::from_ref(&bundle.ca_cert_pem)
        );

        // The certificate would not match the Service these webhooks call.
        let err = render_install(&bundle, SERVICE, "kube-system", input).unwrap_err();
        assert!(matches!(err, CertError::ServiceMismatch { .. }), "{err}");
        assert!(err.to_string().contains("capstan/capstan-webhook"), "{err}");

        let err = render_install(&bundle, SERVICE, NAMESPACE, "a: [").unwrap_err();
        assert!(matches!(err, CertError::YamlParse(_)), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("perm");
        fs::create_dir_all(&dir).unwrap();
        // A pre-existing, world-readable key file must be tightened, not reused as is.
        fs::write(dir.join(KEY_FILE), "old").unwrap();
        fs::set_permissions(dir.join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();

        let bundle = bundle();
        write_files(&bundle, &dir).unwrap();
        let mode = |f: &str| fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(
            fs::read_to_string(dir.join(KEY_FILE)).unwrap(),
            bundle.key_pem
        );
        assert_eq!(
            fs::read_to_string(dir.join(CA_CERT_FILE)).unwrap(),
            bundle.ca_cert_pem
        );
        let _ = fs::remove_dir_all(&dir);
    }
}

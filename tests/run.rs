//! `capstan run` as the Deployment runs it: against an API server from a kubeconfig, ready once
//! the webhook cache has listed, and on SIGTERM it stops and exits 0; even at debug level its
//! logs hold no secret.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The status of `GET path` on 127.0.0.1:`port`, or None if nothing answers.
async fn get(port: u16, path: &str) -> Option<u16> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.ok()?;
    raw.split(' ').nth(1)?.parse().ok()
}

/// An AWS secret key no log line may contain.
const SECRET_MARKER: &str = "capstan-secret-marker-9f8e7d6c5b4a";

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_until_sigterm_then_exits_zero() {
    let env = common::start().await;
    let cert_dir = env.dir.path().join("tls");
    let bundle =
        capstan::certs::generate("capstan", "capstan", &["127.0.0.1".into()], 1).expect("certs");
    capstan::certs::write_files(&bundle, &cert_dir).expect("write certs");
    let (webhook_port, health_port, metrics_port) = (free_port(), free_port(), free_port());
    let log = env.dir.path().join("run.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .arg("run")
        .arg("--cert-dir")
        .arg(&cert_dir)
        .args(["--webhook-port", &webhook_port.to_string()])
        .args(["--health-port", &health_port.to_string()])
        .env("METRICS_PORT", metrics_port.to_string())
        .env("KUBECONFIG", env.sandbox.kubeconfig_path())
        .env_remove("WEBHOOK_PORT")
        .env_remove("HEALTH_PROBE_PORT")
        .env_remove("SYSTEM_NAMESPACE")
        .env_remove("FEATURE_GATES")
        // Debug level, to show that even there no secret is logged.
        .env("LOG_LEVEL", "debug")
        .env("LOG_FORMAT", "json")
        .env("AWS_ACCESS_KEY_ID", "AKIACAPSTANTESTKEY01")
        .env("AWS_SECRET_ACCESS_KEY", SECRET_MARKER)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start capstan run");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    let deadline = Instant::now() + Duration::from_secs(20);
    while get(health_port, "/readyz").await != Some(200) {
        assert!(Instant::now() < deadline, "never ready; log:\n{}", logs());
        assert!(
            child.try_wait().expect("wait").is_none(),
            "exited early:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(health_port, "/healthz").await, Some(200));
    assert_eq!(
        get(metrics_port, "/metrics").await,
        Some(200),
        "METRICS_PORT"
    );
    assert_eq!(
        get(metrics_port, "/healthz").await,
        Some(404),
        "only /metrics there"
    );
    // The admission port is TLS: a TCP connection is accepted.
    TcpStream::connect(("127.0.0.1", webhook_port))
        .await
        .expect("webhook port open");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 10 s after SIGTERM; log:\n{}", logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(0), "log:\n{}", logs());
    assert!(logs().contains("SIGTERM"), "{}", logs());
    // LOG_FORMAT=json: every line is one JSON object with a level and a message.
    for line in logs().lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
    // Secrets are never logged: not the AWS secret key, the API server token or a private key.
    let logged = logs();
    assert!(logged.lines().count() > 5, "debug logs expected:\n{logged}");
    for (what, secret) in [
        ("AWS secret key", SECRET_MARKER),
        ("bearer token", env.sandbox.token()),
        ("private key", "PRIVATE KEY"),
        ("webhook key", bundle.key_pem.lines().nth(1).unwrap_or("-")),
    ] {
        assert!(!logged.contains(secret), "the {what} was logged");
    }
    assert_eq!(
        get(health_port, "/healthz").await,
        None,
        "health port closed"
    );
    env.sandbox.shutdown().await;
}

#[test]
fn a_misspelt_feature_gate_stops_the_start_with_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["run", "--feature-gates", "SpotToSpot=true"])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("run capstan");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "FEATURE_GATES: unknown gate \"SpotToSpot\" (known: SpotToSpotConsolidation)"
        ),
        "{stderr}"
    );
}

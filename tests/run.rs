//! `capstan run` as the Deployment runs it: against an API server from a kubeconfig, ready once
//! the webhook cache has listed, and on SIGTERM it stops and exits 0.

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

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_until_sigterm_then_exits_zero() {
    let env = common::start().await;
    let cert_dir = env.dir.path().join("tls");
    let bundle =
        capstan::certs::generate("capstan", "capstan", &["127.0.0.1".into()], 1).expect("certs");
    capstan::certs::write_files(&bundle, &cert_dir).expect("write certs");
    let (webhook_port, health_port) = (free_port(), free_port());
    let log = env.dir.path().join("run.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .arg("run")
        .arg("--cert-dir")
        .arg(&cert_dir)
        .args(["--webhook-port", &webhook_port.to_string()])
        .args(["--health-port", &health_port.to_string()])
        .env("KUBECONFIG", env.sandbox.kubeconfig_path())
        .env_remove("WEBHOOK_PORT")
        .env_remove("HEALTH_PROBE_PORT")
        .env_remove("SYSTEM_NAMESPACE")
        .env("LOG_LEVEL", "info")
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
    assert_eq!(
        get(health_port, "/healthz").await,
        None,
        "health port closed"
    );
    env.sandbox.shutdown().await;
}

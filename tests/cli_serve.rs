//! The real `sluice` binary: `serve --check-config` verdicts and exit codes, and `serve`
//! proxying a request, answering the admin health check and exiting 0 on SIGTERM.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Client, Origin, LIMIT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

async fn check_config(path: &std::path::Path) -> std::process::Output {
    let out = Command::new(BIN)
        .args(["serve", "--check-config", "--config"])
        .arg(path)
        .output();
    tokio::time::timeout(LIMIT, out)
        .await
        .expect("--check-config returns at once")
        .expect("run sluice")
}

#[tokio::test]
async fn check_config_accepts_a_good_file_with_exit_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        &dir,
        "good.toml",
        "[proxy]\nlisten = \"127.0.0.1:3128\"\nidle_timeout = \"30s\"\n\n[upstream]\nallow = [\"10.0.0.0/8\"]\nbody_timeout = \"5m\"\n",
    );
    let out = check_config(&path).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn check_config_names_the_line_and_key_of_an_unknown_key_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        &dir,
        "bad.toml",
        "[proxy]\nlisten = \"127.0.0.1:3128\"\nidle_timout = \"30s\"\n",
    );
    let out = check_config(&path).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("line 3"), "stderr names the line: {stderr}");
    assert!(
        stderr.contains("idle_timout"),
        "stderr names the key: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
}

#[tokio::test]
async fn check_config_rejects_a_bad_value_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        &dir,
        "bad.toml",
        "[upstream]\nresponse_timeout = \"soon\"\n",
    );
    let out = check_config(&path).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

/// A 127.0.0.1 port that is free right now.
fn free_port() -> u16 {
    common::refused_port()
}

#[tokio::test]
async fn serve_proxies_requests_and_exits_0_on_sigterm() {
    let origin = Origin::ok("through the binary").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        &dir,
        "sluice.toml",
        "[upstream]\nallow = [\"127.0.0.0/8\"]\n",
    );
    let (proxy_port, admin_port) = (free_port(), free_port());
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{proxy_port}")])
        .args(["--admin", &format!("127.0.0.1:{admin_port}")])
        .arg("--store")
        .arg(dir.path().join("store"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start sluice serve");

    let proxy = std::net::SocketAddr::from(([127, 0, 0, 1], proxy_port));
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(proxy).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "sluice serve never started listening"
        );
        assert!(
            child.try_wait().expect("poll child").is_none(),
            "sluice serve exited early"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let r = common::fetch(proxy, &origin.url("/bin")).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "through the binary"));
    let mut admin = Client::connect(([127, 0, 0, 1], admin_port).into()).await;
    let health = admin
        .exchange(format!(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{admin_port}\r\n\r\n"
        ))
        .await;
    assert_eq!(health.status(), 200);

    let pid = Pid::from_raw(i32::try_from(child.id().expect("pid")).expect("pid fits"));
    kill(pid, Signal::SIGTERM).expect("send SIGTERM");
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("sluice exits promptly on SIGTERM")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(
        tokio::net::TcpStream::connect(proxy).await.is_err(),
        "no longer listening"
    );
}

//! kill -9 of the real binary in the middle of a load of many cache writes: after a restart
//! on the same store every object served is byte-identical to the origin's (objects may be
//! missing — sled flushes every 500 ms — but none is ever corrupted).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cache::answer;
use common::{get, Client, Origin};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const OBJECTS: usize = 600;
const WORKERS: usize = 8;

/// The size of object `i`: mostly under 200 kB, every 25th 2 MiB (chunked in the store).
fn size_of(i: usize) -> usize {
    if i.is_multiple_of(25) {
        2 << 20
    } else {
        (i * 7919) % 200_000 + 1
    }
}

/// Deterministic content of `/obj/{i}` (xorshift seeded by `i`).
fn content(i: usize) -> Vec<u8> {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size_of(i))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn index_of(target: &str) -> Option<usize> {
    target.rsplit('/').next()?.parse().ok()
}

fn free_port() -> u16 {
    common::refused_port()
}

fn spawn(config: &Path, store: &Path) -> (Child, SocketAddr, SocketAddr) {
    let (proxy, admin) = (free_port(), free_port());
    let child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{proxy}")])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .arg("--store")
        .arg(store)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start sluice serve");
    (
        child,
        SocketAddr::from(([127, 0, 0, 1], proxy)),
        SocketAddr::from(([127, 0, 0, 1], admin)),
    )
}

/// Polls `GET /healthz` on the admin port until it answers 200 (bounded).
async fn wait_ready(child: &mut Child, admin: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "sluice never became healthy");
        assert!(
            child.try_wait().expect("poll child").is_none(),
            "sluice exited early"
        );
        if let Ok(mut s) = tokio::net::TcpStream::connect(admin).await {
            let req = "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n";
            let mut out = Vec::new();
            if s.write_all(req.as_bytes()).await.is_ok()
                && tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out))
                    .await
                    .is_ok()
                && out.starts_with(b"HTTP/1.1 200")
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sigkill(child: &Child) {
    let pid = Pid::from_raw(i32::try_from(child.id().expect("pid")).expect("pid fits"));
    kill(pid, Signal::SIGKILL).expect("send SIGKILL");
}

#[tokio::test]
async fn kill_9_during_a_write_load_never_leaves_a_corrupted_object() {
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let origin = Origin::respond(move |r| match index_of(r.target()) {
        Some(i) if !f.load(Ordering::SeqCst) => answer(
            "200 OK",
            &[
                "Cache-Control: max-age=3600",
                "Content-Type: application/octet-stream",
            ],
            &content(i),
        ),
        _ => answer("500 Internal Server Error", &[], b"origin down"),
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "[upstream]\nallow = [\"127.0.0.0/8\"]\n").expect("write config");
    let store = dir.path().join("store");

    // Load: WORKERS keep-alive clients fetch all objects; SIGKILL once two thirds are in,
    // with writes still in flight (the earlier ones span several 500 ms flush intervals).
    let (mut child, proxy, admin) = spawn(&config, &store);
    wait_ready(&mut child, admin).await;
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (next, done, url) = (next.clone(), done.clone(), origin.url("/obj/"));
        workers.push(tokio::spawn(async move {
            let mut c = Client::connect(proxy).await;
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= OBJECTS {
                    return;
                }
                if c.try_send(get(&format!("{url}{i}"))).await.is_err() {
                    return;
                }
                match c.try_read_response().await {
                    Ok(r) if r.status() == 200 => {
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        }));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(15);
    while done.load(Ordering::SeqCst) < OBJECTS * 2 / 3 {
        assert!(
            Instant::now() < deadline,
            "the load made too little progress"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sigkill(&child);
    let killed_after = done.load(Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("sluice dies on SIGKILL")
        .expect("wait");
    for w in workers {
        let _ = w.await;
    }

    // Restart on the same store with the origin failing: only stored objects can be 200.
    failing.store(true, Ordering::SeqCst);
    let (mut child, proxy, admin) = spawn(&config, &store);
    wait_ready(&mut child, admin).await;
    let mut c = Client::connect(proxy).await;
    let mut served = 0;
    for i in 0..OBJECTS {
        let r = c.exchange(get(&origin.url(&format!("/obj/{i}")))).await;
        if r.status() == 200 {
            assert!(
                r.body == content(i),
                "object {i} corrupted after kill -9: {} bytes, expected {}",
                r.body.len(),
                size_of(i)
            );
            served += 1;
        } else {
            assert!(r.status() >= 500, "object {i}: status {}", r.status());
        }
    }
    eprintln!("kill -9 after {killed_after} completed fetches; {served} objects survived intact");
    assert!(killed_after < OBJECTS, "the kill must land mid-load");
    assert!(
        served > 0,
        "some objects written well before the kill must survive"
    );
    sigkill(&child);
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

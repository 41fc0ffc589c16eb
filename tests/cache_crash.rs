//! kill -9 of the real binary in the middle of a load of many cache writes: after a restart
//! on the same store every object served is byte-identical to the origin's (objects may be
//! missing — sled flushes every 500 ms — but none is ever corrupted).

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::bin::{self, Bin, Launch};
use common::cache::{answer, index_of};
use common::{get, Client, Origin};
use nix::sys::signal::Signal;
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

/// Errors only: the load makes a log line per request.
const QUIET: Launch = Launch {
    log: "error",
    file_limit_kib: None,
    open_files: None,
};

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
    let config = bin::write_config(dir.path(), "");
    let store = dir.path().join("store");

    // Load: WORKERS keep-alive clients fetch all objects; SIGKILL once two thirds are in,
    // with writes still in flight (the earlier ones span several 500 ms flush intervals).
    let mut sluice = Bin::spawn(&config, &store, QUIET);
    sluice.wait_ready().await;
    let proxy = sluice.proxy;
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
    sluice.signal(Signal::SIGKILL);
    let killed_after = done.load(Ordering::SeqCst);
    assert_eq!(sluice.exit_code().await, None, "sluice dies on SIGKILL");
    for w in workers {
        let _ = w.await;
    }

    // Restart on the same store with the origin failing: only stored objects can be 200.
    failing.store(true, Ordering::SeqCst);
    let mut sluice = Bin::spawn(&config, &store, QUIET);
    sluice.wait_ready().await;
    let mut c = Client::connect(sluice.proxy).await;
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
    sluice.kill9().await;
}

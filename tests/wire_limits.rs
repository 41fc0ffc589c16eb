//! Resource limits on the wire: an endless upstream body streams with backpressure (never
//! buffered whole, never cached) and is cut at `upstream.body_timeout`; a slow-drip body is
//! cut and not cached; 10,000 idle keep-alive clients hold in bounded memory while another
//! client is served at once.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::bin::{self, Bin, Launch};
use common::wire::WireError;
use common::{config, get, start, Client, Origin, LIMIT};
use sluice::config::ScanMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// An origin that answers with a cacheable, endless chunked body. It counts the bytes it
/// managed to write and signals `stalled` once a write has been blocked for 300 ms: the
/// proxy stopped reading (backpressure).
async fn endless_origin(written: Arc<AtomicU64>, stalled: Arc<Notify>) -> Origin {
    Origin::start(move |mut conn| {
        let (written, stalled) = (written.clone(), stalled.clone());
        async move {
            if conn.read_request().await.is_none() {
                return;
            }
            let head = "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\n\r\n";
            if conn.write(head).await.is_err() {
                return;
            }
            let chunk = format!("4000\r\n{}\r\n", "e".repeat(0x4000));
            loop {
                match tokio::time::timeout(Duration::from_millis(300), conn.write(&chunk)).await {
                    Ok(Ok(())) => {
                        written.fetch_add(0x4000, Ordering::SeqCst);
                    }
                    Ok(Err(_)) => return,
                    Err(_) => {
                        stalled.notify_one();
                        // Keep the connection open; the test decides when it ends.
                        if conn.write(&chunk).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    })
    .await
}

/// Sends a GET and reads only until the end of the response head; returns the head.
async fn read_head_only(proxy: std::net::SocketAddr, url: &str) -> (tokio::net::TcpStream, String) {
    let mut s = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect");
    s.write_all(&get(url)).await.expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
            .await
            .expect("head in time")
            .expect("read");
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&buf[..n]);
    }
    (s, String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn an_endless_body_streams_with_backpressure_and_is_never_cached() {
    let (written, stalled) = (Arc::new(AtomicU64::new(0)), Arc::new(Notify::new()));
    let origin = endless_origin(written.clone(), stalled.clone()).await;
    let mut cfg = config();
    cfg.scan.max_body = "64KiB".parse().expect("size");
    let sluice = start(cfg).await;
    let url = origin.url("/endless");
    // The client reads the head and then nothing: the proxy must stop reading upstream.
    let (client, head) = read_head_only(sluice.addr, &url).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("reason=too_large"),
        "over scan.max_body: unscanned, streamed: {head}"
    );
    tokio::time::timeout(LIMIT, stalled.notified())
        .await
        .expect("the origin is never backpressured: the proxy buffers without bound");
    let buffered = written.load(Ordering::SeqCst);
    eprintln!(
        "endless body: origin blocked after {} KiB (socket buffers + proxy)",
        buffered >> 10
    );
    assert!(
        buffered < 64 << 20,
        "{buffered} bytes went out before backpressure"
    );
    drop(client);
    // Never cached: the next request goes upstream again.
    let (_c, head) = read_head_only(sluice.addr, &url).await;
    assert!(head.starts_with("HTTP/1.1 200"));
    let hits = origin
        .requests()
        .iter()
        .filter(|r| r.target() == "/endless")
        .count();
    assert_eq!(hits, 2);
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_body_timeout() {
    let origin = endless_origin(Arc::default(), Arc::default()).await;
    let mut cfg = config();
    cfg.scan.max_body = "64KiB".parse().expect("size");
    cfg.upstream.body_timeout = Duration::from_millis(500);
    let sluice = start(cfg).await;
    let started = Instant::now();
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/endless"))).await;
    let got = c.try_read_response().await;
    assert!(
        matches!(got, Err(WireError::Incomplete(_))),
        "a cut, never a complete body: {got:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut at the 500ms body timeout"
    );
}

#[tokio::test]
async fn a_slow_drip_body_is_cut_and_never_cached() {
    let origin = Origin::start(|mut conn| async move {
        if conn.read_request().await.is_none() {
            return;
        }
        let head = "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 1000\r\n\r\n";
        if conn.write(head).await.is_err() {
            return;
        }
        for _ in 0..1000 {
            if conn.write("d").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for mode in [ScanMode::Observe, ScanMode::Enforce] {
        let mut cfg = config();
        cfg.scan.mode = mode;
        cfg.upstream.body_timeout = Duration::from_millis(400);
        let sluice = start(cfg).await;
        let url = origin.url(&format!("/drip-{mode:?}"));
        for round in 1..=2 {
            let mut c = sluice.client().await;
            c.send(get(&url)).await;
            match (mode, c.try_read_response().await) {
                (ScanMode::Observe, Err(WireError::Incomplete(_))) => {}
                (ScanMode::Enforce, Ok(r)) if r.status() == 504 => {}
                (m, other) => panic!("{m:?} round {round}: {other:?}"),
            }
        }
        let path = format!("/drip-{mode:?}");
        let hits = origin
            .requests()
            .iter()
            .filter(|r| r.target() == path)
            .count();
        assert_eq!(
            hits, 2,
            "{mode:?}: a cut body is never served from the cache"
        );
    }
}

/// The soft limit on open files of this process, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Resident memory of process `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn ten_thousand_idle_keep_alive_clients_hold_in_bounded_memory() {
    const CLIENTS: usize = 10_000;
    // The proxy runs as its own process (10,000 sockets there, 10,000 here).
    match open_files_limit() {
        Some(n) if n >= CLIENTS as u64 + 500 => {}
        other => {
            eprintln!("SKIPPED: needs {} open files per process, the limit is {other:?} (raise it with `ulimit -n`)", CLIENTS + 500);
            return;
        }
    }
    let origin = Origin::ok("ok").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = bin::write_config(dir.path(), "");
    let mut sluice = Bin::spawn(&config, &dir.path().join("store"), Launch::default());
    sluice.wait_ready().await;
    let (proxy, pid) = (sluice.proxy, sluice.child.id().expect("pid"));
    // Warm up (first request, pools, allocator) before the baseline.
    assert_eq!(
        common::fetch(proxy, &origin.url("/warm")).await.status(),
        200
    );
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut idle = Vec::with_capacity(CLIENTS);
    // Every tenth connection is a keep-alive client that makes one request and goes idle;
    // the rest never send a byte. The requests also pace the connects: each answer means
    // the proxy has accepted every connection before it, so its accept queue never
    // overflows (an overflow costs a one-second SYN retry and says nothing about sluice).
    let mut used = 0;
    for i in 0..CLIENTS {
        let mut s = tokio::net::TcpStream::connect(proxy)
            .await
            .expect("connect");
        if i % 10 == 0 {
            s.write_all(&get(&origin.url("/once"))).await.expect("send");
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
                .await
                .expect("answer in time")
                .expect("read");
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200"),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            );
            used += 1;
        }
        idle.push(s);
    }
    let opened = started.elapsed();
    // Another client is served at once.
    let t = Instant::now();
    let mut fresh = Client::connect(proxy).await;
    let r = fresh.exchange(get(&origin.url("/fresh"))).await;
    let latency = t.elapsed();
    let after = rss_kib(pid);
    let extra = after.saturating_sub(before);
    eprintln!(
        "{CLIENTS} idle clients ({used} after one request) opened in {opened:?}; proxy RSS {} MiB -> {} MiB (+{} MiB, {} bytes per connection); a fresh request took {latency:?}",
        before >> 10,
        after >> 10,
        extra >> 10,
        extra * 1024 / CLIENTS as u64
    );
    assert_eq!(r.status(), 200);
    assert!(
        latency < Duration::from_secs(1),
        "a fresh client waited {latency:?}"
    );
    assert!(
        extra < 300 << 10,
        "{extra} KiB extra for {CLIENTS} idle connections"
    );
    // Every idle connection is still open (none was refused or dropped).
    let mut probe = [0u8; 1];
    for s in idle.iter().take(100) {
        assert!(
            matches!(s.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        );
    }
    drop(idle);
    sluice.kill9().await;
}

/// Regression: a stale-while-revalidate hit revalidates in the background, and that task read
/// the new answer to its end into memory (`collect`), however large: an origin could make
/// sluice buffer any amount per stale URL, for up to `upstream.body_timeout`. A body over
/// `scan.max_body` is neither scanned nor stored, so the task stops reading it there.
#[tokio::test]
async fn a_background_revalidation_stops_reading_a_body_over_max_body() {
    const BIG: u64 = 64 << 20;
    let (written, ended) = (Arc::new(AtomicU64::new(0)), Arc::new(Notify::new()));
    let requests = Arc::new(AtomicU64::new(0));
    let (w, e) = (written.clone(), ended.clone());
    let origin = Origin::start(move |mut conn| {
        let (written, ended, requests) = (w.clone(), e.clone(), requests.clone());
        async move {
            while conn.read_request().await.is_some() {
                if requests.fetch_add(1, Ordering::SeqCst) == 0 {
                    let stale = "HTTP/1.1 200 OK\r\nCache-Control: max-age=0, \
                                 stale-while-revalidate=600\r\nContent-Length: 5\r\n\r\nstale";
                    if conn.write(stale).await.is_err() {
                        return;
                    }
                    continue;
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n");
                let chunk = vec![b'b'; 64 << 10];
                let mut ok = conn.write(head).await.is_ok();
                while ok && written.load(Ordering::SeqCst) < BIG {
                    ok = conn.write(&chunk).await.is_ok();
                    if ok {
                        written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                    }
                }
                // Cut by the proxy, or (the bug) read to the end.
                ended.notify_one();
                return;
            }
        }
    })
    .await;
    let mut cfg = config();
    cfg.scan.max_body = "64KiB".parse().expect("size");
    let sluice = start(cfg).await;
    let url = origin.url("/swr");
    assert_eq!(sluice.fetch(&url).await.text(), "stale");
    let r = sluice.fetch(&url).await;
    assert_eq!(r.text(), "stale", "served stale while revalidating");
    tokio::time::timeout(LIMIT, ended.notified())
        .await
        .expect("the background revalidation neither read nor dropped the body");
    let read = written.load(Ordering::SeqCst);
    assert!(
        read < 32 << 20,
        "the background revalidation read {} MiB of a body over scan.max_body",
        read >> 20
    );
}

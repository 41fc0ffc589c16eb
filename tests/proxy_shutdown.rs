//! Graceful shutdown (`Running::shutdown`, what SIGTERM runs): stop accepting, let
//! in-flight responses finish, close idle connections at once, and bound the wait.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, get, start, start_default, Origin, LIMIT};
use tokio::sync::{mpsc, Notify};

/// Waits (bounded) until connecting to `addr` is refused: the listener is closed.
async fn until_refused(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + LIMIT;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener is still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_in_flight_response_completes_and_new_connections_are_refused() {
    let release = Arc::new(Notify::new());
    let (started, mut has_started) = mpsc::unbounded_channel();
    let origin = {
        let release = release.clone();
        Origin::start(move |mut conn| {
            let (release, started) = (release.clone(), started.clone());
            async move {
                if conn.read_request().await.is_none() {
                    return;
                }
                let _ = conn
                    .write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
                    .await;
                let _ = started.send(());
                release.notified().await;
                let _ = conn.write(b"world").await;
            }
        })
        .await
    };
    let mut sluice = start_default().await;
    let addr = sluice.addr;
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/slow"))).await;
    tokio::time::timeout(LIMIT, has_started.recv())
        .await
        .expect("the origin got the request");

    let running = sluice.running.take().expect("running");
    let stopping = tokio::spawn(running.shutdown());
    until_refused(addr).await;
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the in-flight response"
    );

    release.notify_one();
    let r = c.read_response().await;
    assert_eq!((r.status(), r.text().as_str()), (200, "helloworld"));
    assert!(
        c.closes_within(LIMIT).await,
        "the connection closes after its response"
    );
    tokio::time::timeout(LIMIT, stopping)
        .await
        .expect("shutdown returns once the response is done")
        .expect("shutdown task");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_delay_shutdown() {
    let origin = Origin::ok("ok").await;
    let mut sluice = start_default().await;
    let mut c = sluice.client().await;
    assert_eq!(c.exchange(get(&origin.url("/"))).await.status(), 200);
    let started = Instant::now();
    let running = sluice.running.take().expect("running");
    tokio::time::timeout(LIMIT, running.shutdown())
        .await
        .expect("shutdown finishes");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an idle client must not hold shutdown for the grace period"
    );
    assert!(
        c.closes_within(LIMIT).await,
        "the idle client connection is closed"
    );
}

#[tokio::test]
async fn a_response_that_never_finishes_is_cut_after_the_grace_period() {
    let origin =
        Origin::start(|mut conn| async move { while conn.read_request().await.is_some() {} }).await;
    let mut cfg = config();
    cfg.proxy.shutdown_grace = Duration::from_millis(300);
    let mut sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/never"))).await;
    // Make sure the request is in flight before stopping.
    let deadline = Instant::now() + LIMIT;
    while origin.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "request never reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let running = sluice.running.take().expect("running");
    tokio::time::timeout(LIMIT, running.shutdown())
        .await
        .expect("shutdown is bounded by proxy.shutdown_grace");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // After the grace period the remaining connections are closed, not left running.
    let rest = c.expect_close(Duration::from_secs(2)).await;
    assert!(
        !rest.starts_with(b"HTTP/1.1 200"),
        "no success after the cut: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// Regression: a response still streaming when the grace period ended was closed in
/// order, so an HTTP/1.0 client, which reads a body without a length until the connection
/// ends, took the part it had as the whole body. The cut is a reset.
#[tokio::test]
async fn a_response_cut_at_the_end_of_the_grace_period_ends_in_a_reset() {
    use tokio::io::AsyncReadExt;
    let origin = Origin::start(|mut conn| async move {
        if conn.read_request().await.is_none() {
            return;
        }
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n";
        if conn.write(head).await.is_ok() {
            // The rest never comes; the connection stays open.
            while conn.read_request().await.is_some() {}
        }
    })
    .await;
    let mut cfg = config();
    cfg.proxy.shutdown_grace = Duration::from_millis(300);
    // Observe mode streams, so the client has the head and a first part of the body.
    cfg.scan.mode = sluice::config::ScanMode::Observe;
    let mut sluice = start(cfg).await;
    let mut s = sluice.http10_get(&origin, "/endless").await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"first") {
        let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
            .await
            .expect("the head and a first part in time")
            .expect("read");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let running = sluice.running.take().expect("running");
    tokio::time::timeout(LIMIT, running.shutdown())
        .await
        .expect("shutdown is bounded by proxy.shutdown_grace");
    let end = tokio::time::timeout(LIMIT, s.read(&mut buf))
        .await
        .expect("the connection ends");
    match end {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the cut body ended with {other:?}, as if complete"),
    }
}

/// Regression: admin connections never heard of shutdown, so a keep-alive admin client (a
/// metrics scraper) kept its connection, and through it the store, after `shutdown` had
/// returned: it could still purge or add hashes after the final flush, and the store stayed
/// locked against the next start.
#[tokio::test]
async fn an_open_admin_connection_is_closed_at_shutdown_and_frees_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = sluice::store::Store::open(dir.path()).expect("open store");
    let running = sluice::server::start_with_store(config(), store)
        .await
        .expect("start");
    let mut admin = common::Client::connect(running.admin_addr).await;
    let r = admin
        .exchange("GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        .await;
    assert_eq!(r.status(), 200);
    tokio::time::timeout(LIMIT, running.shutdown())
        .await
        .expect("shutdown finishes");
    assert!(
        admin.closes_within(LIMIT).await,
        "the idle admin connection is closed"
    );
    sluice::store::Store::open(dir.path()).expect("the store is free after shutdown");
}

/// Observe mode scans and stores after the response: shutdown waits for those (each holds
/// an `observing` slot from scan to store), then closes the slots, so none starts after the
/// store's final flush.
#[tokio::test]
async fn shutdown_waits_for_observe_mode_scans_then_refuses_new_ones() {
    let mut cfg = config();
    cfg.scan.mode = sluice::config::ScanMode::Observe;
    let mut s = start(cfg).await;
    let running = s.running.take().expect("running");
    let observing = running.proxy.observing.clone();
    // An observed body being scanned and stored holds a slot.
    let in_flight = observing.clone().try_acquire_owned().expect("a free slot");
    let mut shutdown = tokio::spawn(running.shutdown());
    let waited = tokio::time::timeout(Duration::from_millis(200), &mut shutdown).await;
    assert!(
        waited.is_err(),
        "shutdown returned while an observed scan was running"
    );
    drop(in_flight);
    tokio::time::timeout(LIMIT, shutdown)
        .await
        .expect("shutdown ends once the scan is done")
        .expect("no panic");
    assert!(
        observing.is_closed(),
        "no observed scan starts after shutdown"
    );
}

/// Regression: a prefix purge ran as a detached task (so that a client hanging up did not
/// stop it part of the way), which shutdown never waited for nor stopped: a purge still
/// running when `shutdown` returned went on removing objects after the final store flush,
/// and through its handle on the cache kept the store open and locked against the next start.
#[tokio::test]
async fn a_prefix_purge_running_at_shutdown_ends_with_it() {
    use tokio::io::AsyncWriteExt;
    const URLS: usize = 10_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = sluice::store::Store::open(dir.path()).expect("open store");
    let mut cfg = config();
    cfg.proxy.shutdown_grace = Duration::from_millis(50);
    let running = sluice::server::start_with_store(cfg, store)
        .await
        .expect("start");
    let cache = running.proxy.cache.clone();
    common::cache::store_directly(cache, "http://purged.test/p/", URLS).await;
    let mut tcp = tokio::net::TcpStream::connect(running.admin_addr)
        .await
        .expect("connect");
    let body = serde_json::json!({ "prefix": "http://purged.test/p/" }).to_string();
    let req = format!(
        "POST /purge HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.expect("send");
    let deadline = Instant::now() + LIMIT;
    while running.proxy.cache.stats().objects == URLS {
        assert!(Instant::now() < deadline, "the purge never started");
        tokio::task::yield_now().await;
    }
    tokio::time::timeout(LIMIT, running.shutdown())
        .await
        .expect("shutdown finishes");
    drop(tcp);
    // A purge that went on after shutdown would run to its end before the store is free:
    // stopped with shutdown, it leaves objects behind (it takes far longer than the grace).
    let deadline = Instant::now() + LIMIT;
    let store = loop {
        match sluice::store::Store::open(dir.path()) {
            Ok(store) => break store,
            Err(e) => assert!(Instant::now() < deadline, "the store stays locked: {e}"),
        }
    };
    assert!(
        !store.objects.is_empty(),
        "the purge went on after shutdown returned"
    );
}

//! Request collapsing through the real proxy: a stampede on one cacheable URL costs one
//! origin fetch, while requests for an uncacheable URL are not serialised behind each other;
//! in enforce and in observe mode alike.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cache::{answer, hits, wait_until};
use common::{get, Client, Origin, Response, LIMIT};
use sluice::config::{Config, ScanMode};
use tokio::sync::watch;

const CLIENTS: usize = 20;

fn body_for(path: &str) -> Vec<u8> {
    (0..200_000u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz"[(i as usize + path.len()) % 26])
        .collect()
}

/// Sends `CLIENTS` GETs for `url` on separate connections; returns the handles once every
/// request has been written.
async fn stampede(
    proxy: std::net::SocketAddr,
    url: &str,
) -> Vec<tokio::task::JoinHandle<Response>> {
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (url, sent) = (url.to_string(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(proxy).await;
            c.send(get(&url)).await;
            sent.fetch_add(1, Ordering::SeqCst);
            c.read_response().await
        }));
    }
    wait_until("all requests written", || {
        sent.load(Ordering::SeqCst) == CLIENTS
    })
    .await;
    tasks
}

/// Waits until `count()` has stayed the same for a stretch of polls (bounded overall).
async fn quiet(count: impl Fn() -> usize) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    let (mut last, mut same) = (count(), 0);
    while same < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "origin requests never settled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = count();
        if now == last {
            same += 1;
        } else {
            (last, same) = (now, 0);
        }
    }
}

/// What a [`held_origin`] holds back until released.
#[derive(Clone, Copy)]
enum Held {
    /// The whole answer.
    Whole,
    /// The second half of the body (the head and first half go out at once).
    SecondHalf,
}

/// An origin answering every request with `body_for(target)`, cacheable (max-age=60), which
/// holds back `held` of each answer until the returned sender sends `true`.
async fn held_origin(held: Held) -> (watch::Sender<bool>, Origin) {
    let (release, gate) = watch::channel(false);
    let origin = Origin::start(move |mut conn| {
        let mut gate = gate.clone();
        async move {
            while let Some(req) = conn.read_request().await {
                let body = body_for(req.target());
                let a = answer("200 OK", &["Cache-Control: max-age=60"], &body);
                let at = match held {
                    Held::Whole => 0,
                    Held::SecondHalf => a.len() - body.len() / 2,
                };
                let (now, later) = a.split_at(at);
                if conn.write(now).await.is_err() {
                    return;
                }
                let _ = gate.wait_for(|open| *open).await;
                if conn.write(later).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (release, origin)
}

/// Awaits every client of a stampede on `path`: each must get a 200 with the full body.
/// Returns how many were collapsed hits.
async fn full_bodies(tasks: Vec<tokio::task::JoinHandle<Response>>, path: &str) -> usize {
    let want = body_for(path);
    let mut collapsed = 0;
    for t in tasks {
        let r = t.await.expect("client task");
        assert_eq!(r.status(), 200);
        assert!(
            r.body == want,
            "every client gets the full body ({} bytes)",
            r.body.len()
        );
        if r.header("cache-status").unwrap_or("").contains("collapsed") {
            collapsed += 1;
        }
    }
    collapsed
}

fn observe_config() -> Config {
    let mut cfg = common::config();
    cfg.scan.mode = ScanMode::Observe;
    cfg
}

#[tokio::test]
async fn concurrent_misses_for_one_cacheable_url_make_one_origin_request() {
    one_origin_request_for_a_stampede(common::config()).await;
}

#[tokio::test]
async fn in_observe_mode_concurrent_misses_for_one_cacheable_url_make_one_origin_request() {
    // The leader streams the body to its client and stores the scanned copy afterwards: the
    // others must wait for that store, not go upstream as soon as the head is seen.
    one_origin_request_for_a_stampede(observe_config()).await;
}

async fn one_origin_request_for_a_stampede(cfg: Config) {
    let (release, origin) = held_origin(Held::Whole).await;
    let sluice = common::start(cfg).await;
    let url = origin.url("/hot");
    let tasks = stampede(sluice.addr, &url).await;
    wait_until("the first origin request", || hits(&origin, "/hot") >= 1).await;
    quiet(|| origin.requests().len()).await;
    assert_eq!(
        hits(&origin, "/hot"),
        1,
        "one origin request while the others wait"
    );
    release.send_replace(true);
    let collapsed = full_bodies(tasks, &origin.last_request().head.start[1]).await;
    assert_eq!(
        hits(&origin, "/hot"),
        1,
        "exactly one origin request in all"
    );
    assert_eq!(
        collapsed,
        CLIENTS - 1,
        "every other client was a collapsed hit"
    );
}

#[tokio::test]
async fn concurrent_requests_for_a_no_store_url_are_not_serialised() {
    no_store_stampede_is_not_serialised(common::config()).await;
}

#[tokio::test]
async fn in_observe_mode_concurrent_requests_for_a_no_store_url_are_not_serialised() {
    no_store_stampede_is_not_serialised(observe_config()).await;
}

async fn no_store_stampede_is_not_serialised(cfg: Config) {
    // The origin sends each head at once but holds every body until all requests arrived:
    // a proxy that serialised them behind one another would never get there.
    let arrived = Arc::new(AtomicUsize::new(0));
    let all_arrived = Arc::new(AtomicBool::new(true));
    let (a, all) = (arrived.clone(), all_arrived.clone());
    let origin = Origin::start(move |mut conn| {
        let (a, all) = (a.clone(), all.clone());
        async move {
            while conn.read_request().await.is_some() {
                a.fetch_add(1, Ordering::SeqCst);
                let head =
                    "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 5\r\n\r\n";
                if conn.write(head).await.is_err() {
                    return;
                }
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while a.load(Ordering::SeqCst) < CLIENTS && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if a.load(Ordering::SeqCst) < CLIENTS {
                    all.store(false, Ordering::SeqCst); // this hold timed out
                }
                if conn.write("fresh").await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let sluice = common::start(cfg).await;
    let url = origin.url("/nostore");
    let tasks = stampede(sluice.addr, &url).await;
    for t in tasks {
        let r = t.await.expect("client task");
        assert_eq!((r.status(), r.text().as_str()), (200, "fresh"));
    }
    assert_eq!(hits(&origin, "/nostore"), CLIENTS);
    assert!(
        all_arrived.load(Ordering::SeqCst),
        "all {CLIENTS} requests must reach the origin while the first body is pending"
    );
}

#[tokio::test]
async fn requests_for_a_url_known_to_be_no_store_do_not_wait_for_each_others_response_head() {
    // After one no-store answer, sluice knows the URL is uncacheable. The origin now holds
    // every response head until all CLIENTS requests arrived (bounded at 5 s, far below
    // response_timeout): collapsing them would hold all but one back behind a head.
    let arrived = Arc::new(AtomicUsize::new(0));
    let all_arrived = Arc::new(AtomicBool::new(true));
    let (a, all) = (arrived.clone(), all_arrived.clone());
    let origin = Origin::start(move |mut conn| {
        let (a, all) = (a.clone(), all.clone());
        async move {
            while conn.read_request().await.is_some() {
                let n = a.fetch_add(1, Ordering::SeqCst) + 1;
                if n > 1 {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    while a.load(Ordering::SeqCst) <= CLIENTS
                        && tokio::time::Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    if a.load(Ordering::SeqCst) <= CLIENTS {
                        all.store(false, Ordering::SeqCst); // this hold timed out
                    }
                }
                let r = "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 2\r\n\r\nok";
                if conn.write(r).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/slow-no-store");
    assert_eq!(sluice.fetch(&url).await.text(), "ok");
    let tasks = stampede(sluice.addr, &url).await;
    for t in tasks {
        assert_eq!(t.await.expect("client task").text(), "ok");
    }
    assert!(
        all_arrived.load(Ordering::SeqCst),
        "all {CLIENTS} requests must reach the origin while the heads are held"
    );
    assert_eq!(hits(&origin, "/slow-no-store"), CLIENTS + 1);
}

#[tokio::test]
async fn when_the_leading_client_leaves_one_waiter_takes_over_the_fetch() {
    // The origin holds every answer until released. The first client's request leads; the
    // others wait for it. That client then hangs up, abandoning its fetch: the waiters must
    // not all go upstream at once (the stampede collapsing exists to prevent), one of them
    // fetches for the rest.
    let (release, origin) = held_origin(Held::Whole).await;
    let sluice = common::start_default().await;
    let url = origin.url("/abandoned");
    let mut first = Client::connect(sluice.addr).await;
    first.send(get(&url)).await;
    wait_until("the leader's origin request", || {
        hits(&origin, "/abandoned") == 1
    })
    .await;
    let tasks = stampede(sluice.addr, &url).await;
    quiet(|| origin.requests().len()).await;
    assert_eq!(hits(&origin, "/abandoned"), 1, "the others wait");
    drop(first);
    wait_until("a waiter's origin request", || {
        hits(&origin, "/abandoned") >= 2
    })
    .await;
    quiet(|| origin.requests().len()).await;
    assert_eq!(
        hits(&origin, "/abandoned"),
        2,
        "one waiter took over the abandoned fetch"
    );
    release.send_replace(true);
    full_bodies(tasks, "/abandoned").await;
    assert_eq!(hits(&origin, "/abandoned"), 2, "no more origin requests");
}

#[tokio::test]
async fn waiters_outlast_the_response_timeout_while_the_leader_reads_a_slow_body() {
    // The origin answers the head at once and then holds the rest of the body. The leader
    // is reading it (enforce mode scans the whole body before storing it), which may take
    // up to `body_timeout`; waiters that gave up after `response_timeout` all went
    // upstream at once, the stampede collapsing is for.
    let (release, origin) = held_origin(Held::SecondHalf).await;
    let mut cfg = common::config();
    let response_timeout = Duration::from_millis(150);
    cfg.upstream.response_timeout = response_timeout;
    let sluice = common::start(cfg).await;
    let url = origin.url("/slow-body");
    let tasks = stampede(sluice.addr, &url).await;
    wait_until("the first origin request", || {
        hits(&origin, "/slow-body") >= 1
    })
    .await;
    // The scenario: the body takes longer than the response timeout.
    tokio::time::sleep(response_timeout * 3).await;
    quiet(|| origin.requests().len()).await;
    assert_eq!(
        hits(&origin, "/slow-body"),
        1,
        "the others still wait for the leader's body"
    );
    release.send_replace(true);
    full_bodies(tasks, "/slow-body").await;
    assert_eq!(hits(&origin, "/slow-body"), 1, "one origin request in all");
}

#[tokio::test]
async fn in_observe_mode_when_the_leading_client_leaves_mid_body_one_waiter_takes_over() {
    // Observe mode: the leader's client already has the head and part of the body, and the
    // others wait for the copy to be stored. That client hangs up: the copy is lost, and the
    // waiters must neither wait on nor all go upstream at once; one fetches for the rest.
    let (release, origin) = held_origin(Held::SecondHalf).await;
    let sluice = common::start(observe_config()).await;
    let url = origin.url("/left-mid-body");
    let mut first = Client::connect(sluice.addr).await;
    first.send(get(&url)).await;
    let got = first.expect_some(LIMIT).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "the leader's client gets the head at once"
    );
    let tasks = stampede(sluice.addr, &url).await;
    quiet(|| origin.requests().len()).await;
    assert_eq!(
        hits(&origin, "/left-mid-body"),
        1,
        "the others wait for the stored copy"
    );
    drop(first);
    wait_until("a waiter's origin request", || {
        hits(&origin, "/left-mid-body") >= 2
    })
    .await;
    quiet(|| origin.requests().len()).await;
    assert_eq!(
        hits(&origin, "/left-mid-body"),
        2,
        "one waiter took over the abandoned fetch"
    );
    release.send_replace(true);
    let collapsed = full_bodies(tasks, "/left-mid-body").await;
    assert_eq!(
        hits(&origin, "/left-mid-body"),
        2,
        "no more origin requests"
    );
    assert_eq!(
        collapsed,
        CLIENTS - 1,
        "the new leader's waiters were collapsed hits"
    );
}

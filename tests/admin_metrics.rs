//! `GET /metrics` through the admin listener: the page parses as Prometheus text (with the
//! `prometheus-parse` crate) and its counters and histograms move as requests flow.

use crate::admin_support;
use crate::common;

use admin_support::{buckets, cacheable, declared, scrape, total, AdminClient, Dirs};
use common::{request, Client, Origin};

/// 200 KB, so the client byte counters flush (every 64 KiB) while the request is served.
const BIG: usize = 200_000;

/// `/big`: BIG bytes of text; `/upload` (POST): "ok"; anything else: the path as text.
async fn origin() -> Origin {
    Origin::respond(|req| match req.target().rsplit('/').next().unwrap_or("") {
        "big" => cacheable("text/plain", &b"plain words ".repeat(BIG / 12)),
        "upload" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        other => cacheable("text/plain", other.replace('_', " ").as_bytes()),
    })
    .await
}

#[tokio::test]
async fn every_family_is_declared_before_any_traffic() {
    let s = common::start(Dirs::new().config("")).await;
    let c = AdminClient::of(&s, None);
    let m = scrape(&c).await;
    for family in [
        "sluice_requests_total",
        "sluice_cache_results_total",
        "sluice_client_bytes_received_total",
        "sluice_client_bytes_sent_total",
        "sluice_client_connections",
        "sluice_upstream_connect_seconds",
        "sluice_upstream_response_seconds",
        "sluice_upstream_idle_connections",
        "sluice_scans_total",
        "sluice_scan_seconds",
        "sluice_scan_queue_depth",
        "sluice_scan_workers",
        "sluice_verdict_memo_hits_total",
        "sluice_verdicts_total",
        "sluice_rules_loaded",
        "sluice_cache_objects",
        "sluice_store_size_bytes",
    ] {
        assert!(declared(&m, family), "{family} is declared");
    }
    assert_eq!(total(&m, "sluice_requests_total", &[]), 0.0);
    assert_eq!(total(&m, "sluice_scan_queue_depth", &[]), 0.0);
    assert!(total(&m, "sluice_scan_workers", &[]) >= 1.0);
    assert_eq!(
        total(&m, "sluice_rules_loaded", &[("kind", "rules")]),
        1.0,
        "the test rule"
    );
    let inf = buckets(&m, "sluice_upstream_connect_seconds", &[]);
    assert_eq!(inf.last(), Some(&(f64::INFINITY, 0.0)), "{inf:?}");
}

#[tokio::test]
async fn requests_cache_results_scans_and_latencies_move_with_traffic() {
    let origin = origin().await;
    let s = common::start(Dirs::new().config("")).await;
    let c = AdminClient::of(&s, None);
    let url = origin.url("/hello_there");

    // A miss: fetched, scanned by every classifier, stored.
    assert_eq!(s.fetch(&url).await.status(), 200);
    let m = scrape(&c).await;
    let get_200 = [("method", "GET"), ("status", "200")];
    assert_eq!(total(&m, "sluice_requests_total", &get_200), 1.0);
    assert_eq!(
        total(&m, "sluice_cache_results_total", &[("result", "miss")]),
        1.0
    );
    assert_eq!(
        total(&m, "sluice_cache_results_total", &[("result", "hit")]),
        0.0
    );
    assert_eq!(total(&m, "sluice_upstream_connect_seconds_count", &[]), 1.0);
    assert_eq!(
        total(&m, "sluice_upstream_response_seconds_count", &[]),
        1.0
    );
    let rules = [("classifier", "rules")];
    assert_eq!(total(&m, "sluice_scans_total", &rules), 1.0);
    assert_eq!(total(&m, "sluice_scan_seconds_count", &rules), 1.0);
    let b = buckets(&m, "sluice_scan_seconds", &rules);
    assert_eq!(b.last(), Some(&(f64::INFINITY, 1.0)), "{b:?}");
    assert!(
        b.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "cumulative buckets in order: {b:?}"
    );
    assert_eq!(
        total(&m, "sluice_verdicts_total", &[("class", "clean")]),
        1.0
    );

    // A hit: answered through the memo; the memo counter rises, the scan counters do not.
    assert_eq!(s.fetch(&url).await.status(), 200);
    let m = scrape(&c).await;
    assert_eq!(total(&m, "sluice_requests_total", &get_200), 2.0);
    assert_eq!(
        total(&m, "sluice_cache_results_total", &[("result", "hit")]),
        1.0
    );
    assert_eq!(total(&m, "sluice_verdict_memo_hits_total", &[]), 1.0);
    assert_eq!(total(&m, "sluice_scans_total", &rules), 1.0);
    assert_eq!(total(&m, "sluice_scanned_bodies_total", &[]), 1.0);
    assert_eq!(
        total(&m, "sluice_upstream_response_seconds_count", &[]),
        1.0
    );

    // A blocked page counts under its status.
    assert_eq!(s.fetch(&origin.url("/you_have_won")).await.status(), 403);
    let m = scrape(&c).await;
    let get_403 = [("method", "GET"), ("status", "403")];
    assert_eq!(total(&m, "sluice_requests_total", &get_403), 1.0);
    assert_eq!(
        total(&m, "sluice_verdicts_total", &[("class", "spam")]),
        1.0
    );
    assert_eq!(total(&m, "sluice_scanned_bodies_total", &[]), 2.0);
    assert_eq!(total(&m, "sluice_requests_total", &[]), 3.0);
}

#[tokio::test]
async fn client_bytes_and_uncacheable_methods_are_counted() {
    let origin = origin().await;
    let s = common::start(Dirs::new().config("")).await;
    let c = AdminClient::of(&s, None);
    let m0 = scrape(&c).await;
    assert_eq!(total(&m0, "sluice_client_bytes_sent_total", &[]), 0.0);

    let r = s.fetch(&origin.url("/big")).await;
    assert_eq!((r.status(), r.body.len()), (200, BIG / 12 * 12));
    let m = scrape(&c).await;
    let sent = total(&m, "sluice_client_bytes_sent_total", &[]);
    assert!(sent >= 65_536.0, "at least one flush while sending: {sent}");

    let mut client = Client::connect(s.addr).await;
    let upload = vec![b'x'; 100_000];
    let r = client
        .exchange(request("POST", &origin.url("/upload"), &[], &upload))
        .await;
    assert_eq!(r.status(), 200);
    let m = scrape(&c).await;
    let received = total(&m, "sluice_client_bytes_received_total", &[]);
    assert!(received >= 65_536.0, "the upload was counted: {received}");
    let post = [("method", "POST"), ("status", "200")];
    assert_eq!(total(&m, "sluice_requests_total", &post), 1.0);
    assert_eq!(
        total(&m, "sluice_cache_results_total", &[("result", "pass")]),
        1.0
    );
    assert!(total(&m, "sluice_client_connections_total", &[]) >= 2.0);
    assert!(
        total(&m, "sluice_client_connections", &[]) >= 1.0,
        "the open one"
    );
}

#[tokio::test]
async fn a_request_whose_client_leaves_before_the_answer_is_counted() {
    // The origin takes the request and never answers (until sluice closes the connection).
    let (origin, asked) = Origin::silent().await;
    let s = common::start(Dirs::new().config("")).await;
    let mut client = Client::connect(s.addr).await;
    client.send(common::get(&origin.url("/never"))).await;
    tokio::time::timeout(common::LIMIT, asked.notified())
        .await
        .expect("the request reached the origin");
    drop(client);
    let metrics = s.running.as_ref().expect("running").proxy.metrics.clone();
    common::cache::wait_until("the abandoned request counted", || {
        metrics.totals().0.contains(&(("GET", 0), 1))
    })
    .await;
}

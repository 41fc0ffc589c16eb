//! Invalidation through the real proxy (RFC 9111 §4.4): a non-error response to an unsafe
//! method drops the stored object of its URI and of a same-origin Location.

use crate::common;

use crate::admin_support::AdminClient;
use common::cache::{answer, assert_cache_status, hits, ok_with};
use common::{request, Origin, LIMIT};
use serde_json::json;

#[tokio::test]
async fn a_successful_post_invalidates_the_stored_get() {
    let origin = Origin::respond(|r| {
        if r.method() == "POST" {
            return ok_with(&[], "posted");
        }
        ok_with(&["Cache-Control: max-age=600"], "get body")
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/inv");
    sluice.fetch(&url).await;
    assert_cache_status(&sluice.fetch(&url).await, "hit");
    let mut c = sluice.client().await;
    let r = c.exchange(request("POST", &url, &[], b"data")).await;
    assert_eq!(r.status(), 200);
    let after = sluice.fetch(&url).await;
    assert!(!after.header("cache-status").unwrap_or("").contains("hit"));
    assert_eq!(
        hits(&origin, "/inv"),
        3,
        "GET, POST, GET after invalidation"
    );
}

#[tokio::test]
async fn a_post_invalidates_its_same_origin_location() {
    let origin = Origin::respond(|r| {
        if r.method() == "POST" {
            return answer("201 Created", &["Location: /target"], b"created");
        }
        ok_with(&["Cache-Control: max-age=600"], "target body")
    })
    .await;
    let sluice = common::start_default().await;
    let target = origin.url("/target");
    sluice.fetch(&target).await;
    assert_cache_status(&sluice.fetch(&target).await, "hit");
    let mut c = sluice.client().await;
    let r = c
        .exchange(request("POST", &origin.url("/create"), &[], b"x"))
        .await;
    assert_eq!(r.status(), 201);
    let after = sluice.fetch(&target).await;
    assert!(
        !after.header("cache-status").unwrap_or("").contains("hit"),
        "Location's object must be invalidated: {:?}",
        after.header("cache-status")
    );
    assert_eq!(hits(&origin, "/target"), 2);
}

#[tokio::test]
async fn a_failed_post_does_not_invalidate() {
    let origin = Origin::respond(|r| {
        if r.method() == "POST" {
            return answer("500 Internal Server Error", &[], b"no");
        }
        ok_with(&["Cache-Control: max-age=600"], "kept")
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/failed-post");
    sluice.fetch(&url).await;
    let mut c = sluice.client().await;
    let r = c.exchange(request("POST", &url, &[], b"d")).await;
    assert_eq!(r.status(), 500);
    assert_cache_status(&sluice.fetch(&url).await, "hit");
}

/// An origin whose first GET sends the head and half of the old body, then waits for `gate`
/// before the rest; every later GET gets the new body at once, and a POST is answered 200.
async fn origin_with_a_held_old_body(
    gate: tokio::sync::watch::Receiver<bool>,
    half_sent: std::sync::Arc<tokio::sync::Notify>,
) -> Origin {
    use std::sync::atomic::{AtomicBool, Ordering};
    let first = std::sync::Arc::new(AtomicBool::new(true));
    Origin::start(move |mut conn| {
        let (mut gate, half_sent, first) = (gate.clone(), half_sent.clone(), first.clone());
        async move {
            while let Some(req) = conn.read_request().await {
                if req.method() == "POST" {
                    if conn.write(ok_with(&[], "posted")).await.is_err() {
                        return;
                    }
                    continue;
                }
                if !first.swap(false, Ordering::SeqCst) {
                    let new = ok_with(&["Cache-Control: max-age=600"], "new body");
                    if conn.write(new).await.is_err() {
                        return;
                    }
                    continue;
                }
                let old = ok_with(&["Cache-Control: max-age=600"], "old body");
                let split = old.len() - 4;
                if conn.write(&old[..split]).await.is_err() {
                    return;
                }
                half_sent.notify_one();
                let _ = gate.wait_for(|open| *open).await;
                if conn.write(&old[split..]).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// A miss whose response was on its way when the URL was removed (by `remove`) ends with
/// the old body for its own client, and the next request goes to the origin again.
async fn removal_during_a_miss_is_not_undone(path: &str, remove: RemoveBy) {
    let (open, gate) = tokio::sync::watch::channel(false);
    let half_sent = std::sync::Arc::new(tokio::sync::Notify::new());
    let origin = origin_with_a_held_old_body(gate, half_sent.clone()).await;
    let sluice = common::start_default().await;
    let url = origin.url(path);
    let proxy = sluice.addr;
    let in_flight = {
        let url = url.clone();
        tokio::spawn(async move { common::fetch(proxy, &url).await })
    };
    tokio::time::timeout(LIMIT, half_sent.notified())
        .await
        .expect("the origin sent half of the old body");
    match remove {
        RemoveBy::Purge => {
            let admin = AdminClient::of(&sluice, None);
            let a = admin.post("/purge", &json!({ "url": url })).await;
            assert_eq!(a.status, 200, "{:?}", a.json);
        }
        RemoveBy::Post => {
            let mut c = sluice.client().await;
            assert_eq!(
                c.exchange(request("POST", &url, &[], b"x")).await.status(),
                200
            );
        }
    }
    open.send_replace(true);
    let old = tokio::time::timeout(LIMIT, in_flight)
        .await
        .expect("the in-flight miss ends")
        .expect("client task");
    assert_eq!(
        old.text(),
        "old body",
        "the in-flight client gets what was sent"
    );
    let after = sluice.fetch(&url).await;
    assert_eq!(
        after.text(),
        "new body",
        "the removal must not be undone by the store of a response fetched before it \
         (Cache-Status {:?})",
        after.header("cache-status")
    );
    let gets = origin
        .requests()
        .iter()
        .filter(|r| r.method() == "GET")
        .count();
    assert_eq!(gets, 2, "fetched again after the removal");
}

enum RemoveBy {
    Purge,
    Post,
}

#[tokio::test]
async fn a_purge_during_a_miss_is_not_undone_by_its_store() {
    removal_during_a_miss_is_not_undone("/purged-in-flight", RemoveBy::Purge).await;
}

#[tokio::test]
async fn an_invalidation_during_a_miss_is_not_undone_by_its_store() {
    removal_during_a_miss_is_not_undone("/invalidated-in-flight", RemoveBy::Post).await;
}

/// A POST answered 201 with a same-origin `Location` invalidates two URLs, one store write
/// each. Its client hangs up while the first removal waits for the store writer (held busy
/// here by a put that waits for the test): the second URL must still be invalidated.
#[tokio::test]
async fn every_invalidation_happens_when_the_client_leaves_during_the_first() {
    let origin = Origin::respond(|r| {
        if r.method() == "POST" {
            return answer("201 Created", &["Location: /target"], b"");
        }
        // Not kept alive, so the one pooled connection below is the POST's.
        ok_with(
            &["Cache-Control: max-age=600", "Connection: close"],
            "get body",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let running = sluice.running.as_ref().expect("running");
    let (cache, metrics) = (running.proxy.cache.clone(), running.proxy.metrics.clone());
    let (created, target) = (origin.url("/create"), origin.url("/target"));
    sluice.fetch(&created).await;
    sluice.fetch(&target).await;
    assert_cache_status(&sluice.fetch(&target).await, "hit");
    assert_eq!(sluice.idle_upstreams(), 0);

    // Occupy the store writer until `release`.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let busy = std::sync::Arc::new(tokio::sync::Notify::new());
    let writer = {
        let (cache, busy) = (cache.clone(), busy.clone());
        tokio::spawn(async move {
            let key = sluice::cache::key::CacheKey::parse("http://busy.test/").expect("key");
            let build = move |body: &[u8]| {
                busy.notify_one();
                let _ = held.recv();
                let now = std::time::SystemTime::now();
                let (h, req) = (http::HeaderMap::new(), http::HeaderMap::new());
                let meta = sluice::cache::meta::ObjectMeta::from_response(
                    &key,
                    http::StatusCode::OK,
                    &h,
                    &req,
                    now,
                    now,
                    body,
                );
                (meta, None)
            };
            cache
                .put_built(build, bytes::Bytes::from_static(b"x"))
                .await
        })
    };
    tokio::time::timeout(LIMIT, busy.notified())
        .await
        .expect("the writer is busy");

    let mut c = sluice.client().await;
    c.send(request("POST", &created, &[], b"x")).await;
    // The answer's empty body put its connection back in the pool; the removals, each a job
    // for the (busy) writer, follow without another upstream step.
    common::cache::wait_until("the POST answered", || sluice.idle_upstreams() == 1).await;
    drop(c);
    common::cache::wait_until("the POST's client gone", || {
        metrics.totals().0.contains(&(("POST", 0), 1))
    })
    .await;
    release.send(()).expect("release the writer");
    tokio::time::timeout(LIMIT, writer)
        .await
        .expect("the busy put ends")
        .expect("task")
        .expect("put");
    // The busy put is all that may be left.
    common::cache::wait_until("both URLs invalidated", || cache.stats().objects == 1).await;
    for url in [&created, &target] {
        let r = sluice.fetch(url).await;
        assert!(
            !r.header("cache-status").unwrap_or("").contains("hit"),
            "{url} must be invalidated: {:?}",
            r.header("cache-status")
        );
    }
}

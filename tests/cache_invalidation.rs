//! Invalidation through the real proxy (RFC 9111 §4.4): a non-error response to an unsafe
//! method drops the stored object of its URI and of a same-origin Location.

use crate::common;

use common::cache::{answer, assert_cache_status, hits, ok_with};
use common::{request, Origin};

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

//! Revalidation through the real proxy: conditional requests, 304 merging, replacement by a
//! 200, no-cache and must-revalidate, serving stale on errors, stale-while-revalidate, and
//! Vary variants on revalidation.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::cache::{
    answer, assert_cache_status, hits, http_date, not_modified, ok_with, wait_until,
};
use common::{request, Origin};

/// `Date` two minutes ago: with `max-age=60` the object is stale on arrival.
fn old_date() -> String {
    format!("Date: {}", http_date(-120))
}

fn now_date() -> String {
    format!("Date: {}", http_date(0))
}

#[tokio::test]
async fn stale_object_is_revalidated_with_if_none_match_and_the_304_is_merged() {
    let origin = Origin::respond(|r| {
        if r.header("if-none-match") == Some("\"e1\"") {
            return not_modified(&[
                &now_date(),
                "Cache-Control: max-age=60",
                "ETag: \"e1\"",
                "X-New: from-304",
            ]);
        }
        ok_with(
            &[
                &old_date(),
                "Cache-Control: max-age=60",
                "ETag: \"e1\"",
                "X-Old: kept",
            ],
            "original body",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/inm");
    let first = sluice.fetch(&url).await;
    assert_cache_status(&first, "fwd=uri-miss; stored");
    let second = sluice.fetch(&url).await;
    let conditional = origin.last_request();
    assert_eq!(conditional.header("if-none-match"), Some("\"e1\""));
    // A revalidation is this hop's request too: Via and the target's Host.
    assert_eq!(
        conditional.header("via"),
        Some(sluice.request_via().as_str())
    );
    assert_eq!(conditional.header("host"), url.split('/').nth(2));
    assert_eq!(
        second.status(),
        200,
        "the client gets the merged 200, not the 304"
    );
    assert_eq!(second.text(), "original body");
    assert_eq!(second.header("x-new"), Some("from-304"));
    assert_eq!(second.header("x-old"), Some("kept"));
    assert_cache_status(&second, "fwd=stale; fwd-status=304");
    let third = sluice.fetch(&url).await;
    assert_cache_status(&third, "hit");
    assert_eq!(
        third.header("x-new"),
        Some("from-304"),
        "the merge is stored"
    );
    assert_eq!(third.text(), "original body");
    assert_eq!(hits(&origin, "/inm"), 2);
}

#[tokio::test]
async fn stale_object_without_etag_is_revalidated_with_if_modified_since() {
    let lm = http_date(-86_400);
    let lm2 = lm.clone();
    let origin = Origin::respond(move |r| {
        if r.header("if-modified-since") == Some(lm2.as_str()) {
            return not_modified(&[&now_date(), "Cache-Control: max-age=60"]);
        }
        ok_with(
            &[
                &old_date(),
                "Cache-Control: max-age=60",
                &format!("Last-Modified: {lm2}"),
            ],
            "ims body",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/ims");
    sluice.fetch(&url).await;
    let second = sluice.fetch(&url).await;
    assert_eq!(
        origin.last_request().header("if-modified-since"),
        Some(lm.as_str())
    );
    assert_eq!(second.text(), "ims body");
    assert_cache_status(&second, "fwd-status=304");
    assert_cache_status(&sluice.fetch(&url).await, "hit");
    assert_eq!(hits(&origin, "/ims"), 2);
}

#[tokio::test]
async fn a_304_with_another_last_modified_does_not_refresh_the_stored_body() {
    // Regression: a 304 was merged whatever its Last-Modified said. A server that answers
    // If-Modified-Since with 304 when its file is older than the date asked (a file
    // restored from a backup) says so with that older Last-Modified: the stored v1 was
    // refreshed under v0's date and served for good (RFC 9111 §4.3.4: the 304's validator
    // selects no stored response). It must be fetched again.
    let (l1, l0) = (http_date(-3_600), http_date(-86_400));
    let (l1b, l0b) = (l1.clone(), l0.clone());
    let origin = Origin::respond(move |r| {
        let lm = |d: &str| format!("Last-Modified: {d}");
        match r.header("if-modified-since") {
            Some(_) => not_modified(&[&now_date(), "Cache-Control: max-age=60", &lm(&l0b)]),
            None if r.header("x-second").is_some() => ok_with(
                &[&now_date(), "Cache-Control: max-age=60", &lm(&l0b)],
                "v0 restored",
            ),
            None => ok_with(&[&old_date(), "Cache-Control: max-age=60", &lm(&l1b)], "v1"),
        }
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/restored");
    assert_eq!(sluice.fetch(&url).await.text(), "v1");
    let mut c = sluice.client().await;
    let r = c
        .exchange(request("GET", &url, &["X-Second: 1"], b""))
        .await;
    assert_eq!(
        origin.requests()[1].header("if-modified-since"),
        Some(l1.as_str())
    );
    assert_eq!(r.text(), "v0 restored");
    assert_eq!(r.header("last-modified"), Some(l0.as_str()));
    assert_eq!(origin.last_request().header("if-modified-since"), None);
}

#[tokio::test]
async fn a_304_without_age_makes_an_object_that_arrived_old_fresh_again() {
    // The first response is already 30 s old (Age: 30) with a 10 s lifetime; the 304 says
    // nothing about age, so after it the object is fresh for 10 s.
    let origin = Origin::respond(|r| {
        if r.header("if-none-match").is_some() {
            return not_modified(&["Cache-Control: max-age=10", "ETag: \"a\""]);
        }
        ok_with(
            &["Cache-Control: max-age=10", "Age: 30", "ETag: \"a\""],
            "aged",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/aged");
    sluice.fetch(&url).await;
    assert_cache_status(&sluice.fetch(&url).await, "fwd-status=304");
    let third = sluice.fetch(&url).await;
    assert_cache_status(&third, "hit");
    assert_eq!(
        hits(&origin, "/aged"),
        2,
        "the 304 must have freshened the object"
    );
}

#[tokio::test]
async fn a_304_with_age_from_a_cache_upstream_is_served_with_that_age() {
    // Regression: the response built from a 304 was always sent with `Age: 0`, though a
    // 304 from a cache upstream (a parent, a CDN) says it validated the response 100 s ago;
    // the stored merge knew (the next hit said ~100), the client just told did not.
    // RFC 9111 §5.1, §4.2.3: Age is the corrected age of the response the client gets.
    let origin = Origin::respond(|r| {
        if r.header("if-none-match").is_some() {
            return not_modified(&[&now_date(), "Age: 100", "ETag: \"p\""]);
        }
        ok_with(
            &[
                &old_date(),
                "Cache-Control: max-age=600",
                "Age: 900",
                "ETag: \"p\"",
            ],
            "via a parent",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/parent-304");
    sluice.fetch(&url).await;
    let r = sluice.fetch(&url).await;
    assert_cache_status(&r, "fwd=stale; fwd-status=304");
    let age: u64 = r.header("age").and_then(|a| a.parse().ok()).expect("Age");
    assert!((100..600).contains(&age), "Age {age}");
}

#[tokio::test]
async fn a_200_on_revalidation_replaces_the_stored_object() {
    let version = Arc::new(AtomicBool::new(false));
    let v = version.clone();
    let origin = Origin::respond(move |_| {
        if v.swap(true, Ordering::SeqCst) {
            ok_with(
                &[&now_date(), "Cache-Control: max-age=60", "ETag: \"v2\""],
                "version two",
            )
        } else {
            ok_with(
                &[&old_date(), "Cache-Control: max-age=60", "ETag: \"v1\""],
                "version one",
            )
        }
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/replace");
    assert_eq!(sluice.fetch(&url).await.text(), "version one");
    let second = sluice.fetch(&url).await;
    assert_eq!(second.text(), "version two");
    assert_cache_status(&second, "fwd=stale; fwd-status=200; stored");
    let third = sluice.fetch(&url).await;
    assert_eq!(third.text(), "version two");
    assert_cache_status(&third, "hit");
    assert_eq!(hits(&origin, "/replace"), 2);
}

#[tokio::test]
async fn response_no_cache_is_stored_but_revalidated_on_every_reuse() {
    let origin = Origin::respond(|r| {
        if r.header("if-none-match") == Some("\"nc\"") {
            return not_modified(&["ETag: \"nc\""]);
        }
        ok_with(
            &["Cache-Control: no-cache, max-age=600", "ETag: \"nc\""],
            "nocache body",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/nocache");
    sluice.fetch(&url).await;
    for n in 2..=4 {
        let r = sluice.fetch(&url).await;
        assert_eq!(r.text(), "nocache body");
        assert_eq!(
            hits(&origin, "/nocache"),
            n,
            "request {n} must be revalidated"
        );
        assert_eq!(
            origin.last_request().header("if-none-match"),
            Some("\"nc\""),
            "the stored object is used for a conditional request"
        );
    }
}

#[tokio::test]
async fn must_revalidate_is_never_served_stale_when_the_origin_is_down() {
    let origin = Origin::respond(|_| {
        ok_with(
            &[
                &old_date(),
                "Cache-Control: max-age=60, must-revalidate",
                "ETag: \"m\"",
            ],
            "mr",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/mr");
    assert_eq!(sluice.fetch(&url).await.text(), "mr");
    origin.stop().await;
    let r = sluice.fetch(&url).await;
    // The origin's port now refuses: the error, never the stale object.
    common::assert_proxy_error(&r, 502, "connection_refused");
    assert_ne!(r.text(), "mr");
}

#[tokio::test]
async fn a_plain_stale_object_is_served_when_the_origin_is_unreachable() {
    let origin = Origin::respond(|_| {
        ok_with(
            &[&old_date(), "Cache-Control: max-age=60", "ETag: \"p\""],
            "plain stale",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/down");
    sluice.fetch(&url).await;
    origin.stop().await;
    let r = sluice.fetch(&url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "plain stale");
    assert!(r.header("age").is_some());
    assert_cache_status(&r, "fwd=stale; detail=stale-if-error");
    assert!(!r.header("cache-status").unwrap_or("").contains("hit"));
}

#[tokio::test]
async fn stale_if_error_serves_stale_on_a_5xx_and_otherwise_the_error_passes() {
    let fail = Arc::new(AtomicBool::new(false));
    let f = fail.clone();
    let origin = Origin::respond(move |r| {
        if f.load(Ordering::SeqCst) {
            return answer("500 Internal Server Error", &[], b"boom");
        }
        let cc = if r.target().ends_with("/sie") {
            "Cache-Control: max-age=60, stale-if-error=3600"
        } else {
            "Cache-Control: max-age=60"
        };
        ok_with(&[&old_date(), cc, "ETag: \"x\""], "good")
    })
    .await;
    let sluice = common::start_default().await;
    let (sie, plain) = (origin.url("/sie"), origin.url("/plain500"));
    sluice.fetch(&sie).await;
    sluice.fetch(&plain).await;
    fail.store(true, Ordering::SeqCst);
    let r = sluice.fetch(&sie).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "good"));
    // RFC 9211 §2.1: the request went forward, so it is no hit; the 500 is what it met.
    assert_cache_status(&r, "fwd=stale; fwd-status=500; detail=stale-if-error");
    assert!(!r.header("cache-status").unwrap_or("").contains("hit"));
    let r = sluice.fetch(&plain).await;
    assert_eq!(
        r.status(),
        500,
        "without stale-if-error a 5xx passes through"
    );
}

#[tokio::test]
async fn a_5xx_on_revalidation_keeps_the_stale_object_for_the_next_validation() {
    // Regression: a 5xx answer to a revalidation (not storable, no stale-if-error) removed
    // the stored object, so one origin hiccup cost the object and its validator: the next
    // request was a full miss, and an origin that then went down could not be covered by
    // the stale copy. RFC 9111 §4.3.3: a 5xx while validating is forwarded or treated as
    // no answer; it says nothing about the stored response.
    let fail = Arc::new(AtomicBool::new(false));
    let f = fail.clone();
    let origin = Origin::respond(move |r| {
        if f.load(Ordering::SeqCst) {
            return answer("503 Service Unavailable", &[], b"busy");
        }
        if r.header("if-none-match") == Some("\"k\"") {
            return not_modified(&[&now_date(), "ETag: \"k\""]);
        }
        ok_with(
            &[&old_date(), "Cache-Control: max-age=60", "ETag: \"k\""],
            "kept body",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/blip");
    assert_cache_status(&sluice.fetch(&url).await, "stored");
    fail.store(true, Ordering::SeqCst);
    let r = sluice.fetch(&url).await;
    assert_eq!(
        r.status(),
        503,
        "without stale-if-error the 5xx passes through"
    );
    fail.store(false, Ordering::SeqCst);
    let r = sluice.fetch(&url).await;
    assert_eq!(r.text(), "kept body");
    assert_cache_status(&r, "fwd=stale; fwd-status=304");
    assert_eq!(
        origin.last_request().header("if-none-match"),
        Some("\"k\""),
        "the stored object is still there to validate"
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_at_once_and_revalidates_once_in_the_background() {
    let origin = Origin::respond(|r| {
        if r.header("if-none-match") == Some("\"w\"") {
            return not_modified(&[&now_date(), "ETag: \"w\"", "X-Revalidated: yes"]);
        }
        ok_with(
            &[
                &old_date(),
                "Cache-Control: max-age=60, stale-while-revalidate=3600",
                "ETag: \"w\"",
            ],
            "swr body",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/swr");
    sluice.fetch(&url).await;
    // Several clients at once within the window: all served stale, one revalidation.
    for _ in 0..5 {
        let r = sluice.fetch(&url).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text(), "swr body");
        assert_cache_status(&r, "hit");
    }
    wait_until("the background revalidation", || hits(&origin, "/swr") >= 2).await;
    let background = &origin.requests()[1];
    assert_eq!(
        background.header("if-none-match"),
        Some("\"w\""),
        "the background request is conditional"
    );
    assert_eq!(
        background.header("via"),
        Some(sluice.request_via().as_str())
    );
    // Once the merge is stored, the object is fresh: later hits carry the 304's header.
    let mut merged = None;
    for _ in 0..200 {
        let r = sluice.fetch(&url).await;
        if r.header("x-revalidated").is_some() {
            merged = Some(r);
            break;
        }
        tokio::task::yield_now().await;
    }
    let merged = merged.expect("the 304 from the background revalidation is merged");
    assert_cache_status(&merged, "hit");
    assert_eq!(hits(&origin, "/swr"), 2, "exactly one revalidation");
}

#[tokio::test]
async fn a_stale_range_request_revalidates_the_whole_object_and_is_served_from_it() {
    // Regression: the revalidation forwarded the client's Range, so the origin's 206 (a
    // fragment) reached the scanner and, not storable, had the full object removed.
    // ARCHITECTURE.md: Range and If-Range are never sent upstream for a GET.
    let origin = Origin::respond(|r| {
        let d = old_date();
        if r.header("range").is_some() {
            return answer(
                "206 Partial Content",
                &[
                    &d,
                    "Cache-Control: max-age=60",
                    "ETag: \"a\"",
                    "Content-Range: bytes 0-4/20",
                ],
                b"01234",
            );
        }
        if r.header("if-none-match") == Some("\"a\"") {
            return not_modified(&[&now_date(), "Cache-Control: max-age=60", "ETag: \"a\""]);
        }
        ok_with(
            &[&d, "Cache-Control: max-age=60", "ETag: \"a\""],
            "0123456789abcdefghij",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/stale-range");
    sluice.fetch(&url).await;
    let mut c = sluice.client().await;
    let r = c
        .exchange(request(
            "GET",
            &url,
            &["Range: bytes=0-4", "If-Range: \"a\""],
            b"",
        ))
        .await;
    let revalidation = origin.last_request();
    assert_eq!(revalidation.header("range"), None, "no fragment fetched");
    assert_eq!(revalidation.header("if-range"), None);
    assert_eq!(revalidation.header("if-none-match"), Some("\"a\""));
    assert_eq!((r.status(), r.text().as_str()), (206, "01234"));
    assert_eq!(r.header("content-range"), Some("bytes 0-4/20"));
    assert_cache_status(&r, "fwd=stale; fwd-status=304");
    let full = sluice.fetch(&url).await;
    assert_eq!(
        (full.status(), full.text().as_str()),
        (200, "0123456789abcdefghij")
    );
    assert_cache_status(&full, "hit");
    assert_eq!(
        hits(&origin, "/stale-range"),
        2,
        "the stored object survived"
    );
}

/// An origin whose stale object (`max-age=60`, ETag "e") is revalidated with a 304 carrying
/// `cache_control` and a `Set-Cookie`.
async fn origin_whose_304_says(cache_control: &'static str) -> Origin {
    Origin::respond(move |r| {
        if r.header("if-none-match") == Some("\"e\"") {
            return not_modified(&[
                &now_date(),
                cache_control,
                "ETag: \"e\"",
                "Set-Cookie: sess=alice",
            ]);
        }
        ok_with(
            &[&old_date(), "Cache-Control: max-age=60", "ETag: \"e\""],
            "shared body",
        )
    })
    .await
}

#[tokio::test]
async fn a_304_that_makes_the_response_private_or_no_store_removes_the_stored_object() {
    // Regression: the merged headers were stored without judging storability again, so the
    // next client got alice's Set-Cookie from a hit (RFC 9111 §3.1, §5.2.2.5, §5.2.2.7).
    for (path, cc) in [
        ("/became-private", "Cache-Control: private, max-age=600"),
        ("/became-no-store", "Cache-Control: no-store, max-age=600"),
    ] {
        let origin = origin_whose_304_says(cc).await;
        let sluice = common::start_default().await;
        let url = origin.url(path);
        sluice.fetch(&url).await;
        let alice = sluice.fetch(&url).await;
        assert_eq!(alice.text(), "shared body", "{cc}");
        assert_cache_status(&alice, "fwd-status=304");
        let next = sluice.fetch(&url).await;
        assert_eq!(
            next.header("set-cookie"),
            None,
            "{cc}: leaked to the next client"
        );
        assert_eq!(
            hits(&origin, path),
            3,
            "{cc}: the stored object was removed"
        );
        assert_eq!(
            origin.last_request().header("if-none-match"),
            None,
            "{cc}: fetched afresh"
        );
    }
}

#[tokio::test]
async fn a_304_with_qualified_private_set_cookie_stores_the_merge_without_it() {
    // Regression: merge_304 skipped the fields a shared cache never stores (RFC 9111
    // §5.2.2.7), which a 200 drops before it is stored.
    let origin = origin_whose_304_says("Cache-Control: private=\"Set-Cookie\", max-age=600").await;
    let sluice = common::start_default().await;
    let url = origin.url("/qualified");
    sluice.fetch(&url).await;
    let alice = sluice.fetch(&url).await;
    assert_cache_status(&alice, "fwd-status=304");
    assert_eq!(alice.header("set-cookie"), Some("sess=alice"), "hers");
    let next = sluice.fetch(&url).await;
    assert_cache_status(&next, "hit");
    assert_eq!(next.text(), "shared body");
    assert_eq!(next.header("set-cookie"), None, "never stored");
    assert_eq!(hits(&origin, "/qualified"), 2);
}

#[tokio::test]
async fn hop_by_hop_fields_of_a_304_are_not_stored() {
    // Regression: the 304 was merged before its hop-by-hop fields were stripped, so every
    // later hit carried `Connection: close` (RFC 9110 §7.6.1, RFC 9111 §3.2).
    let origin = Origin::respond(|r| {
        if r.header("if-none-match") == Some("\"h\"") {
            return not_modified(&[
                &now_date(),
                "Cache-Control: max-age=600",
                "ETag: \"h\"",
                "Connection: close, X-Hop",
                "X-Hop: this connection only",
                "Keep-Alive: timeout=5",
            ]);
        }
        ok_with(
            &[&old_date(), "Cache-Control: max-age=60", "ETag: \"h\""],
            "hop body",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/hop");
    sluice.fetch(&url).await;
    assert_cache_status(&sluice.fetch(&url).await, "fwd-status=304");
    let mut c = sluice.client().await;
    for _ in 0..2 {
        let hit = c.exchange(common::get(&url)).await;
        assert_cache_status(&hit, "hit");
        assert_eq!(hit.text(), "hop body");
        assert_eq!(hit.header("connection"), None);
        assert_eq!(hit.header("keep-alive"), None);
        assert_eq!(hit.header("x-hop"), None);
    }
    assert_eq!(hits(&origin, "/hop"), 2);
}

#[tokio::test]
async fn a_client_if_none_match_does_not_validate_a_stored_object_without_etag() {
    // Regression: the client's If-None-Match went upstream with the revalidation, the
    // origin's 304 for "v2" refreshed v1 and labelled it ETag "v2" (RFC 9111 §4.3.1, §4.3.4).
    let first = Arc::new(AtomicBool::new(true));
    let f = first.clone();
    let origin = Origin::respond(move |r| {
        if f.swap(false, Ordering::SeqCst) {
            return ok_with(&[&old_date(), "Cache-Control: max-age=60"], "v1");
        }
        if r.header("if-none-match") == Some("\"v2\"") {
            return not_modified(&[&now_date(), "Cache-Control: max-age=60", "ETag: \"v2\""]);
        }
        ok_with(
            &[&now_date(), "Cache-Control: max-age=60", "ETag: \"v2\""],
            "v2",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/no-etag");
    assert_eq!(sluice.fetch(&url).await.text(), "v1");
    let mut c = sluice.client().await;
    let r = c
        .exchange(request("GET", &url, &["If-None-Match: \"v2\""], b""))
        .await;
    assert_eq!(
        origin.last_request().header("if-none-match"),
        None,
        "no stored validator: an unconditional fetch"
    );
    assert_ne!(r.text(), "v1");
    let after = sluice.fetch(&url).await;
    assert_eq!(after.text(), "v2");
    assert_eq!(after.header("etag"), Some("\"v2\""));
}

#[tokio::test]
async fn a_client_star_if_none_match_does_not_refresh_a_changed_object() {
    // Regression: `If-None-Match: *` went upstream beside the cache's If-Modified-Since and
    // won, so the origin's 304 refreshed an object that had changed (RFC 9111 §4.3.1).
    let lm = http_date(-86_400);
    let lm2 = lm.clone();
    let origin = Origin::respond(move |r| {
        if r.header("if-none-match").is_some() {
            return not_modified(&[&now_date(), "Cache-Control: max-age=60"]);
        }
        if r.header("if-modified-since").is_some() {
            return ok_with(
                &[
                    &now_date(),
                    "Cache-Control: max-age=60",
                    &format!("Last-Modified: {}", http_date(-10)),
                ],
                "v2",
            );
        }
        ok_with(
            &[
                &old_date(),
                "Cache-Control: max-age=60",
                &format!("Last-Modified: {lm2}"),
            ],
            "v1",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/star");
    assert_eq!(sluice.fetch(&url).await.text(), "v1");
    let mut c = sluice.client().await;
    c.exchange(request("GET", &url, &["If-None-Match: *"], b""))
        .await;
    let revalidation = origin.last_request();
    assert_eq!(revalidation.header("if-none-match"), None);
    assert_eq!(revalidation.header("if-modified-since"), Some(lm.as_str()));
    assert_eq!(sluice.fetch(&url).await.text(), "v2");
}

/// A `200 OK` answer to a HEAD: the GET body's `Content-Length`, no body.
fn head_ok(headers: &[&str], len: usize) -> Vec<u8> {
    let mut s = String::from("HTTP/1.1 200 OK\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    s.into_bytes()
}

#[tokio::test]
async fn a_head_revalidated_with_a_200_updates_the_stored_get() {
    // Regression: a HEAD's 200 is not storable, so the stored GET object was removed; RFC 9111
    // §4.3.5 has it update the stored response it matches and outdate one it does not.
    let origin = Origin::respond(|r| {
        let etag = if r.target().ends_with("/changed") {
            "ETag: \"h2\""
        } else {
            "ETag: \"h\""
        };
        if r.method() == "HEAD" {
            return head_ok(
                &[
                    &now_date(),
                    "Cache-Control: max-age=600",
                    etag,
                    "X-Head: fresh",
                ],
                9,
            );
        }
        ok_with(
            &[&old_date(), "Cache-Control: max-age=60", "ETag: \"h\""],
            "head body",
        )
    })
    .await;
    let sluice = common::start_default().await;
    for (path, updated) in [("/same", true), ("/changed", false)] {
        let url = origin.url(path);
        sluice.fetch(&url).await;
        let mut c = sluice.client().await;
        c.send(request("HEAD", &url, &[], b"")).await;
        let h = c.try_read_response_to("HEAD").await.expect("HEAD answered");
        assert_eq!((h.status(), h.header("x-head")), (200, Some("fresh")));
        assert_eq!(origin.last_request().method(), "HEAD");
        let get = sluice.fetch(&url).await;
        assert_eq!(get.text(), "head body");
        if updated {
            assert_cache_status(&get, "hit");
            assert_eq!(
                get.header("x-head"),
                Some("fresh"),
                "the HEAD's fields merged"
            );
            assert_eq!(hits(&origin, path), 2);
        } else {
            assert_eq!(
                hits(&origin, path),
                3,
                "a different ETag outdates the stored GET"
            );
        }
    }
}

/// RFC 9111 §4.3.4 for a HEAD: a stale object is revalidated with a conditional HEAD; the
/// 304 freshens the stored GET, and the client gets the GET's head (its length, no body).
#[tokio::test]
async fn a_head_revalidated_with_a_304_freshens_the_stored_get() {
    let origin = Origin::respond(|r| {
        if r.method() == "HEAD" && r.header("if-none-match") == Some("\"h3\"") {
            return not_modified(&[
                &now_date(),
                "Cache-Control: max-age=600",
                "ETag: \"h3\"",
                "X-From: 304",
            ]);
        }
        ok_with(
            &[&old_date(), "Cache-Control: max-age=60", "ETag: \"h3\""],
            "stored get body",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/head-304");
    sluice.fetch(&url).await;
    let mut c = sluice.client().await;
    c.send(request("HEAD", &url, &[], b"")).await;
    let h = c.try_read_response_to("HEAD").await.expect("HEAD answered");
    assert_eq!(origin.last_request().method(), "HEAD");
    assert_eq!(
        h.status(),
        200,
        "the client gets the object's head, not the 304"
    );
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), Some("15"));
    assert_eq!(h.header("x-from"), Some("304"));
    assert_cache_status(&h, "fwd=stale; fwd-status=304");
    // The connection still works (no stray bytes), and the GET is now a fresh hit.
    let get = c.exchange(common::get(&url)).await;
    assert_eq!(get.text(), "stored get body");
    assert_eq!(
        get.header("x-from"),
        Some("304"),
        "the 304 was merged and stored"
    );
    assert_cache_status(&get, "hit");
    assert_eq!(hits(&origin, "/head-304"), 2);
}

#[tokio::test]
async fn a_304_for_one_vary_variant_updates_only_that_variant() {
    let origin = Origin::respond(|r| {
        let lang = r.header("accept-language").unwrap_or("none").to_string();
        if r.header("if-none-match").is_some() {
            return format!("HTTP/1.1 304 Not Modified\r\nDate: {}\r\nContent-Length: 0\r\nETag: \"{lang}\"\r\nCache-Control: max-age=60\r\nX-New: {lang}\r\n\r\n", http_date(0)).into_bytes();
        }
        ok_with(&[&format!("Date: {}", http_date(-120)), "Cache-Control: max-age=60", "Vary: Accept-Language", &format!("ETag: \"{lang}\"")], &format!("lang={lang}"))
    }).await;
    let sluice = common::start_default().await;
    let url = origin.url("/v304");
    let mut c = sluice.client().await;
    for l in ["en", "de"] {
        c.exchange(request(
            "GET",
            &url,
            &[&format!("Accept-Language: {l}")],
            b"",
        ))
        .await;
    }
    let r = c
        .exchange(request("GET", &url, &["Accept-Language: en"], b""))
        .await;
    assert_eq!(r.text(), "lang=en");
    assert_eq!(r.header("x-new"), Some("en"));
    assert_eq!(r.header("content-length"), Some("7"));
    let r = c
        .exchange(request("GET", &url, &["Accept-Language: en"], b""))
        .await;
    assert_cache_status(&r, "hit");
    assert_eq!(r.header("x-new"), Some("en"));
    let r = c
        .exchange(request("GET", &url, &["Accept-Language: de"], b""))
        .await;
    assert_eq!(r.text(), "lang=de");
    assert_eq!(r.header("x-new"), Some("de"));
    assert_eq!(
        origin.last_request().header("if-none-match"),
        Some("\"de\"")
    );
    let r = c
        .exchange(request("GET", &url, &["Accept-Language: de"], b""))
        .await;
    assert_cache_status(&r, "hit");
    assert_eq!(r.text(), "lang=de");
    assert_eq!(hits(&origin, "/v304"), 4);
}

#[tokio::test]
async fn a_200_that_adds_vary_replaces_the_stale_object_for_later_hits() {
    // Regression: the memory tier took the first held variant that matched, so the stale
    // Vary-less object (which matches every request) kept being chosen over the newer
    // variant the revalidation stored: every request went to the origin again, while the
    // disk tier, which follows the URL's latest Vary, found the new one. RFC 9111 §4.1:
    // with several matching responses, the most recent is used.
    let changed = Arc::new(AtomicBool::new(false));
    let c2 = changed.clone();
    let origin = Origin::respond(move |_| {
        if c2.load(Ordering::SeqCst) {
            return ok_with(
                &[
                    &now_date(),
                    "Cache-Control: max-age=600",
                    "Vary: Accept-Encoding",
                    "ETag: \"v2\"",
                ],
                "second version",
            );
        }
        ok_with(
            &[&old_date(), "Cache-Control: max-age=60", "ETag: \"v1\""],
            "first version",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/vary-added");
    let mut c = sluice.client().await;
    let gzip = || request("GET", &url, &["Accept-Encoding: gzip"], b"");
    assert_eq!(c.exchange(gzip()).await.text(), "first version");
    changed.store(true, Ordering::SeqCst);
    let r = c.exchange(gzip()).await;
    assert_eq!(r.text(), "second version");
    assert_cache_status(&r, "fwd=stale; fwd-status=200; stored");
    let r = c.exchange(gzip()).await;
    assert_eq!(r.text(), "second version");
    assert_cache_status(&r, "hit");
    assert_eq!(hits(&origin, "/vary-added"), 2);
}

#[tokio::test]
async fn fields_added_by_304s_never_grow_a_stored_head_past_the_upstream_head_limit() {
    // RFC 9111 §3.2: a 304 adds its fields to the stored ones. An origin answering every
    // revalidation with new fields grew one stored head without bound (each 304 within
    // `upstream.max_header_size`), and every hit sent the whole of it. A merge that would
    // pass the limit is fetched afresh instead, as a 304 for another body is.
    let revalidations = Arc::new(AtomicUsize::new(0));
    let seen = revalidations.clone();
    let origin = Origin::respond(move |r| {
        if r.header("if-none-match") == Some("\"e1\"") {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let pad = format!("X-Pad-{n}: {}", "p".repeat(20 << 10));
            return not_modified(&["Cache-Control: no-cache", "ETag: \"e1\"", &pad]);
        }
        ok_with(
            &["Cache-Control: no-cache", "ETag: \"e1\""],
            "original body",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/grow");
    let limit = common::config().upstream.max_header_size.as_usize();
    for round in 0..8 {
        let r = sluice.fetch(&url).await;
        assert_eq!((r.status(), r.text().as_str()), (200, "original body"));
        // The stored head (within the limit) plus one 304's fields at most.
        assert!(
            r.head.raw.len() < limit + (21 << 10) + 1024,
            "round {round}: a head of {} bytes",
            r.head.raw.len()
        );
    }
    assert!(revalidations.load(Ordering::SeqCst) >= 3, "it revalidated");
    let unconditional = origin
        .requests()
        .iter()
        .filter(|r| r.header("if-none-match").is_none())
        .count();
    assert!(unconditional >= 2, "the grown object was fetched afresh");
}

#[tokio::test]
async fn a_304_with_a_strong_etag_freshens_every_variant_holding_it() {
    // Regression: a 304 freshened only the variant that was looked up. RFC 9111 §4.3.4: all
    // the stored responses with the 304's strong validator are updated, so another variant
    // of the same representation (here one language map onto the same page) is fresh too
    // and served without going to the origin again.
    let origin = Origin::respond(|r| {
        if r.header("if-none-match") == Some("\"same\"") {
            return not_modified(&[
                &now_date(),
                "Cache-Control: max-age=600",
                "ETag: \"same\"",
                "X-Freshened: yes",
            ]);
        }
        ok_with(
            &[
                &old_date(),
                "Cache-Control: max-age=60",
                "Vary: Accept-Language",
                "ETag: \"same\"",
            ],
            "one page",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/variants-304");
    let mut c = sluice.client().await;
    let get = |lang: &str| request("GET", &url, &[&format!("Accept-Language: {lang}")], b"");
    for lang in ["en", "de"] {
        assert_eq!(c.exchange(get(lang)).await.text(), "one page");
    }
    assert_eq!(hits(&origin, "/variants-304"), 2, "two variants stored");
    let r = c.exchange(get("en")).await;
    assert_cache_status(&r, "fwd=stale; fwd-status=304");
    assert_eq!(hits(&origin, "/variants-304"), 3);
    let r = c.exchange(get("de")).await;
    assert_eq!(r.text(), "one page");
    assert_cache_status(&r, "hit");
    assert_eq!(
        r.header("x-freshened"),
        Some("yes"),
        "the 304's fields merged"
    );
    assert_eq!(
        hits(&origin, "/variants-304"),
        3,
        "the other variant was freshened by the same 304"
    );
}

#[tokio::test]
async fn a_304_with_another_variants_etag_leaves_that_variant_stale() {
    // The other side of RFC 9111 §4.3.4: a variant with another strong ETag (or a weak one)
    // is not selected by the 304, and is revalidated on its own.
    let origin = Origin::respond(|r| {
        let lang = r.header("accept-language").unwrap_or("none").to_string();
        let etag = if lang == "en" { "\"e\"" } else { "W/\"e\"" };
        if r.header("if-none-match").is_some() {
            return not_modified(&[
                &now_date(),
                "Cache-Control: max-age=600",
                &format!("ETag: {etag}"),
            ]);
        }
        ok_with(
            &[
                &old_date(),
                "Cache-Control: max-age=60",
                "Vary: Accept-Language",
                &format!("ETag: {etag}"),
            ],
            "page",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/variants-weak");
    let mut c = sluice.client().await;
    let get = |lang: &str| request("GET", &url, &[&format!("Accept-Language: {lang}")], b"");
    for lang in ["en", "de", "en"] {
        c.exchange(get(lang)).await;
    }
    assert_eq!(hits(&origin, "/variants-weak"), 3);
    let r = c.exchange(get("de")).await;
    assert_cache_status(&r, "fwd=stale; fwd-status=304");
    assert_eq!(
        origin.last_request().header("if-none-match"),
        Some("W/\"e\"")
    );
    assert_eq!(hits(&origin, "/variants-weak"), 4);
}

#[tokio::test]
async fn a_304_without_an_etag_freshens_only_the_variant_it_validated() {
    // RFC 9111 §4.3.4: without a strong validator a 304 selects only the most recent stored
    // response it matches (here by Last-Modified), never every variant sharing that date:
    // two variants last modified in the same second may still be different bodies.
    let modified = format!("Last-Modified: {}", http_date(-3600));
    let origin = Origin::respond(move |r| {
        if r.header("if-modified-since").is_some() {
            return not_modified(&[&now_date(), "Cache-Control: max-age=600", &modified]);
        }
        ok_with(
            &[
                &old_date(),
                "Cache-Control: max-age=60",
                "Vary: Accept-Language",
                &modified,
            ],
            "page",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/variants-lm");
    let mut c = sluice.client().await;
    let get = |lang: &str| request("GET", &url, &[&format!("Accept-Language: {lang}")], b"");
    for lang in ["en", "de"] {
        assert_eq!(c.exchange(get(lang)).await.text(), "page");
    }
    let r = c.exchange(get("en")).await;
    assert_cache_status(&r, "fwd=stale; fwd-status=304");
    assert_eq!(hits(&origin, "/variants-lm"), 3);
    let r = c.exchange(get("de")).await;
    assert_cache_status(&r, "fwd=stale; fwd-status=304");
    assert!(origin.last_request().header("if-modified-since").is_some());
    assert_eq!(
        hits(&origin, "/variants-lm"),
        4,
        "the other variant was revalidated on its own"
    );
}

#[tokio::test]
async fn a_head_answered_405_on_revalidation_keeps_the_stored_get() {
    // Regression: a HEAD that revalidated a stale GET response and got a 405 (or any answer
    // but 200/304) removed the stored GET object, since the 405 "may not be stored". RFC 9111
    // §4.3.5: only a HEAD's 200 updates or outdates the stored GET response; the next GET
    // still had to fetch the whole body unconditionally.
    let origin = Origin::respond(|r| {
        if r.method() == "HEAD" {
            return answer("405 Method Not Allowed", &["Allow: GET"], b"");
        }
        if r.header("if-none-match") == Some("\"g\"") {
            return not_modified(&[&now_date(), "Cache-Control: max-age=600", "ETag: \"g\""]);
        }
        ok_with(
            &[&old_date(), "Cache-Control: max-age=60", "ETag: \"g\""],
            "get body",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/head-405");
    sluice.fetch(&url).await;
    let mut c = sluice.client().await;
    c.send(request("HEAD", &url, &[], b"")).await;
    let h = c.try_read_response_to("HEAD").await.expect("HEAD answered");
    assert_eq!(
        h.status(),
        405,
        "the origin's answer to the HEAD is relayed"
    );
    assert_eq!(origin.last_request().method(), "HEAD");
    let get = c.exchange(common::get(&url)).await;
    assert_eq!(get.text(), "get body");
    assert_eq!(
        origin.last_request().header("if-none-match"),
        Some("\"g\""),
        "the stored GET response is still there to validate"
    );
    assert_cache_status(&get, "fwd=stale; fwd-status=304");
}

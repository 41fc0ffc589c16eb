//! Cache reuse through the real proxy: fresh hits, what is not stored, freshness sources,
//! and what a stored object looks like when it is served again.

use crate::common;

use common::cache::{
    answer, assert_cache_status, hits, http_date, ok_with, origin_with, wait_until,
};
use common::{request, Origin};

#[tokio::test]
async fn fresh_object_is_served_from_cache_without_contacting_the_origin() {
    let origin = origin_with(&["Cache-Control: max-age=60"]).await;
    let sluice = common::start_default().await;
    let url = origin.url("/fresh");
    let first = sluice.fetch(&url).await;
    assert_eq!(first.status(), 200);
    assert_cache_status(&first, "sluice; fwd=uri-miss; stored");
    let second = sluice.fetch(&url).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.text(), "body of /fresh");
    assert_cache_status(&second, "sluice; hit");
    let age: u64 = second
        .header("age")
        .expect("Age on a hit")
        .parse()
        .expect("Age");
    assert!(age <= 60, "Age {age}");
    assert_eq!(
        hits(&origin, "/fresh"),
        1,
        "the hit must not reach the origin"
    );
}

#[tokio::test]
async fn responses_that_may_not_be_stored_go_to_the_origin_every_time() {
    let origin = Origin::respond(|r| {
        let h: &[&str] = match r.target() {
            t if t.ends_with("/no-store") => &["Cache-Control: no-store, max-age=60"],
            t if t.ends_with("/private") => &["Cache-Control: private, max-age=60"],
            t if t.ends_with("/vary-star") => &["Cache-Control: max-age=60", "Vary: *"],
            t if t.ends_with("/nothing") => &[],
            _ => &["Cache-Control: max-age=60"],
        };
        if r.target().ends_with("/found") {
            return answer("302 Found", &["Location: /elsewhere"], b"moved");
        }
        ok_with(h, "x")
    })
    .await;
    let sluice = common::start_default().await;
    for path in ["/no-store", "/private", "/vary-star", "/nothing", "/found"] {
        let url = origin.url(path);
        for _ in 0..2 {
            let r = sluice.fetch(&url).await;
            assert!(
                !r.header("cache-status").unwrap_or("").contains("hit"),
                "{path}: {:?}",
                r.header("cache-status")
            );
        }
        assert_eq!(hits(&origin, path), 2, "{path} must not be stored");
    }
}

#[tokio::test]
async fn a_response_to_a_request_with_authorization_is_not_stored_unless_public() {
    let origin = Origin::respond(|r| {
        let h: &[&str] = if r.target().ends_with("/public") {
            &["Cache-Control: public, max-age=60"]
        } else {
            &["Cache-Control: max-age=60"]
        };
        ok_with(h, "secret")
    })
    .await;
    let sluice = common::start_default().await;
    for (path, want) in [("/auth", 2), ("/public", 1)] {
        let url = origin.url(path);
        for _ in 0..2 {
            let mut c = sluice.client().await;
            let r = c
                .exchange(request("GET", &url, &["Authorization: Basic dTpw"], b""))
                .await;
            assert_eq!(r.status(), 200);
        }
        assert_eq!(hits(&origin, path), want, "{path}");
    }
}

#[tokio::test]
async fn last_modified_gives_heuristic_freshness() {
    let lm = format!("Last-Modified: {}", http_date(-10 * 86_400));
    let date = format!("Date: {}", http_date(0));
    let origin = Origin::respond(move |_| ok_with(&[&lm, &date], "heuristic")).await;
    let sluice = common::start_default().await;
    let url = origin.url("/lm");
    assert_eq!(sluice.fetch(&url).await.status(), 200);
    let second = sluice.fetch(&url).await;
    assert_cache_status(&second, "hit");
    assert_eq!(second.text(), "heuristic");
    assert_eq!(hits(&origin, "/lm"), 1);
}

#[tokio::test]
async fn expires_in_the_future_is_fresh_and_in_the_past_is_not() {
    let future = format!("Expires: {}", http_date(120));
    let past = format!("Expires: {}", http_date(-120));
    let date = format!("Date: {}", http_date(0));
    let origin = Origin::respond(move |r| {
        let e = if r.target().ends_with("/future") {
            &future
        } else {
            &past
        };
        ok_with(&[&date, e], "expires")
    })
    .await;
    let sluice = common::start_default().await;
    for (path, want) in [("/future", 1), ("/past", 2)] {
        let url = origin.url(path);
        sluice.fetch(&url).await;
        sluice.fetch(&url).await;
        assert_eq!(hits(&origin, path), want, "{path}");
    }
}

#[tokio::test]
async fn s_maxage_wins_over_max_age_in_the_shared_cache() {
    let origin = Origin::respond(|r| {
        let h: &[&str] = if r.target().ends_with("/long") {
            &["Cache-Control: max-age=0, s-maxage=60"]
        } else {
            &["Cache-Control: max-age=60, s-maxage=0", "ETag: \"v1\""]
        };
        ok_with(h, "smax")
    })
    .await;
    let sluice = common::start_default().await;
    for (path, want) in [("/long", 1), ("/short", 2)] {
        let url = origin.url(path);
        sluice.fetch(&url).await;
        sluice.fetch(&url).await;
        assert_eq!(hits(&origin, path), want, "{path}");
    }
}

/// A filter must scan whole bodies, so a Range miss is fetched whole (never as a fragment the
/// scanner would judge alone); the object is stored and later ranges come from the cache.
#[tokio::test]
async fn a_range_miss_fetches_the_whole_object_and_later_ranges_are_hits() {
    let origin = Origin::respond(|r| {
        if r.header("range").is_some() {
            return answer(
                "206 Partial Content",
                &["Cache-Control: max-age=600", "Content-Range: bytes 0-4/20"],
                b"01234",
            );
        }
        ok_with(&["Cache-Control: max-age=600"], "0123456789abcdefghij")
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/partial");
    let mut c = sluice.client().await;
    let r = c
        .exchange(request("GET", &url, &["Range: bytes=0-4"], b""))
        .await;
    assert_eq!(
        (r.status(), r.text().as_str()),
        (200, "0123456789abcdefghij")
    );
    assert!(
        origin.last_request().header("range").is_none(),
        "Range reached the origin"
    );
    let r = c
        .exchange(request("GET", &url, &["Range: bytes=5-9"], b""))
        .await;
    assert_eq!((r.status(), r.text().as_str()), (206, "56789"));
    assert_eq!(hits(&origin, "/partial"), 1);
}

#[tokio::test]
async fn the_age_of_a_hit_includes_the_age_the_origin_reported() {
    let origin = origin_with(&["Cache-Control: max-age=600", "Age: 30"]).await;
    let sluice = common::start_default().await;
    let url = origin.url("/upstream-age");
    sluice.fetch(&url).await;
    let r = sluice.fetch(&url).await;
    assert_cache_status(&r, "hit");
    let age: u64 = r.header("age").expect("Age").parse().expect("Age number");
    assert!((30..60).contains(&age), "Age {age}");
}

#[tokio::test]
async fn a_compressed_body_is_stored_and_served_byte_for_byte() {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b"hello hello hello hello").expect("gzip");
    let gz = e.finish().expect("gzip");
    let body = gz.clone();
    let origin = Origin::respond(move |_| {
        answer(
            "200 OK",
            &[
                "Cache-Control: max-age=600",
                "Content-Encoding: gzip",
                "Content-Type: text/plain",
            ],
            &body,
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/gzip");
    let mut c = sluice.client().await;
    let first = c
        .exchange(request("GET", &url, &["Accept-Encoding: gzip"], b""))
        .await;
    let hit = c
        .exchange(request("GET", &url, &["Accept-Encoding: gzip"], b""))
        .await;
    assert_eq!(first.body, gz);
    assert_eq!(
        hit.body, gz,
        "the hit carries the origin's compressed bytes"
    );
    assert_eq!(hit.header("content-encoding"), Some("gzip"));
    assert_cache_status(&hit, "hit");
}

#[tokio::test]
async fn a_chunked_response_is_stored_and_served_with_its_length() {
    let origin = Origin::respond(|_| {
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            .to_vec()
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/chunked");
    assert_eq!(sluice.fetch(&url).await.text(), "hello world");
    let r = sluice.fetch(&url).await;
    assert_eq!(r.text(), "hello world");
    assert_cache_status(&r, "hit");
    assert_eq!(r.header("content-length"), Some("11"));
}

#[tokio::test]
async fn hop_by_hop_fields_are_not_stored_with_the_object() {
    let origin = origin_with(&[
        "Cache-Control: max-age=600",
        "Connection: x-hop",
        "X-Hop: 1",
        "Keep-Alive: timeout=5",
    ])
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/hop");
    let miss = sluice.fetch(&url).await;
    let hit = sluice.fetch(&url).await;
    assert_cache_status(&hit, "hit");
    for r in [&miss, &hit] {
        assert_eq!(r.header("x-hop"), None);
        assert_eq!(r.header("keep-alive"), None);
    }
}

#[tokio::test]
async fn a_miss_and_a_hit_send_the_same_lowercase_field_names() {
    let origin = origin_with(&["Cache-Control: max-age=600", "X-Served-BY: edge-1"]).await;
    let sluice = common::start_default().await;
    let url = origin.url("/case");
    let miss = sluice.fetch(&url).await;
    let hit = sluice.fetch(&url).await;
    assert_cache_status(&hit, "hit");
    let names = |r: &common::client::Response| -> Vec<String> {
        let origin_fields = ["cache-control", "x-served-by", "content-length"];
        r.head
            .headers
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| origin_fields.iter().any(|w| w.eq_ignore_ascii_case(n)))
            .collect()
    };
    // Names are written lowercase, as HTTP/2 writes them, whether fetched now or stored.
    for r in [&miss, &hit] {
        assert_eq!(names(r), ["cache-control", "x-served-by", "content-length"]);
    }
}

#[tokio::test]
async fn a_field_named_by_qualified_private_is_not_served_from_the_cache() {
    let origin = origin_with(&[
        "Cache-Control: max-age=600, private=\"X-Secret\"",
        "X-Secret: for-one-user",
    ])
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/qualified-private");
    sluice.fetch(&url).await;
    let hit = sluice.fetch(&url).await;
    assert_cache_status(&hit, "hit");
    assert_eq!(hit.header("x-secret"), None);
}

/// RFC 9111 §3.1: fields specific to the proxy a cache forwards through (Proxy-Authenticate,
/// Proxy-Authentication-Info, Proxy-Authorization) must not be stored: a parent's answer for
/// sluice's own credentials is relayed once, never served to every later client.
#[tokio::test]
async fn a_proxy_authentication_field_is_relayed_but_not_stored() {
    let origin = origin_with(&[
        "Cache-Control: max-age=600",
        "Proxy-Authentication-Info: nextnonce=\"n1\"",
    ])
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/proxy-auth-info");
    let first = sluice.fetch(&url).await;
    assert_cache_status(&first, "fwd=uri-miss; stored");
    let hit = sluice.fetch(&url).await;
    assert_cache_status(&hit, "hit");
    assert_eq!(hit.header("proxy-authentication-info"), None);
    assert_eq!(hit.text(), "body of /proxy-auth-info");
}

#[tokio::test]
async fn observe_mode_stores_complete_responses_too() {
    let origin = origin_with(&["Cache-Control: max-age=600"]).await;
    let mut cfg = common::config();
    cfg.scan.mode = sluice::config::ScanMode::Observe;
    let sluice = common::start(cfg).await;
    let url = origin.url("/observed");
    assert_eq!(sluice.fetch(&url).await.text(), "body of /observed");
    // Observe mode stores after the body has streamed.
    let hit = sluice.stored(&url).await;
    assert_eq!(hit.text(), "body of /observed");
    assert_eq!(hits(&origin, "/observed"), 1);
}

#[tokio::test]
async fn a_204_with_freshness_is_stored_and_served_without_content_length() {
    // Regression: every 204 took the bodiless path, which never stores, though 204 is
    // cacheable by default (RFC 9110 §15.3.5) and policy::storable said so: a beacon or
    // an API's empty answer with max-age went to the origin every time.
    let origin = Origin::respond(|_| {
        b"HTTP/1.1 204 No Content\r\nCache-Control: max-age=60\r\nX-Empty: yes\r\n\r\n".to_vec()
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/beacon");
    let first = sluice.fetch(&url).await;
    assert_eq!(first.status(), 204);
    assert_cache_status(&first, "fwd=uri-miss; stored");
    let second = sluice.fetch(&url).await;
    assert_eq!(second.status(), 204);
    assert_cache_status(&second, "hit");
    assert_eq!(second.header("x-empty"), Some("yes"));
    // RFC 9110 §8.6: a 204 never carries Content-Length, from the origin or the cache.
    assert_eq!(second.header("content-length"), None);
    assert_eq!(hits(&origin, "/beacon"), 1);
}

/// No client waits for observe mode's scan and store, so its bodies were held without bound
/// once their responses were done. Past the pipeline's capacity (workers + queue) a body is
/// neither scanned nor stored; the response itself is relayed as ever.
#[tokio::test]
async fn observe_mode_holds_no_more_bodies_than_the_scan_capacity() {
    let origin = origin_with(&["Cache-Control: max-age=600"]).await;
    let mut cfg = common::config();
    cfg.scan.mode = sluice::config::ScanMode::Observe;
    let sluice = common::start(cfg).await;
    let proxy = sluice.running.as_ref().expect("running").proxy.clone();
    let capacity = proxy.pipeline.capacity();
    // Every slot taken, as by that many bodies waiting for a scan or the store writer.
    let taken = proxy
        .observing
        .clone()
        .acquire_many_owned(capacity as u32)
        .await
        .expect("permits");
    let url = origin.url("/over");
    assert_eq!(sluice.fetch(&url).await.text(), "body of /over");
    wait_until("the body is refused", || {
        proxy.pipeline.stats().rejected == 1
    })
    .await;
    let again = sluice.fetch(&url).await;
    assert_eq!(
        hits(&origin, "/over"),
        2,
        "not stored: {:?}",
        again.header("cache-status")
    );

    drop(taken);
    let url = origin.url("/room");
    sluice.fetch(&url).await;
    wait_until("a body is scanned once there is room", || {
        proxy.pipeline.stats().requests > 0
    })
    .await;
}

/// hyper never polls a response body that reports its end at once, so observe mode's copy of
/// an empty body (a 204, `Content-Length: 0`) was never handed over: such responses were
/// never scanned or stored, though enforce mode stores them.
#[tokio::test]
async fn observe_mode_stores_responses_with_an_empty_body() {
    let origin = Origin::respond(|r| {
        if r.target().ends_with("/beacon") {
            return b"HTTP/1.1 204 No Content\r\nCache-Control: max-age=60\r\n\r\n".to_vec();
        }
        ok_with(&["Cache-Control: max-age=60"], "")
    })
    .await;
    let mut cfg = common::config();
    cfg.scan.mode = sluice::config::ScanMode::Observe;
    let sluice = common::start(cfg).await;
    let cache = sluice
        .running
        .as_ref()
        .expect("running")
        .proxy
        .cache
        .clone();
    for (path, status, stored) in [("/beacon", 204, 1), ("/empty", 200, 2)] {
        let url = origin.url(path);
        assert_eq!(sluice.fetch(&url).await.status(), status);
        wait_until(&format!("{path} stored"), || {
            cache.stats().objects == stored
        })
        .await;
        assert_cache_status(&sluice.fetch(&url).await, "hit");
        assert_eq!(hits(&origin, path), 1);
    }
}

/// RFC 9110 §6.6.1: the origin's `Date` is relayed as it is, on the miss and on every hit
/// (a hit's `Date` is when the origin generated it, its `Age` says how old it is); a
/// response without one gets one, and the cache keeps the receipt time as its `Date`.
#[tokio::test]
async fn date_is_relayed_unchanged_and_added_when_the_origin_sent_none() {
    let origin_date = http_date(-100);
    let with_date: &'static str = Box::leak(format!("Date: {origin_date}").into_boxed_str());
    let origin = Origin::respond(move |r| {
        let h: &[&str] = if r.target().ends_with("/dated") {
            &["Cache-Control: max-age=600", with_date]
        } else {
            &["Cache-Control: max-age=600"]
        };
        ok_with(h, "x")
    })
    .await;
    let sluice = common::start_default().await;
    let parse = |r: &common::Response| -> std::time::SystemTime {
        let d = r.header("date").expect("a Date on every response");
        httpdate::parse_http_date(d).expect("an HTTP-date")
    };
    let dated = origin.url("/dated");
    for (i, what) in ["miss", "hit"].iter().enumerate() {
        let r = sluice.fetch(&dated).await;
        assert_eq!(r.header("date"), Some(origin_date.as_str()), "{what}");
        assert_eq!(r.head.all("date").len(), 1, "{what}: one Date");
        if i == 1 {
            let age: u64 = r.header("age").expect("Age").parse().expect("Age number");
            assert!(
                (100..160).contains(&age),
                "Age {age}: from the origin's Date"
            );
        }
    }
    let undated = origin.url("/undated");
    let miss = sluice.fetch(&undated).await;
    let hit = sluice.fetch(&undated).await;
    assert_cache_status(&hit, "hit");
    let now = std::time::SystemTime::now();
    for (what, r) in [("miss", &miss), ("hit", &hit)] {
        let d = parse(r);
        assert!(
            now.duration_since(d).unwrap_or_default().as_secs() < 60
                && d.duration_since(now).unwrap_or_default().as_secs() < 60,
            "{what}: Date {d:?} is the receipt time"
        );
    }
    assert_eq!(hits(&origin, "/undated"), 1);
}

//! Requests against stored objects through the real proxy: HEAD and Range from a stored
//! GET, Vary variants, client conditionals, and request Cache-Control directives.

use crate::common;

use common::cache::{assert_cache_status, hits, ok_with, origin_with};
use common::{request, Origin};

#[tokio::test]
async fn head_is_answered_from_a_stored_get() {
    let origin = origin_with(&["Cache-Control: max-age=60"]).await;
    let sluice = common::start_default().await;
    let url = origin.url("/head");
    let get = sluice.fetch(&url).await;
    let mut c = sluice.client().await;
    c.send(request("HEAD", &url, &[], b"")).await;
    let head = c.try_read_response_to("HEAD").await.expect("HEAD response");
    assert_eq!(head.status(), 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str())
    );
    assert_cache_status(&head, "hit");
    // The connection is still usable: no stray body bytes followed the HEAD response.
    let again = c.exchange(common::get(&url)).await;
    assert_eq!(again.text(), "body of /head");
    assert_eq!(hits(&origin, "/head"), 1);
}

#[tokio::test]
async fn range_requests_are_served_from_a_stored_object() {
    let origin =
        Origin::respond(|_| ok_with(&["Cache-Control: max-age=60"], "0123456789abcdefghij")).await;
    let sluice = common::start_default().await;
    let url = origin.url("/range");
    assert_eq!(sluice.fetch(&url).await.body.len(), 20);
    let mut c = sluice.client().await;
    let r = c
        .exchange(request("GET", &url, &["Range: bytes=5-9"], b""))
        .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.header("content-range"), Some("bytes 5-9/20"));
    assert_eq!(r.text(), "56789");
    let r = c
        .exchange(request("GET", &url, &["Range: bytes=-3"], b""))
        .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.header("content-range"), Some("bytes 17-19/20"));
    assert_eq!(r.text(), "hij");
    let r = c
        .exchange(request("GET", &url, &["Range: bytes=50-60"], b""))
        .await;
    assert_eq!(r.status(), 416);
    assert_eq!(r.header("content-range"), Some("bytes */20"));
    assert_eq!(
        hits(&origin, "/range"),
        1,
        "ranges must be served from the store"
    );
}

#[tokio::test]
async fn vary_variants_are_stored_and_served_separately() {
    let origin = Origin::respond(|r| {
        let lang = r.header("accept-language").unwrap_or("none").to_string();
        let enc = r.header("accept-encoding").unwrap_or("none").to_string();
        ok_with(
            &[
                "Cache-Control: max-age=60",
                "Vary: Accept-Language, Accept-Encoding",
            ],
            &format!("lang={lang} enc={enc}"),
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/vary");
    let variants = [
        ["Accept-Language: en", "Accept-Encoding: gzip"],
        ["Accept-Language: de", "Accept-Encoding: gzip"],
        ["Accept-Language: en", "Accept-Encoding: br"],
    ];
    for round in 0..2 {
        for v in &variants {
            let mut c = sluice.client().await;
            let r = c.exchange(request("GET", &url, v, b"")).await;
            let lang = &v[0]["Accept-Language: ".len()..];
            let enc = &v[1]["Accept-Encoding: ".len()..];
            assert_eq!(r.text(), format!("lang={lang} enc={enc}"), "round {round}");
            if round == 1 {
                assert_cache_status(&r, "hit");
            }
        }
    }
    assert_eq!(hits(&origin, "/vary"), 3, "one origin request per variant");
}

#[tokio::test]
async fn vary_host_keys_on_the_host_the_origin_sees_not_the_clients() {
    let origin = Origin::respond(|r| {
        let host = r.header("host").unwrap_or("none").to_string();
        ok_with(&["Cache-Control: max-age=60", "Vary: Host"], &host)
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/vh");
    let authority = url.split('/').nth(2).expect("authority").to_string();
    // The origin always sees the URL's authority (RFC 9112 §3.2.2), so every client Host is
    // the same variant: one origin request, then hits.
    for (i, host) in [
        "wrong.example",
        "127.0.0.1",
        "WRONG.example:81",
        authority.as_str(),
    ]
    .iter()
    .enumerate()
    {
        let mut c = sluice.client().await;
        let r = c
            .exchange(format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes())
            .await;
        assert_eq!(r.text(), authority, "client Host {host:?}");
        if i > 0 {
            assert_cache_status(&r, "hit");
        }
    }
    assert_eq!(hits(&origin, "/vh"), 1);
}

#[tokio::test]
async fn only_if_cached_on_a_miss_is_a_504_without_origin_contact() {
    let origin = origin_with(&["Cache-Control: max-age=60"]).await;
    let sluice = common::start_default().await;
    let url = origin.url("/oic");
    let mut c = sluice.client().await;
    let r = c
        .exchange(request(
            "GET",
            &url,
            &["Cache-Control: only-if-cached"],
            b"",
        ))
        .await;
    assert_eq!(r.status(), 504);
    assert_eq!(origin.requests().len(), 0);
    sluice.fetch(&url).await;
    let r = c
        .exchange(request(
            "GET",
            &url,
            &["Cache-Control: only-if-cached"],
            b"",
        ))
        .await;
    assert_eq!(r.status(), 200, "a stored object satisfies only-if-cached");
    assert_eq!(hits(&origin, "/oic"), 1);
}

#[tokio::test]
async fn request_no_cache_and_max_age_zero_force_revalidation() {
    let origin = Origin::respond(|r| {
        if r.header("if-none-match") == Some("\"e1\"") {
            return common::cache::not_modified(&["ETag: \"e1\"", "Cache-Control: max-age=60"]);
        }
        ok_with(&["Cache-Control: max-age=60", "ETag: \"e1\""], "validated")
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/force");
    sluice.fetch(&url).await;
    for directive in ["Cache-Control: no-cache", "Cache-Control: max-age=0"] {
        let before = hits(&origin, "/force");
        let mut c = sluice.client().await;
        let r = c.exchange(request("GET", &url, &[directive], b"")).await;
        assert_eq!(r.status(), 200, "{directive}");
        assert_eq!(r.text(), "validated");
        assert_eq!(
            hits(&origin, "/force"),
            before + 1,
            "{directive} must revalidate"
        );
        assert_eq!(
            origin.last_request().header("if-none-match"),
            Some("\"e1\""),
            "{directive}: conditional"
        );
    }
    // A plain request is still a hit.
    assert_cache_status(&sluice.fetch(&url).await, "hit");
    assert_eq!(hits(&origin, "/force"), 3);
}

#[tokio::test]
async fn max_stale_allows_a_stale_hit() {
    let origin = Origin::respond(|_| {
        ok_with(
            &["Cache-Control: max-age=1", "Age: 30", "ETag: \"s\""],
            "stale ok",
        )
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/maxstale");
    sluice.fetch(&url).await;
    let mut c = sluice.client().await;
    let r = c
        .exchange(request(
            "GET",
            &url,
            &["Cache-Control: max-stale=3600"],
            b"",
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "stale ok");
    assert_cache_status(&r, "hit");
    assert_eq!(
        hits(&origin, "/maxstale"),
        1,
        "max-stale must not reach the origin"
    );
    // Without max-stale it is revalidated.
    sluice.fetch(&url).await;
    assert_eq!(hits(&origin, "/maxstale"), 2);
}

#[tokio::test]
async fn min_fresh_beyond_the_remaining_lifetime_goes_to_the_origin() {
    let origin = origin_with(&["Cache-Control: max-age=60", "ETag: \"m\""]).await;
    let sluice = common::start_default().await;
    let url = origin.url("/min-fresh");
    sluice.fetch(&url).await;
    let mut c = sluice.client().await;
    c.exchange(request("GET", &url, &["Cache-Control: min-fresh=120"], b""))
        .await;
    assert_eq!(hits(&origin, "/min-fresh"), 2);
    c.exchange(request("GET", &url, &["Cache-Control: min-fresh=10"], b""))
        .await;
    assert_eq!(
        hits(&origin, "/min-fresh"),
        2,
        "10 s of freshness left is enough"
    );
}

#[tokio::test]
async fn a_client_conditional_on_a_hit_is_answered_304_by_the_cache() {
    let origin = origin_with(&["Cache-Control: max-age=600", "ETag: \"q\""]).await;
    let sluice = common::start_default().await;
    let url = origin.url("/client-inm");
    sluice.fetch(&url).await;
    let mut c = sluice.client().await;
    c.send(request("GET", &url, &["If-None-Match: \"q\""], b""))
        .await;
    let r = c.try_read_response_to("HEAD").await.expect("304");
    assert_eq!(r.status(), 304);
    assert_eq!(r.header("etag"), Some("\"q\""));
    let r = c.exchange(common::get(&url)).await;
    assert_eq!(r.text(), "body of /client-inm");
    assert_eq!(hits(&origin, "/client-inm"), 1);
}

#[tokio::test]
async fn a_head_miss_is_forwarded_and_does_not_block_storing_the_get() {
    let origin = Origin::respond(|r| {
        if r.method() == "HEAD" {
            return b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 4\r\n\r\n"
                .to_vec();
        }
        ok_with(&["Cache-Control: max-age=600"], "body")
    })
    .await;
    let sluice = common::start_default().await;
    let url = origin.url("/head-miss");
    let mut c = sluice.client().await;
    c.send(request("HEAD", &url, &[], b"")).await;
    let r = c.try_read_response_to("HEAD").await.expect("HEAD");
    assert_eq!(r.status(), 200);
    assert_eq!(origin.last_request().method(), "HEAD");
    assert_eq!(c.exchange(common::get(&url)).await.text(), "body");
    let r = c.exchange(common::get(&url)).await;
    assert_eq!(r.text(), "body");
    assert_cache_status(&r, "hit");
    assert_eq!(hits(&origin, "/head-miss"), 2);
}

#[tokio::test]
async fn request_no_store_keeps_the_response_out_of_the_cache() {
    let origin = origin_with(&["Cache-Control: max-age=600"]).await;
    let sluice = common::start_default().await;
    let url = origin.url("/req-no-store");
    let mut c = sluice.client().await;
    c.exchange(request("GET", &url, &["Cache-Control: no-store"], b""))
        .await;
    sluice.fetch(&url).await;
    assert_eq!(hits(&origin, "/req-no-store"), 2);
}

#[tokio::test]
async fn a_target_with_dot_segments_is_not_served_for_the_path_they_resolve_to() {
    // Regression: the cache key resolved `.`/`..` (and `%2e`) segments while the origin was
    // sent the target byte for byte, so whatever the origin answered for `/user/%2e%2e/page`
    // (many servers and object stores read `%2e%2e` literally) was stored as `/page` and
    // served to everyone who asked for `/page`: one client could poison another's URL.
    let origin = Origin::respond(|r| {
        ok_with(
            &["Cache-Control: max-age=600"],
            &format!("answer for {}", r.target()),
        )
    })
    .await;
    let sluice = common::start_default().await;
    let page = origin.url("/page");
    for odd in ["/user/%2e%2e/page", "/user/../page", "/./page"] {
        let r = sluice.fetch(&origin.url(odd)).await;
        assert_eq!(r.text(), format!("answer for {odd}"), "{odd}");
    }
    let r = sluice.fetch(&page).await;
    assert_eq!(r.text(), "answer for /page");
    assert_cache_status(&r, "fwd=uri-miss");
    // Each distinct target is its own object.
    assert_cache_status(&sluice.fetch(&origin.url("/user/../page")).await, "hit");
    assert_eq!(origin.requests().len(), 4);
}

//! Issue 5 through the proxy, by body: bodies over `scan.max_body` stream byte-identical as
//! `unscanned`/`too_large` (or are refused under `unscanned = "block"`, from the head when
//! Content-Length shows it), gzip is decoded and gzip bombs end as `unscanned`/`limit`, the
//! same bytes are scanned once (memo, cache hits), and observe mode streams first and records
//! the verdict later.

use crate::common;
use crate::scan_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, get, start, Origin, LIMIT};
use scan_support::{gzip, page, response, serving, stats, verdict, NEWSLETTER, SPAM};
use sluice::config::{Action, ByteSize, ScanMode};
use sluice::scan::{sha256_hex, Class};
use tokio::sync::Notify;

/// A text body of `n` bytes.
fn big_text(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"abcdefghij klmnop\n"[i % 18]).collect()
}

/// Reads from `c` until `buf` holds at least `n` bytes.
async fn read_at_least(c: &mut common::Client, buf: &mut Vec<u8>, n: usize) {
    while buf.len() < n {
        buf.extend(c.expect_some(LIMIT).await);
    }
}

/// An origin that sends a `Content-Length: 5000` head and the first `first` body bytes, then
/// stalls until `release` is notified and sends the rest.
async fn stalling(release: Arc<Notify>, first: usize) -> Origin {
    let body = big_text(5000);
    Origin::start(move |mut conn| {
        let (release, body) = (release.clone(), body.clone());
        async move {
            if conn.read_request().await.is_none() {
                return;
            }
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5000\r\n\r\n";
            let mut start = head.as_bytes().to_vec();
            start.extend_from_slice(&body[..first]);
            let _ = conn.write(start).await;
            release.notified().await;
            let _ = conn.write(&body[first..]).await;
        }
    })
    .await
}

#[tokio::test]
async fn body_over_max_body_streams_byte_identical_as_unscanned_too_large() {
    let body = big_text(5000);
    let origin = serving(response("text/plain", "", &body)).await;
    let mut cfg = config();
    cfg.scan.max_body = ByteSize(1024);
    let sluice = start(cfg).await;
    let resp = sluice.fetch(&origin.url("/big.txt")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, body, "byte-identical");
    let v = verdict(&resp);
    assert!(v.starts_with("unscanned;"), "{v}");
    assert!(v.ends_with("reason=too_large"), "{v}");
    assert_eq!(stats(&sluice).scans, 0, "nothing was scanned");
}

#[tokio::test]
async fn unscanned_block_refuses_a_too_large_body_before_sending_any_of_it() {
    let body = big_text(5000);
    let sized = response("text/plain", "", &body);
    let chunked = {
        let mut r =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for c in body.chunks(700) {
            r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            r.extend_from_slice(c);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    };
    let origin = Origin::respond(move |req| {
        if req.target().ends_with("/chunked") {
            chunked.clone()
        } else {
            sized.clone()
        }
    })
    .await;
    let mut cfg = config();
    cfg.scan.max_body = ByteSize(1024);
    cfg.scan.action.unscanned = Action::Block;
    let sluice = start(cfg).await;
    for path in ["/sized", "/chunked"] {
        let resp = sluice.fetch(&origin.url(path)).await;
        assert_eq!(resp.status(), 403, "{path}: {}", resp.text());
        assert!(resp.text().contains("unscanned"), "{}", resp.text());
        let v = verdict(&resp);
        assert!(v.contains("reason=too_large"), "{path}: {v}");
        assert!(!resp.text().contains("abcdefghij"), "no body byte leaks");
    }
    // A small body is still scanned and delivered.
    let small = page(NEWSLETTER).await;
    assert_eq!(sluice.fetch(&small.url("/")).await.status(), 200);
}

#[tokio::test]
async fn body_declared_over_max_body_streams_at_once_in_enforce_mode() {
    let release = Arc::new(Notify::new());
    let origin = stalling(release.clone(), 512).await;
    let mut cfg = config();
    cfg.scan.max_body = ByteSize(1024);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/declared-big"))).await;
    // The head and the first 512 bytes arrive while the origin still holds the rest back:
    // Content-Length already says the body cannot be scanned, so nothing is buffered.
    let mut got = Vec::new();
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        got.extend(c.expect_some(LIMIT).await);
    };
    read_at_least(&mut c, &mut got, head_end + 512).await;
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("reason=too_large"), "{head}");
    release.notify_one();
    read_at_least(&mut c, &mut got, head_end + 5000).await;
    assert_eq!(&got[head_end..], &big_text(5000)[..], "byte-identical");
}

#[tokio::test]
async fn unscanned_block_refuses_a_declared_too_large_body_without_waiting_for_it() {
    let release = Arc::new(Notify::new());
    let origin = stalling(release.clone(), 100).await;
    let mut cfg = config();
    cfg.scan.max_body = ByteSize(1024);
    cfg.scan.action.unscanned = Action::Block;
    let sluice = start(cfg).await;
    // The origin never sends more than 100 bytes: the 403 comes from the head alone.
    let resp = sluice.fetch(&origin.url("/declared-big")).await;
    assert_eq!(resp.status(), 403, "{}", resp.text());
    assert!(
        verdict(&resp).contains("reason=too_large"),
        "{}",
        verdict(&resp)
    );
    release.notify_one();
}

#[tokio::test]
async fn gzip_spam_page_is_decoded_and_blocked() {
    let origin = serving(response(
        "text/html; charset=utf-8",
        "Content-Encoding: gzip\r\nCache-Control: no-store\r\n",
        &gzip(SPAM.as_bytes()),
    ))
    .await;
    let sluice = start(config()).await;
    let resp = sluice.fetch(&origin.url("/win.gz")).await;
    assert_eq!(resp.status(), 403, "{}", resp.text());
    let v = verdict(&resp);
    assert!(v.starts_with("spam;"), "{v}");
    // The verdict key is the decoded body's SHA-256.
    assert!(v.contains(&sha256_hex(SPAM.as_bytes())), "{v}");
}

#[tokio::test]
async fn gzip_bomb_is_relayed_unscanned_with_reason_limit_in_bounded_time() {
    let bomb = gzip(&vec![0u8; 10 << 20]);
    assert!(bomb.len() < 64 << 10, "{} compressed bytes", bomb.len());
    let origin = serving(response(
        "text/html",
        "Content-Encoding: gzip\r\nCache-Control: no-store\r\n",
        &bomb,
    ))
    .await;
    let mut cfg = config();
    cfg.scan.max_body = ByteSize(1 << 20);
    let sluice = start(cfg).await;
    let t0 = Instant::now();
    let resp = sluice.fetch(&origin.url("/bomb")).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(resp.status(), 200, "{}", resp.text());
    assert_eq!(resp.body, bomb, "relayed as sent, still encoded");
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    let v = verdict(&resp);
    assert!(v.starts_with("unscanned;"), "{v}");
    assert!(v.ends_with("reason=limit"), "{v}");
}

#[tokio::test]
async fn same_bytes_under_another_url_are_not_rescanned() {
    let origin = page(NEWSLETTER).await;
    let sluice = start(config()).await;
    let first = sluice.fetch(&origin.url("/a")).await;
    assert_eq!(first.status(), 200);
    let before = stats(&sluice);
    assert_eq!(before.scans, 1);
    let second = sluice.fetch(&origin.url("/b?utm=x")).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.body, NEWSLETTER.as_bytes());
    let after = stats(&sluice);
    assert_eq!(after.scans, before.scans, "not scanned again");
    assert_eq!(
        after.memo_hits,
        before.memo_hits + 1,
        "answered by the memo"
    );
    assert_eq!(verdict(&second), verdict(&first));
    assert_eq!(origin.requests().len(), 2, "both URLs were fetched");
}

#[tokio::test]
async fn cache_hit_carries_the_stored_verdict() {
    let origin = serving(response(
        "text/html; charset=utf-8",
        "Cache-Control: max-age=300\r\n",
        NEWSLETTER.as_bytes(),
    ))
    .await;
    let sluice = start(config()).await;
    let first = sluice.fetch(&origin.url("/cached")).await;
    assert_eq!(first.status(), 200);
    let scans = stats(&sluice).scans;
    let hit = sluice.fetch(&origin.url("/cached")).await;
    assert_eq!(hit.status(), 200);
    assert_eq!(origin.requests().len(), 1, "served from the cache");
    assert!(
        hit.header("cache-status").unwrap_or("").contains("hit"),
        "{:?}",
        hit.header("cache-status")
    );
    assert_eq!(hit.body, NEWSLETTER.as_bytes());
    let v = verdict(&hit);
    assert!(v.starts_with("clean;"), "{v}");
    assert_eq!(v, verdict(&first));
    assert_eq!(stats(&sluice).scans, scans, "a hit is not rescanned");
}

#[tokio::test]
async fn cached_spam_stays_blocked_on_a_hit() {
    let origin = serving(response(
        "text/html; charset=utf-8",
        "Cache-Control: max-age=300\r\n",
        SPAM.as_bytes(),
    ))
    .await;
    let sluice = start(config()).await;
    assert_eq!(sluice.fetch(&origin.url("/w")).await.status(), 403);
    let again = sluice.fetch(&origin.url("/w")).await;
    assert_eq!(again.status(), 403, "{}", again.text());
    assert!(verdict(&again).starts_with("spam;"), "{}", verdict(&again));
    assert_eq!(origin.requests().len(), 1, "blocked from the cache");
    // The 403 still says where the object came from.
    let cs = again.header("cache-status").unwrap_or("");
    assert!(cs.starts_with("sluice; hit"), "Cache-Status {cs:?}");
}

#[tokio::test]
async fn observe_mode_streams_at_once_and_records_the_verdict() {
    let release = Arc::new(Notify::new());
    let split = SPAM.len() / 2;
    let origin = {
        let release = release.clone();
        Origin::start(move |mut conn| {
            let release = release.clone();
            async move {
                if conn.read_request().await.is_none() {
                    return;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                    SPAM.len()
                );
                let _ = conn.write(format!("{head}{}", &SPAM[..split])).await;
                // The rest only once the client has proven it got the first half.
                release.notified().await;
                let _ = conn.write(&SPAM[split..]).await;
            }
        })
        .await
    };
    let mut cfg = config();
    cfg.scan.mode = ScanMode::Observe;
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/observed"))).await;
    let mut got = Vec::new();
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        got.extend(c.expect_some(LIMIT).await);
    };
    read_at_least(&mut c, &mut got, head_end + split).await;
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    release.notify_one();
    read_at_least(&mut c, &mut got, head_end + SPAM.len()).await;
    assert_eq!(
        &got[head_end..],
        SPAM.as_bytes(),
        "the spam page is delivered"
    );

    let pipeline = &sluice.running.as_ref().expect("running").proxy.pipeline;
    let sha = sha256_hex(SPAM.as_bytes());
    let deadline = Instant::now() + LIMIT;
    let recorded = loop {
        if let Some(v) = pipeline.lookup(&sha) {
            break v;
        }
        assert!(Instant::now() < deadline, "no verdict recorded for {sha}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(recorded.class, Class::Spam);
    assert!(!recorded.findings.is_empty());
}

/// The memo remembers how bytes were read, not only the bytes: spam first served under a type
/// that is not read as text must not pass as clean when it comes back as a page.
#[tokio::test]
async fn the_same_bytes_served_as_text_after_an_opaque_type_are_scanned_as_text() {
    let opaque = response(
        "application/x-foo",
        "Cache-Control: no-store\r\n",
        SPAM.as_bytes(),
    );
    let html = response(
        "text/html; charset=utf-8",
        "Cache-Control: no-store\r\n",
        SPAM.as_bytes(),
    );
    let origin = Origin::respond(move |r| {
        if r.target().ends_with("/opaque") {
            opaque.clone()
        } else {
            html.clone()
        }
    })
    .await;
    let sluice = start(config()).await;
    let first = sluice.fetch(&origin.url("/opaque")).await;
    assert_eq!(first.status(), 200, "{}", verdict(&first));
    assert!(verdict(&first).starts_with("clean;"), "{}", verdict(&first));
    let page = sluice.fetch(&origin.url("/page")).await;
    assert_eq!(page.status(), 403, "{}", verdict(&page));
    assert!(verdict(&page).starts_with("spam;"), "{}", verdict(&page));
    // Each reading is remembered: neither is scanned a second time.
    let scans = stats(&sluice).scans;
    assert_eq!(sluice.fetch(&origin.url("/opaque")).await.status(), 200);
    assert_eq!(sluice.fetch(&origin.url("/page")).await.status(), 403);
    assert_eq!(stats(&sluice).scans, scans);
}

/// A cached object keeps its verdict only while its header fields are the ones scanned: a 304
/// that changes how the stored bytes read (a new coding, a text type) has them judged again.
#[tokio::test]
async fn a_304_that_changes_how_the_body_reads_rescans_the_stored_body() {
    for (stored_type, body, fields_304) in [
        // Opaque bytes that are gzip'd HTML, which reads as spam.
        (
            "application/octet-stream",
            gzip(SPAM.as_bytes()),
            "Content-Encoding: gzip\r\nContent-Type: text/html; charset=utf-8\r\n",
        ),
        // An opaque type, then HTML.
        (
            "application/x-foo",
            SPAM.as_bytes().to_vec(),
            "Content-Type: text/html; charset=utf-8\r\n",
        ),
    ] {
        let first = response(
            stored_type,
            "Cache-Control: max-age=0\r\nETag: \"v1\"\r\n",
            &body,
        );
        let not_modified = format!(
            "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=0\r\n\
             {fields_304}\r\n"
        );
        let origin = Origin::respond(move |r| {
            if r.header("if-none-match").is_some() {
                not_modified.clone().into_bytes()
            } else {
                first.clone()
            }
        })
        .await;
        let sluice = start(config()).await;
        let url = origin.url("/stored");
        let miss = sluice.fetch(&url).await;
        assert_eq!(miss.status(), 200, "{stored_type}: {}", verdict(&miss));
        assert!(!verdict(&miss).starts_with("spam"), "{}", verdict(&miss));
        let revalidated = sluice.fetch(&url).await;
        assert_eq!(origin.requests().len(), 2, "the second fetch revalidated");
        assert_eq!(
            revalidated.status(),
            403,
            "{stored_type}, then {fields_304:?}: read anew the body is spam: {}",
            verdict(&revalidated)
        );
    }
}

/// A GET that carries a body (legal, if rare) skips the cache, but not the rule that the
/// scanner judges whole bodies: its Range is dropped upstream too, or a blocked page could
/// be pulled in pieces that each scan clean.
#[tokio::test]
async fn a_get_with_a_body_cannot_fetch_a_blocked_page_in_ranges() {
    let origin = Origin::respond(|req| match req.header("range") {
        Some(_) => {
            let part = &SPAM.as_bytes()[..16];
            let mut r = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Type: text/html\r\nContent-Range: bytes 0-15/{}\r\nContent-Length: 16\r\n\r\n",
                SPAM.len()
            )
            .into_bytes();
            r.extend_from_slice(part);
            r
        }
        None => response("text/html", "", SPAM.as_bytes()),
    })
    .await;
    let sluice = start(config()).await;
    let mut c = sluice.client().await;
    let r = c
        .exchange(format!(
            "GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nRange: bytes=0-15\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            origin.url("/spam"),
            origin.port()
        ))
        .await;
    assert_eq!(
        origin.last_request().header("range"),
        None,
        "no Range upstream"
    );
    assert_eq!(r.status(), 403, "the whole page was scanned and blocked");
}

/// A stored blocked object is blocked whatever the request asks of it: a Range (no part of
/// the body in a 206), the client's own `If-None-Match` for its ETag (no 304), a HEAD (no
/// 200 with its length), fresh, and a HEAD that revalidates it when the origin answers the
/// HEAD with a 200 that matches the stored GET (RFC 9111 §4.3.5 freshens it).
#[tokio::test]
async fn a_cached_blocked_object_is_blocked_for_ranges_conditionals_and_heads() {
    let spam_head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         ETag: \"s1\"\r\nCache-Control: max-age=300\r\n\r\n",
        SPAM.len()
    );
    let origin = Origin::respond(move |r| {
        let mut answer = spam_head.clone().into_bytes();
        let head_req = r.method() == "HEAD";
        if r.target().ends_with("/stale") {
            // Always stale; answers a HEAD with a 200 whatever its validators.
            answer = spam_head.replace("max-age=300", "max-age=0").into_bytes();
        }
        if !head_req {
            answer.extend_from_slice(SPAM.as_bytes());
        }
        answer
    })
    .await;
    let sluice = start(config()).await;
    for path in ["/fresh", "/stale"] {
        let url = origin.url(path);
        let first = sluice.fetch(&url).await;
        assert_eq!(first.status(), 403, "{path}: {}", verdict(&first));
        let mut c = sluice.client().await;
        for extra in ["Range: bytes=0-99", "If-None-Match: \"s1\""] {
            let r = c
                .exchange(common::request("GET", &url, &[extra], b""))
                .await;
            assert_eq!(r.status(), 403, "{path} {extra}: {}", r.text());
            assert!(verdict(&r).starts_with("spam;"), "{}", verdict(&r));
        }
        c.send(common::request("HEAD", &url, &[], b"")).await;
        let head = c.try_read_response_to("HEAD").await.expect("HEAD answer");
        assert_eq!(
            head.status(),
            403,
            "{path} HEAD: {:?}",
            head.header("content-length")
        );
        assert!(verdict(&head).starts_with("spam;"), "{}", verdict(&head));
    }
    assert_eq!(
        origin
            .requests()
            .iter()
            .filter(|r| r.target().ends_with("/fresh"))
            .count(),
        1,
        "the fresh object was served from the cache"
    );
}

/// Two `Vary` variants of one URL with different bodies keep their own verdicts on hits:
/// the spam variant stays blocked, the clean one is delivered, in either order.
#[tokio::test]
async fn vary_variants_keep_their_own_verdicts_on_hits() {
    let origin = Origin::respond(|r| {
        let body = if r.header("accept-language") == Some("en") {
            SPAM
        } else {
            NEWSLETTER
        };
        response(
            "text/html; charset=utf-8",
            "Cache-Control: max-age=300\r\nVary: Accept-Language\r\n",
            body.as_bytes(),
        )
    })
    .await;
    let sluice = start(config()).await;
    let url = origin.url("/v");
    for round in 0..3 {
        let mut c = sluice.client().await;
        for (lang, status) in [("en", 403), ("fr", 200), ("en", 403)] {
            let r = c
                .exchange(common::request(
                    "GET",
                    &url,
                    &[&format!("Accept-Language: {lang}")],
                    b"",
                ))
                .await;
            assert_eq!(r.status(), status, "round {round} {lang}: {}", verdict(&r));
            if status == 200 {
                assert_eq!(r.body, NEWSLETTER.as_bytes());
                assert!(verdict(&r).starts_with("clean;"), "{}", verdict(&r));
            }
        }
    }
    assert_eq!(origin.requests().len(), 2, "one fetch per variant");
}

/// Observe mode never blocks a cache hit either, and the hit carries the verdict enforce
/// would act on: the whole body, a Range of it and a HEAD, each tagged `spam`.
#[tokio::test]
async fn observe_mode_hits_of_spam_are_delivered_and_tagged() {
    let origin = serving(response(
        "text/html; charset=utf-8",
        "Cache-Control: max-age=300\r\n",
        SPAM.as_bytes(),
    ))
    .await;
    let mut cfg = config();
    cfg.scan.mode = ScanMode::Observe;
    let sluice = start(cfg).await;
    let url = origin.url("/observed");
    let first = sluice.fetch(&url).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.body, SPAM.as_bytes());
    // Stored (and scanned) after the body streamed.
    let hit = sluice.stored(&url).await;
    assert_eq!(hit.body, SPAM.as_bytes());
    assert!(verdict(&hit).starts_with("spam;"), "{}", verdict(&hit));
    let mut c = sluice.client().await;
    let part = c
        .exchange(common::request("GET", &url, &["Range: bytes=0-9"], b""))
        .await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.body, &SPAM.as_bytes()[..10]);
    assert!(verdict(&part).starts_with("spam;"), "{}", verdict(&part));
    c.send(common::request("HEAD", &url, &[], b"")).await;
    let head = c.try_read_response_to("HEAD").await.expect("HEAD answer");
    assert_eq!(head.status(), 200);
    assert!(verdict(&head).starts_with("spam;"), "{}", verdict(&head));
    assert_eq!(origin.requests().len(), 1);
}

/// A stale blocked object served because revalidation failed (`stale-if-error`, a 503) is
/// still its 403, and so is the stale object served while revalidating in the background.
#[tokio::test]
async fn a_stale_blocked_object_served_on_error_or_while_revalidating_is_blocked() {
    let origin = Origin::respond(|r| {
        let cc = if r.target().ends_with("/sie") {
            "max-age=0, stale-if-error=600"
        } else {
            "max-age=0, stale-while-revalidate=600"
        };
        if r.header("if-none-match").is_some() && r.target().ends_with("/sie") {
            return b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec();
        }
        response(
            "text/html; charset=utf-8",
            &format!("Cache-Control: {cc}\r\nETag: \"s\"\r\n"),
            SPAM.as_bytes(),
        )
    })
    .await;
    let sluice = start(config()).await;
    for path in ["/sie", "/swr"] {
        let url = origin.url(path);
        assert_eq!(
            sluice.fetch(&url).await.status(),
            403,
            "{path}: first fetch"
        );
        let stale = sluice.fetch(&url).await;
        assert_eq!(stale.status(), 403, "{path}: {}", stale.text());
        assert!(verdict(&stale).starts_with("spam;"), "{}", verdict(&stale));
        let cs = stale.header("cache-status").unwrap_or("").to_string();
        let want = if path == "/sie" {
            "stale-if-error"
        } else {
            "hit"
        };
        assert!(cs.contains(want), "{path}: Cache-Status {cs:?}");
    }
}

/// Regression: in observe mode a stale-while-revalidate refresh answered with a new 200 is
/// stored only after its body has streamed and its copy been scanned, but the background
/// revalidation released the key as soon as it had read the body. A request in between found
/// the stale object still stored and, the key being free, sent a second refresh upstream
/// (and a request waiting on the key looked up the old object). The key now stays taken
/// until the refreshed object is stored, as on a miss.
#[tokio::test]
async fn an_observed_stale_while_revalidate_refresh_holds_the_key_until_it_is_stored() {
    // Big enough that scanning the refreshed copy takes a while after its body has streamed.
    let old = big_text(2 << 20);
    let new: Vec<u8> = old.iter().map(|b| b.to_ascii_uppercase()).collect();
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (n, refreshed) = (served.clone(), new.clone());
    let origin = Origin::respond(move |_| {
        if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            let cc = "Cache-Control: max-age=0, stale-while-revalidate=600\r\nETag: \"1\"\r\n";
            response("text/plain", cc, &old)
        } else {
            response(
                "text/plain",
                "Cache-Control: max-age=600\r\nETag: \"2\"\r\n",
                &refreshed,
            )
        }
    })
    .await;
    let mut cfg = config();
    cfg.scan.mode = ScanMode::Observe;
    let sluice = start(cfg).await;
    let proxy = sluice.running.as_ref().expect("running").proxy.clone();
    let url = origin.url("/swr-observed");
    let key = sluice::cache::key::CacheKey::parse(&url).expect("key");
    assert_eq!(sluice.fetch(&url).await.status(), 200);
    // The miss holds its key until the observed copy is stored.
    common::cache::wait_until("the first store", || proxy.collapser.in_flight() == 0).await;
    let stale = sluice.fetch(&url).await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.body.len(), 2 << 20);
    common::cache::assert_cache_status(&stale, "hit");
    // Watch the key closely: the moment it is released, the refresh must be stored.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while proxy.collapser.in_flight() != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the refresh ends");
        tokio::task::yield_now().await;
    }
    let stored = match proxy.cache.get(&key, &http::HeaderMap::new()).await {
        Ok(sluice::cache::store::Found::Hit(hit)) => hit
            .meta
            .headers
            .get("etag")
            .map(|v| v.to_str().unwrap_or("").to_string()),
        _ => None,
    };
    assert_eq!(
        stored.as_deref(),
        Some("\"2\""),
        "the key was released before the refreshed object was stored"
    );
    for _ in 0..3 {
        let r = sluice.fetch(&url).await;
        assert_eq!(r.body, new);
    }
    assert_eq!(origin.requests().len(), 2, "exactly one refresh");
}

//! Hostile origins (RFC 9112 §6, §11): ambiguous or malformed responses end in a 502 with
//! `Proxy-Status`, are never cached, and the connection they came on is never reused, so
//! bytes after a response can never become the answer to another request.

use crate::common;

use common::attacks::{response_attacks, Expect};
use common::{config, get, start, Origin};

/// An origin that answers `/bad/<case>` with that case's bytes and anything else with
/// `fresh <connection>`; connections stay open for more requests.
async fn hostile_origin() -> Origin {
    Origin::start(|mut conn| async move {
        let cases = response_attacks();
        while let Some(req) = conn.read_request().await {
            let answer = match req.target().strip_prefix("/bad/") {
                Some(name) => cases
                    .iter()
                    .find(|(n, ..)| *n == name)
                    .map(|(.., bytes)| bytes.clone())
                    .unwrap_or_default(),
                None => common::ok(&format!("fresh {}", conn.index)),
            };
            if conn.write(&answer).await.is_err() {
                return;
            }
        }
    })
    .await
}

fn hits(origin: &Origin, path: &str) -> usize {
    origin
        .requests()
        .iter()
        .filter(|r| r.target() == path)
        .count()
}

#[tokio::test]
async fn every_hostile_response_is_refused_uncached_and_its_connection_dropped() {
    let origin = hostile_origin().await;
    let mut cfg = config();
    // A case that the proxy wrongly reads to the end would otherwise wait minutes.
    cfg.upstream.body_timeout = std::time::Duration::from_secs(1);
    cfg.upstream.response_timeout = std::time::Duration::from_secs(1);
    let sluice = start(cfg).await;
    let mut failures = Vec::new();
    let cases = response_attacks();
    for (name, expect, _) in &cases {
        let path = format!("/bad/{name}");
        for round in 1..=2 {
            let mut c = sluice.client().await;
            c.send(get(&origin.url(&path))).await;
            let got = c.try_read_response().await;
            let ok = match (expect, &got) {
                (Expect::BadGateway, Ok(r)) => {
                    r.status() == 502 && r.proxy_status().starts_with("sluice;")
                }
                (Expect::Relayed(status, body), Ok(r)) => {
                    r.status() == *status && r.text() == *body
                }
                (_, Err(_)) => false,
            };
            if !ok {
                let got = got.map(|r| (r.status(), r.proxy_status().to_string(), r.text()));
                failures.push(format!(
                    "{name} (round {round}): want {expect:?}, got {got:?}"
                ));
            }
        }
        // Not cached: the second request went to the origin again. (A well-framed response
        // followed by stray bytes may be cached: it is what the origin said.)
        if *expect == Expect::BadGateway && hits(&origin, &path) != 2 {
            failures.push(format!(
                "{name}: origin saw {} requests, want 2",
                hits(&origin, &path)
            ));
        }
        // Whatever followed the response is not the answer to the next request.
        let next = sluice.fetch(&origin.url(&format!("/next/{name}"))).await;
        if next.status() != 200 || !next.text().starts_with("fresh") {
            failures.push(format!(
                "{name}: the next request got {} {:?}",
                next.status(),
                next.text()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn an_endless_flood_of_interim_responses_ends_at_the_response_timeout() {
    let origin = Origin::start(|mut conn| async move {
        if conn.read_request().await.is_none() {
            return;
        }
        let burst = "HTTP/1.1 100 Continue\r\n\r\n".repeat(100);
        while conn.write(&burst).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let mut cfg = config();
    cfg.upstream.response_timeout = std::time::Duration::from_millis(400);
    let sluice = start(cfg).await;
    let started = std::time::Instant::now();
    let r = sluice.fetch(&origin.url("/flood")).await;
    common::assert_proxy_error(&r, 504, "http_response_timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn a_response_head_dripped_byte_by_byte_ends_at_the_response_timeout() {
    let origin = Origin::start(|mut conn| async move {
        if conn.read_request().await.is_none() {
            return;
        }
        for b in b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 2\r\n\r\nok" {
            if conn.write([*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    let mut cfg = config();
    cfg.upstream.response_timeout = std::time::Duration::from_millis(400);
    let sluice = start(cfg).await;
    let r = sluice.fetch(&origin.url("/drip")).await;
    common::assert_proxy_error(&r, 504, "http_response_timeout");
    // Nothing was stored: the next request goes to the origin again.
    let _ = sluice.fetch(&origin.url("/drip")).await;
    assert_eq!(hits(&origin, "/drip"), 2);
}

#[tokio::test]
async fn a_close_delimited_response_is_relayed_and_its_connection_never_reused() {
    let origin = Origin::start(|mut conn| async move {
        let Some(req) = conn.read_request().await else {
            return;
        };
        if req.target() == "/until-close" {
            // No length, no chunking: the body ends when the origin closes.
            let _ = conn
                .write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
                .await;
            return;
        }
        let _ = conn
            .write(common::ok(&format!("fresh {}", conn.index)))
            .await;
    })
    .await;
    let sluice = start(config()).await;
    let r = sluice.fetch(&origin.url("/until-close")).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "until close"));
    let next = sluice.fetch(&origin.url("/next")).await;
    assert_eq!(
        next.text(),
        "fresh 1",
        "a new connection for the next request"
    );
    assert_eq!(
        sluice.idle_upstreams(),
        0,
        "the one-shot origin's connection is closed"
    );
}

#[tokio::test]
async fn a_head_response_with_a_body_does_not_answer_the_next_request() {
    let origin = Origin::start(|mut conn| async move {
        while let Some(req) = conn.read_request().await {
            let answer = if req.method() == "HEAD" {
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison".to_string()
            } else {
                String::from_utf8_lossy(&common::ok(&format!("fresh {}", conn.index))).into_owned()
            };
            if conn.write(answer).await.is_err() {
                return;
            }
        }
    })
    .await;
    let sluice = start(config()).await;
    let mut c = sluice.client().await;
    c.send(common::request("HEAD", &origin.url("/head"), &[], b""))
        .await;
    let r = c.try_read_response_to("HEAD").await.expect("a HEAD answer");
    assert_eq!(r.status(), 200);
    for i in 0..3 {
        let next = sluice.fetch(&origin.url(&format!("/next-{i}"))).await;
        assert!(next.text().starts_with("fresh"), "{:?}", next.text());
    }
}

#[tokio::test]
async fn a_response_head_just_over_upstream_max_header_size_is_a_502_and_just_under_passes() {
    let origin = Origin::respond(|req| {
        let kib: usize = req.target().trim_start_matches('/').parse().unwrap_or(0);
        let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..kib {
            r.extend(format!("X-Filler-{i:04}: {}\r\n", "v".repeat(1024 - 18)).bytes());
        }
        r.extend(b"Content-Length: 2\r\n\r\nok");
        r
    })
    .await;
    let mut cfg = config();
    cfg.upstream.max_header_size = "16KiB".parse().expect("size");
    let sluice = start(cfg).await;
    assert_eq!(sluice.fetch(&origin.url("/15")).await.status(), 200);
    let r = sluice.fetch(&origin.url("/17")).await;
    common::assert_proxy_error(&r, 502, "http_response_header_section_size");
}

/// Interim responses (103 Early Hints, an unasked 100) are not the answer: the client gets
/// the final response, and the connection stays in step for the next request.
#[tokio::test]
async fn interim_responses_before_the_final_one_are_not_taken_for_it() {
    let origin = Origin::respond(|r| {
        let mut v = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
                      HTTP/1.1 100 Continue\r\n\r\n"
            .to_vec();
        v.extend(common::ok(&format!("final {}", r.target())));
        v
    })
    .await;
    for mode in [
        sluice::config::ScanMode::Enforce,
        sluice::config::ScanMode::Observe,
    ] {
        let mut cfg = config();
        cfg.scan.mode = mode;
        let sluice = start(cfg).await;
        let mut c = sluice.client().await;
        for p in ["/a", "/b"] {
            let r = c.exchange(get(&origin.url(p))).await;
            assert_eq!(
                (r.status(), r.text()),
                (200, format!("final {p}")),
                "{mode:?}"
            );
        }
    }
    assert_eq!(origin.connections(), 2, "one pooled connection per sluice");
}

/// A HEAD that goes to the origin (not answered from the cache) is relayed with the
/// origin's own `Content-Length` (RFC 9110 §9.3.2, §8.6: the length a GET would have), not
/// the length of the empty body the proxy sends, and without any body bytes, so the
/// client's connection goes on with the next response.
#[tokio::test]
async fn a_relayed_head_response_keeps_the_origins_content_length_and_sends_no_body() {
    let origin = Origin::start(|mut conn| async move {
        while let Some(req) = conn.read_request().await {
            let answer = if req.method() == "HEAD" {
                "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 1234\r\n\r\n"
                    .to_string()
            } else {
                String::from_utf8_lossy(&common::ok(&format!("fresh {}", conn.index))).into_owned()
            };
            if conn.write(answer).await.is_err() {
                return;
            }
        }
    })
    .await;
    let sluice = start(config()).await;
    let mut c = sluice.client().await;
    for round in 0..2 {
        c.send(common::request("HEAD", &origin.url("/big"), &[], b""))
            .await;
        let r = c.try_read_response_to("HEAD").await.expect("a HEAD answer");
        assert_eq!(r.status(), 200, "round {round}");
        assert_eq!(r.header("content-length"), Some("1234"), "round {round}");
        assert!(r.body.is_empty(), "round {round}");
    }
    // The same client connection carries the next exchange: no body followed the HEADs.
    let next = c.exchange(get(&origin.url("/next"))).await;
    assert!(next.text().starts_with("fresh"), "{:?}", next.text());
    assert_eq!(
        hits(&origin, "/big"),
        2,
        "no-store: both HEADs went upstream"
    );
}

//! What crosses the proxy: hop-by-hop fields removed both ways, `Via` added both ways,
//! `Host` from the absolute URL, `Max-Forwards`/TRACE, bodies of every method byte for
//! byte (streamed, both directions), truncation visible to the client, and the 400s for
//! requests a forward proxy cannot serve.

use crate::common;

use common::{get, request, start_default, Origin};

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "x-named-by-connection",
];

#[tokio::test]
async fn hop_by_hop_request_fields_do_not_reach_the_origin() {
    let origin = Origin::ok("ok").await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let r = c
        .exchange(request(
            "GET",
            &origin.url("/h"),
            &[
                "Connection: keep-alive, X-Named-By-Connection",
                "X-Named-By-Connection: secret",
                "Proxy-Connection: keep-alive",
                "Keep-Alive: timeout=5",
                "TE: trailers",
                "Trailer: X-Checksum",
                "Upgrade: websocket",
                "Proxy-Authorization: Basic dXNlcjpwYXNz",
                "X-End-To-End: kept",
            ],
            b"",
        ))
        .await;
    assert_eq!(r.status(), 200);
    let seen = origin.last_request();
    for name in HOP_BY_HOP {
        assert!(
            !seen.head.has(name),
            "{name} reached the origin: {:?}",
            seen.head.headers
        );
    }
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
}

#[tokio::test]
async fn the_origin_sees_the_clients_fields_in_the_clients_order_and_case() {
    let origin = Origin::ok("ok").await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    // A browser's order, with the hop-by-hop fields early (where browsers put them).
    let r = c
        .exchange(request(
            "GET",
            &origin.url("/order"),
            &[
                "Proxy-Connection: keep-alive",
                "Upgrade-Insecure-Requests: 1",
                "TE: trailers",
                "User-Agent: Mozilla/5.0",
                "Accept: text/html",
                "Cookie: a=1",
                "Cookie: b=2",
                "Accept-Language: en-GB",
            ],
            b"",
        ))
        .await;
    assert_eq!(r.status(), 200);
    let seen = origin.last_request();
    let names: Vec<&str> = seen
        .head
        .headers
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !k.eq_ignore_ascii_case("via"))
        .collect();
    assert_eq!(
        names,
        [
            "Host",
            "Upgrade-Insecure-Requests",
            "User-Agent",
            "Accept",
            "Cookie",
            "Cookie",
            "Accept-Language"
        ]
    );
    assert_eq!(seen.head.all("cookie"), ["a=1", "b=2"]);
}

#[tokio::test]
async fn hop_by_hop_response_fields_do_not_reach_the_client() {
    let origin = Origin::respond(|_| {
        b"HTTP/1.1 200 OK\r\n\
          Connection: X-Named-By-Connection\r\n\
          X-Named-By-Connection: secret\r\n\
          Keep-Alive: timeout=5, max=100\r\n\
          Proxy-Connection: keep-alive\r\n\
          Proxy-Authenticate: Basic realm=\"parent\"\r\n\
          Trailer: X-Checksum\r\n\
          Upgrade: h2c\r\n\
          X-End-To-End: kept\r\n\
          Content-Length: 2\r\n\r\nok"
            .to_vec()
    })
    .await;
    let sluice = start_default().await;
    let r = sluice.fetch(&origin.url("/h")).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "ok"));
    for name in HOP_BY_HOP {
        assert!(
            !r.head.has(name),
            "{name} reached the client: {:?}",
            r.head.headers
        );
    }
    assert_eq!(r.header("x-end-to-end"), Some("kept"));
}

#[tokio::test]
async fn via_is_added_in_both_directions() {
    let origin = Origin::respond(|_| {
        b"HTTP/1.1 200 OK\r\nVia: 1.1 origin-cdn\r\nContent-Length: 0\r\n\r\n".to_vec()
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let r = c
        .exchange(request("GET", &origin.url("/"), &["Via: 1.0 fred"], b""))
        .await;
    let upstream_via = origin.last_request().header("via").map(str::to_string);
    let expected = format!("1.0 fred, {}", sluice.request_via());
    assert_eq!(upstream_via.as_deref(), Some(expected.as_str()));
    assert_eq!(r.header("via"), Some("1.1 origin-cdn, 1.1 sluice"));
}

/// Several `Via` lines are one list (RFC 9110 §5.3): every earlier hop reaches the next one,
/// with this hop last, in both directions.
#[tokio::test]
async fn via_keeps_every_earlier_line() {
    let origin = Origin::respond(|_| {
        b"HTTP/1.1 200 OK\r\nVia: 1.1 o1\r\nVia: 1.1 o2\r\nContent-Length: 0\r\n\r\n".to_vec()
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let r = c
        .exchange(request(
            "GET",
            &origin.url("/"),
            &["Via: 1.1 c1", "Via: 1.1 c2"],
            b"",
        ))
        .await;
    let seen = origin.last_request();
    let hop = sluice.request_via();
    assert!(hop.starts_with("1.1 sluice (id="), "{hop}");
    assert_eq!(seen.head.all("via"), ["1.1 c1", "1.1 c2", hop.as_str()]);
    assert_eq!(r.head.all("via"), ["1.1 o1", "1.1 o2", "1.1 sluice"]);
}

#[tokio::test]
async fn host_is_rewritten_from_the_absolute_url_and_the_target_is_origin_form() {
    let origin = Origin::ok("ok").await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let url = origin.url("/p/q?x=1&y=2");
    let req = format!("GET {url} HTTP/1.1\r\nHost: wrong.example\r\n\r\n");
    assert_eq!(c.exchange(req).await.status(), 200);
    let seen = origin.last_request();
    assert_eq!(seen.target(), "/p/q?x=1&y=2");
    assert_eq!(seen.version(), "HTTP/1.1");
    assert_eq!(seen.head.all("host"), [origin.addr().to_string()]);
}

#[tokio::test]
async fn options_with_max_forwards_zero_is_answered_by_the_proxy() {
    let origin = Origin::ok("ok").await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let r = c
        .exchange(request(
            "OPTIONS",
            &origin.url("/"),
            &["Max-Forwards: 0"],
            b"",
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.header("allow").is_some(), "the proxy lists its methods");
    assert_eq!(origin.connections(), 0, "nothing was forwarded");
}

#[tokio::test]
async fn max_forwards_is_decremented_when_forwarded() {
    let origin = Origin::ok("ok").await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let r = c
        .exchange(request(
            "OPTIONS",
            &origin.url("/"),
            &["Max-Forwards: 5"],
            b"",
        ))
        .await;
    assert_eq!(r.status(), 200);
    let seen = origin.last_request();
    assert_eq!(
        (seen.method(), seen.header("max-forwards")),
        ("OPTIONS", Some("4"))
    );
}

#[tokio::test]
async fn trace_is_refused_with_405() {
    let origin = Origin::ok("ok").await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let r = c
        .exchange(request(
            "TRACE",
            &origin.url("/"),
            &["Max-Forwards: 3"],
            b"",
        ))
        .await;
    assert_eq!(r.status(), 405);
    assert!(r.header("allow").is_some());
    assert_eq!(origin.connections(), 0);
}

/// Deterministic pseudo-random bytes (no two 4 KiB blocks alike).
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn a_20_mib_download_arrives_byte_identical() {
    let body = pattern(20 << 20);
    let expected = body.clone();
    let origin = Origin::start(move |mut conn| {
        let body = body.clone();
        async move {
            while conn.read_request().await.is_some() {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                if conn.write(head).await.is_err() || conn.write(&body).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let sluice = start_default().await;
    let r = sluice.fetch(&origin.url("/big")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body.len(), expected.len());
    assert!(r.body == expected, "body differs");
}

#[tokio::test]
async fn a_1_mb_chunked_upload_arrives_byte_for_byte() {
    let origin = Origin::respond(|req| common::ok(&req.body.len().to_string())).await;
    let sluice = start_default().await;
    let body = pattern(1_000_000);
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        origin.url("/up"),
        origin.addr()
    )
    .into_bytes();
    for chunk in body.chunks(65_000) {
        req.extend(format!("{:x}\r\n", chunk.len()).bytes());
        req.extend(chunk);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    let mut c = sluice.client().await;
    let r = c.exchange(req).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "1000000"));
    assert!(origin.last_request().body == body, "upload differs");
}

#[tokio::test]
async fn a_content_length_upload_arrives_byte_for_byte() {
    let origin = Origin::respond(|req| common::ok(&req.body.len().to_string())).await;
    let sluice = start_default().await;
    let body = pattern(1_000_000);
    let mut c = sluice.client().await;
    let r = c
        .exchange(request("PUT", &origin.url("/up"), &[], &body))
        .await;
    assert_eq!((r.status(), r.text().as_str()), (200, "1000000"));
    let seen = origin.last_request();
    assert_eq!(seen.header("content-length"), Some("1000000"));
    assert!(seen.body == body, "upload differs");
}

#[tokio::test]
async fn bodies_of_every_method_are_forwarded() {
    let origin = Origin::respond(|req| {
        common::ok(&format!(
            "{} {}",
            req.method(),
            String::from_utf8_lossy(&req.body)
        ))
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "GET"] {
        let body = format!("body of {method}");
        let r = c
            .exchange(request(method, &origin.url("/m"), &[], body.as_bytes()))
            .await;
        assert_eq!(r.text(), format!("{method} {body}"));
    }
}

/// A cut body must never look complete: in enforce mode nothing was sent yet, so the client
/// gets a 502 `http_response_incomplete`; in observe mode the head went out, so the
/// connection is cut mid-body.
async fn assert_truncation_is_visible(head: &'static [u8], mode: sluice::config::ScanMode) {
    let origin = Origin::start(move |mut conn| async move {
        if conn.read_request().await.is_some() {
            let _ = conn.write(head).await;
        }
    })
    .await;
    let mut cfg = common::config();
    cfg.scan.mode = mode;
    let sluice = common::start(cfg).await;
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/cut"))).await;
    match c.try_read_response().await {
        Err(common::wire::WireError::Incomplete(_)) => {
            assert_eq!(
                mode,
                sluice::config::ScanMode::Observe,
                "enforce mode should answer 502"
            )
        }
        Ok(r) if r.status() == 502 => {
            assert_eq!(mode, sluice::config::ScanMode::Enforce);
            assert!(r
                .header("proxy-status")
                .unwrap_or("")
                .contains("http_response_incomplete"));
        }
        Ok(r) => panic!(
            "a truncated body was delivered as complete ({} bytes)",
            r.body.len()
        ),
        Err(e) => panic!("unexpected: {e}"),
    }
}

#[tokio::test]
async fn a_truncated_upstream_body_reaches_the_client_incomplete() {
    const HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    for mode in [
        sluice::config::ScanMode::Enforce,
        sluice::config::ScanMode::Observe,
    ] {
        assert_truncation_is_visible(HEAD, mode).await;
    }
}

#[tokio::test]
async fn a_truncated_chunked_upstream_body_reaches_the_client_incomplete() {
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    for mode in [
        sluice::config::ScanMode::Enforce,
        sluice::config::ScanMode::Observe,
    ] {
        assert_truncation_is_visible(HEAD, mode).await;
    }
}

/// Regression: an HTTP/1.0 client reads a body without a length until the connection
/// ends, so the orderly close that followed a cut upstream body made the truncated body
/// look complete. The cut now ends in a reset, in observe mode and for a body over
/// `scan.max_body` in enforce mode alike (both stream).
#[tokio::test]
async fn a_truncated_body_to_an_http10_client_ends_in_a_reset_not_a_clean_close() {
    use tokio::io::AsyncReadExt;
    let origin = Origin::start(|mut conn| async move {
        if conn.read_request().await.is_some() {
            let chunk = "x".repeat(4096);
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            let _ = conn.write(format!("{head}1000\r\n{chunk}\r\n")).await;
        }
    })
    .await;
    for mode in [
        sluice::config::ScanMode::Enforce,
        sluice::config::ScanMode::Observe,
    ] {
        let mut cfg = common::config();
        cfg.scan.mode = mode;
        cfg.scan.max_body = "1KiB".parse().expect("size");
        let sluice = common::start(cfg).await;
        let mut s = sluice.http10_get(&origin, "/cut").await;
        let (mut got, mut buf) = (Vec::new(), [0u8; 8192]);
        let end = tokio::time::timeout(common::LIMIT, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => return Ok(()),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .expect("the connection ends");
        assert!(
            got.starts_with(b"HTTP/1.0 200"),
            "{mode:?}: the head was streamed"
        );
        match end {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!(
                "{mode:?}: a cut body ended with {other:?} after {} bytes, as if complete",
                got.len()
            ),
        }
    }
}

#[tokio::test]
async fn origin_form_request_gets_400_with_a_clear_body() {
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let r = c
        .exchange("GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await;
    common::assert_proxy_error(&r, 400, "http_request_error");
    assert!(r.text().contains("absolute form"), "body: {}", r.text());
}

#[tokio::test]
async fn unsupported_scheme_gets_400() {
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let r = c
        .exchange("GET ftp://127.0.0.1/file HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().contains("ftp"), "body: {}", r.text());
}

/// A URL port that is not digits within u16 is a 400, not a request to port 80 (which the
/// `http` crate's "no port" for an unparsable one would have made it).
#[tokio::test]
async fn a_url_with_a_malformed_port_gets_400() {
    let sluice = start_default().await;
    for port in ["80abc", "65616"] {
        let mut c = sluice.client().await;
        let r = c
            .exchange(format!(
                "GET http://127.0.0.1:{port}/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            ))
            .await;
        common::assert_proxy_error(&r, 400, "http_request_error");
        assert!(r.text().contains("port"), "body: {}", r.text());
    }
}

#[tokio::test]
async fn via_names_the_version_each_message_arrived_in() {
    let origin = Origin::respond(|_| {
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok".to_vec()
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let r = c
        .exchange(format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\n\r\n",
            origin.url("/"),
            origin.addr()
        ))
        .await;
    assert_eq!(r.header("via"), Some("1.0 sluice"));
    let hop = sluice.request_via().replacen("1.1 ", "1.0 ", 1);
    assert_eq!(origin.last_request().header("via"), Some(hop.as_str()));
}

#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
    let origin = Origin::respond(|req| common::ok(req.target())).await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    // CL says 4 bytes ("0\r\n\r"), chunked says the body ends at "0\r\n\r\n"; a desync would
    // make "GET /smuggled" a second request to the origin.
    let smuggled = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
        origin.url("/smuggled")
    );
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
        origin.url("/front"),
        origin.addr()
    );
    c.send(req).await;
    let _ = c.try_read_response().await;
    let _ = c.try_read_response().await;
    for seen in origin.requests() {
        assert!(
            !seen.has_both_lengths(),
            "the origin saw both Content-Length and Transfer-Encoding"
        );
        assert!(
            seen.body.windows(8).all(|w| w != b"smuggled"),
            "request bytes ended up in another request's body"
        );
    }
}

//! Keep-alive on both sides of the proxy (issue 3, "the heart of the issue"): pooled and
//! reused upstream connections, HTTP/1.0 origins, `Connection: close`, dead pooled
//! connections and the one safe retry; persistent and pipelined client connections.

use crate::common;

use common::{get, request, start_default, Origin};

#[tokio::test]
async fn sequential_requests_share_one_origin_connection() {
    let origin = Origin::ok("hello").await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    for path in ["/a", "/b"] {
        let r = c.exchange(get(&origin.url(path))).await;
        assert_eq!((r.status(), r.text().as_str()), (200, "hello"));
    }
    // A different client connection uses the same pooled upstream connection too.
    assert_eq!(sluice.fetch(&origin.url("/c")).await.status(), 200);
    assert_eq!(origin.requests().len(), 3);
    assert_eq!(
        origin.connections(),
        1,
        "every request should reuse the pooled connection"
    );
}

#[tokio::test]
async fn empty_and_chunked_bodies_also_return_the_connection_to_the_pool() {
    let origin = Origin::respond(|req| match req.target() {
        _ if req.method() == "HEAD" => {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
        }
        "/empty" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        "/zero" => b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    for path in ["/empty", "/zero", "/chunked", "/empty"] {
        let r = c.exchange(get(&origin.url(path))).await;
        assert!(
            r.status() == 200 || r.status() == 204,
            "{path}: {}",
            r.status()
        );
    }
    c.send(request("HEAD", &origin.url("/chunked"), &[], b""))
        .await;
    let head = c.try_read_response_to("HEAD").await.expect("HEAD response");
    assert_eq!(head.status(), 200);
    let r = c.exchange(get(&origin.url("/zero"))).await;
    assert_eq!(
        r.status(),
        200,
        "the connection is still in sync after HEAD"
    );
    let seen: Vec<(usize, String, String)> = origin
        .requests()
        .iter()
        .map(|r| (r.conn, r.method().to_string(), r.target().to_string()))
        .collect();
    assert_eq!(
        origin.connections(),
        1,
        "all six requests on one connection: {seen:?}"
    );
}

#[tokio::test]
async fn http10_keepalive_origin_with_content_length_is_reused() {
    let origin = Origin::respond(|_| {
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok".to_vec()
    })
    .await;
    let sluice = start_default().await;
    for path in ["/1", "/2", "/3"] {
        let r = sluice.fetch(&origin.url(path)).await;
        assert_eq!((r.status(), r.text().as_str()), (200, "ok"));
    }
    assert_eq!(
        origin.connections(),
        1,
        "the HTTP/1.0 keep-alive connection is reused"
    );
}

#[tokio::test]
async fn http10_response_without_length_is_read_to_close_and_not_reused() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let expected = body.clone();
    let origin = Origin::start(move |mut conn| {
        let body = body.clone();
        async move {
            if conn.read_request().await.is_some() {
                let _ = conn
                    .write(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
                    .await;
                let _ = conn.write(&body).await;
            }
            // Returning closes the connection: the end of the body.
        }
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let r = c.exchange(get(&origin.url("/a"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body.len(), expected.len());
    assert!(r.body == expected, "close-delimited body delivered intact");
    // The client connection stays usable (the proxy re-framed the body), and the next
    // request needs a new origin connection.
    let r = c.exchange(get(&origin.url("/b"))).await;
    assert_eq!(r.body.len(), expected.len());
    assert_eq!(origin.connections(), 2);
}

#[tokio::test]
async fn connection_close_from_the_origin_is_honoured() {
    // The origin says `Connection: close` but leaves the socket open: only the header can
    // tell the proxy not to reuse it.
    let origin = Origin::respond(|_| {
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec()
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    for path in ["/1", "/2"] {
        let r = c.exchange(get(&origin.url(path))).await;
        assert_eq!((r.status(), r.text().as_str()), (200, "ok"));
        assert!(
            r.header("connection").is_none(),
            "the origin's Connection is not forwarded"
        );
    }
    assert_eq!(origin.connections(), 2);
    let conns: Vec<usize> = origin.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 1], "one request per origin connection");
}

#[tokio::test]
async fn an_idle_pooled_connection_closed_by_the_origin_is_not_a_failure() {
    // Connection 0 answers once (keep-alive) and then closes while idle.
    let origin = Origin::start(|mut conn| async move {
        while let Some(req) = conn.read_request().await {
            let body = format!("conn{} {}", conn.index, req.target());
            let _ = conn.write(common::ok(&body)).await;
            if conn.index == 0 {
                return;
            }
        }
    })
    .await;
    let sluice = start_default().await;
    assert_eq!(sluice.fetch(&origin.url("/1")).await.text(), "conn0 /1");
    let r = sluice.fetch(&origin.url("/2")).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "conn1 /2"));
    assert_eq!(origin.connections(), 2);
}

/// Connection 0 answers its first request, then reads the second one completely and closes
/// without answering: the race where the origin's idle timeout fires just as a reused
/// connection carries a new request. Later connections answer normally.
async fn origin_dropping_second_request() -> Origin {
    Origin::start(|mut conn| async move {
        let mut n = 0;
        while let Some(req) = conn.read_request().await {
            n += 1;
            if conn.index == 0 && n == 2 {
                return;
            }
            let body = format!("conn{} {} {}", conn.index, req.method(), req.body.len());
            let _ = conn.write(common::ok(&body)).await;
        }
    })
    .await
}

#[tokio::test]
async fn idempotent_get_is_retried_once_when_a_reused_connection_dies_unanswered() {
    let origin = origin_dropping_second_request().await;
    let sluice = start_default().await;
    assert_eq!(sluice.fetch(&origin.url("/1")).await.text(), "conn0 GET 0");
    let r = sluice.fetch(&origin.url("/2")).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "conn1 GET 0"));
    let seen: Vec<(usize, String)> = origin
        .requests()
        .iter()
        .map(|r| (r.conn, r.target().to_string()))
        .collect();
    assert_eq!(
        seen,
        [(0, "/1".into()), (0, "/2".into()), (1, "/2".into())],
        "the GET was replayed once, on a fresh connection"
    );
    let names = |i: usize| -> Vec<String> {
        let requests = origin.requests();
        requests[i]
            .head
            .headers
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    };
    assert_eq!(names(2), names(1), "the replay's field names as first sent");
    assert!(names(2).iter().any(|n| n == "Via"), "{:?}", names(2));
}

/// As above, but the origin resets the reused connection (RST, as a server whose idle
/// timer fired just as the request arrived does when it has closed the socket) instead of
/// closing it with FIN: the read fails with ECONNRESET, not EOF, before any answer. A
/// GET must still be replayed once on a fresh connection, as Squid and browsers do, not
/// turned into a 502.
#[tokio::test]
async fn idempotent_get_is_retried_once_when_a_reused_connection_is_reset_unanswered() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind origin");
    let origin = Origin::serve(
        listener,
        |s| async move {
            // Closing then sends RST, not FIN.
            s.set_zero_linger().expect("SO_LINGER 0");
            Some(Box::new(s) as Box<dyn common::origin::Io>)
        },
        |mut conn| async move {
            let mut n = 0;
            while let Some(req) = conn.read_request().await {
                n += 1;
                if conn.index == 0 && n == 2 {
                    return;
                }
                let body = format!("conn{} {}", conn.index, req.target());
                let _ = conn.write(common::ok(&body)).await;
            }
        },
    );
    let sluice = start_default().await;
    assert_eq!(sluice.fetch(&origin.url("/1")).await.text(), "conn0 /1");
    let r = sluice.fetch(&origin.url("/2")).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "conn1 /2"));
    let seen: Vec<(usize, String)> = origin
        .requests()
        .iter()
        .map(|r| (r.conn, r.target().to_string()))
        .collect();
    assert_eq!(
        seen,
        [(0, "/1".into()), (0, "/2".into()), (1, "/2".into())],
        "the GET was replayed once, on a fresh connection"
    );
}

/// An origin that resets a fresh connection before answering: a 502 that says the
/// connection ended before the response (as for a FIN), not a protocol error.
#[tokio::test]
async fn a_fresh_connection_reset_before_any_answer_is_a_502_response_incomplete() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind origin");
    let origin = Origin::serve(
        listener,
        |s| async move {
            s.set_zero_linger().expect("SO_LINGER 0");
            Some(Box::new(s) as Box<dyn common::origin::Io>)
        },
        |mut conn| async move {
            let _ = conn.read_request().await;
        },
    );
    let sluice = start_default().await;
    let r = sluice.fetch(&origin.url("/reset")).await;
    assert_eq!(r.status(), 502);
    assert!(
        r.proxy_status().contains("error=http_response_incomplete"),
        "{:?}",
        r.proxy_status()
    );
}

#[tokio::test]
async fn post_with_body_is_not_retried_when_a_reused_connection_dies() {
    let origin = origin_dropping_second_request().await;
    let sluice = start_default().await;
    assert_eq!(sluice.fetch(&origin.url("/1")).await.status(), 200);
    let mut c = sluice.client().await;
    let r = c
        .exchange(request("POST", &origin.url("/submit"), &[], b"payload"))
        .await;
    common::assert_proxy_error(&r, 502, "http_response_incomplete");
    let posts = origin
        .requests()
        .iter()
        .filter(|r| r.method() == "POST")
        .count();
    assert_eq!(posts, 1, "a POST is never replayed");
    assert_eq!(origin.connections(), 1);
}

#[tokio::test]
async fn client_persistent_connection_serves_several_requests() {
    let origin = Origin::respond(|req| common::ok(req.target())).await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    for i in 0..5 {
        let path = format!("/item/{i}");
        let r = c.exchange(get(&origin.url(&path))).await;
        assert_eq!((r.status(), r.text()), (200, path));
        assert_eq!(r.version(), "HTTP/1.1");
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let origin = Origin::respond(|req| common::ok(req.target())).await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let mut batch = Vec::new();
    for p in ["/first", "/second", "/third"] {
        batch.extend(get(&origin.url(p)));
    }
    c.send(batch).await;
    for p in ["/first", "/second", "/third"] {
        let r = c.read_response().await;
        assert_eq!((r.status(), r.text().as_str()), (200, p));
    }
}

#[tokio::test]
async fn http10_client_with_connection_keep_alive_stays_open() {
    let origin = Origin::ok("ten").await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let req = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nConnection: keep-alive\r\n\r\n",
        origin.url("/x"),
        origin.addr()
    );
    for _ in 0..2 {
        let r = c.exchange(&req).await;
        assert_eq!((r.status(), r.text().as_str()), (200, "ten"));
        assert!(
            r.head.has_token("connection", "keep-alive"),
            "an HTTP/1.0 client is told the connection stays open: {:?}",
            r.head.headers
        );
    }
}

#[tokio::test]
async fn http10_client_with_proxy_connection_keep_alive_never_hangs() {
    let origin = Origin::ok("ten").await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let req = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nProxy-Connection: keep-alive\r\n\r\n",
        origin.url("/x"),
        origin.addr()
    );
    let r = c.exchange(&req).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "ten"));
    // Either honoured (a second request works) or closed after a complete response.
    if c.try_send(&req).await.is_ok() {
        match c.try_read_response().await {
            Ok(r) => assert_eq!(r.text(), "ten"),
            Err(common::wire::WireError::Closed) => {}
            Err(e) => panic!("second request got a broken answer: {e}"),
        }
    }
}

#[tokio::test]
async fn http10_client_gets_a_chunked_origin_body_delimited_by_close() {
    let origin = Origin::respond(|_| {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nten \r\n5\r\nchunk\r\n0\r\n\r\n"
            .to_vec()
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    c.send(format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\n\r\n",
        origin.url("/c"),
        origin.addr()
    ))
    .await;
    let r = c.read_response().await;
    assert_eq!(r.text(), "ten chunk");
    assert!(
        !r.head.has_token("transfer-encoding", "chunked"),
        "an HTTP/1.0 client cannot read chunked coding"
    );
}

#[tokio::test]
async fn a_client_connection_close_does_not_stop_upstream_reuse() {
    let origin = Origin::ok("ok").await;
    let sluice = start_default().await;
    for path in ["/1", "/2"] {
        let mut c = sluice.client().await;
        let r = c
            .exchange(request(
                "GET",
                &origin.url(path),
                &["Connection: close"],
                b"",
            ))
            .await;
        assert_eq!(r.status(), 200);
        assert!(
            c.closes_within(common::LIMIT).await,
            "the client asked for close"
        );
        assert!(!origin.last_request().head.has_token("connection", "close"));
    }
    assert_eq!(
        origin.connections(),
        1,
        "the client's Connection is hop-by-hop"
    );
}

#[tokio::test]
async fn pooled_upstream_connections_are_closed_after_the_upstream_idle_timeout() {
    let (closed, mut was_closed) = tokio::sync::mpsc::unbounded_channel();
    let origin = Origin::start(move |mut conn| {
        let closed = closed.clone();
        async move {
            while conn.read_request().await.is_some() {
                let _ = conn.write(common::ok("ok")).await;
            }
            let _ = closed.send(conn.index);
        }
    })
    .await;
    let mut cfg = common::config();
    cfg.upstream.idle_timeout = std::time::Duration::from_millis(200);
    let sluice = common::start(cfg).await;
    assert_eq!(sluice.fetch(&origin.url("/")).await.status(), 200);
    assert_eq!(sluice.idle_upstreams(), 1, "kept for reuse first");
    let which = tokio::time::timeout(common::LIMIT, was_closed.recv())
        .await
        .expect("the idle pooled connection is closed by the proxy")
        .expect("channel");
    assert_eq!(which, 0);
    assert_eq!(sluice.idle_upstreams(), 0);
    // And the next request simply opens a new one.
    assert_eq!(sluice.fetch(&origin.url("/")).await.status(), 200);
    assert_eq!(origin.connections(), 2);
}

/// An origin may answer before it has read the request body (a 401 or 413 to a big upload,
/// RFC 9112 §9.6 lets the client keep sending). The connection is still busy with the upload
/// until the body is through, so it must not be handed to the next request: that request
/// would queue behind an upload that may never finish.
#[tokio::test]
async fn a_connection_still_taking_an_upload_is_not_reused() {
    let origin = Origin::start(|mut conn| async move {
        if conn.index == 0 {
            if conn.read_head().await.is_none() {
                return;
            }
            if conn
                .write("HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno")
                .await
                .is_err()
            {
                return;
            }
            // Keep reading (and dropping) the upload, as a real server would.
            while conn.wire().read_some().await.is_ok_and(|b| !b.is_empty()) {}
            return;
        }
        while let Some(_req) = conn.read_request().await {
            if conn.write(common::origin::ok("fresh")).await.is_err() {
                return;
            }
        }
    })
    .await;
    let sluice = start_default().await;
    let mut uploader = sluice.client().await;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 1000000\r\n\r\nfirst bytes",
        origin.url("/upload"),
        origin.port()
    );
    uploader.send(head).await;
    let early = uploader.read_response().await;
    assert_eq!(early.status(), 401);
    // The upload stalls here; another request to the same origin must not wait for it.
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sluice.fetch(&origin.url("/next")),
    )
    .await
    .expect("the next request queued behind the stalled upload");
    assert_eq!((next.status(), next.text().as_str()), (200, "fresh"));
    assert_eq!(origin.connections(), 2);
    drop(uploader);
}

/// A chunked body with a trailer section ends at its trailers (RFC 9112 §7.1.2): hyper hands
/// them over as the last frame and, relaying to a client, stops polling the body there, so
/// a wrapper that waited for the frame after them never saw the end. In observe mode such a
/// response was then never scanned or stored, and its upstream connection never pooled.
#[tokio::test]
async fn a_chunked_body_with_trailers_ends_at_its_trailers() {
    let origin = Origin::respond(|req| {
        format!(
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\n\
             Trailer: X-Checksum\r\n\r\n5\r\nhello\r\n{:x}\r\n{}\r\n0\r\nX-Checksum: 1\r\n\r\n",
            req.target().len(),
            req.target()
        )
        .into_bytes()
    })
    .await;
    let mut cfg = common::config();
    cfg.scan.mode = sluice::config::ScanMode::Observe;
    let sluice = common::start(cfg).await;
    let mut c = sluice.client().await;
    for path in ["/a", "/b"] {
        let r = c.exchange(get(&origin.url(path))).await;
        assert_eq!((r.status(), r.text()), (200, format!("hello{path}")));
    }
    assert_eq!(
        origin.connections(),
        1,
        "the connection goes back to the pool once the trailers are read"
    );
    // Observe mode scans and stores after the body has streamed.
    assert_eq!(sluice.stored(&origin.url("/a")).await.text(), "hello/a");
    assert_eq!(origin.requests().len(), 2);
}

/// Pipelined requests answered from different places (a fresh hit, a HEAD from the stored
/// GET, the origin, a proxy error, an upload) come back in order, each framed for its
/// method, and the connection stays in sync behind them.
#[tokio::test]
async fn pipelined_hits_misses_and_errors_keep_their_order_and_framing() {
    let origin = Origin::respond(|r| match (r.method(), r.target()) {
        ("GET", "/c") => b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 6\r\n\r\ncached".to_vec(),
        ("POST", _) => {
            format!("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npost {}", String::from_utf8_lossy(&r.body)).into_bytes()
        }
        ("HEAD", _) => b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        _ => b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nnocac\r\n0\r\n\r\n".to_vec(),
    })
    .await;
    let sluice = start_default().await;
    assert_eq!(sluice.fetch(&origin.url("/c")).await.text(), "cached");
    let refused = format!("http://127.0.0.1:{}/x", common::refused_port());
    let batch: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("GET", get(&origin.url("/c")), 200, "cached"),
        (
            "HEAD",
            request("HEAD", &origin.url("/c"), &[], b""),
            200,
            "",
        ),
        ("GET", get(&origin.url("/u")), 200, "nocac"),
        ("GET", get(&refused), 502, ""),
        (
            "POST",
            request("POST", &origin.url("/u"), &[], b"abc"),
            200,
            "post abc",
        ),
        (
            "HEAD",
            request("HEAD", &origin.url("/u"), &[], b""),
            200,
            "",
        ),
        ("GET", get(&origin.url("/c")), 200, "cached"),
    ];
    let mut c = sluice.client().await;
    c.send(
        batch
            .iter()
            .flat_map(|(_, r, ..)| r.clone())
            .collect::<Vec<u8>>(),
    )
    .await;
    for (i, (method, _, status, body)) in batch.iter().enumerate() {
        let r = c
            .try_read_response_to(method)
            .await
            .unwrap_or_else(|e| panic!("response {i} ({method}): {e}"));
        assert_eq!(r.status(), *status, "response {i} ({method})");
        if *status == 200 {
            assert_eq!(r.text(), *body, "response {i} ({method})");
        }
    }
    assert_eq!(c.exchange(get(&origin.url("/c"))).await.text(), "cached");
    // Only the first GET of /c, the uncached GET, the POST and the HEAD of /u went upstream.
    assert_eq!(origin.requests().len(), 4);
}

/// A 304 to the client's own conditional request has no body: its upstream connection goes
/// back to the pool at once, and the next request uses it.
#[tokio::test]
async fn a_304_returns_its_upstream_connection_to_the_pool() {
    let origin = Origin::respond(|r| {
        if r.header("if-none-match").is_some() {
            b"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n".to_vec()
        } else {
            common::ok("full")
        }
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    for i in 0..3 {
        let url = origin.url(&format!("/p{i}"));
        let r = c
            .exchange(request("GET", &url, &["If-None-Match: \"a\""], b""))
            .await;
        assert_eq!(r.status(), 304);
        let r = c.exchange(get(&origin.url(&format!("/q{i}")))).await;
        assert_eq!(r.text(), "full");
    }
    assert_eq!(origin.connections(), 1);
}

/// An HTTP/1.0 origin's close-delimited body reaches an HTTP/1.1 client framed (a length
/// or chunked), so the client's connection carries on to the next request.
#[tokio::test]
async fn a_close_delimited_response_is_reframed_for_a_keep_alive_client() {
    let origin = Origin::start(|mut conn| async move {
        let Some(req) = conn.read_request().await else {
            return;
        };
        let _ = conn
            .write(format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close {}",
                req.target()
            ))
            .await;
    })
    .await;
    for mode in [
        sluice::config::ScanMode::Enforce,
        sluice::config::ScanMode::Observe,
    ] {
        let mut cfg = common::config();
        cfg.scan.mode = mode;
        let sluice = common::start(cfg).await;
        let mut c = sluice.client().await;
        for p in ["/a", "/b"] {
            let r = c.exchange(get(&origin.url(p))).await;
            assert_eq!(
                (r.status(), r.text()),
                (200, format!("until close {p}")),
                "{mode:?}"
            );
            assert!(
                r.header("content-length").is_some()
                    || r.head.has_token("transfer-encoding", "chunked"),
                "{mode:?}: {:?}",
                r.head.headers
            );
        }
    }
}

/// A client's `Upgrade: websocket` request is not upgraded (sluice forwards no `Upgrade`):
/// it goes upstream as a plain GET, its answer is not a 101, and a request pipelined right
/// behind it on the same connection is read as HTTP and answered in order.
#[tokio::test]
async fn an_upgrade_request_is_answered_as_plain_http_and_the_connection_goes_on() {
    let origin = Origin::respond(|req| {
        let upgrade = req.header("upgrade").unwrap_or("none").to_string();
        common::ok(&format!("{} upgrade={upgrade}", req.target()))
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    c.send(format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\
         GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        origin.url("/ws"),
        origin.addr(),
        origin.url("/next"),
        origin.addr()
    ))
    .await;
    let first = c.read_response().await;
    assert_eq!(
        (first.status(), first.text().as_str()),
        (200, "/ws upgrade=none")
    );
    assert_eq!(first.header("upgrade"), None);
    let second = c.read_response().await;
    assert_eq!(
        (second.status(), second.text().as_str()),
        (200, "/next upgrade=none")
    );
}

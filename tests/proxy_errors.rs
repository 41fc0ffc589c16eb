//! Upstream failures end in a response, never a hang: 504 for timeouts, 502 for refused
//! or broken origins, each with an RFC 9209 `Proxy-Status`; a slow-drip body is cut.

use crate::common;

use std::time::{Duration, Instant};

use common::{assert_proxy_error, config, get, refused_port, start, start_default, Origin};

#[tokio::test]
async fn an_origin_that_never_answers_gets_504_within_the_response_timeout() {
    let origin = Origin::start(|mut conn| async move {
        // Read requests and never answer; return only when the proxy gives up.
        while conn.read_request().await.is_some() {}
    })
    .await;
    let mut cfg = config();
    cfg.upstream.response_timeout = Duration::from_millis(300);
    let sluice = start(cfg).await;
    let started = Instant::now();
    let r = sluice.fetch(&origin.url("/slow")).await;
    let took = started.elapsed();
    assert_proxy_error(&r, 504, "http_response_timeout");
    assert!(
        took >= Duration::from_millis(300),
        "answered before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "the timeout is 300ms, took {took:?}"
    );
    assert_eq!(
        origin.requests().len(),
        1,
        "the request did reach the origin"
    );
}

#[tokio::test]
async fn a_refused_port_gets_502_connection_refused() {
    let sluice = start_default().await;
    let r = sluice
        .fetch(&format!("http://127.0.0.1:{}/", refused_port()))
        .await;
    assert_proxy_error(&r, 502, "connection_refused");
}

#[tokio::test]
async fn an_origin_that_closes_without_answering_gets_502() {
    let origin = Origin::respond(|_| Vec::new()).await;
    let sluice = start_default().await;
    let r = sluice.fetch(&origin.url("/")).await;
    assert_proxy_error(&r, 502, "http_response_incomplete");
}

#[tokio::test]
async fn a_garbage_response_gets_502_protocol_error() {
    let origin = Origin::respond(|_| b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()).await;
    let sluice = start_default().await;
    let r = sluice.fetch(&origin.url("/")).await;
    assert_proxy_error(&r, 502, "http_protocol_error");
}

/// Regression: a body whose chunked framing is malformed (the origin is still talking) was
/// reported as `http_response_incomplete`, as if the origin had closed the connection; one
/// that really ends early still is.
#[tokio::test]
async fn a_malformed_chunked_body_is_a_protocol_error_and_a_short_one_incomplete() {
    let bad = Origin::respond(|_| {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n".to_vec()
    })
    .await;
    let short = Origin::start(|mut conn| async move {
        if conn.read_request().await.is_some() {
            let _ = conn
                .write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
                .await;
        }
    })
    .await;
    let sluice = start_default().await;
    let r = sluice.fetch(&bad.url("/")).await;
    assert_proxy_error(&r, 502, "http_protocol_error");
    let r = sluice.fetch(&short.url("/")).await;
    assert_proxy_error(&r, 502, "http_response_incomplete");
}

#[tokio::test]
async fn an_oversized_response_head_gets_502() {
    let origin = Origin::respond(|_| {
        let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..200 {
            r.extend(format!("X-Filler-{i}: {}\r\n", "v".repeat(500)).bytes());
        }
        r.extend(b"Content-Length: 0\r\n\r\n");
        r
    })
    .await;
    let mut cfg = config();
    cfg.upstream.max_header_size = "16KiB".parse().expect("size");
    let sluice = start(cfg).await;
    let r = sluice.fetch(&origin.url("/")).await;
    assert_proxy_error(&r, 502, "http_response_header_section_size");
}

#[tokio::test]
async fn a_slow_drip_body_is_cut_at_the_body_timeout_in_observe_mode() {
    let origin = Origin::start(|mut conn| async move {
        if conn.read_request().await.is_none() {
            return;
        }
        let _ = conn
            .write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            .await;
        // Ten bytes every 50ms: alive, but would need minutes to finish.
        for _ in 0..400 {
            if conn.write([b'd'; 10]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let mut cfg = config();
    cfg.upstream.body_timeout = Duration::from_millis(400);
    // Observe mode streams the head at once, so the cut happens mid-body.
    cfg.scan.mode = sluice::config::ScanMode::Observe;
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    let started = Instant::now();
    c.send(get(&origin.url("/drip"))).await;
    let outcome = c.try_read_response().await;
    let took = started.elapsed();
    assert!(
        matches!(outcome, Err(common::wire::WireError::Incomplete(_))),
        "the client must see an incomplete response, got {outcome:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "cut by the 400ms body timeout, took {took:?}"
    );
}

#[tokio::test]
async fn a_slow_drip_body_is_a_504_in_enforce_mode() {
    let origin = Origin::start(|mut conn| async move {
        if conn.read_request().await.is_none() {
            return;
        }
        let _ = conn
            .write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            .await;
        // Ten bytes every 50ms: alive, but would need minutes to finish.
        for _ in 0..400 {
            if conn.write([b'd'; 10]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let mut cfg = config();
    cfg.upstream.body_timeout = Duration::from_millis(400);
    let sluice = start(cfg).await;
    let started = Instant::now();
    let r = sluice.fetch(&origin.url("/drip")).await;
    assert_proxy_error(&r, 504, "http_response_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_slow_upload_is_not_cut_by_the_response_timeout() {
    // The origin answers as soon as the whole body is in; the client needs ~800ms to send
    // it. The response timeout (300ms) is about the origin's silence, not the upload.
    let origin = Origin::respond(|req| common::ok(&req.body.len().to_string())).await;
    let mut cfg = config();
    cfg.upstream.response_timeout = Duration::from_millis(300);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 8000\r\n\r\n",
        origin.url("/slow-up"),
        origin.addr()
    ))
    .await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.send([b'u'; 1000]).await;
    }
    let r = c.read_response().await;
    assert_eq!(
        (r.status(), r.text().as_str()),
        (200, "8000"),
        "{}",
        r.proxy_status()
    );
}

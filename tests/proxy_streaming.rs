//! Bodies stream: bytes move before the whole body exists on the other side, and a body
//! cut short on one side is never presented as complete on the other.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, get, start, start_default, Origin, LIMIT};
use sluice::config::ScanMode;
use tokio::sync::{mpsc, Notify};

const TOTAL: usize = 2_000_000;
const FIRST: usize = 64 * 1024;

#[tokio::test]
async fn a_download_reaches_the_client_before_the_origin_has_sent_it_all() {
    let release = Arc::new(Notify::new());
    let origin = {
        let release = release.clone();
        Origin::start(move |mut conn| {
            let release = release.clone();
            async move {
                if conn.read_request().await.is_none() {
                    return;
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {TOTAL}\r\n\r\n");
                let _ = conn.write(head).await;
                let _ = conn.write(vec![b'a'; FIRST]).await;
                // The rest only once the client has proven it got the first part.
                release.notified().await;
                let _ = conn.write(vec![b'b'; TOTAL - FIRST]).await;
            }
        })
        .await
    };
    let mut cfg = config();
    // Streaming is the contract of observe mode; enforce mode may hold a body to scan it.
    cfg.scan.mode = ScanMode::Observe;
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/stream"))).await;
    let mut raw = Vec::new();
    let head_end = loop {
        raw.extend(c.expect_some(LIMIT).await);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            if raw.len() > i + 4 {
                break i + 4;
            }
        }
    };
    assert!(raw.starts_with(b"HTTP/1.1 200"));
    release.notify_one();
    let mut body = raw.split_off(head_end);
    while body.len() < TOTAL {
        body.extend(c.expect_some(LIMIT).await);
    }
    assert_eq!(body.len(), TOTAL);
    assert!(body[..FIRST].iter().all(|&b| b == b'a') && body[FIRST..].iter().all(|&b| b == b'b'));
}

#[tokio::test]
async fn an_upload_reaches_the_origin_before_the_client_has_sent_it_all() {
    let (got_first, mut first_arrived) = mpsc::unbounded_channel();
    let origin = Origin::start(move |mut conn| {
        let got_first = got_first.clone();
        async move {
            if conn.read_head().await.is_none() {
                return;
            }
            let mut body = Vec::new();
            let mut told = false;
            while body.len() < TOTAL {
                match conn.wire().read_some().await {
                    Ok(b) if !b.is_empty() => body.extend(b),
                    _ => return,
                }
                if !told {
                    told = true;
                    let _ = got_first.send(body.len());
                }
            }
            let _ = conn.write(common::ok(&body.len().to_string())).await;
        }
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {TOTAL}\r\n\r\n",
        origin.url("/up"),
        origin.addr()
    );
    c.send(head).await;
    c.send(vec![b'x'; FIRST]).await;
    let n = tokio::time::timeout(LIMIT, first_arrived.recv())
        .await
        .expect("the origin got body bytes while the upload was still going")
        .expect("channel");
    assert!(n > 0);
    c.send(vec![b'y'; TOTAL - FIRST]).await;
    let r = c.read_response().await;
    assert_eq!((r.status(), r.text()), (200, TOTAL.to_string()));
}

#[tokio::test]
async fn a_client_upload_cut_short_never_reaches_the_origin_as_complete() {
    let (outcome, mut outcomes) = mpsc::unbounded_channel();
    let origin = Origin::start(move |mut conn| {
        let outcome = outcome.clone();
        async move {
            // Some(len) when a complete request arrived, None when it was cut.
            let _ = outcome.send(conn.read_request().await.map(|r| r.body.len()));
        }
    })
    .await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\n\r\n",
        origin.url("/cut"),
        origin.addr()
    );
    c.send(head).await;
    c.send(vec![b'z'; 400]).await;
    drop(c);
    let seen = tokio::time::timeout(LIMIT, outcomes.recv())
        .await
        .expect("the origin's connection ends (the proxy does not hang on)");
    assert_eq!(
        seen,
        Some(None),
        "a 400-of-1000-byte upload must not arrive complete"
    );
}

#[tokio::test]
async fn expect_100_continue_gets_an_interim_response_then_the_body_is_forwarded() {
    let origin = Origin::respond(|req| common::ok(&String::from_utf8_lossy(&req.body))).await;
    let sluice = start_default().await;
    let mut c = sluice.client().await;
    c.send(format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        origin.url("/e"),
        origin.addr()
    ))
    .await;
    // curl waits one second for the 100 before sending anyway; a proxy should not make it.
    let interim = tokio::time::timeout(Duration::from_millis(900), c.try_read_response())
        .await
        .expect("100 Continue within 900ms")
        .expect("interim response");
    assert_eq!(interim.status(), 100);
    c.send("hello").await;
    let r = c.read_response().await;
    assert_eq!((r.status(), r.text().as_str()), (200, "hello"));
}

/// Regression: the bare-LF check of response heads was armed by any write that began with
/// a request line, upload bytes included. An upload still going out after the response
/// head (the origin answers while it reads, RFC 9112 §9.6) whose bytes looked like a
/// request armed it inside the response body, and the body's next LF became a NUL: a
/// corrupted body, delivered as complete.
#[tokio::test]
async fn a_response_body_sent_while_the_upload_goes_on_reaches_the_client_unchanged() {
    use tokio::io::AsyncWriteExt;
    // An upload that happens to hold an HTTP request (a capture, a mail with one quoted).
    const UPLOAD: &[u8] = b"GET /quoted HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let origin = Origin::start(|mut conn| async move {
        if conn.read_head().await.is_none() {
            return;
        }
        // The head and a first line at once, the rest once the upload has arrived.
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nfirst\n";
        if conn.write(head).await.is_err() {
            return;
        }
        let framing = common::wire::Framing::Length(UPLOAD.len());
        if conn.wire().read_body(framing).await.is_ok() {
            let _ = conn.write("second\n").await;
        }
    })
    .await;
    let mut cfg = config();
    // Observe mode relays the head at once, so the client knows sluice has read it.
    cfg.scan.mode = ScanMode::Observe;
    let sluice = start(cfg).await;
    let mut s = tokio::net::TcpStream::connect(sluice.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        origin.url("/duplex"),
        origin.addr(),
        UPLOAD.len()
    );
    s.write_all(head.as_bytes()).await.expect("send head");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = read_some(&mut s, &mut buf).await;
        assert!(n > 0, "closed before the response head");
        got.extend_from_slice(&buf[..n]);
    };
    s.write_all(UPLOAD).await.expect("send the upload");
    while got.len() < end + 13 {
        let n = read_some(&mut s, &mut buf).await;
        assert!(n > 0, "closed before the end of the body");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&got[end..]),
        "first\nsecond\n",
        "the body as the origin sent it"
    );
}

/// One read, bounded by the suite's time limit; 0 at the end of the stream.
async fn read_some(s: &mut tokio::net::TcpStream, buf: &mut [u8]) -> usize {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(LIMIT, s.read(buf))
        .await
        .expect("read in time")
        .expect("read")
}

/// An answer sluice gives itself to a request with a body (here the destination guard's 403
/// to an `Expect: 100-continue` upload) comes before the body is read; hyper closes rather
/// than read it, and the answer now says so (RFC 9110 §10.1.1) instead of looking reusable.
#[tokio::test]
async fn a_refused_upload_is_answered_with_connection_close() {
    let origin = Origin::ok("never").await;
    let mut cfg = config();
    cfg.upstream.allow.clear();
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    let refused = c.exchange(get(&origin.url("/g"))).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.header("connection"),
        None,
        "no body: the connection stays"
    );
    c.send(format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        origin.url("/e"),
        origin.addr()
    ))
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_close(LIMIT).await;
    assert_eq!(origin.connections(), 0);
}

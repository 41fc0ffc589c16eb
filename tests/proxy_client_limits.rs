//! Protecting the proxy from its clients: header (slowloris) and idle timeouts, request
//! size limits (414/431), the client ACL and the connection cap.

use crate::common;

use std::time::{Duration, Instant};

use common::{config, get, request, start, Client, Origin, LIMIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_half_sent_request_head_is_closed_at_the_header_timeout() {
    let mut cfg = config();
    cfg.proxy.header_timeout = Duration::from_millis(300);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send("GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.")
        .await;
    let started = Instant::now();
    let rest = c.expect_close(LIMIT).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "nothing or a 408 before the close: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[tokio::test]
async fn a_slowloris_dripping_header_bytes_is_closed_at_the_header_timeout() {
    let mut cfg = config();
    cfg.proxy.header_timeout = Duration::from_millis(400);
    let sluice = start(cfg).await;
    let stream = tokio::net::TcpStream::connect(sluice.addr)
        .await
        .expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let drip = tokio::spawn(async move {
        let _ = wr.write_all(b"GET http://127.0.0.1:9/ HTTP/1.1\r\n").await;
        for i in 0..200 {
            let line = format!("X-Drip-{i}: x\r\n");
            if wr.write_all(line.as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    let started = Instant::now();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(LIMIT, rd.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "a slowloris client was never closed");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed only after {took:?}");
    drip.abort();
}

#[tokio::test]
async fn an_idle_keep_alive_client_is_closed_at_the_idle_timeout() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.idle_timeout = Duration::from_millis(300);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    assert_eq!(c.exchange(get(&origin.url("/"))).await.status(), 200);
    let started = Instant::now();
    let rest = c.expect_close(LIMIT).await;
    assert!(rest.is_empty(), "no bytes after the response");
    assert!(started.elapsed() >= Duration::from_millis(200));
    // A connection that never sends anything is idle too.
    let mut silent = sluice.client().await;
    silent.expect_close(LIMIT).await;
}

#[tokio::test]
async fn a_busy_client_is_not_cut_by_the_idle_timeout() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.idle_timeout = Duration::from_millis(300);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    let started = Instant::now();
    // Keep one connection busy for longer than the idle timeout.
    while started.elapsed() < Duration::from_millis(600) {
        assert_eq!(c.exchange(get(&origin.url("/"))).await.status(), 200);
    }
}

#[tokio::test]
async fn a_request_line_over_max_request_line_gets_414() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.max_request_line = "1KiB".parse().expect("size");
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    let long = origin.url(&format!("/{}", "a".repeat(2000)));
    assert_eq!(c.exchange(get(&long)).await.status(), 414);
    let short = origin.url(&format!("/{}", "a".repeat(500)));
    assert_eq!(c.exchange(get(&short)).await.status(), 200);
    assert_eq!(origin.requests().len(), 1, "the long one was not forwarded");
}

fn with_fields(url: &str, n: usize, value_len: usize) -> Vec<u8> {
    let fields: Vec<String> = (0..n)
        .map(|i| format!("X-Field-{i}: {}", "v".repeat(value_len)))
        .collect();
    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    request("GET", url, &refs, b"")
}

#[tokio::test]
async fn more_fields_than_max_headers_gets_431() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.max_headers = 10;
    let sluice = start(cfg).await;
    let mut ok = sluice.client().await;
    assert_eq!(
        ok.exchange(with_fields(&origin.url("/"), 5, 10))
            .await
            .status(),
        200
    );
    let mut c = sluice.client().await;
    c.send(with_fields(&origin.url("/"), 20, 10)).await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 431);
    assert_eq!(origin.requests().len(), 1);
}

#[tokio::test]
async fn a_head_over_max_header_size_gets_431() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.max_header_size = "16KiB".parse().expect("size");
    let sluice = start(cfg).await;
    // 12 KiB passes, 24 KiB does not.
    let mut ok = sluice.client().await;
    assert_eq!(
        ok.exchange(with_fields(&origin.url("/"), 12, 1000))
            .await
            .status(),
        200
    );
    let mut c = sluice.client().await;
    c.send(with_fields(&origin.url("/"), 24, 1000)).await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 431);
    assert_eq!(origin.requests().len(), 1);
}

#[tokio::test]
async fn a_small_max_header_size_is_enforced_exactly() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.max_header_size = "4KiB".parse().expect("size");
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(with_fields(&origin.url("/"), 6, 1000)).await;
    assert_eq!(c.read_response().await.status(), 431);
}

#[tokio::test]
async fn a_client_outside_proxy_clients_gets_403() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.clients = vec!["10.0.0.0/8".parse().expect("CIDR")];
    let sluice = start(cfg).await;
    let r = sluice.fetch(&origin.url("/")).await;
    common::assert_proxy_error(&r, 403, "http_request_denied");
    assert_eq!(origin.connections(), 0);
}

#[tokio::test]
async fn connections_over_max_connections_get_503() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.max_connections = 2;
    let sluice = start(cfg).await;
    let mut first = sluice.client().await;
    let mut second = sluice.client().await;
    assert_eq!(first.exchange(get(&origin.url("/1"))).await.status(), 200);
    assert_eq!(second.exchange(get(&origin.url("/2"))).await.status(), 200);
    let mut third = sluice.client().await;
    let r = third.read_response().await;
    assert_eq!(r.status(), 503);
    assert!(r.proxy_status().contains("connection_limit_reached"));
    // The two admitted connections still work, and a slot frees when one closes.
    assert_eq!(first.exchange(get(&origin.url("/3"))).await.status(), 200);
    drop(second);
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut c = Client::connect(sluice.addr).await;
        c.send(get(&origin.url("/4"))).await;
        if c.read_response().await.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed connection's slot never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_malformed_request_head_gets_400_before_the_close() {
    let sluice = start(config()).await;
    let mut c = sluice.client().await;
    c.send("GET http://127.0.0.1/ HTTP/1.1\r\nBad Header Line\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_half_sent_second_request_on_a_keep_alive_connection_hits_the_header_timeout() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.header_timeout = Duration::from_millis(300);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    assert_eq!(c.exchange(get(&origin.url("/"))).await.status(), 200);
    c.send("GET http://127.0.0.1:9/ HTTP/1.1\r\nHo").await;
    closes_before_the_idle_timeout(&mut c).await;
}

/// Half a head pipelined in the same write as a whole request arrives while that request is
/// in flight: the header clock must still run for it once the response is done. It did not
/// (the read found a request in flight, and starting the request cleared the clock), so
/// such a client held its connection for the whole idle timeout.
#[tokio::test]
async fn a_half_sent_request_pipelined_behind_a_whole_one_hits_the_header_timeout() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.header_timeout = Duration::from_millis(300);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    let mut bytes = get(&origin.url("/"));
    bytes.extend_from_slice(b"GET http://127.0.0.1:9/ HTTP/1.1\r\nHo");
    c.send(bytes).await;
    assert_eq!(c.read_response().await.status(), 200);
    closes_before_the_idle_timeout(&mut c).await;
}

/// The same with the half head sent while the request before it waits for its origin.
#[tokio::test]
async fn a_half_sent_request_sent_during_a_slow_response_hits_the_header_timeout() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let (asked, mut was_asked) = tokio::sync::mpsc::unbounded_channel();
    let origin = {
        let release = release.clone();
        Origin::start(move |mut conn| {
            let (release, asked) = (release.clone(), asked.clone());
            async move {
                while conn.read_request().await.is_some() {
                    let _ = asked.send(());
                    release.notified().await;
                    if conn.write(common::ok("ok")).await.is_err() {
                        return;
                    }
                }
            }
        })
        .await
    };
    let mut cfg = config();
    cfg.proxy.header_timeout = Duration::from_millis(300);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/slow"))).await;
    was_asked.recv().await.expect("the origin was asked");
    c.send("GET http://127.0.0.1:9/ HTTP/1.1\r\nHo").await;
    release.notify_one();
    assert_eq!(c.read_response().await.status(), 200);
    closes_before_the_idle_timeout(&mut c).await;
}

/// A client that stops reading must not hold its connection (and the response buffered for
/// it) for ever: once it has taken no bytes for `proxy.idle_timeout`, sluice closes it, as
/// nginx's `send_timeout` and Squid's `write_timeout` do. The body is several times the
/// kernel's largest socket send buffer (`tcp_wmem`, 4 MiB by default), so the client's
/// silence stalls the writes; before this, only `upstream.body_timeout` (5 minutes) ended
/// such a download.
#[tokio::test]
async fn a_client_that_stops_reading_is_closed_at_the_idle_timeout() {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(4 << 20);
    let size = (6 * wmem_max).clamp(24 << 20, 256 << 20);
    let origin = Origin::respond(move |_| {
        let mut r =
            format!("HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: {size}\r\n\r\n")
                .into_bytes();
        r.resize(r.len() + size, b'x');
        r
    })
    .await;
    let mut cfg = config();
    cfg.proxy.idle_timeout = Duration::from_millis(500);
    let sluice = start(cfg).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let mut stream = socket.connect(sluice.addr).await.expect("connect");
    stream
        .write_all(&get(&origin.url("/big")))
        .await
        .expect("send the request");
    let metrics = sluice
        .running
        .as_ref()
        .expect("running")
        .proxy
        .metrics
        .clone();
    let deadline = Instant::now() + LIMIT;
    // Accepted (the request is on its way), then closed.
    while metrics.connections() != (0, 1) {
        assert!(
            Instant::now() < deadline,
            "the stalled client's connection is still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200") && got.len() < size,
        "the connection ended before the body was sent: {} bytes",
        got.len()
    );
}

/// Regression: a client that took no response bytes for `proxy.idle_timeout` had its
/// connection closed in order, so an HTTP/1.0 client that resumed reading got part of a
/// body without a length and then a clean end: the part looked like the whole. Bytes were
/// left unsent, so the close is a reset.
#[tokio::test]
async fn a_client_closed_for_not_reading_sees_a_reset_not_a_complete_body() {
    let gone = std::sync::Arc::new(tokio::sync::Notify::new());
    let g = gone.clone();
    let origin = Origin::start(move |mut conn| {
        let gone = g.clone();
        async move {
            if conn.read_request().await.is_none() {
                return;
            }
            let chunk = format!("4000\r\n{}\r\n", "c".repeat(0x4000));
            let mut next = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
            // Until sluice drops the upstream side with the client's connection.
            while conn.write(&next).await.is_ok() {
                next.clone_from(&chunk);
            }
            gone.notify_one();
        }
    })
    .await;
    let mut cfg = config();
    cfg.proxy.idle_timeout = Duration::from_millis(300);
    cfg.scan.mode = sluice::config::ScanMode::Observe;
    let sluice = start(cfg).await;
    let mut s = sluice.http10_get(&origin, "/big").await;
    // The client reads nothing until sluice has given up on it.
    tokio::time::timeout(LIMIT, gone.notified())
        .await
        .expect("sluice closes a connection that takes no bytes");
    let mut buf = vec![0u8; 1 << 16];
    let end = tokio::time::timeout(LIMIT, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the connection ends");
    match end {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the cut body ended with {other:?}, as if complete"),
    }
}

/// The connection closes well within the default idle timeout (60 s): these tests set a
/// 300 ms header timeout, so a close within 5 s is that one.
async fn closes_before_the_idle_timeout(c: &mut Client) {
    let started = Instant::now();
    c.expect_close(LIMIT).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "idle timeout is 60s: closed by the header timeout"
    );
}

/// A client that sends a request head announcing a body, part of the body, and then
/// nothing (a slow-body "slowloris", R-U-Dead-Yet) is answered once the upload has made no
/// progress for `upstream.response_timeout` (the response timeout counts from the request's
/// last progress), with `Connection: close`, and the upstream connection the upload held is
/// released; the idle timeout (60 s here) plays no part.
#[tokio::test]
async fn a_client_that_stops_sending_its_body_is_answered_and_closed() {
    let released = std::sync::Arc::new(tokio::sync::Notify::new());
    let r = released.clone();
    let origin = Origin::start(move |mut conn| {
        let released = r.clone();
        async move {
            if conn.read_head().await.is_none() {
                return;
            }
            // Reads the body until sluice gives up on the upload and drops this connection.
            let _ = conn.wire().read_to_close().await;
            released.notify_one();
        }
    })
    .await;
    let mut cfg = config();
    cfg.upstream.response_timeout = Duration::from_millis(300);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n0123456789",
        origin.url("/stalled-upload"),
        origin.addr()
    ))
    .await;
    let started = Instant::now();
    let r = c.read_response().await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "answered at the timeout, not at once: {:?}",
        started.elapsed()
    );
    assert_eq!(r.status(), 504, "{}", r.proxy_status());
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_close(LIMIT).await;
    tokio::time::timeout(LIMIT, released.notified())
        .await
        .expect("the upstream connection held by the stalled upload is released");
    assert_eq!(origin.requests().len(), 1);
}

/// The limits are "more than": exactly `proxy.max_headers` fields (`Host` included) and a
/// head of exactly `proxy.max_header_size` bytes (its blank line included) pass; one more
/// field or one more byte gets 431.
#[tokio::test]
async fn the_head_limits_hold_exactly_at_their_boundary() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.max_headers = 10;
    cfg.proxy.max_header_size = "4KiB".parse().expect("size");
    let sluice = start(cfg).await;
    let url = origin.url("/");
    // `Host` plus 9 fields: 10.
    let mut c = sluice.client().await;
    assert_eq!(c.exchange(with_fields(&url, 9, 10)).await.status(), 200);
    let mut c = sluice.client().await;
    c.send(with_fields(&url, 10, 10)).await;
    assert_eq!(c.read_response().await.status(), 431);
    let sized = |total: usize| {
        let bare = request("GET", &url, &["X-Pad: "], b"").len();
        request(
            "GET",
            &url,
            &[&format!("X-Pad: {}", "p".repeat(total - bare))],
            b"",
        )
    };
    assert_eq!(sized(4096).len(), 4096);
    let mut c = sluice.client().await;
    assert_eq!(c.exchange(sized(4096)).await.status(), 200);
    let mut c = sluice.client().await;
    c.send(sized(4097)).await;
    assert_eq!(c.read_response().await.status(), 431);
    assert_eq!(origin.requests().len(), 2);
}

/// A client over `proxy.max_connections` that sends its request at once (as every client
/// does) still reads the 503: the request it sent is not what the close answers.
#[tokio::test]
async fn a_client_over_max_connections_that_sent_its_request_reads_the_503() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.max_connections = 1;
    let sluice = start(cfg).await;
    let mut first = sluice.client().await;
    assert_eq!(first.exchange(get(&origin.url("/1"))).await.status(), 200);
    for i in 0..20 {
        let mut c = Client::connect(sluice.addr).await;
        let _ = c.try_send(get(&origin.url(&format!("/over-{i}")))).await;
        let r = c.try_read_response().await;
        assert!(
            matches!(&r, Ok(r) if r.status() == 503),
            "attempt {i}: {:?}",
            r.map(|r| r.status())
        );
    }
    assert_eq!(origin.requests().len(), 1);
}

/// Requests answered so far, as `sluice_requests_total` counts them (one per access-log
/// line: the same call writes the line and counts it).
fn answered(sluice: &common::Sluice) -> Vec<((&'static str, u16), u64)> {
    let m = &sluice.running.as_ref().expect("running").proxy.metrics;
    m.totals().0
}

/// Waits until `n` requests have been answered, then checks that no more were.
async fn answered_exactly(sluice: &common::Sluice, n: u64) {
    let count = |s: &common::Sluice| answered(s).iter().map(|(_, n)| n).sum::<u64>();
    let deadline = Instant::now() + LIMIT;
    while count(sluice) < n {
        assert!(
            Instant::now() < deadline,
            "{n} requests, logged: {:?}",
            answered(sluice)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        count(sluice),
        n,
        "a request logged twice: {:?}",
        answered(sluice)
    );
}

/// An origin that reads one request on each connection and then waits for the peer to close:
/// a tunnel's far end.
async fn tunnel_end() -> Origin {
    Origin::start(|mut conn| async move {
        let mut b = [0u8; 64];
        while matches!(conn.wire().stream.read(&mut b).await, Ok(n) if n > 0) {}
    })
    .await
}

fn connect_request(authority: &str) -> String {
    format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
}

/// Each request gets exactly one access-log line, whatever becomes of it: pipelined ones,
/// a HEAD, a refused TRACE, a CONNECT tunnel, a client that leaves mid-body, and the heads
/// no handler sees — hyper's own 400 for a malformed head (smuggling attempts among them)
/// and one the header timeout ends. Those last two had no line at all, so an attack on the
/// proxy left no trace in its access log.
#[tokio::test]
async fn every_request_gets_exactly_one_access_log_line() {
    let origin = Origin::respond(|req| {
        if req.target().ends_with("/big") {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 4000000\r\n\r\n".to_vec();
            r.resize(r.len() + 4_000_000, b'x');
            r
        } else {
            common::ok("ok")
        }
    })
    .await;
    let tunnel = tunnel_end().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![tunnel.port()];
    cfg.proxy.header_timeout = Duration::from_millis(300);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    let mut pipelined = get(&origin.url("/1"));
    pipelined.extend(request("HEAD", &origin.url("/2"), &[], b""));
    pipelined.extend(b"TRACE http://x/ HTTP/1.1\r\nHost: x\r\n\r\n");
    pipelined.extend(get(&origin.url("/3")));
    c.send(&pipelined).await;
    assert_eq!(c.read_response().await.status(), 200);
    let head = c.try_read_response_to("HEAD").await.expect("HEAD answer");
    assert_eq!(head.status(), 200);
    assert_eq!(c.read_response().await.status(), 405);
    assert_eq!(c.read_response().await.status(), 200);
    answered_exactly(&sluice, 4).await;
    connect_answered(&sluice, &tunnel.addr().to_string(), 200).await;
    answered_exactly(&sluice, 5).await;
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/big"))).await;
    c.expect_some(LIMIT).await;
    drop(c);
    answered_exactly(&sluice, 6).await;
    // Content-Length with Transfer-Encoding: the head check makes hyper refuse it.
    let mut c = sluice.client().await;
    c.send("POST http://x/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        .await;
    assert_eq!(c.read_response().await.status(), 400);
    answered_exactly(&sluice, 7).await;
    let mut c = sluice.client().await;
    c.send("GET http://x/ HTTP/1.1\r\nHost: x\r\n").await;
    c.expect_close(LIMIT).await;
    answered_exactly(&sluice, 8).await;
    let totals = answered(&sluice);
    for status in [400, 408] {
        assert!(
            totals.contains(&(("other", status), 1)),
            "the refused head is counted as {status}: {totals:?}"
        );
    }
}

/// A CONNECT to `authority` on a new connection, answered `status`; the connection is then
/// dropped.
async fn connect_answered(sluice: &common::Sluice, authority: &str, status: u16) {
    let mut c = sluice.client().await;
    c.send(connect_request(authority)).await;
    let r = c
        .try_read_response_to("CONNECT")
        .await
        .expect("CONNECT answer");
    assert_eq!(r.status(), status);
}

/// A connection's `proxy.max_connections` slot comes back however the connection ends:
/// at the header timeout, as a tunnel, after a refused or failed CONNECT, by the client
/// leaving mid-request, by a cut response body, by hyper's 400, by an unread request body,
/// by a failed upstream. Then as many clients as the limit, at once, are all served.
#[tokio::test]
async fn a_slot_comes_back_however_its_connection_ends() {
    let origin = Origin::respond(|req| {
        if req.target().ends_with("/hang") {
            Vec::new()
        } else {
            common::ok("ok")
        }
    })
    .await;
    // 5 of 100 bytes, then the close.
    let cut = Origin::start(|mut conn| async move {
        if conn.read_request().await.is_some() {
            let _ = conn
                .write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
                .await;
        }
    })
    .await;
    let (silent, asked) = Origin::silent().await;
    let tunnel = tunnel_end().await;
    let refused = common::refused_port();
    const SLOTS: usize = 4;
    let mut cfg = config();
    cfg.proxy.max_connections = SLOTS;
    cfg.proxy.header_timeout = Duration::from_millis(200);
    cfg.proxy.connect_ports = vec![tunnel.port(), refused];
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send("GET http://x/ HTTP/1.1\r\n").await;
    c.expect_close(LIMIT).await;
    drop(c);
    connect_answered(&sluice, &tunnel.addr().to_string(), 200).await;
    connect_answered(&sluice, &format!("127.0.0.1:{refused}"), 502).await;
    connect_answered(&sluice, "127.0.0.1:1", 403).await;
    let mut c = sluice.client().await;
    c.send(get(&silent.url("/"))).await;
    tokio::time::timeout(LIMIT, asked.notified())
        .await
        .expect("the request reaches the origin");
    drop(c);
    let mut c = sluice.client().await;
    c.send(get(&cut.url("/cut"))).await;
    // Cut before sluice sent the head: a 502; after: a cut body. Either way, the slot.
    let _ = c.try_read_response().await;
    drop(c);
    let mut c = sluice.client().await;
    c.send("GET http://x/ HTTP/1.1\r\nBad\r\n\r\n").await;
    assert_eq!(c.read_response().await.status(), 400);
    drop(c);
    let mut c = sluice.client().await;
    c.send("POST http://x/ HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
        .await;
    assert_eq!(c.read_response().await.status(), 400, "no Host");
    drop(c);
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/hang"))).await;
    assert_eq!(c.read_response().await.status(), 502);
    drop(c);
    let deadline = Instant::now() + LIMIT;
    'again: loop {
        let mut clients = Vec::new();
        for _ in 0..SLOTS {
            let mut c = Client::connect(sluice.addr).await;
            c.send(get(&origin.url("/again"))).await;
            clients.push(c);
        }
        for c in &mut clients {
            let status = c.read_response().await.status();
            if status != 200 {
                assert_eq!(status, 503);
                assert!(Instant::now() < deadline, "a slot never came back");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue 'again;
            }
        }
        break;
    }
}

/// Regression: on a dual-stack listener (`[::]`) an IPv4 client is seen as
/// `::ffff:a.b.c.d`; it was matched against `proxy.clients` only as `a.b.c.d`, so an ACL
/// written in the mapped form (`::ffff:127.0.0.0/104`, as Squid accepts) refused the very
/// clients it names with 403.
#[tokio::test]
async fn an_acl_in_ipv4_mapped_form_admits_ipv4_clients_of_a_dual_stack_listener() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.listen = "[::]:0".parse().expect("address");
    cfg.proxy.clients = vec!["::ffff:127.0.0.0/104".parse().expect("CIDR")];
    let sluice = start(cfg).await;
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], sluice.addr.port()));
    let r = common::fetch(v4, &origin.url("/")).await;
    assert_eq!(r.status(), 200, "{}", r.text());
    let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, sluice.addr.port()));
    common::assert_proxy_error(
        &common::fetch(v6, &origin.url("/")).await,
        403,
        "http_request_denied",
    );
}

/// Regression: a client refused before its request body was read (here by the client ACL),
/// that sends its whole body before it reads the answer (as curl does for a body without
/// `Expect: 100-continue`), could not send it: sluice closed with the body unread in its
/// receive buffer, so the kernel reset the connection, the client's write failed and it
/// never saw the 403. sluice now closes as nginx's lingering close does: it shuts down its
/// sending side and reads and discards what the client still sends, for a bounded time.
#[tokio::test]
async fn a_client_refused_while_still_sending_its_body_can_send_it_and_read_the_answer() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.clients = vec!["10.0.0.0/8".parse().expect("CIDR")];
    let sluice = start(cfg).await;
    const BODY: usize = 8 << 20;
    let mut c = sluice.client().await;
    c.send(format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {BODY}\r\n\r\n",
        origin.url("/upload"),
        origin.addr()
    ))
    .await;
    let chunk = vec![b'x'; 64 << 10];
    for sent in (0..BODY).step_by(chunk.len()) {
        let r = tokio::time::timeout(LIMIT, c.try_send(&chunk))
            .await
            .expect("sluice takes the rest of the body");
        assert!(r.is_ok(), "body write failed after {sent} bytes: {r:?}");
    }
    let r = c.read_response().await;
    common::assert_proxy_error(&r, 403, "http_request_denied");
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_close(LIMIT).await;
    assert_eq!(origin.connections(), 0);
}

/// A lingering close is bounded: a client refused with its body unread that then neither
/// sends the rest nor closes (a stuck uploader, or one that vanished) does not hold its
/// connection, and its `proxy.max_connections` slot, for ever. sluice stops lingering after
/// 5 s with nothing received (nginx's `lingering_timeout`) and the slot comes back.
#[tokio::test]
async fn a_lingering_close_ends_when_the_client_sends_nothing_more() {
    let origin = Origin::ok("ok").await;
    let mut cfg = config();
    cfg.proxy.max_connections = 1;
    let sluice = start(cfg).await;
    let mut stuck = sluice.client().await;
    // No Host: refused (400) with 99,997 body bytes still to come, which never come.
    stuck
        .send("POST http://x/ HTTP/1.1\r\nContent-Length: 100000\r\n\r\nabc")
        .await;
    let r = stuck.read_response().await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.header("connection"), Some("close"));
    // sluice's sending side is shut down at once; its socket lingers, open for reading.
    stuck.expect_close(LIMIT).await;
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut c = Client::connect(sluice.addr).await;
        c.send(get(&origin.url("/after"))).await;
        let status = c.read_response().await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "only the connection limit refuses it");
        assert!(
            Instant::now() < deadline,
            "the lingering connection kept its slot past the linger's quiet limit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The stuck client was still there, silent, the whole time.
    drop(stuck);
}

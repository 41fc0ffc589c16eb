//! CONNECT: tunnels bytes both ways to ports in `proxy.connect_ports` after the
//! destination guard; anything else is refused with 403 before any connection is made.

use crate::common;

use common::{config, start, Client, Origin};

/// An origin that echoes every byte back, upper-cased, until the peer closes.
async fn echo_origin() -> Origin {
    Origin::start(|mut conn| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = &mut conn.wire().stream;
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let up = buf[..n].to_ascii_uppercase();
                    if stream.write_all(&up).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await
}

fn connect_request(authority: &str) -> String {
    format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
}

async fn read_connect_response(c: &mut Client) -> common::Response {
    c.try_read_response_to("CONNECT")
        .await
        .expect("a complete CONNECT response")
}

#[tokio::test]
async fn connect_to_an_allowed_port_tunnels_bytes_both_ways() {
    let origin = echo_origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![origin.port()];
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(connect_request(&origin.addr().to_string())).await;
    let r = read_connect_response(&mut c).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.header("content-length").is_none() && r.header("transfer-encoding").is_none(),
        "a 2xx CONNECT response has no body framing: {:?}",
        r.head.headers
    );
    // Bytes that are not HTTP, in several round trips, arrive intact both ways.
    for msg in ["hello tunnel\n", "\u{1}binary\u{0}ish\n", "third"] {
        c.send(msg).await;
        let mut got = Vec::new();
        while got.len() < msg.len() {
            let chunk = c.expect_some(common::LIMIT).await;
            got.extend(chunk);
        }
        assert_eq!(got, msg.to_ascii_uppercase().as_bytes());
    }
    assert_eq!(origin.connections(), 1);
}

/// A tunnel nobody uses any more is closed after `proxy.tunnel_idle_timeout` (a vanished
/// client would otherwise hold its slot and two sockets for good); one in use is not.
#[tokio::test]
async fn an_idle_tunnel_is_closed_at_the_tunnel_idle_timeout() {
    let origin = echo_origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![origin.port()];
    cfg.proxy.tunnel_idle_timeout = std::time::Duration::from_millis(300);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(connect_request(&origin.addr().to_string())).await;
    assert_eq!(read_connect_response(&mut c).await.status(), 200);
    c.send("ping").await;
    assert_eq!(c.expect_some(common::LIMIT).await, b"PING");
    let quiet = std::time::Instant::now();
    let rest = c.expect_close(common::LIMIT).await;
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        quiet.elapsed() >= std::time::Duration::from_millis(250),
        "closed after {:?}, before the idle limit",
        quiet.elapsed()
    );
}

#[tokio::test]
async fn connect_to_a_disallowed_port_is_refused_without_connecting() {
    let origin = echo_origin().await;
    let sluice = start(config()).await; // connect_ports = [443]
    let mut c = sluice.client().await;
    c.send(connect_request(&origin.addr().to_string())).await;
    let r = read_connect_response(&mut c).await;
    common::assert_proxy_error(&r, 403, "http_request_denied");
    assert_eq!(origin.connections(), 0);
    // The strict head check stops at a CONNECT head, so the connection must not carry on.
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        c.closes_within(common::LIMIT).await,
        "closed after a refused CONNECT"
    );
}

#[tokio::test]
async fn connect_to_a_guarded_destination_is_refused_without_connecting() {
    let origin = echo_origin().await;
    let mut cfg = config();
    cfg.upstream.allow.clear();
    cfg.proxy.connect_ports = vec![origin.port()];
    let sluice = start(cfg).await;
    for authority in [
        origin.addr().to_string(),
        format!("localhost:{}", origin.port()),
    ] {
        let mut c = sluice.client().await;
        c.send(connect_request(&authority)).await;
        let r = read_connect_response(&mut c).await;
        common::assert_proxy_error(&r, 403, "destination_ip_prohibited");
    }
    assert_eq!(origin.connections(), 0);
}

#[tokio::test]
async fn connect_to_a_refused_port_gets_502() {
    let port = common::refused_port();
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![port];
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(connect_request(&format!("127.0.0.1:{port}"))).await;
    let r = read_connect_response(&mut c).await;
    common::assert_proxy_error(&r, 502, "connection_refused");
    assert!(
        c.closes_within(common::LIMIT).await,
        "closed after a failed CONNECT"
    );
}

#[tokio::test]
async fn connect_from_a_client_outside_the_acl_is_refused() {
    let origin = echo_origin().await;
    let mut cfg = config();
    cfg.proxy.clients = vec!["192.0.2.0/24".parse().expect("CIDR")];
    cfg.proxy.connect_ports = vec![origin.port()];
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(connect_request(&origin.addr().to_string())).await;
    let r = read_connect_response(&mut c).await;
    assert_eq!(r.status(), 403);
    assert_eq!(origin.connections(), 0);
}

#[tokio::test]
async fn bytes_sent_right_behind_the_connect_head_are_tunnelled() {
    let origin = echo_origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![origin.port()];
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    // A client that does not wait for the 200 (as TLS False Start style clients do).
    c.send(format!(
        "{}early bytes",
        connect_request(&origin.addr().to_string())
    ))
    .await;
    let r = read_connect_response(&mut c).await;
    assert_eq!(r.status(), 200);
    let mut got = Vec::new();
    while got.len() < "early bytes".len() {
        got.extend(c.expect_some(common::LIMIT).await);
    }
    assert_eq!(got, b"EARLY BYTES");
}

#[tokio::test]
async fn open_tunnels_count_against_max_connections() {
    let origin = echo_origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![origin.port()];
    cfg.proxy.max_connections = 2;
    let sluice = start(cfg).await;
    let mut tunnels = Vec::new();
    for _ in 0..2 {
        let mut c = sluice.client().await;
        c.send(connect_request(&origin.addr().to_string())).await;
        assert_eq!(read_connect_response(&mut c).await.status(), 200);
        c.send("ping").await;
        assert_eq!(c.expect_some(common::LIMIT).await, b"PING");
        tunnels.push(c);
    }
    let mut third = sluice.client().await;
    let r = third.read_response().await;
    assert_eq!(
        r.status(),
        503,
        "two open tunnels use both connection slots"
    );
}

#[tokio::test]
async fn an_open_tunnel_is_closed_when_the_shutdown_grace_period_ends() {
    let origin = echo_origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![origin.port()];
    cfg.proxy.shutdown_grace = std::time::Duration::from_millis(300);
    let mut sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(connect_request(&origin.addr().to_string())).await;
    assert_eq!(read_connect_response(&mut c).await.status(), 200);
    c.send("ping").await;
    assert_eq!(c.expect_some(common::LIMIT).await, b"PING");
    let started = std::time::Instant::now();
    let running = sluice.running.take().expect("running");
    tokio::time::timeout(common::LIMIT, running.shutdown())
        .await
        .expect("shutdown is bounded by the grace period");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(250),
        "an open tunnel is in-flight work: shutdown waits for it (up to the grace period)"
    );
    assert!(c.closes_within(common::LIMIT).await, "the tunnel is closed");
}

/// A client that finishes sending (shuts down its write side) still gets everything the
/// server sends after that; megabytes cross both ways intact.
#[tokio::test]
async fn a_half_closed_tunnel_still_delivers_the_servers_remaining_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Reads until the client's end of stream, then answers with all of it, reversed.
    let origin = Origin::start(|mut conn| async move {
        let stream = &mut conn.wire().stream;
        let mut all = Vec::new();
        if stream.read_to_end(&mut all).await.is_ok() {
            all.reverse();
            let _ = stream.write_all(&all).await;
        }
    })
    .await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![origin.port()];
    let sluice = start(cfg).await;
    let mut s = tokio::net::TcpStream::connect(sluice.addr).await.unwrap();
    s.write_all(connect_request(&origin.addr().to_string()).as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "head: {head:?}");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    let sent: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    s.write_all(&sent).await.unwrap();
    s.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(common::LIMIT, s.read_to_end(&mut got))
        .await
        .expect("the tunnel ends")
        .unwrap();
    let mut want = sent;
    want.reverse();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the bytes came back intact");
}

/// Regression: a CONNECT whose head announced content (here `Content-Length: 5`) got a 200
/// and an upstream connection, but hyper read the bytes after the head as a body and never
/// handed the connection to the tunnel: nothing crossed it, either way. RFC 9110 §9.3.6:
/// a CONNECT request has no content, so such a head is refused before connecting.
#[tokio::test]
async fn a_connect_that_announces_content_is_refused_without_connecting() {
    let origin = echo_origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![origin.port()];
    let sluice = start(cfg).await;
    let a = origin.addr().to_string();
    for framing in ["Content-Length: 5", "Transfer-Encoding: chunked"] {
        let mut c = sluice.client().await;
        c.send(format!(
            "CONNECT {a} HTTP/1.1\r\nHost: {a}\r\n{framing}\r\n\r\nhello"
        ))
        .await;
        let r = read_connect_response(&mut c).await;
        common::assert_proxy_error(&r, 400, "http_request_error");
        assert!(c.closes_within(common::LIMIT).await, "{framing}: closed");
    }
    // An explicit empty body is no content at all: the tunnel opens.
    let mut c = sluice.client().await;
    c.send(format!(
        "CONNECT {a} HTTP/1.1\r\nHost: {a}\r\nContent-Length: 0\r\n\r\n"
    ))
    .await;
    assert_eq!(read_connect_response(&mut c).await.status(), 200);
    c.send("empty").await;
    assert_eq!(c.expect_some(common::LIMIT).await, b"EMPTY");
    assert_eq!(
        origin.connections(),
        1,
        "only the tunnel without content connected"
    );
}

/// CONNECT authorities that spell a loopback address some other way (an IPv6 form in
/// brackets, userinfo before the host, a trailing dot, numeric IPv4 spellings the resolver
/// reads as addresses) reach the guard as the address they name: refused (403, or 400 for
/// a target that is not `host:port`; a resolver that does not read a numeric spelling
/// answers 502), never a tunnel to the loopback origin.
#[tokio::test]
async fn connect_spellings_of_loopback_never_reach_it() {
    let origin = echo_origin().await;
    let mut cfg = config();
    cfg.upstream.allow.clear();
    let p = origin.port();
    cfg.proxy.connect_ports = vec![p];
    let sluice = start(cfg).await;
    for authority in [
        format!("[::ffff:127.0.0.1]:{p}"),
        format!("[::ffff:7f00:1]:{p}"),
        format!("[64:ff9b:1::7f00:1]:{p}"),
        format!("user@127.0.0.1:{p}"),
        format!("user:pw@localhost:{p}"),
        format!("127.0.0.1.:{p}"),
        format!("LOCALHOST:{p}"),
        format!("2130706433:{p}"),
        format!("0x7f.1:{p}"),
        format!("127.1:{p}"),
    ] {
        let mut c = sluice.client().await;
        c.send(connect_request(&authority)).await;
        let r = read_connect_response(&mut c).await;
        match r.status() {
            403 => common::assert_proxy_error(&r, 403, "destination_ip_prohibited"),
            400 | 502 => {}
            s => panic!("{authority}: unexpected {s}: {}", r.text()),
        }
    }
    assert_eq!(origin.connections(), 0, "no tunnel to loopback");
}

/// `proxy.max_request_line` holds for CONNECT too (README: longer request lines get 414):
/// a CONNECT whose request line is over it is answered 414 before its target is looked at
/// (here a port outside `proxy.connect_ports`, which would otherwise be a 403).
#[tokio::test]
async fn a_connect_request_line_over_max_request_line_gets_414() {
    let mut cfg = config();
    cfg.proxy.max_request_line = "1KiB".parse().expect("size");
    let sluice = start(cfg).await;
    let authority = format!("{}.example:25", "a".repeat(1100));
    let mut c = sluice.client().await;
    c.send(format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"
    ))
    .await;
    let r = read_connect_response(&mut c).await;
    common::assert_proxy_error(&r, 414, "http_request_error");
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_close(common::LIMIT).await;
}

/// Regression: when the destination ended its side of a tunnel first (a half-close: it sent
/// everything and shut down its writing, but still reads), sluice shut down its side to the
/// client through the client connection's lingering close, which read and discarded what
/// the client was still sending: bytes bound for the destination were lost (whatever was
/// waiting at that moment, then whatever the discard won over the tunnel's own reads).
#[tokio::test]
async fn a_tunnel_half_closed_by_its_destination_still_carries_every_client_byte() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (go, start_closing) = tokio::sync::oneshot::channel::<()>();
    let (count_tx, count) = tokio::sync::oneshot::channel::<usize>();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        // Reads nothing until told: the client's bytes back up to sluice's receive buffer.
        let _ = start_closing.await;
        s.write_all(b"hello").await.expect("write");
        s.shutdown().await.expect("half-close");
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got).await;
        let _ = count_tx.send(got.len());
    });
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![port];
    let sluice = start(cfg).await;
    let mut c = tokio::net::TcpStream::connect(sluice.addr)
        .await
        .expect("connect");
    c.write_all(
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
    )
    .await
    .expect("send CONNECT");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        c.read_exact(&mut b).await.expect("CONNECT answer");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // Send until every buffer on the way is full and sluice has client bytes unread.
    let chunk = vec![b'x'; 64 << 10];
    let mut sent = 0usize;
    while sent < (512 << 20) {
        match c.try_write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let ready =
                    tokio::time::timeout(std::time::Duration::from_millis(300), c.writable()).await;
                if ready.is_err() {
                    break;
                }
            }
            Err(e) => panic!("tunnel write failed after {sent} bytes: {e}"),
        }
    }
    go.send(()).expect("destination waiting");
    let mut from_destination = Vec::new();
    tokio::time::timeout(common::LIMIT, c.read_to_end(&mut from_destination))
        .await
        .expect("the destination's end reaches the client")
        .expect("read");
    assert_eq!(from_destination, b"hello");
    c.shutdown().await.expect("client half-close");
    let received = tokio::time::timeout(common::LIMIT, count)
        .await
        .expect("the client's end reaches the destination")
        .expect("count");
    assert_eq!(
        received, sent,
        "every byte the client sent reached the destination"
    );
}

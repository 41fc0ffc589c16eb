//! Admin API hardening beyond tests/admin_api.rs: odd Authorization shapes, bodies too large
//! without a Content-Length, malformed JSON on every body-taking endpoint, and the proxy
//! port never reaching the admin handler (origin-form is a 400, absolute-form to the admin
//! address is stopped by the destination guard, CONNECT by the port allowlist).

use crate::admin_support;
use crate::common;

use admin_support::{AdminClient, Dirs};
use common::{assert_proxy_error, Client};

const TOKEN: &str = "correct-horse-battery-staple";

#[tokio::test]
async fn odd_authorization_headers_are_all_401_with_a_bearer_challenge() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config(TOKEN)).await;
    let anon = AdminClient::of(&s, None);
    for auth in [
        "Authorization: Bearer".to_string(),
        "Authorization: Bearer ".to_string(),
        format!("Authorization: Basic {TOKEN}"),
        format!("Authorization: Bearer {TOKEN}x"),
        format!("Authorization: Bearer {}", &TOKEN[..TOKEN.len() - 1]),
        format!("Authorization: Bearer {}", TOKEN.to_uppercase()),
        format!("Authorization: {TOKEN}"),
        format!("X-Authorization: Bearer {TOKEN}"),
        format!("Proxy-Authorization: Bearer {TOKEN}"),
    ] {
        for (method, path) in [("GET", "/metrics"), ("GET", "/hashes"), ("POST", "/purge")] {
            let a = anon.send(method, path, b"", &[auth.as_str()]).await;
            assert_eq!(a.status, 401, "{method} {path} with {auth:?}");
            assert_eq!(a.header("www-authenticate"), Some("Bearer"), "{auth:?}");
        }
    }
    let good = format!("Authorization: Bearer {TOKEN}");
    assert_eq!(
        anon.send("GET", "/metrics", b"", &[&good]).await.status,
        200
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_without_a_content_length() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config(TOKEN)).await;
    let addr = AdminClient::of(&s, None).addr;
    // 100 KiB of JSON whitespace in 1 KiB chunks against the 64 KiB limit of /purge.
    let mut req = format!(
        "POST /purge HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..100 {
        req.extend_from_slice(b"400\r\n");
        req.extend_from_slice(&[b' '; 1024]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let mut c = Client::connect(addr).await;
    c.send(&req).await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 413, "{}", r.text());
    assert!(r.text().contains("larger than 65536 bytes"), "{}", r.text());
}

#[tokio::test]
async fn malformed_json_is_400_naming_the_parse_error_on_every_json_endpoint() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config(TOKEN)).await;
    let c = AdminClient::of(&s, Some(TOKEN));
    for path in ["/purge", "/hashes"] {
        for body in [
            &b"{\"url\": "[..],
            b"not json at all",
            b"{\"kind\":\"sha256\",}",
            b"\xff\xfe\x00",
            b"",
        ] {
            let a = c.send("POST", path, body, &[]).await;
            assert_eq!(a.status, 400, "{path} {body:?}: {:?}", a.json);
            let msg = a.json["error"].as_str().unwrap_or("");
            assert!(
                msg.starts_with("invalid JSON") && msg.contains("line 1"),
                "{path} {body:?}: the parse error with its position: {msg}"
            );
        }
    }
    // Well-formed JSON of the wrong shape is a 400 too, not a 500.
    for (path, body) in [
        ("/purge", "[1,2]"),
        ("/hashes", "{\"kind\":7}"),
        ("/hashes", "42"),
    ] {
        let a = c.send("POST", path, body.as_bytes(), &[]).await;
        assert_eq!(a.status, 400, "{path} {body}: {:?}", a.json);
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_answered_before_auth_without_leaking_data() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config(TOKEN)).await;
    let anon = AdminClient::of(&s, None);
    for path in [
        "/",
        "/admin",
        "/hashes/sha256",
        "/metrics/",
        "/../metrics",
        "/verdicts/a/b",
    ] {
        let a = anon.get(path).await;
        assert_eq!(a.status, 404, "{path}");
        assert!(a.json["error"].is_string(), "{path}");
    }
    let a = anon.send("POST", "/healthz", b"", &[]).await;
    assert_eq!((a.status, a.header("allow")), (405, Some("GET, HEAD")));
    let a = anon.send("GET", "/purge", b"", &[]).await;
    assert_eq!((a.status, a.header("allow")), (405, Some("POST")));
    let a = anon.send("GET", "/hashes/sha256/00", b"", &[]).await;
    assert_eq!((a.status, a.header("allow")), (405, Some("DELETE")));
}

#[tokio::test]
async fn nothing_on_the_proxy_port_reaches_the_admin_api() {
    let dirs = Dirs::new();
    let mut cfg = dirs.config("");
    cfg.upstream.allow.clear(); // the default guard: loopback is not a destination
    let s = common::start(cfg).await;
    let admin = AdminClient::of(&s, None).addr;

    // Origin-form: a request for the proxy itself, not for a URL.
    for path in ["/healthz", "/metrics", "/hashes", "/verdicts?class=spam"] {
        let mut c = s.client().await;
        let r = c
            .exchange(format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\n\r\n"))
            .await;
        assert_proxy_error(&r, 400, "http_request_error");
        assert!(
            !r.text().contains("\"status\""),
            "not an admin answer: {}",
            r.text()
        );
    }
    let mut c = s.client().await;
    let r = c
        .exchange(format!(
            "POST /hashes HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 2\r\n\r\n[]"
        ))
        .await;
    assert_eq!(r.status(), 400);

    // Absolute-form to the admin listener, by address and by name.
    for url in [
        format!("http://{admin}/hashes"),
        format!("http://{admin}/metrics"),
        format!("http://localhost:{}/healthz", admin.port()),
        format!("http://[::ffff:127.0.0.1]:{}/healthz", admin.port()),
        format!("http://2130706433:{}/healthz", admin.port()),
    ] {
        let r = s.fetch(&url).await;
        assert_proxy_error(&r, 403, "destination_ip_prohibited");
    }
    // CONNECT to the admin port: not an allowed CONNECT port.
    let mut c = s.client().await;
    let r = c
        .exchange(format!("CONNECT {admin} HTTP/1.1\r\nHost: {admin}\r\n\r\n"))
        .await;
    assert_eq!(r.status(), 403);

    // The admin API itself still answers directly.
    assert_eq!(AdminClient::of(&s, None).get("/healthz").await.status, 200);
}

#[tokio::test]
async fn a_silent_or_half_sent_admin_connection_is_closed_at_the_header_timeout() {
    let dirs = Dirs::new();
    let mut cfg = dirs.config(TOKEN);
    cfg.proxy.header_timeout = std::time::Duration::from_millis(300);
    let s = common::start(cfg).await;
    let addr = AdminClient::of(&s, None).addr;
    // A connection that never sends a byte, one that sends half a head, and an idle
    // keep-alive connection after a complete request: each once held a descriptor for ever.
    let silent = Client::connect(addr).await;
    let mut half = Client::connect(addr).await;
    half.send("GET /healthz HTTP/1.1\r\nHost: adm").await;
    let mut idle = Client::connect(addr).await;
    idle.send("GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        .await;
    let started = std::time::Instant::now();
    for (name, mut c) in [("silent", silent), ("half", half), ("idle", idle)] {
        let rest = c.expect_close(common::LIMIT).await;
        if name == "idle" {
            assert!(
                rest.starts_with(b"HTTP/1.1 200"),
                "the request was answered first"
            );
        }
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
}

/// A token written with a trailing newline (pasted from a file, a heredoc) is the token
/// without it: no `Authorization` header can carry a newline, so nothing could authenticate.
#[tokio::test]
async fn a_configured_token_with_a_trailing_newline_still_authenticates() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config(&format!(" {TOKEN}\n"))).await;
    let good = AdminClient::of(&s, Some(TOKEN));
    assert_eq!(good.get("/metrics").await.status, 200);
    let bad = AdminClient::of(&s, Some("wrong"));
    assert_eq!(bad.get("/metrics").await.status, 401);
}

/// Regression: the header timeout ends at the end of the head, and the body was read with
/// no limit in time, so a client that declared a body and stopped sending it (a crashed
/// script, a slowloris) held its admin connection and handler for ever. Now a body with no
/// byte for `proxy.header_timeout` is answered 408 and the connection closed.
#[tokio::test]
async fn a_stalled_admin_request_body_is_408_and_closed() {
    let dirs = Dirs::new();
    let mut cfg = dirs.config(TOKEN);
    cfg.proxy.header_timeout = std::time::Duration::from_millis(300);
    let s = common::start(cfg).await;
    let addr = AdminClient::of(&s, None).addr;
    for path in ["/purge", "/hashes", "/rescan"] {
        let mut c = Client::connect(addr).await;
        c.send(format!(
            "POST {path} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: 100\r\n\r\n{{\"url\":"
        ))
        .await;
        let rest = c.expect_close(common::LIMIT).await;
        let text = String::from_utf8_lossy(&rest);
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert!(text.contains("stopped arriving"), "{path}: {text}");
    }
}

/// Regression: hyper's header timer covers only request heads, so an admin client that
/// asked for large listings and stopped reading held its connection, its task and the
/// buffered responses for ever. Like the proxy listener, the admin listener now cuts off a
/// client that has taken no response bytes for `proxy.idle_timeout`, with a reset (bytes
/// were left unsent). The pipelined pages add up to several times the kernel's largest
/// send buffer, so the client's silence stalls the writes.
#[tokio::test]
async fn an_admin_client_that_stops_reading_is_cut_off_at_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let dirs = Dirs::new();
    let mut cfg = dirs.config(TOKEN);
    cfg.proxy.idle_timeout = std::time::Duration::from_millis(300);
    cfg.proxy.header_timeout = std::time::Duration::from_secs(60);
    let s = common::start(cfg).await;
    let c = AdminClient::of(&s, Some(TOKEN));
    let entries: Vec<serde_json::Value> = (0..1000u32)
        .map(|i| serde_json::json!({"kind": "sha256", "hash": format!("{i:064x}"), "list": "bulk"}))
        .collect();
    let added = c.post("/hashes", &serde_json::Value::Array(entries)).await;
    assert_eq!(added.json["added"].as_u64(), Some(1000), "{:?}", added.json);
    let page = c.get("/hashes?limit=1000").await;
    assert_eq!(page.status, 200);
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(4 << 20);
    let pages = (6 * wmem_max).clamp(24 << 20, 256 << 20) / page.resp.body.len() + 1;
    let request = format!(
        "GET /hashes?limit=1000 HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let mut stream = socket.connect(c.addr).await.expect("connect");
    stream
        .write_all(request.repeat(pages).as_bytes())
        .await
        .expect("send the requests");
    // The client never reads; the reset shows as the socket's pending error.
    let deadline = tokio::time::Instant::now() + common::LIMIT;
    loop {
        if let Some(e) = stream.take_error().expect("socket error") {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the admin connection of a client that stopped reading is still open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

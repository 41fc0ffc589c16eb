//! `https://` absolute-form requests: fetched over TLS (rustls) with `upstream.ca_file`
//! trusted, pooled like plain connections, refused with a TLS `Proxy-Status` when the
//! certificate does not verify, and tunnelled through a parent with CONNECT (whose refusal
//! is final).

use crate::common;

use std::io::Write;

use common::tls::{test_ca, test_ca_with, tls_origin, TestCa};
use common::{config, start, Origin, Sluice};
use sluice::config::{Config, ParentConfig};

async fn https_origin(ca: &TestCa) -> Origin {
    tls_origin(ca, |mut conn| async move {
        while let Some(req) = conn.read_request().await {
            let body = format!("tls {} {}", req.target(), req.header("host").unwrap_or(""));
            if conn.write(common::ok(&body)).await.is_err() {
                return;
            }
        }
    })
    .await
}

/// Writes the CA to a temporary file (kept alive by the returned handle).
fn ca_file(ca: &TestCa) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(ca.ca_pem.as_bytes()).expect("write CA");
    f
}

async fn sluice_trusting(ca: &tempfile::NamedTempFile) -> Sluice {
    let mut cfg = config();
    cfg.upstream.ca_file = ca.path().display().to_string();
    start(cfg).await
}

#[tokio::test]
async fn https_urls_are_fetched_over_tls_with_the_configured_ca() {
    let ca = test_ca(&["localhost", "127.0.0.1"]);
    let origin = https_origin(&ca).await;
    let file = ca_file(&ca);
    let sluice = sluice_trusting(&file).await;
    let p = origin.port();
    let r = sluice
        .fetch(&format!("https://localhost:{p}/secure?x=1"))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.text(), format!("tls /secure?x=1 localhost:{p}"));
    // An IP literal is checked against the certificate's IP SAN.
    let r = sluice.fetch(&format!("https://127.0.0.1:{p}/ip")).await;
    assert_eq!(r.text(), format!("tls /ip 127.0.0.1:{p}"));
}

#[tokio::test]
async fn tls_upstream_connections_are_reused() {
    let ca = test_ca(&["localhost"]);
    let origin = https_origin(&ca).await;
    let file = ca_file(&ca);
    let sluice = sluice_trusting(&file).await;
    for i in 0..3 {
        let r = sluice
            .fetch(&format!("https://localhost:{}/{i}", origin.port()))
            .await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        origin.connections(),
        1,
        "one TLS handshake for three requests"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_gets_502_with_a_tls_proxy_status() {
    let ca = test_ca(&["localhost"]);
    let origin = https_origin(&ca).await;
    let sluice = start(config()).await; // webpki roots only: the test CA is unknown
    let r = sluice
        .fetch(&format!("https://localhost:{}/", origin.port()))
        .await;
    assert_eq!(r.status(), 502, "{}", r.text());
    assert!(
        r.proxy_status().starts_with("sluice; error=tls_"),
        "Proxy-Status {:?}",
        r.proxy_status()
    );
    assert!(
        origin.requests().is_empty(),
        "no request over an unverified connection"
    );
}

#[tokio::test]
async fn a_tls_origin_that_speaks_plain_http_gets_502_tls_protocol_error() {
    // Not a certificate problem: the peer does not speak TLS at all.
    let plain = Origin::start(|mut conn| async move {
        let _ = conn
            .write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let sluice = start(config()).await;
    let r = sluice
        .fetch(&format!("https://127.0.0.1:{}/", plain.port()))
        .await;
    assert_eq!(r.status(), 502, "{}", r.text());
    assert!(
        r.proxy_status()
            .starts_with("sluice; error=tls_protocol_error"),
        "Proxy-Status {:?}",
        r.proxy_status()
    );
}

#[tokio::test]
async fn a_tls_handshake_over_connect_timeout_gets_504_connection_timeout() {
    // Accepts, takes the ClientHello, never answers it.
    let silent = Origin::start(|mut conn| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        while let Ok(1..) = conn.wire().stream.read(&mut buf).await {}
    })
    .await;
    let mut cfg = config();
    cfg.upstream.connect_timeout = std::time::Duration::from_millis(200);
    let sluice = start(cfg).await;
    let r = sluice
        .fetch(&format!("https://localhost:{}/", silent.port()))
        .await;
    common::assert_proxy_error(&r, 504, "connection_timeout");
    assert!(
        r.proxy_status().contains("TLS handshake with localhost"),
        "{}",
        r.proxy_status()
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_gets_502() {
    let ca = test_ca(&["localhost"]);
    let origin = https_origin(&ca).await;
    let file = ca_file(&ca);
    let sluice = sluice_trusting(&file).await;
    // Trusted CA, but the certificate does not name 127.0.0.1.
    let r = sluice
        .fetch(&format!("https://127.0.0.1:{}/", origin.port()))
        .await;
    assert_eq!(r.status(), 502, "{}", r.text());
    assert!(r
        .proxy_status()
        .starts_with("sluice; error=tls_certificate_error"));
    assert!(origin.requests().is_empty());
}

#[tokio::test]
async fn https_through_a_parent_uses_connect_then_tls_end_to_end() {
    let ca = test_ca(&["localhost"]);
    let origin = https_origin(&ca).await;
    // A raw parent that answers CONNECT by splicing to the (loopback) authority it names.
    let parent = Origin::start(|mut conn| async move {
        let Some(head) = conn.read_head().await else {
            return;
        };
        if head.start[0] != "CONNECT" {
            let _ = conn
                .write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                .await;
            return;
        }
        let port = head.start[1].rsplit(':').next().unwrap_or("").to_string();
        let Ok(mut up) = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await else {
            return;
        };
        if conn
            .write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut conn.wire().stream, &mut up).await;
    })
    .await;
    let file = ca_file(&ca);
    let cfg = through_parent(&file, parent.port(), false);
    let sluice = start(cfg).await;
    let p = origin.port();
    let r = sluice
        .fetch(&format!("https://localhost:{p}/via-parent"))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.text(), format!("tls /via-parent localhost:{p}"));
    let connect = parent.last_request();
    assert_eq!(connect.method(), "CONNECT");
    assert_eq!(connect.target(), format!("localhost:{p}"));
}

/// A stale object fetched through a parent's tunnel, then the parent refuses the tunnel:
/// its 403 is the answer (the stale copy would bypass its policy); its 503 is a 5xx, so
/// the object's `stale-if-error` applies.
#[tokio::test]
async fn a_parents_403_to_a_tunnel_never_brings_back_a_stale_object() {
    let ca = test_ca(&["localhost"]);
    // `Connection: close`, so each request opens a new tunnel instead of reusing one.
    let origin = tls_origin(&ca, |mut conn| async move {
        if conn.read_request().await.is_some() {
            let _ = conn
                .write(
                    "HTTP/1.1 200 OK\r\nCache-Control: max-age=0, stale-if-error=600\r\n\
                     Connection: close\r\nContent-Length: 5\r\n\r\nstale",
                )
                .await;
        }
    })
    .await;
    let connects = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = connects.clone();
    // Tunnels the first CONNECT, then answers 403, then 503.
    let parent = Origin::start(move |mut conn| {
        let seen = seen.clone();
        async move {
            let Some(head) = conn.read_head().await else {
                return;
            };
            let answer = match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => "200 Connection established",
                1 => "403 Forbidden",
                _ => "503 Service Unavailable",
            };
            let _ = conn.write(format!("HTTP/1.1 {answer}\r\n\r\n")).await;
            if !answer.starts_with("200") {
                return;
            }
            let port = head.start[1].rsplit(':').next().unwrap_or("").to_string();
            if let Ok(mut up) = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await {
                let _ = tokio::io::copy_bidirectional(&mut conn.wire().stream, &mut up).await;
            }
        }
    })
    .await;
    let file = ca_file(&ca);
    let cfg = through_parent(&file, parent.port(), true);
    let sluice = start(cfg).await;
    let url = format!("https://localhost:{}/policy", origin.port());
    let first = sluice.fetch(&url).await;
    assert_eq!((first.status(), first.text().as_str()), (200, "stale"));
    let refused = sluice.fetch(&url).await;
    common::assert_proxy_error(&refused, 403, "http_request_denied");
    let failed = sluice.fetch(&url).await;
    assert_eq!(
        (failed.status(), failed.text().as_str()),
        (200, "stale"),
        "a 503 is an error stale-if-error covers"
    );
    assert_eq!(connects.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(origin.requests().len(), 1, "never direct around the parent");
}

/// The test config trusting the test CA in `ca`, with `localhost` routed through the parent
/// on `parent_port`.
fn through_parent(ca: &tempfile::NamedTempFile, parent_port: u16, go_direct: bool) -> Config {
    let mut cfg = config();
    cfg.upstream.ca_file = ca.path().display().to_string();
    cfg.upstream.parents = vec![ParentConfig {
        domains: vec!["localhost".into()],
        proxies: vec![format!("127.0.0.1:{parent_port}")
            .parse()
            .expect("host:port")],
        go_direct,
    }];
    cfg
}

/// A certificate that does not verify is `tls_certificate_error` (README's table), whatever
/// the reason: an unknown issuer, or a trusted issuer's certificate that has expired or is
/// not yet valid. Never `tls_protocol_error`, and nothing is sent over the connection.
#[tokio::test]
async fn untrusted_expired_and_not_yet_valid_certificates_are_tls_certificate_errors() {
    let unknown = test_ca(&["localhost"]);
    let expired = test_ca_with(&["localhost"], |leaf| {
        leaf.not_before = rcgen::date_time_ymd(2000, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2001, 1, 1);
    });
    let future = test_ca_with(&["localhost"], |leaf| {
        leaf.not_before = rcgen::date_time_ymd(4000, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(4001, 1, 1);
    });
    for (case, ca, trusted) in [
        ("unknown issuer", &unknown, false),
        ("expired", &expired, true),
        ("not yet valid", &future, true),
    ] {
        let origin = https_origin(ca).await;
        let file = ca_file(ca);
        let sluice = if trusted {
            sluice_trusting(&file).await
        } else {
            start(config()).await
        };
        let r = sluice
            .fetch(&format!("https://localhost:{}/", origin.port()))
            .await;
        assert_eq!(r.status(), 502, "{case}: {}", r.text());
        assert!(
            r.proxy_status().starts_with(
                "sluice; error=tls_certificate_error; details=\"the certificate of localhost"
            ),
            "{case}: Proxy-Status {:?}",
            r.proxy_status()
        );
        assert!(origin.requests().is_empty(), "{case}: nothing sent");
    }
}

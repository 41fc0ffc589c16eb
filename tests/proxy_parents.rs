//! Parent proxies: host-suffix match, absolute-form requests to the parent, the same URL
//! to the same parent (rendezvous hashing), failover when a parent is down, `go_direct`;
//! a parent that refuses a tunnel is final.

use crate::common;

use std::collections::HashSet;

use common::{config, refused_port, start, Origin, Sluice};
use sluice::config::ParentConfig;

/// A raw parent proxy that answers every request itself, naming itself and the target.
async fn parent(name: &'static str) -> Origin {
    Origin::respond(move |req| common::ok(&format!("{name} {}", req.target()))).await
}

/// The test config with one parent group for `localhost` on these 127.0.0.1 ports.
fn parents_config(proxies: &[u16], go_direct: bool) -> sluice::config::Config {
    let mut cfg = config();
    cfg.upstream.parents = vec![ParentConfig {
        domains: vec!["localhost".into()],
        proxies: proxies
            .iter()
            .map(|p| format!("127.0.0.1:{p}").parse().expect("host:port"))
            .collect(),
        go_direct,
    }];
    cfg
}

async fn sluice_with_parents(proxies: &[u16], go_direct: bool) -> Sluice {
    start(parents_config(proxies, go_direct)).await
}

/// Both requests went to `parent` (a parent that answers is not marked down), and none
/// went around it to `direct`.
#[track_caller]
fn assert_parent_kept(parent: &Origin, direct: &Origin, case: &str) {
    assert_eq!(
        parent.requests().len(),
        2,
        "{case}: the parent was not marked down"
    );
    assert_eq!(
        direct.connections(),
        0,
        "{case}: never direct around a live parent"
    );
}

/// Which parent ("A"/"B") answered.
fn answered_by(r: &common::Response) -> String {
    assert_eq!(r.status(), 200, "{}", r.text());
    r.text().split(' ').next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn matching_hosts_go_to_a_parent_in_absolute_form_others_go_direct() {
    let (a, b) = (parent("A").await, parent("B").await);
    let direct = Origin::ok("direct").await;
    let sluice = sluice_with_parents(&[a.port(), b.port()], false).await;

    let r = sluice.fetch("http://localhost:8080/page?q=1").await;
    let got = if answered_by(&r) == "A" { &a } else { &b };
    let seen = got.last_request();
    assert_eq!(seen.target(), "http://localhost:8080/page?q=1");
    assert_eq!(seen.header("host"), Some("localhost:8080"));
    assert!(seen.header("via").is_some_and(|v| v.contains("sluice")));

    let r = sluice.fetch(&direct.url("/x")).await;
    assert_eq!(
        r.text(),
        "direct",
        "127.0.0.1 does not match domains = [\"localhost\"]"
    );
    assert_eq!(a.requests().len() + b.requests().len(), 1);
}

#[tokio::test]
async fn the_same_url_always_goes_to_the_same_parent_and_urls_spread() {
    let (a, b) = (parent("A").await, parent("B").await);
    let sluice = sluice_with_parents(&[a.port(), b.port()], false).await;
    let first = answered_by(&sluice.fetch("http://localhost/sticky").await);
    for _ in 0..5 {
        assert_eq!(
            answered_by(&sluice.fetch("http://localhost/sticky").await),
            first
        );
    }
    let mut used = HashSet::new();
    for i in 0..24 {
        used.insert(answered_by(
            &sluice.fetch(&format!("http://localhost/spread/{i}")).await,
        ));
    }
    assert_eq!(used.len(), 2, "24 URLs all hashed to one parent");
}

#[tokio::test]
async fn a_down_parent_fails_over_to_the_other() {
    let (a, b) = (parent("A").await, parent("B").await);
    let sluice = sluice_with_parents(&[a.port(), b.port()], false).await;
    let url = "http://localhost/failover";
    let first = answered_by(&sluice.fetch(url).await);
    let (down, other) = if first == "A" { (&a, "B") } else { (&b, "A") };
    // The parent dies: its listener and its (pooled) connections close.
    down.stop().await;
    for _ in 0..3 {
        let r = sluice.fetch(url).await;
        assert_eq!(answered_by(&r), other);
    }
}

#[tokio::test]
async fn a_refused_parent_fails_over_to_the_other() {
    let live = parent("B").await;
    let sluice = sluice_with_parents(&[refused_port(), live.port()], false).await;
    for i in 0..6 {
        let r = sluice.fetch(&format!("http://localhost/{i}")).await;
        assert_eq!(answered_by(&r), "B");
    }
}

#[tokio::test]
async fn with_go_direct_all_parents_down_means_direct() {
    let direct = Origin::ok("direct").await;
    let sluice = sluice_with_parents(&[refused_port(), refused_port()], true).await;
    let url = format!("http://localhost:{}/d", direct.port());
    let r = sluice.fetch(&url).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "direct"));
    assert_eq!(
        direct.last_request().target(),
        "/d",
        "origin-form when direct"
    );
}

#[tokio::test]
async fn without_go_direct_all_parents_down_is_502() {
    let direct = Origin::ok("direct").await;
    let sluice = sluice_with_parents(&[refused_port(), refused_port()], false).await;
    let url = format!("http://localhost:{}/d", direct.port());
    for _ in 0..2 {
        let r = sluice.fetch(&url).await;
        common::assert_proxy_error(&r, 502, "connection_refused");
        assert!(
            r.proxy_status()
                .contains("details=\"connection to parent 127.0.0.1:"),
            "the hop that failed is named as a parent: {}",
            r.proxy_status()
        );
    }
    assert_eq!(
        direct.connections(),
        0,
        "never direct when go_direct = false"
    );
}

/// A parent that answers the first request on a connection and, on the second, reports
/// its name and then hangs without answering (the test then kills it).
async fn dying_parent(
    name: &'static str,
    tell: tokio::sync::mpsc::UnboundedSender<&'static str>,
) -> Origin {
    Origin::start(move |mut conn| {
        let tell = tell.clone();
        async move {
            let mut n = 0;
            while let Some(req) = conn.read_request().await {
                n += 1;
                if n == 2 {
                    let _ = tell.send(name);
                    std::future::pending::<()>().await;
                }
                let _ = conn
                    .write(common::ok(&format!("{name} {}", req.target())))
                    .await;
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_parent_dying_under_a_reused_connection_fails_over_for_a_get() {
    let (tell, mut told) = tokio::sync::mpsc::unbounded_channel();
    let a = dying_parent("A", tell.clone()).await;
    let b = dying_parent("B", tell).await;
    let sluice = sluice_with_parents(&[a.port(), b.port()], false).await;
    let url = "http://localhost/dies";
    let first = answered_by(&sluice.fetch(url).await);
    // The second request reuses the pooled connection; the parent takes it and dies.
    let addr = sluice.addr;
    let pending = tokio::spawn(async move { common::fetch(addr, url).await });
    let holder = tokio::time::timeout(common::LIMIT, told.recv())
        .await
        .expect("the request reached a parent")
        .expect("channel open");
    assert_eq!(holder, first, "reused the same parent's pooled connection");
    if holder == "A" {
        a.stop().await
    } else {
        b.stop().await
    }
    let r = pending.await.expect("fetch task");
    let other = if holder == "A" { "B" } else { "A" };
    assert_eq!(
        answered_by(&r),
        other,
        "the GET is replayed on the next parent"
    );
}

/// Regression: a parent that accepted a fresh connection for an `http://` request and closed
/// it without answering made that request a 502, while the same parent doing so to a
/// CONNECT was marked down and failed over.
#[tokio::test]
async fn a_parent_closing_a_fresh_connection_unanswered_fails_over_for_a_get_only() {
    let closer = Origin::start(|mut conn| async move {
        let _ = conn.read_request().await;
    })
    .await;
    let live = parent("B").await;
    let sluice = sluice_with_parents(&[closer.port(), live.port()], false).await;
    // Enough URLs that rendezvous hashing puts the closer first for some of them.
    for i in 0..8 {
        let r = sluice.fetch(&format!("http://localhost/get{i}")).await;
        assert_eq!(answered_by(&r), "B", "GET {i}");
    }
    assert_eq!(
        closer.connections(),
        1,
        "tried once, then marked down and skipped"
    );

    // A POST is not replayed: the closer may have acted on it.
    let closer = Origin::start(|mut conn| async move {
        let _ = conn.read_request().await;
    })
    .await;
    let sluice = sluice_with_parents(&[closer.port()], false).await;
    let r = sluice
        .client()
        .await
        .exchange(common::request("POST", "http://localhost/post", &[], b"x"))
        .await;
    assert_eq!(r.status(), 502, "{}", r.text());
}

/// A raw parent that answers every CONNECT with `status` (e.g. `403 Forbidden`).
async fn refusing_parent(status: &'static str) -> Origin {
    Origin::start(move |mut conn| async move {
        if conn.read_head().await.is_some() {
            let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            let _ = conn.write(answer).await;
        }
    })
    .await
}

/// Regression: a parent's 403 to CONNECT marked it down and failed over to the next
/// parent and then direct, so an `https://` URL the parent forbids was fetched anyway,
/// and any client could keep the parent marked down by asking for such URLs.
#[tokio::test]
async fn a_parent_refusing_a_tunnel_is_final_not_marked_down_and_never_bypassed() {
    let (a, b) = (
        refusing_parent("403 Forbidden").await,
        refusing_parent("403 Forbidden").await,
    );
    let direct = Origin::ok("direct").await;
    let sluice = sluice_with_parents(&[a.port(), b.port()], true).await;
    let url = format!("https://localhost:{}/blocked", direct.port());
    for _ in 0..3 {
        let r = sluice.fetch(&url).await;
        common::assert_proxy_error(&r, 403, "http_request_denied");
        assert!(
            r.proxy_status().contains("received-status=403"),
            "{}",
            r.proxy_status()
        );
    }
    let (asked, other) = if a.requests().is_empty() {
        (&b, &a)
    } else {
        (&a, &b)
    };
    assert_eq!(
        asked.requests().len(),
        3,
        "the same parent asked every time"
    );
    assert!(asked.requests().iter().all(|r| r.method() == "CONNECT"));
    assert!(
        other.requests().is_empty(),
        "no failover to the other parent"
    );
    assert_eq!(direct.connections(), 0, "never direct around the parent");
}

/// A parent whose answer to CONNECT never ends its head is up (it talks) but not making
/// sense: a 502 like a bad status line, not "closed", which marked it down and went around it.
#[tokio::test]
async fn a_parents_endless_connect_answer_is_a_502_without_failover() {
    let parent = Origin::start(|mut conn| async move {
        if conn.read_head().await.is_some() {
            let mut answer = b"HTTP/1.1 200 Connection established\r\n".to_vec();
            for i in 0..1000 {
                answer
                    .extend_from_slice(format!("X-Filler-{i}: {}\r\n", "f".repeat(40)).as_bytes());
            }
            let _ = conn.write(answer).await;
            conn.read_head().await;
        }
    })
    .await;
    let direct = Origin::ok("direct").await;
    let sluice = sluice_with_parents(&[parent.port()], true).await;
    let url = format!("https://localhost:{}/x", direct.port());
    for _ in 0..2 {
        let r = sluice.fetch(&url).await;
        common::assert_proxy_error(&r, 502, "http_protocol_error");
    }
    assert_parent_kept(&parent, &direct, "");
}

#[tokio::test]
async fn a_parents_407_or_503_to_connect_is_a_502_or_its_503_without_failover() {
    for (answer, status, error) in [
        (
            "407 Proxy Authentication Required",
            502,
            "proxy_configuration_error",
        ),
        ("503 Service Unavailable", 503, "destination_unavailable"),
    ] {
        let parent = refusing_parent(answer).await;
        let direct = Origin::ok("direct").await;
        let sluice = sluice_with_parents(&[parent.port()], true).await;
        let url = format!("https://localhost:{}/x", direct.port());
        for _ in 0..2 {
            let r = sluice.fetch(&url).await;
            common::assert_proxy_error(&r, status, error);
            assert!(
                r.proxy_status().contains(&answer[..3]),
                "{answer}: {}",
                r.proxy_status()
            );
        }
        assert_parent_kept(&parent, &direct, answer);
    }
}

/// A raw parent that opens every tunnel itself: it answers CONNECT with 200 after
/// `answer_after` (its own connection to the origin), then echoes the tunnelled bytes back
/// upper-cased.
async fn tunnelling_parent(answer_after: std::time::Duration) -> Origin {
    Origin::start(move |mut conn| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if conn.read_head().await.is_none() {
            return;
        }
        tokio::time::sleep(answer_after).await;
        let stream = &mut conn.wire().stream;
        if stream
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            if stream
                .write_all(&buf[..n].to_ascii_uppercase())
                .await
                .is_err()
            {
                return;
            }
        }
    })
    .await
}

/// A client's CONNECT to a host served by parents, in a config that allows it direct.
async fn connect_through(sluice: &Sluice, authority: &str) -> (common::Client, common::Response) {
    let mut c = sluice.client().await;
    c.send(format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"
    ))
    .await;
    let r = c
        .try_read_response_to("CONNECT")
        .await
        .expect("a complete CONNECT response");
    (c, r)
}

fn parents_for_connect(proxies: &[u16], go_direct: bool, port: u16) -> sluice::config::Config {
    let mut cfg = parents_config(proxies, go_direct);
    cfg.proxy.connect_ports = vec![port];
    cfg
}

/// Regression: a client's CONNECT always went direct, ignoring `[[upstream.parents]]`, so
/// a fleet whose only way out is its parents could not tunnel, and one whose parents
/// enforce a policy had it bypassed by any client that asked for a tunnel.
#[tokio::test]
async fn a_client_connect_goes_through_the_parents_with_failover() {
    let parent = tunnelling_parent(std::time::Duration::ZERO).await;
    let direct = Origin::ok("direct").await;
    let sluice = start(parents_for_connect(
        &[refused_port(), parent.port()],
        true,
        direct.port(),
    ))
    .await;
    let authority = format!("localhost:{}", direct.port());
    for _ in 0..2 {
        let (mut c, r) = connect_through(&sluice, &authority).await;
        assert_eq!(r.status(), 200, "{}", r.text());
        c.send("through the parent").await;
        let mut got = Vec::new();
        while got.len() < "through the parent".len() {
            got.extend(c.expect_some(common::LIMIT).await);
        }
        assert_eq!(got, b"THROUGH THE PARENT");
    }
    let asked = parent.requests();
    assert_eq!(asked.len(), 2);
    assert!(
        asked
            .iter()
            .all(|r| r.method() == "CONNECT" && r.target() == authority),
        "{:?}",
        asked
            .iter()
            .map(|r| r.target().to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(direct.connections(), 0, "a live parent is never bypassed");
}

#[tokio::test]
async fn a_parents_refusal_of_a_client_connect_is_final() {
    let parent = refusing_parent("403 Forbidden").await;
    let direct = Origin::ok("direct").await;
    let sluice = start(parents_for_connect(&[parent.port()], true, direct.port())).await;
    let authority = format!("localhost:{}", direct.port());
    for _ in 0..2 {
        let (_, r) = connect_through(&sluice, &authority).await;
        common::assert_proxy_error(&r, 403, "http_request_denied");
        assert!(r.proxy_status().contains("received-status=403"));
    }
    assert_parent_kept(&parent, &direct, "");
}

/// Regression: a parent's answer to CONNECT had to come within `upstream.connect_timeout`,
/// though the parent answers only once it has reached the origin; a slow origin behind a
/// healthy parent marked the parent down and sent the tunnel around it (direct, with
/// `go_direct`). The answer is a response, awaited for `upstream.response_timeout`.
#[tokio::test]
async fn a_parent_slower_than_connect_timeout_to_answer_connect_is_not_marked_down() {
    let connect_timeout = std::time::Duration::from_millis(100);
    let parent = tunnelling_parent(connect_timeout * 5).await;
    let direct = Origin::ok("direct").await;
    let mut cfg = parents_for_connect(&[parent.port()], true, direct.port());
    cfg.upstream.connect_timeout = connect_timeout;
    let sluice = start(cfg).await;
    let authority = format!("localhost:{}", direct.port());
    for _ in 0..2 {
        let (mut c, r) = connect_through(&sluice, &authority).await;
        assert_eq!(r.status(), 200, "{}", r.text());
        c.send("slow but up").await;
        let mut got = Vec::new();
        while got.len() < "slow but up".len() {
            got.extend(c.expect_some(common::LIMIT).await);
        }
        assert_eq!(got, b"SLOW BUT UP");
    }
    assert_parent_kept(&parent, &direct, "");
}

/// The other side of the same decision: a parent that takes the CONNECT and never answers
/// is up (it accepted), so the request ends at `upstream.response_timeout` with a 504,
/// never around the parent.
#[tokio::test]
async fn a_parent_that_never_answers_connect_is_a_504_without_failover() {
    let parent = Origin::start(|mut conn| async move {
        if conn.read_head().await.is_some() {
            conn.read_head().await;
        }
    })
    .await;
    let direct = Origin::ok("direct").await;
    let mut cfg = parents_for_connect(&[parent.port()], true, direct.port());
    cfg.upstream.response_timeout = std::time::Duration::from_millis(200);
    let sluice = start(cfg).await;
    let authority = format!("localhost:{}", direct.port());
    for _ in 0..2 {
        let (_, r) = connect_through(&sluice, &authority).await;
        common::assert_proxy_error(&r, 504, "http_response_timeout");
        assert!(
            r.proxy_status().contains("parent 127.0.0.1:"),
            "{}",
            r.proxy_status()
        );
    }
    assert_parent_kept(&parent, &direct, "");
}

/// Regression: a TLS handshake with the origin that timed out inside a parent's tunnel
/// counted as the parent being unreachable: the parent was marked down and the request
/// went to the next parent and then direct. The parent had answered; the origin was slow.
#[tokio::test]
async fn an_origin_tls_timeout_inside_a_parents_tunnel_does_not_mark_the_parent_down() {
    // The parent opens the tunnel, then the "origin" takes the ClientHello and never answers.
    let parent = Origin::start(|mut conn| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if conn.read_head().await.is_none() {
            return;
        }
        let stream = &mut conn.wire().stream;
        if stream
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        let mut buf = [0u8; 4096];
        while let Ok(1..) = stream.read(&mut buf).await {}
    })
    .await;
    let direct = Origin::ok("direct").await;
    let mut cfg = parents_config(&[parent.port()], true);
    cfg.upstream.connect_timeout = std::time::Duration::from_millis(200);
    let sluice = start(cfg).await;
    let url = format!("https://localhost:{}/slow-tls", direct.port());
    for _ in 0..2 {
        let r = sluice.fetch(&url).await;
        common::assert_proxy_error(&r, 504, "connection_timeout");
    }
    assert_parent_kept(&parent, &direct, "");
}

/// A parent list that names this proxy itself (or two proxies that are each other's parent)
/// used to send a request round until connections ran out. Its second arrival carries this
/// instance's `Via` entry and is refused; the origin is never asked, and the proxy goes on
/// serving everyone else.
#[tokio::test]
async fn a_parent_list_naming_this_proxy_is_a_loop_refused_on_the_second_pass() {
    let direct = Origin::ok("direct").await;
    let [port] = common::free_ports::<1>();
    let mut cfg = parents_for_connect(&[port], false, direct.port());
    cfg.proxy.listen = ([127, 0, 0, 1], port).into();
    let sluice = start(cfg).await;

    let r = sluice
        .fetch(&format!("http://localhost:{}/loop", direct.port()))
        .await;
    assert_eq!(r.status(), 502, "{}", r.text());
    assert!(
        r.proxy_status().contains("error=proxy_loop_detected"),
        "Proxy-Status: {}",
        r.proxy_status()
    );
    let (_, r) = connect_through(&sluice, &format!("localhost:{}", direct.port())).await;
    assert_eq!(r.status(), 502, "a tunnel loop ends too: {}", r.text());
    assert_eq!(direct.connections(), 0, "the origin is never asked");

    let r = sluice.fetch(&direct.url("/other")).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "direct"));
}

/// Two sluices in a chain each add their own entry: the second is not taken for a loop.
#[tokio::test]
async fn a_sluice_behind_another_sluice_is_not_a_loop() {
    let origin = Origin::ok("origin").await;
    let parent = common::start_default().await;
    let child = sluice_with_parents(&[parent.addr.port()], false).await;
    let r = child
        .fetch(&format!("http://localhost:{}/chained", origin.port()))
        .await;
    assert_eq!((r.status(), r.text().as_str()), (200, "origin"));
    let via = origin.last_request().header("via").map(str::to_string);
    let both = format!("{}, {}", child.request_via(), parent.request_via());
    assert_eq!(via.as_deref(), Some(both.as_str()));
}

/// A parent's 407 to an `http://` request concerns sluice's own credentials for it (it has
/// none), not the client's: relayed, it told the client that sluice wants proxy
/// credentials, without the challenge a 407 must carry (RFC 9110 §15.5.8; hop-by-hop
/// `Proxy-Authenticate` is removed), as the tunnel for an `https://` URL already says.
#[tokio::test]
async fn a_parents_407_to_an_http_request_is_a_502_proxy_configuration_error() {
    let parent = Origin::respond(|_| {
        b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\n\
         Content-Length: 4\r\n\r\nauth"
            .to_vec()
    })
    .await;
    let direct = Origin::ok("direct").await;
    let sluice = sluice_with_parents(&[parent.port()], true).await;
    let url = format!("http://localhost:{}/x", direct.port());
    for _ in 0..2 {
        let r = sluice.fetch(&url).await;
        common::assert_proxy_error(&r, 502, "proxy_configuration_error");
        assert!(
            r.proxy_status().contains("received-status=407"),
            "{}",
            r.proxy_status()
        );
    }
    assert_parent_kept(&parent, &direct, "407");
}

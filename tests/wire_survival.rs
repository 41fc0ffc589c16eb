//! After the whole wire attack set on one proxy instance — every malformed request, every
//! hostile response, a slowloris, an interim-response flood and an endless body — a normal
//! request is still served, over a fresh and a pooled upstream connection alike.

use crate::common;

use std::time::Duration;

use common::attacks::{attack, request_attacks, response_attacks, Expect};
use common::{config, get, start, Origin, LIMIT};

#[tokio::test]
async fn after_the_whole_attack_set_a_normal_request_still_succeeds() {
    let hostile = Origin::start(|mut conn| async move {
        let cases = response_attacks();
        while let Some(req) = conn.read_request().await {
            let answer = match req.target() {
                "/flood" => "HTTP/1.1 100 Continue\r\n\r\n".repeat(20_000).into_bytes(),
                "/endless" => {
                    let _ = conn
                        .write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await;
                    let chunk = format!("1000\r\n{}\r\n", "e".repeat(0x1000));
                    while conn.write(&chunk).await.is_ok() {}
                    return;
                }
                t => cases
                    .iter()
                    .find(|(n, ..)| t.strip_prefix("/bad/") == Some(*n))
                    .map(|(.., bytes)| bytes.clone())
                    .unwrap_or_default(),
            };
            if conn.write(&answer).await.is_err() {
                return;
            }
        }
    })
    .await;
    let good = Origin::respond(|req| common::ok(req.target())).await;
    let mut cfg = config();
    cfg.proxy.header_timeout = Duration::from_millis(300);
    cfg.upstream.response_timeout = Duration::from_millis(500);
    cfg.upstream.body_timeout = Duration::from_millis(500);
    cfg.scan.max_body = "64KiB".parse().expect("size");
    let sluice = start(cfg).await;
    // Warm a pooled connection to the good origin first.
    assert_eq!(sluice.fetch(&good.url("/warm")).await.status(), 200);

    for (name, want, bytes) in request_attacks(&good.url("/attack"), &good.addr().to_string()) {
        let got = attack(sluice.addr, &bytes).await;
        assert_eq!((got.status, got.closed), (Some(want), true), "{name}");
    }
    for (name, expect, _) in response_attacks() {
        let r = sluice.fetch(&hostile.url(&format!("/bad/{name}"))).await;
        let want = match expect {
            Expect::BadGateway => 502,
            Expect::Relayed(status, _) => status,
        };
        assert_eq!(r.status(), want, "{name}");
    }
    // A slowloris that never finishes its head, held open while the rest goes on.
    let mut slow = sluice.client().await;
    slow.send("GET http://127.0.0.1/ HTTP/1.1\r\nX-Slow: ")
        .await;
    assert_eq!(sluice.fetch(&hostile.url("/flood")).await.status(), 504);
    let mut endless = sluice.client().await;
    endless.send(get(&hostile.url("/endless"))).await;
    assert!(
        endless.try_read_response().await.is_err(),
        "an endless body is cut"
    );
    assert!(slow.closes_within(LIMIT).await, "the slowloris is closed");

    assert_eq!(
        good.requests()
            .iter()
            .filter(|r| r.target() == "/attack")
            .count(),
        0
    );
    for path in ["/after-1", "/after-2"] {
        let r = sluice.fetch(&good.url(path)).await;
        assert_eq!((r.status(), r.text()), (200, path.to_string()));
    }
}

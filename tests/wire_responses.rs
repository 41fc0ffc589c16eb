//! Hostile origins (RFC 9112 §6, §11): ambiguous or malformed responses end in a 502 with
//! `Proxy-Status`, are never cached, and the connection they came on is never reused, so
//! bytes after a response can never become the answer to another request.

mod common;

use common::attacks::{response_attacks, Expect};
use common::{config, get, start, Origin};

/// An origin that answers `/bad/<case>` with that case's bytes and anything else with
/// `fresh <connection>`; connections stay open for more requests.
async fn hostile_origin() -> Origin {
    Origin::start(|mut conn| async move {
        let cases = response_attacks();
        while let Some(req) = conn.read_request().await {
            let answer = match req.target().strip_prefix("/bad/") {
                Some(name) => cases
                    .iter()
                    .find(|(n, ..)| *n == name)
                    .map(|(.., bytes)| bytes.clone())
                    .unwrap_or_default(),
                None => common::ok(&format!("fresh {}", conn.index)),
            };
            if conn.write(&answer).await.is_err() {
                return;
            }
        }
    })
    .await
}

fn hits(origin: &Origin, path: &str) -> usize {
    origin
        .requests()
        .iter()
        .filter(|r| r.target() == path)
        .count()
}

#[tokio::test]
async fn every_hostile_response_is_refused_uncached_and_its_connection_dropped() {
    let origin = hostile_origin().await;
    let mut cfg = config();
    // A case that the proxy wrongly reads to the end would otherwise wait minutes.
    cfg.upstream.body_timeout = std::time::Duration::from_secs(1);
    cfg.upstream.response_timeout = std::time::Duration::from_secs(1);
    let sluice = start(cfg).await;
    let mut failures = Vec::new();
    let cases = response_attacks();
    for (name, expect, _) in &cases {
        let path = format!("/bad/{name}");
        for round in 1..=2 {
            let mut c = sluice.client().await;
            c.send(get(&origin.url(&path))).await;
            let got = c.try_read_response().await;
            let ok = match (expect, &got) {
                (Expect::BadGateway, Ok(r)) => {
                    r.status() == 502 && r.proxy_status().starts_with("sluice;")
                }
                (Expect::Relayed(status, body), Ok(r)) => {
                    r.status() == *status && r.text() == *body
                }
                (_, Err(_)) => false,
            };
            if !ok {
                let got = got.map(|r| (r.status(), r.proxy_status().to_string(), r.text()));
                failures.push(format!(
                    "{name} (round {round}): want {expect:?}, got {got:?}"
                ));
            }
        }
        // Not cached: the second request went to the origin again. (A well-framed response
        // followed by stray bytes may be cached: it is what the origin said.)
        if *expect == Expect::BadGateway && hits(&origin, &path) != 2 {
            failures.push(format!(
                "{name}: origin saw {} requests, want 2",
                hits(&origin, &path)
            ));
        }
        // Whatever followed the response is not the answer to the next request.
        let next = sluice.fetch(&origin.url(&format!("/next/{name}"))).await;
        if next.status() != 200 || !next.text().starts_with("fresh") {
            failures.push(format!(
                "{name}: the next request got {} {:?}",
                next.status(),
                next.text()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

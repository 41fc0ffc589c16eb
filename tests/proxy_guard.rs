//! The destination guard end to end, with loopback targets only: without `upstream.allow`
//! every spelling of a loopback address is refused with 403 and no connection is made.
//! (Private, link-local and other ranges are unit tests of the address check.)

use crate::common;

use common::{assert_proxy_error, config, start, Origin, Sluice};

async fn guarded() -> Sluice {
    let mut cfg = config();
    cfg.upstream.allow.clear();
    start(cfg).await
}

#[track_caller]
fn assert_prohibited(r: &common::Response, url: &str) {
    assert_eq!(r.status(), 403, "{url}: {}", r.text());
    assert!(
        r.proxy_status()
            .starts_with("sluice; error=destination_ip_prohibited"),
        "{url}: Proxy-Status {:?}",
        r.proxy_status()
    );
}

#[tokio::test]
async fn loopback_names_and_addresses_are_refused_without_a_connection() {
    let origin = Origin::ok("secret").await;
    let sluice = guarded().await;
    let p = origin.port();
    for url in [
        format!("http://127.0.0.1:{p}/"),
        format!("http://localhost:{p}/"),
        format!("http://LOCALHOST.:{p}/"),
        format!("http://127.0.0.2:{p}/"),
        format!("http://user@127.0.0.1:{p}/"),
        format!("http://user:pw@localhost:{p}/"),
    ] {
        let r = sluice.fetch(&url).await;
        assert_prohibited(&r, &url);
    }
    assert_eq!(
        origin.connections(),
        0,
        "the guard must refuse before connecting"
    );
}

#[tokio::test]
async fn numeric_spellings_of_loopback_are_refused() {
    let origin = Origin::ok("secret").await;
    let sluice = guarded().await;
    let p = origin.port();
    for url in [
        format!("http://2130706433:{p}/"),
        format!("http://0x7f.1:{p}/"),
        format!("http://0x7f000001:{p}/"),
        format!("http://017700000001:{p}/"),
        format!("http://127.1:{p}/"),
    ] {
        let r = sluice.fetch(&url).await;
        // A resolver that does not read these forms as addresses fails with a DNS error
        // (502); what must never happen is a connection to the loopback origin.
        match r.status() {
            403 => assert_prohibited(&r, &url),
            400 | 502 => {}
            s => panic!("{url}: unexpected {s}: {}", r.text()),
        }
    }
    assert_eq!(
        origin.connections(),
        0,
        "no spelling of 127.0.0.1 may get through"
    );
}

#[tokio::test]
async fn ipv6_loopback_is_refused() {
    let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
        eprintln!("no IPv6 loopback on this machine; skipping");
        return;
    };
    let origin = Origin::serve(
        listener,
        |s| async move { Some(Box::new(s) as Box<dyn common::origin::Io>) },
        |mut conn| async move {
            while conn.read_request().await.is_some() {
                let _ = conn.write(common::ok("secret")).await;
            }
        },
    );
    let sluice = guarded().await;
    let p = origin.port();
    for url in [
        format!("http://[::1]:{p}/"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://[0:0:0:0:0:0:0:1]:{p}/"),
    ] {
        let r = sluice.fetch(&url).await;
        assert_prohibited(&r, &url);
    }
    assert_eq!(origin.connections(), 0);
}

#[tokio::test]
async fn allow_list_lets_the_listed_network_through() {
    let origin = Origin::ok("reachable").await;
    let mut cfg = config();
    cfg.upstream.allow = vec!["127.0.0.1/32".parse().expect("CIDR")];
    let sluice = start(cfg).await;
    let r = sluice.fetch(&origin.url("/")).await;
    assert_eq!((r.status(), r.text().as_str()), (200, "reachable"));
    // 127.0.0.2 is loopback but not listed.
    let r = sluice
        .fetch(&format!("http://127.0.0.2:{}/", origin.port()))
        .await;
    assert_proxy_error(&r, 403, "destination_ip_prohibited");
}

//! Shared support for the integration tests: start sluice in-process on ephemeral loopback
//! ports, script raw origins byte for byte, and speak raw HTTP/1.1 as a client.
//!
//! - [`start`] / [`config`]: a running sluice ([`Sluice`]) on `127.0.0.1:0` with a temporary
//!   store; the test config allows loopback upstreams (`upstream.allow`), since every origin
//!   here lives on 127.0.0.1. Tests of the destination guard clear that list.
//! - [`origin::Origin`]: a raw TCP origin (or parent proxy) that counts connections and
//!   records requests; [`tls::tls_origin`] is the same behind TLS with a test CA.
//! - [`client::Client`]: writes exact bytes and reads responses with correct framing, so a
//!   truncated body is an error, never a short success.
//!
//! Every wait is bounded by [`LIMIT`]: a hanging proxy fails the test instead of hanging it.
#![allow(dead_code)]

pub mod attacks;
pub mod bin;
pub mod cache;
pub mod client;
pub mod origin;
pub mod tls;
pub mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use sluice::config::Config;
use sluice::server::Running;

#[allow(unused_imports)]
pub use client::{fetch, get, request, Client, Response};
#[allow(unused_imports)]
pub use origin::{free_ports, ok, refused_port, Origin};

/// The longest any single step of a test may take before it counts as a hang.
pub const LIMIT: Duration = Duration::from_secs(10);

/// The test configuration: proxy and admin on `127.0.0.1:0`, loopback upstreams allowed,
/// everything else at its default. Tests adjust fields before [`start`].
pub fn config() -> Config {
    let mut cfg = Config::default();
    cfg.proxy.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.upstream.allow = vec![
        "127.0.0.0/8".parse().expect("CIDR"),
        "::1/128".parse().expect("CIDR"),
    ];
    cfg
}

/// A config from TOML text, with the listeners moved to ephemeral ports (the rest as given).
pub fn config_toml(text: &str) -> Config {
    let mut cfg = Config::parse(text, "test config").expect("test config parses");
    cfg.proxy.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg
}

/// A running in-process sluice.
pub struct Sluice {
    /// The proxy listener.
    pub addr: SocketAddr,
    /// The handle; `None` after [`Sluice::shutdown`].
    pub running: Option<Running>,
}

/// Starts sluice with `cfg` and a temporary store.
pub async fn start(cfg: Config) -> Sluice {
    let store = sluice::store::Store::temporary().expect("temporary store");
    let running = sluice::server::start_with_store(cfg, store)
        .await
        .expect("sluice starts");
    Sluice {
        addr: running.proxy_addr,
        running: Some(running),
    }
}

/// Starts sluice with the test [`config`].
pub async fn start_default() -> Sluice {
    start(config()).await
}

impl Sluice {
    /// A new raw client connection to the proxy.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// One GET for `url` through the proxy on a new connection; the complete response.
    pub async fn fetch(&self, url: &str) -> Response {
        fetch(self.addr, url).await
    }

    /// The stored response for `url`, once there is one: asks with `only-if-cached` (never
    /// upstream) until it is a 200, as observe mode stores after the body has streamed.
    /// Panics after [`LIMIT`].
    pub async fn stored(&self, url: &str) -> Response {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let r = self
                .client()
                .await
                .exchange(request("GET", url, &["Cache-Control: only-if-cached"], b""))
                .await;
            if r.status() == 200 {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {url} to be stored"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A new TCP connection that has sent an HTTP/1.0 GET for `path` on `origin` (a client
    /// that reads a body without a length until the connection ends).
    pub async fn http10_get(&self, origin: &Origin, path: &str) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let req = format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\n\r\n",
            origin.url(path),
            origin.addr()
        );
        s.write_all(req.as_bytes()).await.expect("send");
        s
    }

    /// This instance's `Via` entry on what it sends upstream for an HTTP/1.1 request.
    pub fn request_via(&self) -> String {
        let running = self.running.as_ref().expect("running");
        let hop = running
            .proxy
            .upstream
            .via
            .request_hop(http::Version::HTTP_11);
        hop.to_str().expect("visible ASCII").to_string()
    }

    /// Idle pooled upstream connections.
    pub fn idle_upstreams(&self) -> usize {
        self.running
            .as_ref()
            .map(|r| r.proxy.upstream.idle_connections())
            .unwrap_or(0)
    }
}

/// Asserts that `status` and `Proxy-Status` error type match.
#[track_caller]
pub fn assert_proxy_error(resp: &Response, status: u16, error: &str) {
    assert_eq!(resp.status(), status, "status; body: {}", resp.text());
    let ps = resp.proxy_status();
    assert!(
        ps.starts_with("sluice;") && ps.contains(&format!("error={error}")),
        "Proxy-Status {ps:?} should name error={error}"
    );
    assert!(!resp.body.is_empty(), "an error response has a text body");
}

//! A raw HTTP/1.1 client: writes exactly the bytes a test gives it and reads responses with
//! correct framing, so keep-alive, pipelining and truncation are visible to the test.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::wire::{response_framing, Head, Wire, WireError};
use super::LIMIT;

/// One response as the client received it.
#[derive(Clone, Debug)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.head.start[1].parse().unwrap_or(0)
    }

    /// The protocol version on the status line (`HTTP/1.1`).
    pub fn version(&self) -> &str {
        &self.head.start[0]
    }

    /// The first value of a header field (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `Proxy-Status` field, or "" when absent.
    pub fn proxy_status(&self) -> &str {
        self.header("proxy-status").unwrap_or("")
    }
}

/// A client connection (to sluice or anything else) speaking raw bytes.
pub struct Client {
    wire: Wire<TcpStream>,
}

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(LIMIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        let _ = stream.set_nodelay(true);
        Client {
            wire: Wire::new(stream),
        }
    }

    /// Writes `bytes` as they are (one write call).
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.wire
            .write(bytes.as_ref())
            .await
            .expect("client write failed");
    }

    /// Like [`Client::send`] but reports a write error (the peer may have closed).
    pub async fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
        self.wire.write(bytes.as_ref()).await
    }

    /// Reads the response to a request with method `method` (HEAD and CONNECT change framing),
    /// bounded by the suite's time limit.
    pub async fn try_read_response_to(&mut self, method: &str) -> Result<Response, WireError> {
        let read = async {
            let head = self.wire.read_head().await?;
            let framing = response_framing(method, &head)?;
            let body = self.wire.read_body(framing).await?;
            Ok(Response { head, body })
        };
        tokio::time::timeout(LIMIT, read)
            .await
            .expect("no (complete) response within the time limit: the proxy hangs")
    }

    /// Reads a complete response to a GET-like request; panics if it is incomplete.
    pub async fn read_response(&mut self) -> Response {
        match self.try_read_response_to("GET").await {
            Ok(r) => r,
            Err(e) => panic!("expected a complete response, got {e}"),
        }
    }

    /// Reads a response; `Err` when the connection ended before it was complete.
    pub async fn try_read_response(&mut self) -> Result<Response, WireError> {
        self.try_read_response_to("GET").await
    }

    /// Sends `request` and reads the complete response.
    pub async fn exchange(&mut self, request: impl AsRef<[u8]>) -> Response {
        self.send(request).await;
        self.read_response().await
    }

    /// Waits (at most `within`) for the server to close the connection; returns whatever
    /// bytes arrived first. Panics when the connection is still open after `within`.
    pub async fn expect_close(&mut self, within: Duration) -> Vec<u8> {
        match tokio::time::timeout(within, self.wire.read_to_close()).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => panic!("error while waiting for close: {e}"),
            Err(_) => panic!("connection still open after {within:?}"),
        }
    }

    /// Reads whatever bytes arrive next (at least one; tunnelled data). Panics on a close
    /// or when nothing arrives within `within`.
    pub async fn expect_some(&mut self, within: Duration) -> Vec<u8> {
        match tokio::time::timeout(within, self.wire.read_some()).await {
            Ok(Ok(bytes)) if !bytes.is_empty() => bytes,
            Ok(Ok(_)) => panic!("connection closed while waiting for data"),
            Ok(Err(e)) => panic!("error while waiting for data: {e}"),
            Err(_) => panic!("no data within {within:?}"),
        }
    }

    /// True when the server closes the connection within `within` (without sending more).
    pub async fn closes_within(&mut self, within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.wire.read_to_close()).await,
            Ok(Ok(_))
        )
    }
}

/// A minimal GET request in absolute form with `Host` set from the URL.
pub fn get(url: &str) -> Vec<u8> {
    request("GET", url, &[], b"")
}

/// A request in absolute form: method, URL, extra header lines (`"Name: value"`), body.
/// `Host` is taken from the URL; `Content-Length` is added when the body is not empty.
pub fn request(method: &str, url: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    // The URL's authority without userinfo, as a client writes Host.
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.rsplit('@').next())
        .unwrap_or("");
    let mut s = format!("{method} {url} HTTP/1.1\r\nHost: {host}\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    if !body.is_empty() {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    s.push_str("\r\n");
    let mut bytes = s.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends one GET for `url` through the proxy at `proxy` on a new connection.
pub async fn fetch(proxy: SocketAddr, url: &str) -> Response {
    let mut c = Client::connect(proxy).await;
    c.exchange(get(url)).await
}

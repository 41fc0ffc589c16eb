//! Opening connections: DNS resolution, the destination guard, TCP with a timeout, TLS.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::guard::Guard;
use super::Error;

/// A connection to an upstream: plain TCP or TLS over TCP.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A lookup's answer, or [`Error::DnsTimeout`] after `timeout`: the system resolver's own
/// retries (resolv.conf's timeout × attempts × nameservers) can keep a request, and the
/// blocking thread it waits on, far longer than the connect budget when a name's
/// nameservers never answer. The lookup itself runs on to its end on that thread.
async fn within<T>(
    timeout: Duration,
    host: &str,
    lookup: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(Error::Dns(host.to_string(), e.to_string())),
        Err(_) => Err(Error::DnsTimeout(host.to_string())),
    }
}

/// Resolves `host:port` within `timeout` and keeps only the addresses the guard allows.
/// Fails with [`Error::Guard`] when every resolved address is refused.
pub async fn resolve(
    host: &str,
    port: u16,
    guard: Option<&Guard>,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, Error> {
    let addrs = within(timeout, host, tokio::net::lookup_host((host, port))).await?;
    let addrs: Vec<SocketAddr> = addrs.collect();
    if addrs.is_empty() {
        return Err(Error::Dns(host.to_string(), "no addresses".into()));
    }
    let Some(guard) = guard else { return Ok(addrs) };
    let mut first_denial = None;
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match guard.check(a.ip()) {
            Ok(()) => true,
            Err(why) => {
                first_denial.get_or_insert((a.ip(), why));
                false
            }
        })
        .collect();
    match (allowed.is_empty(), first_denial) {
        (true, Some((ip, why))) => Err(Error::Guard {
            host: host.to_string(),
            ip,
            why: why.as_str(),
        }),
        _ => Ok(allowed),
    }
}

/// RFC 8305's Connection Attempt Delay: how long an attempt has before the next address is
/// tried alongside it (its recommended default, which browsers use).
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Connects to one of `addrs` within `timeout` overall, racing them as browsers do (Happy
/// Eyeballs, RFC 8305): see [`race`].
pub async fn tcp(addrs: &[SocketAddr], timeout: Duration, what: &str) -> Result<TcpStream, Error> {
    let s = race(
        &interleave(addrs),
        timeout,
        ATTEMPT_DELAY,
        what,
        TcpStream::connect,
    )
    .await?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// The addresses with their families alternating, starting with the resolver's first
/// choice (RFC 8305 §4), each family keeping the resolver's order: a host whose IPv6
/// addresses are all unreachable reaches its IPv4 one on the second attempt, not the last.
fn interleave(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let first_v6 = addrs.first().is_some_and(SocketAddr::is_ipv6);
    let (mut first, mut other) = addrs
        .iter()
        .partition::<Vec<_>, _>(|a| a.is_ipv6() == first_v6);
    let (mut first, mut other) = (first.drain(..), other.drain(..));
    let mut out = Vec::with_capacity(addrs.len());
    loop {
        match (first.next(), other.next()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b).copied()),
        }
    }
}

/// Starts `connect` on the addresses in order, the next one when the last started has not
/// connected within `delay` or as soon as an attempt fails; the first to connect wins and
/// the rest are dropped. All within `timeout` from the start: past it, a connect timeout
/// (the budget is the whole connect, however many addresses the name has). When every
/// address has failed, the last failure.
async fn race<S, Fut>(
    addrs: &[SocketAddr],
    timeout: Duration,
    delay: Duration,
    what: &str,
    connect: impl Fn(SocketAddr) -> Fut,
) -> Result<S, Error>
where
    Fut: std::future::Future<Output = std::io::Result<S>>,
{
    if addrs.is_empty() {
        return Err(Error::Refused(what.to_string(), "no address to try".into()));
    }
    use futures_util::stream::{FuturesUnordered, StreamExt};

    let mut next = addrs.iter();
    let mut running = FuturesUnordered::new();
    let deadline = tokio::time::sleep(timeout);
    let stagger = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(deadline, stagger);
    loop {
        tokio::select! {
            biased;
            Some(done) = running.next() => match done {
                Ok(s) => return Ok(s),
                Err(e) => {
                    let e: std::io::Error = e;
                    if running.is_empty() && next.len() == 0 {
                        return Err(Error::Refused(what.to_string(), e.to_string()));
                    }
                    // A failure lets the next address go at once.
                    stagger.as_mut().reset(tokio::time::Instant::now());
                }
            },
            () = &mut stagger, if next.len() > 0 => {
                if let Some(addr) = next.next() {
                    running.push(connect(*addr));
                }
                stagger.as_mut().reset(tokio::time::Instant::now() + delay);
            }
            () = &mut deadline => return Err(Error::ConnectTimeout(what.to_string())),
        }
    }
}

/// Wraps a TCP stream in TLS for `host`.
pub async fn tls(
    tcp: TcpStream,
    host: &str,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Stream, Error> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Error::Tls(host.to_string(), "invalid server name".into()))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
        Ok(Err(e)) => {
            let bad_cert = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
            if bad_cert {
                Err(Error::TlsCertificate(host.to_string(), e.to_string()))
            } else {
                Err(Error::Tls(host.to_string(), e.to_string()))
            }
        }
        Err(_) => Err(Error::TlsTimeout(host.to_string())),
    }
}

/// The longest answer head to a CONNECT that a parent may send (hyper's default for heads).
const MAX_CONNECT_HEAD: usize = 16 << 10;

/// Asks a parent proxy to open a tunnel to `authority` (`host:port`), naming this hop
/// `via`, waiting up to `timeout` for its answer. The parent answers only once it has
/// reached the origin, so this is a response time, not a connect time: running out of it is
/// final (the parent is up), as for an `http://` request relayed by the parent.
pub async fn parent_tunnel(
    mut tcp: TcpStream,
    authority: &str,
    via: &HeaderValue,
    parent: &str,
    timeout: Duration,
) -> Result<TcpStream, Error> {
    let mut req =
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nVia: ").into_bytes();
    req.extend_from_slice(via.as_bytes());
    req.extend_from_slice(b"\r\n\r\n");
    let fut = async {
        tcp.write_all(&req).await?;
        // Interim (1xx) answers come before the final one and are skipped (RFC 9110 §15.2),
        // all within `timeout`, so a flood of them is a response timeout. `101` is final: a
        // switch sluice never asked for, refused below.
        loop {
            let head = read_head(&mut tcp).await?;
            match status_line(&head) {
                Some((code @ 100..=199, _)) if code != 101 && head.ends_with(b"\r\n\r\n") => {}
                _ => return Ok::<_, std::io::Error>(head),
            }
        }
    };
    let head = match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return Err(Error::Refused(format!("parent {parent}"), e.to_string())),
        Err(_) => return Err(Error::ResponseTimeout(format!("parent {parent}"), timeout)),
    };
    if bare_lf(&head) {
        return Err(Error::Protocol(
            format!("parent {parent}"),
            "the answer to CONNECT has a bare LF in its head".into(),
        ));
    }
    if !head.ends_with(b"\r\n\r\n") {
        // The parent is up and talking, just not sense: final, like a bad status line.
        return Err(Error::Protocol(
            format!("parent {parent}"),
            format!("the answer to CONNECT has a head over {MAX_CONNECT_HEAD} bytes"),
        ));
    }
    // Any answer is the parent's word on this tunnel: a refusal (403, 407, 503...) is
    // final for the request, never a reason to mark the parent down or fail over
    // (that would let a client route around the parent's policy by asking for a URL
    // it refuses, and keep it marked down by asking again).
    match status_line(&head) {
        Some((200..=299, _)) => Ok(tcp),
        Some((status, reason)) => Err(Error::Parent {
            parent: parent.to_string(),
            status,
            reason,
        }),
        None => Err(Error::Protocol(
            format!("parent {parent}"),
            "the answer to CONNECT is not an HTTP/1.x status line".into(),
        )),
    }
}

/// Reads a response head off `tcp`, through its blank line, and not one byte further (what
/// follows belongs to the tunnel): each round peeks at what has arrived, then consumes all
/// of it when it holds no end of head, or the head alone when it does. Stops early past
/// [`MAX_CONNECT_HEAD`] bytes, returning a head without its end.
async fn read_head(tcp: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 2048];
    while !head.ends_with(b"\r\n\r\n") && head.len() <= MAX_CONNECT_HEAD {
        let seen = tcp.peek(&mut buf).await?;
        if seen == 0 {
            return Err(std::io::Error::other("parent closed during CONNECT"));
        }
        let take = head_end(&head, &buf[..seen]).unwrap_or(seen);
        tcp.read_exact(&mut buf[..take]).await?;
        head.extend_from_slice(&buf[..take]);
        if bare_lf(&head) {
            // Its end would never come as `\r\n\r\n`: the caller refuses it now.
            break;
        }
    }
    Ok(head)
}

/// Whether `head` holds a LF without the CR before it (RFC 9112 §2.2: sluice refuses those
/// in any response head).
fn bare_lf(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head[i - 1] != b'\r')
}

/// How many bytes of `seen` complete a head that starts with `consumed`, when `seen` holds
/// its end (`\r\n\r\n`, possibly begun at the end of `consumed`).
fn head_end(consumed: &[u8], seen: &[u8]) -> Option<usize> {
    let back = consumed.len().min(3);
    let mut probe = consumed[consumed.len() - back..].to_vec();
    probe.extend_from_slice(seen);
    memchr::memmem::find(&probe, b"\r\n\r\n").map(|i| i + 4 - back)
}

/// The status code and (shortened) reason phrase of `HTTP/1.x SSS reason`.
fn status_line(head: &[u8]) -> Option<(u16, String)> {
    let end = head.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let line = head[..end].strip_prefix(b"HTTP/1.")?;
    let (code, reason) = match line {
        [v, b' ', a, b, c, rest @ ..] if v.is_ascii_digit() => ([*a, *b, *c], rest),
        _ => return None,
    };
    if !code.iter().all(u8::is_ascii_digit) || !(reason.is_empty() || reason[0] == b' ') {
        return None;
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let reason = String::from_utf8_lossy(reason.trim_ascii());
    Some((status, reason.chars().take(64).collect()))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parent's side of a tunnel request: the accepted connection and the CONNECT head
    /// read from it.
    async fn accept_connect(listener: &tokio::net::TcpListener) -> (TcpStream, Vec<u8>) {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 512];
        while !req.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the CONNECT request ends");
            req.extend_from_slice(&buf[..n]);
        }
        (s, req)
    }

    /// A scripted connect, by port: 1 never answers, 2 is refused at once, any other port
    /// connects after that many milliseconds. Yields the address it connected to.
    async fn scripted(addr: SocketAddr) -> std::io::Result<SocketAddr> {
        match addr.port() {
            1 => std::future::pending().await,
            2 => Err(std::io::ErrorKind::ConnectionRefused.into()),
            ms => {
                tokio::time::sleep(Duration::from_millis(ms.into())).await;
                Ok(addr)
            }
        }
    }

    fn v4(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn v6(port: u16) -> SocketAddr {
        SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], port))
    }

    /// Races `addrs` (5 s budget, 250 ms stagger) on paused time: the outcome and when.
    async fn race_of(addrs: &[SocketAddr]) -> (Result<SocketAddr, String>, Duration) {
        let start = tokio::time::Instant::now();
        let won = race(addrs, Duration::from_secs(5), ATTEMPT_DELAY, "o", scripted).await;
        (won.map_err(|e| e.to_string()), start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn addresses_race_with_a_stagger_within_one_budget() {
        let ms = Duration::from_millis;
        // A black-holed first address costs one stagger, not the whole connect budget.
        assert_eq!(race_of(&[v6(1), v4(10)]).await, (Ok(v4(10)), ms(260)));
        // A refusal lets the next address go at once.
        assert_eq!(race_of(&[v6(2), v4(10)]).await, (Ok(v4(10)), ms(10)));
        // The first to connect wins, though started later; the slow one is dropped.
        assert_eq!(race_of(&[v4(1000), v4(20)]).await, (Ok(v4(20)), ms(270)));
        // A slow first address still wins when it is first to finish.
        assert_eq!(race_of(&[v4(300), v4(1)]).await, (Ok(v4(300)), ms(300)));
        // Nothing answers: one budget for all of them, not one each.
        let (won, took) = race_of(&[v4(1), v6(1), v4(1)]).await;
        assert!(won.unwrap_err().contains("timed out"));
        assert_eq!(took, Duration::from_secs(5));
        // Everything refused: the refusal, at once.
        let (won, took) = race_of(&[v4(2), v6(2)]).await;
        assert!(won.unwrap_err().contains("refused"));
        assert_eq!(took, Duration::ZERO);
        assert!(race_of(&[]).await.0.is_err());
    }

    #[test]
    fn families_alternate_from_the_resolvers_first_choice() {
        assert_eq!(
            interleave(&[v6(1), v6(2), v6(3), v4(4), v4(5)]),
            [v6(1), v4(4), v6(2), v4(5), v6(3)]
        );
        assert_eq!(interleave(&[v4(1), v6(2), v4(3)]), [v4(1), v6(2), v4(3)]);
        assert_eq!(interleave(&[v4(1), v4(2)]), [v4(1), v4(2)]);
    }

    #[test]
    fn connect_answer_status_lines() {
        for (head, want) in [
            (
                &b"HTTP/1.1 200 Connection established\r\n\r\n"[..],
                Some((200, "Connection established")),
            ),
            (b"HTTP/1.0 200\r\n\r\n", Some((200, ""))),
            (b"HTTP/1.1 403 Forbidden\r\n\r\n", Some((403, "Forbidden"))),
            (
                b"HTTP/1.1 407 Proxy Authentication Required\r\n",
                Some((407, "Proxy Authentication Required")),
            ),
            (b"HTTP/1.1 2000 OK\r\n", None),
            (b"HTTP/1.1 2x0 OK\r\n", None),
            (b"HTTP/2 200 OK\r\n", None),
            (b"SSH-2.0-OpenSSH\r\n", None),
        ] {
            let got = status_line(head);
            let got = got.as_ref().map(|(s, r)| (*s, r.as_str()));
            assert_eq!(got, want, "{:?}", head.escape_ascii());
        }
    }

    #[test]
    fn the_end_of_a_head_is_found_where_it_starts_in_what_was_consumed() {
        for (consumed, seen, want) in [
            (&b""[..], &b"HTTP/1.1 200 OK\r\n\r\nSSH-2.0"[..], Some(19)),
            (b"", b"HTTP/1.1 200 OK\r\nX: y", None),
            (b"HTTP/1.1 200 OK\r\n", b"\r\nHELLO", Some(2)),
            (b"HTTP/1.1 200 OK\r\n\r", b"\nHELLO", Some(1)),
            (b"HTTP/1.1 200 OK\r", b"\n\r\n", Some(3)),
            (b"HTTP/1.1 200 OK\r\n", b"X: y\r\n\r\n\r\n", Some(8)),
        ] {
            assert_eq!(
                head_end(consumed, seen),
                want,
                "{:?} + {:?}",
                consumed.escape_ascii(),
                seen.escape_ascii()
            );
        }
    }

    #[tokio::test]
    async fn a_lookup_that_never_answers_is_a_dns_timeout() {
        let never = std::future::pending::<std::io::Result<()>>();
        let r = within(Duration::from_millis(20), "slow.example", never).await;
        assert!(matches!(r, Err(Error::DnsTimeout(h)) if h == "slow.example"));
        let failed = async { Err::<(), _>(std::io::Error::other("NXDOMAIN")) };
        let r = within(Duration::from_secs(10), "gone.example", failed).await;
        assert!(matches!(r, Err(Error::Dns(h, _)) if h == "gone.example"));
    }

    /// RFC 9110 §15.2: a client parses any 1xx answers before the final one; a parent's
    /// `100 Continue` (or `102`, `103`) ahead of its 200 is not its answer to the CONNECT.
    #[tokio::test]
    async fn interim_answers_before_the_parents_200_are_skipped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let parent = tokio::spawn(async move {
            let (mut s, _) = accept_connect(&listener).await;
            s.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
            )
            .await
            .unwrap();
            s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\nhello")
                .await
                .unwrap();
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let via = HeaderValue::from_static("1.1 sluice (id=t)");
        let mut tunnel = parent_tunnel(tcp, "example.test:443", &via, "p", Duration::from_secs(10))
            .await
            .expect("the 200 after the interim answers opens the tunnel");
        let mut greeting = [0u8; 5];
        tunnel.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting, b"hello");
        parent.await.unwrap();
    }

    /// A bare LF in the answer's head is a protocol error at once (as in any response head,
    /// README "Limits and strict framing"), not a head that never ends: it waited out
    /// `upstream.response_timeout` and was told as a 504 "no response head".
    #[tokio::test]
    async fn a_bare_lf_in_the_parents_answer_is_a_protocol_error_at_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 Connection established\n\n")
                .await;
            // Holds the connection open until the test is over.
            let _ = done_rx.await;
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let via = HeaderValue::from_static("1.1 sluice (id=t)");
        let r = parent_tunnel(tcp, "example.test:443", &via, "p", Duration::from_secs(5)).await;
        drop(done_tx);
        match r {
            Err(Error::Protocol(who, why)) => {
                assert_eq!(who, "parent p");
                assert!(why.contains("bare LF"), "{why}");
            }
            Err(e) => panic!("expected a protocol error, got {e}"),
            Ok(_) => panic!("expected a protocol error, got a tunnel"),
        }
    }

    /// A protocol whose server speaks first: its bytes may arrive with the parent's answer,
    /// in the same segment, and belong to the tunnel.
    #[tokio::test]
    async fn bytes_after_the_answer_are_left_for_the_tunnel() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let parent = tokio::spawn(async move {
            let (mut s, req) = accept_connect(&listener).await;
            s.write_all(b"HTTP/1.1 200 Connection established\r\nVia: 1.1 p\r\n\r\nSSH-2.0-x\r\n")
                .await
                .unwrap();
            req
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let timeout = Duration::from_secs(10);
        let via = HeaderValue::from_static("1.1 sluice (id=t)");
        let mut tunnel = parent_tunnel(tcp, "example.test:22", &via, "p", timeout)
            .await
            .unwrap();
        let mut greeting = [0u8; 11];
        tunnel.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting, b"SSH-2.0-x\r\n");
        let req = parent.await.unwrap();
        assert!(req.starts_with(b"CONNECT example.test:22 HTTP/1.1\r\n"));
        assert!(
            req.windows(26)
                .any(|w| w == b"\r\nVia: 1.1 sluice (id=t)\r\n"),
            "the tunnel request names this hop, so a loop through parents is seen"
        );
    }
}

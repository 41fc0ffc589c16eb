//! The upstream side: sends a request to its origin, directly or through parent proxies.
//!
//! `route` picks the hops, `connect` opens guarded TCP/TLS connections, `pool` keeps idle
//! keep-alive connections, and [`Client::send`] ties them together with timeouts, parent
//! failover and one safe retry when a reused connection turns out to be dead.

pub mod connect;
pub mod framing;
pub mod guard;
pub mod pool;
pub mod progress;
pub mod route;
pub mod tls;

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use http::{Method, Request, Response, Uri, Version};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::admin::metrics::histogram::Histogram;
use crate::body::{self, Body, BoxError, Deadline, Polled, Watch, Watched};
use crate::config::{HostPort, UpstreamConfig};
use crate::proxy::headers::{wants_keep_alive, ViaName};
use crate::proxy::target::{Scheme, Target};
use crate::proxy::upload::TrailersTooLarge;
use guard::Guard;
use pool::{Conn, Pool, PoolKey};
use route::{Hop, Router};

/// A connection through a hop that could not be opened.
enum Opened {
    /// The hop was not reached: nothing was sent, the next hop may be tried.
    Unreachable(Error),
    /// Final: the hop answered, or the failure came after it was reached.
    Failed(Error),
}

/// Why an upstream exchange failed. Mapped to a status and `Proxy-Status` in `proxy::error`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot resolve {0}: {1}")]
    Dns(String, String),
    #[error("{host} resolves to {ip}, a {why} address that sluice does not connect to")]
    Guard {
        host: String,
        ip: std::net::IpAddr,
        why: &'static str,
    },
    #[error("resolving {0} timed out")]
    DnsTimeout(String),
    #[error("connection to {0} failed: {1}")]
    Refused(String, String),
    #[error("connection to {0} timed out")]
    ConnectTimeout(String),
    #[error("the TLS handshake with {0} timed out")]
    TlsTimeout(String),
    #[error("TLS with {0} failed: {1}")]
    Tls(String, String),
    #[error("the certificate of {0} is not valid: {1}")]
    TlsCertificate(String, String),
    #[error("parent proxy {parent} answered with {status} {reason}")]
    Parent {
        parent: String,
        status: u16,
        reason: String,
    },
    #[error("no response head from {0} within {1:?}")]
    ResponseTimeout(String, Duration),
    #[error("the response head from {0} is too large")]
    HeadTooLarge(String),
    #[error("{0} closed the connection before a complete response")]
    Closed(String),
    #[error("the response body from {0} did not complete within {1:?}")]
    BodyTimeout(String, Duration),
    #[error("bad response from {0}: {1}")]
    Protocol(String, String),
    #[error("the request body is malformed: {0}")]
    RequestBody(String),
    #[error("{0}")]
    RequestTrailers(String),
}

/// How an exchange failed: for good, or before the request could be (re)sent on a fresh
/// connection, in which case the next hop gets the request.
enum Failed {
    Final(Error),
    NextHop(Error, Box<Request<Body>>),
}

impl Failed {
    fn retry(e: Error, unsent: Request<Body>) -> Failed {
        if e.before_sending() {
            Failed::NextHop(e, Box::new(unsent))
        } else {
            Failed::Final(e)
        }
    }
}

impl Error {
    /// The hop could not be reached, so nothing was sent: another hop may be tried. A
    /// parent that answered a tunnel request, even with a refusal, was reached, and so was
    /// one whose tunnel led to an origin that then failed (a TLS handshake timing out).
    fn before_sending(&self) -> bool {
        matches!(
            self,
            Error::Refused(..) | Error::ConnectTimeout(..) | Error::Dns(..) | Error::DnsTimeout(..)
        )
    }

    /// The status a parent answered a tunnel request (or, 407, an `http://` request) with,
    /// when that is what failed.
    pub fn received_status(&self) -> Option<u16> {
        match self {
            Error::Parent { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Sends proxied requests upstream; shared by all client connections.
pub struct Client {
    pool: Arc<Pool>,
    router: Router,
    guard: Guard,
    tls: Arc<rustls::ClientConfig>,
    cfg: UpstreamConfig,
    /// Time to open a connection (DNS, TCP, TLS, parent tunnel, handshake), for metrics.
    pub connect_seconds: Histogram,
    /// Time from sending a request to its response head, for metrics.
    pub response_seconds: Histogram,
    /// This instance's name in `Via` on what it sends upstream, CONNECT included.
    pub via: ViaName,
}

/// A response from upstream plus how it was obtained.
pub struct Fetched {
    pub response: Response<Body>,
    /// The parent used, if any.
    pub hop: Hop,
    /// Whether the response came over a reused pooled connection.
    pub reused: bool,
    /// Time from sending the request to the response head.
    pub elapsed: Duration,
}

impl Client {
    /// A client for the `[upstream]` settings.
    pub fn new(cfg: &UpstreamConfig) -> Result<Client, tls::ConfigError> {
        Ok(Client {
            pool: Pool::new(
                cfg.pool_max_idle_per_host,
                cfg.pool_max_idle,
                cfg.idle_timeout,
            ),
            router: Router::new(cfg.parents.clone(), cfg.parent_down_for),
            guard: Guard::new(cfg.allow.clone()),
            tls: tls::client_config(&cfg.ca_file)?,
            cfg: cfg.clone(),
            connect_seconds: Histogram::default(),
            response_seconds: Histogram::default(),
            via: ViaName::new(),
        })
    }

    /// Idle pooled connections (for metrics and tests).
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Sends `req` (headers already prepared by the proxy) to `target`.
    pub async fn send(&self, req: Request<Body>, target: &Target) -> Result<Fetched, Error> {
        let mut last = None;
        let mut req = Some(req);
        for hop in self.router.plan(&target.host, || target.url()) {
            let key = pool_key(&hop, target);
            let opened = match self.pool.take(&key) {
                Some(conn) => Ok((conn, true)),
                None => self.connect(&hop, target).await.map(|conn| (conn, false)),
            };
            let (conn, reused) = match self.judge(&hop, opened) {
                Ok(opened) => opened,
                Err(Opened::Unreachable(e)) => {
                    last = Some(e);
                    continue;
                }
                Err(Opened::Failed(e)) => return Err(e),
            };
            let Some(mut this) = req.take() else { break };
            *this.uri_mut() = request_uri(&hop, target);
            match self
                .exchange(conn, reused, key, this, hop.clone(), target)
                .await
            {
                Ok(fetched) => return Ok(fetched),
                Err(Failed::Final(e)) => return Err(e),
                Err(Failed::NextHop(e, unsent)) => {
                    // The replay's fresh connection failed: the hop is down, not the request.
                    self.mark_down(&hop, &e);
                    last = Some(e);
                    req = Some(*unsent);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Refused(target.host_port(), "no route".into())))
    }

    /// Opens a client's CONNECT tunnel to `target` (its port already allowed): through the
    /// parents that serve its host, in rendezvous order, as `https://` URLs go, else direct
    /// behind the destination guard. A parent that could not be reached is marked down and
    /// the next hop tried; a parent's answer, even a refusal, is final.
    pub async fn tunnel(&self, target: &Target) -> Result<TcpStream, Error> {
        let mut last = None;
        for hop in self.router.plan(&target.host, || target.host_port()) {
            let opened = match &hop {
                Hop::Direct => self.direct_tcp(target).await,
                Hop::Parent(p) => self.parent_tunnel(p, target).await,
            };
            match self.judge(&hop, opened) {
                Ok(tcp) => return Ok(tcp),
                Err(Opened::Unreachable(e)) => last = Some(e),
                Err(Opened::Failed(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Refused(target.host_port(), "no route".into())))
    }

    /// What opening a connection through `hop` (for a request or a tunnel) says about it: a
    /// parent that was reached is up, and so is one that answered, even with a refusal; one
    /// that could not be reached is marked down, and the next hop may be tried.
    fn judge<T>(&self, hop: &Hop, opened: Result<T, Error>) -> Result<T, Opened> {
        let up = || {
            if let Hop::Parent(p) = hop {
                self.router.mark_up(p);
            }
        };
        match opened {
            Ok(t) => {
                up();
                Ok(t)
            }
            Err(e) if e.before_sending() => {
                self.mark_down(hop, &e);
                Err(Opened::Unreachable(e))
            }
            Err(e) => {
                if e.received_status().is_some() {
                    up();
                }
                Err(Opened::Failed(e))
            }
        }
    }

    /// `hop` could not be reached (`e`): a parent is skipped for its down time.
    fn mark_down(&self, hop: &Hop, e: &Error) {
        if let Hop::Parent(p) = hop {
            tracing::warn!(parent = %p, error = %e, "parent marked down");
            self.router.mark_down(p);
        }
    }

    /// A TCP connection to `target` itself, to an address the destination guard allows.
    async fn direct_tcp(&self, target: &Target) -> Result<TcpStream, Error> {
        let timeout = self.cfg.connect_timeout;
        let addrs = connect::resolve(&target.host, target.port, Some(&self.guard), timeout).await?;
        connect::tcp(&addrs, timeout, &target.host_port()).await
    }

    /// A TCP connection to parent `p`. Parents are trusted destinations: no guard.
    async fn parent_tcp(&self, p: &HostPort) -> Result<TcpStream, Error> {
        let timeout = self.cfg.connect_timeout;
        let addrs = connect::resolve(&p.host, p.port, None, timeout).await?;
        connect::tcp(&addrs, timeout, &format!("parent {p}")).await
    }

    /// A TCP connection to parent `p` on which it has agreed to a tunnel to `target`.
    async fn parent_tunnel(&self, p: &HostPort, target: &Target) -> Result<TcpStream, Error> {
        let tcp = self.parent_tcp(p).await?;
        let answer_within = self.cfg.response_timeout;
        let via = self.via.request_hop(Version::HTTP_11);
        let (authority, parent) = (target.host_port(), p.to_string());
        connect::parent_tunnel(tcp, &authority, &via, &parent, answer_within).await
    }

    async fn exchange(
        &self,
        mut conn: Conn,
        mut reused: bool,
        key: PoolKey,
        req: Request<Body>,
        hop: Hop,
        target: &Target,
    ) -> Result<Fetched, Failed> {
        // Named only when something fails.
        let who = || hop_name(&hop, target);
        // A request without a body to an idempotent method can be replayed once if a reused
        // connection dies before the response starts (the peer closed it while idle).
        let replay = replayable(&req).then(|| clone_head(&req));
        let mut req = Some(req);
        loop {
            let Some(this) = req.take() else {
                return Err(Failed::Final(Error::Closed(who())));
            };
            let started = Instant::now();
            let ready_ok = conn.tx.ready().await.is_ok();
            let outcome = if ready_ok {
                // The timeout counts from the request's last progress, not from its start:
                // a long upload is not the origin being slow.
                let (this, sent) = progress::track(this);
                conn.next.set();
                let send = conn.tx.try_send_request(this);
                progress::within(send, &sent, self.cfg.response_timeout).await
            } else {
                // Dead before we could use it: never sent.
                if reused {
                    reused = false;
                    conn = match self.connect(&hop, target).await {
                        Ok(c) => c,
                        Err(e) => return Err(Failed::retry(e, this)),
                    };
                    req = Some(this);
                    continue;
                }
                return Err(Failed::Final(Error::Closed(who())));
            };
            match outcome {
                None => {
                    return Err(Failed::Final(Error::ResponseTimeout(
                        who(),
                        self.cfg.response_timeout,
                    )))
                }
                Some(Ok(resp)) => {
                    if let Err(why) = framing::check_head(resp.status(), resp.headers()) {
                        // Dropping the response and `conn` closes the connection.
                        return Err(Failed::Final(Error::Protocol(who(), why.into())));
                    }
                    if let (Hop::Parent(p), http::StatusCode::PROXY_AUTHENTICATION_REQUIRED) =
                        (&hop, resp.status())
                    {
                        // The parent wants credentials from sluice, which has none: relayed,
                        // the 407 would ask the client for them, without its challenge
                        // (`Proxy-Authenticate` is hop-by-hop). Told as for a tunnel.
                        return Err(Failed::Final(Error::Parent {
                            parent: p.to_string(),
                            status: 407,
                            reason: "Proxy Authentication Required".into(),
                        }));
                    }
                    let elapsed = started.elapsed();
                    self.response_seconds.observe(elapsed);
                    let keep = wants_keep_alive(resp.version(), resp.headers());
                    let (parts, incoming) = resp.into_parts();
                    let slot = keep.then(|| (self.pool.clone(), key.clone(), conn));
                    let body = Deadline::new(pooled(incoming, slot), self.cfg.body_timeout);
                    return Ok(Fetched {
                        response: Response::from_parts(parts, body::boxed(body)),
                        hop,
                        reused,
                        elapsed,
                    });
                }
                Some(Err(mut e)) => {
                    let unsent = e.take_message();
                    let err = e.into_error();
                    let unanswered =
                        err.is_incomplete_message() || err.is_canceled() || reset(&err);
                    // What can go out again: the request hyper never sent, else the replay
                    // copy when the connection ended before any answer.
                    let again = || {
                        unsent
                            .or_else(|| unanswered.then(|| replay.as_ref().map(rebuild)).flatten())
                    };
                    if reused {
                        if let Some(r) = again() {
                            tracing::debug!(upstream = %who(), "reused connection was dead; retrying on a fresh one");
                            reused = false;
                            conn = match self.connect(&hop, target).await {
                                Ok(c) => c,
                                Err(e) => return Err(Failed::retry(e, r)),
                            };
                            req = Some(r);
                            continue;
                        }
                    } else if let (Hop::Parent(_), true) = (&hop, unanswered) {
                        // A parent that accepted a fresh connection and closed it without a
                        // word is as down as one that refused it, as when it does so to a
                        // CONNECT (Squid fails over on such a zero-size reply too): a
                        // request that may be replayed goes on to the next hop.
                        if let Some(r) = again() {
                            let closed = "closed the connection without answering";
                            return Err(Failed::NextHop(
                                Error::Refused(who(), closed.into()),
                                Box::new(r),
                            ));
                        }
                    }
                    return Err(Failed::Final(map_hyper(who(), &err)));
                }
            }
        }
    }

    async fn connect(&self, hop: &Hop, target: &Target) -> Result<Conn, Error> {
        let started = Instant::now();
        // Boxed: opening is the rare path once the pool is warm, and its state (resolving,
        // racing addresses, TLS) would otherwise size every exchange's future, which is
        // copied on each request.
        let conn = Box::pin(self.open(hop, target)).await?;
        self.connect_seconds.observe(started.elapsed());
        Ok(conn)
    }

    async fn open(&self, hop: &Hop, target: &Target) -> Result<Conn, Error> {
        let timeout = self.cfg.connect_timeout;
        let stream = match hop {
            Hop::Direct => {
                let tcp = self.direct_tcp(target).await?;
                match target.scheme {
                    Scheme::Http => connect::Stream::Plain(tcp),
                    Scheme::Https => {
                        connect::tls(tcp, &target.host, self.tls.clone(), timeout).await?
                    }
                }
            }
            Hop::Parent(p) => match target.scheme {
                Scheme::Http => connect::Stream::Plain(self.parent_tcp(p).await?),
                Scheme::Https => {
                    let tcp = self.parent_tunnel(p, target).await?;
                    connect::tls(tcp, &target.host, self.tls.clone(), timeout).await?
                }
            },
        };
        let next = framing::HeadNext::default();
        let (tx, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(self.cfg.max_header_size.as_usize().max(8192))
            // The exact limit for each response head (and a chunked body's trailers).
            .max_header_size(self.cfg.max_header_size.as_usize())
            // A request's case record (from the client's head) is written either way; not
            // recording the origin's case saves a second header map per response, and
            // responses go to clients lowercase (ARCHITECTURE.md).
            .preserve_header_case(false)
            // Names without the client's recorded case (a replayed request, the fields sluice
            // adds) go out Title-Case, as browsers write them.
            .title_case_headers(true)
            .handshake::<_, Body>(TokioIo::new(framing::Checked::new(stream, next.clone())))
            .await
            .map_err(|e| Error::Protocol(hop_name(hop, target), e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(Conn { tx, next })
    }
}

fn pool_key(hop: &Hop, target: &Target) -> PoolKey {
    match (hop, target.scheme) {
        (Hop::Direct, scheme) => PoolKey::Origin {
            scheme,
            host: target.host.clone(),
            port: target.port,
        },
        (Hop::Parent(p), Scheme::Http) => PoolKey::Parent(p.clone()),
        (Hop::Parent(p), Scheme::Https) => PoolKey::Tunnel {
            parent: p.clone(),
            host: target.host.clone(),
            port: target.port,
        },
    }
}

/// Origin-form to an origin (or through a tunnel), absolute-form to a parent.
fn request_uri(hop: &Hop, target: &Target) -> Uri {
    let s = match (hop, target.scheme) {
        (Hop::Parent(_), Scheme::Http) => target.to_string(),
        _ => target.path.clone(),
    };
    s.parse().unwrap_or_else(|_| Uri::from_static("/"))
}

fn hop_name(hop: &Hop, target: &Target) -> String {
    match hop {
        Hop::Direct => target.host_port(),
        Hop::Parent(p) => format!("parent {p}"),
    }
}

fn replayable(req: &Request<Body>) -> bool {
    let idempotent = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    idempotent && req.body().is_end_stream()
}

fn clone_head(req: &Request<Body>) -> (Method, Uri, Version, http::HeaderMap) {
    (
        req.method().clone(),
        req.uri().clone(),
        req.version(),
        req.headers().clone(),
    )
}

fn rebuild(head: &(Method, Uri, Version, http::HeaderMap)) -> Request<Body> {
    let mut r = Request::new(body::empty());
    *r.method_mut() = head.0.clone();
    *r.uri_mut() = head.1.clone();
    *r.version_mut() = head.2;
    *r.headers_mut() = head.3.clone();
    r
}

/// Whether the connection was reset (RST, not FIN) before any answer came: an origin
/// whose idle timer closed the socket as the request arrived resets it, and the read fails
/// with ECONNRESET rather than ending. As unanswered as an EOF. Never the client's own
/// upload failing (a user error), whose request is not replayed.
fn reset(e: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    if e.is_user() {
        return false;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted);
        }
        cause = c.source();
    }
    false
}

fn map_hyper(who: String, e: &hyper::Error) -> Error {
    if e.is_parse_too_large() {
        Error::HeadTooLarge(who)
    } else if e.is_incomplete_message() || e.is_canceled() || e.is_closed() || reset(e) {
        Error::Closed(who)
    } else if e.is_user() {
        // The client's request body failed while it was forwarded: the client's fault.
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            if let Some(t) = c.downcast_ref::<TrailersTooLarge>() {
                return Error::RequestTrailers(t.to_string());
            }
            if c.source().is_none() {
                return Error::RequestBody(c.to_string());
            }
            cause = c.source();
        }
        Error::RequestBody(e.to_string())
    } else {
        Error::Protocol(who, e.to_string())
    }
}

/// Why the response body from `url` failed to arrive whole: it took longer than
/// `body_timeout`, its framing was malformed (a bad chunk-size line: the origin is talking,
/// not sense), or the connection ended before its end.
pub fn body_error(url: &str, e: &(dyn std::error::Error + 'static)) -> Error {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<crate::body::BodyTimeout>() {
            return Error::BodyTimeout(url.to_string(), t.0);
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            ) {
                return Error::Protocol(url.to_string(), format!("malformed body: {io}"));
            }
        }
        cause = c.source();
    }
    Error::Closed(format!("{url} (body: {e})"))
}

type Slot = Option<(Arc<Pool>, PoolKey, Conn)>;

/// A response body that checks its connection back into the pool once it has been read to
/// the end. A body dropped early takes its connection with it (it is not reusable).
type PooledBody = Watched<Incoming, Release>;

/// The connection a response came on, until its body has been read.
struct Release(Slot);

/// An empty body (HEAD, 204, 304, `Content-Length: 0`) is complete at once: hyper never
/// polls a body that reports its end, so the connection goes back to the pool now.
fn pooled(inner: Incoming, slot: Slot) -> PooledBody {
    let mut release = Release(slot);
    if inner.is_end_stream() {
        release.now();
    }
    Watched::new(inner, release)
}

impl Release {
    fn now(&mut self) {
        if let Some((pool, key, conn)) = self.0.take() {
            pool.put(key, conn);
        }
    }
}

impl Watch for Release {
    fn polled(&mut self, polled: &Polled, ended: bool) -> Result<(), BoxError> {
        if ended {
            self.now();
        } else if let Poll::Ready(Some(Err(_))) = polled {
            // A failed body leaves the connection in an unknown state: never reuse it.
            self.0.take();
        }
        Ok(())
    }
}

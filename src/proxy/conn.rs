//! Per-client-connection state: in-flight requests and activity times, which drive the
//! header (slowloris), idle keep-alive and stalled-send timeouts, and the access log line
//! per request.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Method;
use http_body::Body as HttpBody;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::headcheck::HeadCheck;
use crate::admin::metrics::counters::BYTES_FLUSH;
use crate::body::{Body, BoxError, Polled, Watch, Watched};

/// Shared between a connection's IO wrapper, its requests, and its timeout watcher.
pub struct ConnState {
    epoch: Instant,
    inflight: AtomicUsize,
    /// Milliseconds since `epoch` of the last completed response (or the accept).
    last_done: AtomicU64,
    /// Milliseconds since `epoch` + 1 of the first byte read while no request was in flight;
    /// 0 when none is pending.
    pending_since: AtomicU64,
    /// The bytes read so far end inside a request head (as [`HeadCheck`] follows them).
    head_pending: AtomicBool,
    /// Milliseconds since `epoch` + 1 of the first write the client's socket refused (its
    /// buffer full) since the last one it took; 0 when writes are flowing.
    blocked_since: AtomicU64,
    /// A response body failed mid-way (the upstream body was cut): the connection must end
    /// in a reset, not a clean close.
    cut: AtomicBool,
    /// A request was answered without its body being read whole: the client may still be
    /// sending it when the connection closes, so the close lingers ([`TrackedIo`]).
    body_unread: AtomicBool,
    /// The connection carries a CONNECT tunnel: its close must not linger ([`TrackedIo`]).
    tunnel: AtomicBool,
    /// The proxy's counters (one handle per connection, not per request).
    metrics: crate::admin::metrics::ProxyMetrics,
}

impl Drop for ConnState {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

/// What the watcher should do with a connection now.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Nothing yet; look again after this long.
    Wait(Duration),
    /// A request head has been arriving for longer than the header timeout.
    HeaderTimeout,
    /// No request for longer than the idle timeout.
    Idle,
    /// The client has taken no response bytes for longer than the idle timeout (nginx's
    /// `send_timeout`, Squid's `write_timeout`): it stopped reading.
    SendStalled,
}

impl ConnState {
    /// State for a connection accepted now, counted in `metrics`.
    pub fn new(metrics: crate::admin::metrics::ProxyMetrics) -> Arc<ConnState> {
        metrics.connection_opened();
        Arc::new(ConnState {
            epoch: Instant::now(),
            inflight: AtomicUsize::new(0),
            last_done: AtomicU64::new(0),
            pending_since: AtomicU64::new(0),
            head_pending: AtomicBool::new(false),
            blocked_since: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            body_unread: AtomicBool::new(false),
            tunnel: AtomicBool::new(false),
            metrics,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn on_read(&self) {
        if self.inflight.load(Ordering::Acquire) == 0 {
            let now = self.now_ms() + 1;
            let _ =
                self.pending_since
                    .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// A write to the client returned `r`: a refused one starts the stall clock, one that
    /// took bytes stops it.
    fn on_write<T>(&self, r: &Poll<std::io::Result<T>>) {
        match r {
            Poll::Pending => {
                let now = self.now_ms() + 1;
                let _ = self.blocked_since.compare_exchange(
                    0,
                    now,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            Poll::Ready(_) if self.blocked_since.load(Ordering::Acquire) != 0 => {
                self.blocked_since.store(0, Ordering::Release);
            }
            Poll::Ready(_) => {}
        }
    }

    /// A request head was parsed and handed to the handler.
    pub fn request_started(&self) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        self.pending_since.store(0, Ordering::Release);
    }

    /// The response in flight, if any, is cut short (shutdown's grace period is over): the
    /// connection must end in a reset, or a body without a length would look complete. A
    /// response whose body hyper has taken whole is still in flight while the client has not
    /// taken its last bytes (the write of them was refused): those are lost too.
    pub fn cut_in_flight(&self) {
        if self.inflight.load(Ordering::Acquire) > 0
            || self.blocked_since.load(Ordering::Acquire) != 0
        {
            self.cut();
        }
    }

    /// Response bytes are left unsent (the client stopped taking them): the connection
    /// ends in a reset, whether or not the response's body has been handed to hyper whole.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
    }

    /// A request is answered without its body read whole (refused before or while it was
    /// read): the connection's close lingers, so the client can send the rest and read the
    /// answer rather than lose it to the reset its unread bytes would cause.
    pub fn body_left_unread(&self) {
        self.body_unread.store(true, Ordering::Release);
    }

    /// A CONNECT tunnel was opened on this connection. Its client side is shut down when the
    /// destination ends its side, while the client may still send bytes the tunnel carries
    /// on: a lingering close would read and discard them.
    pub fn tunnel_opened(&self) {
        self.tunnel.store(true, Ordering::Release);
    }

    /// A response finished (or was abandoned).
    pub fn request_done(&self) {
        let now = self.now_ms();
        self.last_done.store(now, Ordering::Release);
        // A head that began arriving behind this request (pipelined in the same read, or
        // sent while it was in flight) started no header clock: its reads found a request in
        // flight, and `request_started` cleared the clock. It starts now, or a client could
        // hold the connection with half a head for the whole idle timeout.
        let pending = if self.head_pending.load(Ordering::Acquire) {
            now + 1
        } else {
            0
        };
        self.pending_since.store(pending, Ordering::Release);
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Decides whether a timeout has expired.
    pub fn check(&self, header_timeout: Duration, idle_timeout: Duration) -> Check {
        let blocked = self.blocked_since.load(Ordering::Acquire);
        let check = self.check_requests(header_timeout, idle_timeout);
        if blocked == 0 {
            return check;
        }
        let stalled = self.now_ms().saturating_sub(blocked - 1);
        let limit = idle_timeout.as_millis() as u64;
        match check {
            _ if stalled >= limit => Check::SendStalled,
            Check::Wait(d) => Check::Wait(d.min(Duration::from_millis(limit - stalled))),
            other => other,
        }
    }

    /// The request-side timeouts: the header timeout and the idle keep-alive timeout.
    fn check_requests(&self, header_timeout: Duration, idle_timeout: Duration) -> Check {
        if self.inflight.load(Ordering::Acquire) > 0 {
            return Check::Wait(header_timeout.min(idle_timeout));
        }
        let now = self.now_ms();
        let pending = self.pending_since.load(Ordering::Acquire);
        if pending > 0 {
            let since = now.saturating_sub(pending - 1);
            let limit = header_timeout.as_millis() as u64;
            return if since >= limit {
                Check::HeaderTimeout
            } else {
                Check::Wait(Duration::from_millis(limit - since))
            };
        }
        let idle = now.saturating_sub(self.last_done.load(Ordering::Acquire));
        let limit = idle_timeout.as_millis() as u64;
        if idle >= limit {
            Check::Idle
        } else {
            Check::Wait(Duration::from_millis(
                (limit - idle).min(header_timeout.as_millis() as u64).max(1),
            ))
        }
    }
}

pin_project_lite::pin_project! {
    /// Client IO that tells [`ConnState`] when request bytes arrive, checks request heads
    /// strictly before hyper parses them ([`HeadCheck`]), and counts the bytes read and
    /// written for `sluice_client_bytes_received_total` / `_sent_total`. The counts are plain
    /// fields, added to the shared atomics every [`BYTES_FLUSH`] bytes and when the connection
    /// closes: a small request costs no shared-counter traffic for them.
    pub struct TrackedIo<T: Abort> {
        #[pin]
        inner: T,
        state: Arc<ConnState>,
        check: HeadCheck,
        received: u64,
        sent: u64,
        linger: Linger,
    }

    impl<T: Abort> PinnedDrop for TrackedIo<T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.state.metrics.add_client_bytes(*this.received, *this.sent);
            if this.state.cut.load(Ordering::Acquire) {
                this.inner.abort();
            }
        }
    }
}

/// A client stream that can be closed with a reset.
pub trait Abort {
    /// Makes the coming close a reset (RST), not an orderly end of stream (FIN).
    fn abort(&self);
}

impl Abort for tokio::net::TcpStream {
    fn abort(&self) {
        let _ = self.set_zero_linger();
    }
}

impl<T: Abort> TrackedIo<T> {
    /// Wraps a client stream.
    pub fn new(inner: T, state: Arc<ConnState>) -> Self {
        TrackedIo {
            inner,
            state,
            check: HeadCheck::default(),
            received: 0,
            sent: 0,
            linger: Linger::Open,
        }
    }
}

/// The longest a close lingers, reading and discarding what the client still sends
/// (nginx's `lingering_time`).
const LINGER_TOTAL: Duration = Duration::from_secs(30);
/// The longest a lingering close waits with nothing received (nginx's `lingering_timeout`).
const LINGER_QUIET: Duration = Duration::from_secs(5);
/// The reads a lingering close makes per poll before it yields, so a client sending fast
/// does not hold the thread.
const LINGER_READS: usize = 32;

/// Where the orderly close of a client connection is (see [`TrackedIo`]'s `poll_shutdown`).
enum Linger {
    /// Not closing yet.
    Open,
    /// The sending side is shut down; what the client still sends is read and discarded
    /// until it ends or one of the clocks runs out.
    Lingering {
        total: Pin<Box<tokio::time::Sleep>>,
        quiet: Pin<Box<tokio::time::Sleep>>,
    },
    /// Closed (or lingering is over): the stream may be dropped.
    Done,
}

/// What reading and discarding the client's bytes found.
enum Drained {
    /// The client's end of stream, or an error: nothing more will come.
    Ended,
    /// Nothing more for now; `read` bytes were discarded.
    Waiting { read: usize },
}

/// Reads and discards what `inner` has to give now, straight from the stream: not counted as
/// request activity, so no header clock starts.
fn drain<T: AsyncRead>(mut inner: Pin<&mut T>, cx: &mut Context<'_>) -> Drained {
    let mut buf = [0u8; 8192];
    let mut read = 0;
    for _ in 0..LINGER_READS {
        let mut rb = ReadBuf::new(&mut buf);
        match inner.as_mut().poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => return Drained::Ended,
            Poll::Ready(Ok(())) => read += rb.filled().len(),
            Poll::Ready(Err(_)) => return Drained::Ended,
            Poll::Pending => return Drained::Waiting { read },
        }
    }
    // More may be waiting: look again soon, after other tasks had their turn.
    cx.waker().wake_by_ref();
    Drained::Waiting { read }
}

/// Adds `n` to a per-connection count; returns the count to flush once it reaches
/// [`BYTES_FLUSH`].
fn note(pending: &mut u64, n: usize) -> Option<u64> {
    *pending += n as u64;
    (*pending >= BYTES_FLUSH).then(|| std::mem::take(pending))
}

impl<T: AsyncRead + Abort> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.state.on_read();
            this.check.scan(&mut buf.filled_mut()[before..]);
            this.state
                .head_pending
                .store(this.check.in_head(), Ordering::Release);
            if let Some(n) = note(this.received, read) {
                this.state.metrics.add_client_bytes(n, 0);
            }
        }
        r
    }
}

impl<T: AsyncWrite + Abort> TrackedIo<T> {
    /// Counts what a write reported as sent.
    fn sent(
        state: &ConnState,
        sent: &mut u64,
        r: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = r {
            if let Some(n) = note(sent, n) {
                state.metrics.add_client_bytes(0, n);
            }
        }
        r
    }
}

impl<T: AsyncRead + AsyncWrite + Abort> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        this.state.on_write(&r);
        Self::sent(this.state, this.sent, r)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    /// hyper calls this on every orderly close. A lingering close (nginx's
    /// `lingering_close`): the answer is flushed and the sending side shut down first; then,
    /// when the client is still sending (bytes are waiting, or a request's body was left
    /// unread), what it sends is read and discarded until its end of stream, for at most
    /// [`LINGER_TOTAL`] and [`LINGER_QUIET`] with nothing received. Closing with unread bytes
    /// makes the kernel send a reset, and a client still writing its body would lose the
    /// answer. A plain keep-alive close does not linger; a cut connection never does, nor a
    /// tunnel's (a half-close the other way still carries the client's bytes).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut this = self.project();
        loop {
            match this.linger {
                Linger::Open => {
                    std::task::ready!(this.inner.as_mut().poll_shutdown(cx))?;
                    if this.state.cut.load(Ordering::Acquire)
                        || this.state.tunnel.load(Ordering::Acquire)
                    {
                        *this.linger = Linger::Done;
                        continue;
                    }
                    *this.linger = match drain(this.inner.as_mut(), cx) {
                        Drained::Waiting { read }
                            if read > 0 || this.state.body_unread.load(Ordering::Acquire) =>
                        {
                            Linger::Lingering {
                                total: Box::pin(tokio::time::sleep(LINGER_TOTAL)),
                                quiet: Box::pin(tokio::time::sleep(LINGER_QUIET)),
                            }
                        }
                        _ => Linger::Done,
                    };
                }
                Linger::Lingering { total, quiet } => match drain(this.inner.as_mut(), cx) {
                    Drained::Ended => *this.linger = Linger::Done,
                    Drained::Waiting { read } => {
                        if read > 0 {
                            let deadline = tokio::time::Instant::now() + LINGER_QUIET;
                            quiet.as_mut().reset(deadline);
                        }
                        if total.as_mut().poll(cx).is_ready() || quiet.as_mut().poll(cx).is_ready()
                        {
                            *this.linger = Linger::Done;
                        } else {
                            return Poll::Pending;
                        }
                    }
                },
                Linger::Done => return Poll::Ready(Ok(())),
            }
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        this.state.on_write(&r);
        Self::sent(this.state, this.sent, r)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The fields of one access-log line, filled in as the request proceeds; they are formatted
/// only when the line is written (and not at all under `RUST_LOG=…,access=off`).
pub struct AccessLog {
    pub client: IpAddr,
    pub method: Method,
    pub url: String,
    pub status: u16,
    pub upstream_ms: Option<u128>,
    pub cache: &'static str,
    /// What the cache did, for `sluice_cache_results_total`.
    pub cache_result: crate::admin::metrics::CacheResult,
    pub verdict: &'static str,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            client: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            method: Method::GET,
            url: String::new(),
            status: 0,
            upstream_ms: None,
            cache: "",
            cache_result: Default::default(),
            verdict: "",
        }
    }
}

/// A response body that counts the bytes sent and, when done or dropped, writes the
/// access-log line and tells the connection the request is over; a body that fails marks
/// the connection cut, so it ends in a reset.
pub type Tracked = Watched<Body, Sent>;

/// What [`Tracked`] knows of a response as it goes out.
pub struct Sent {
    bytes: u64,
    started: Instant,
    log: AccessLog,
    state: Arc<ConnState>,
    complete: bool,
}

impl Drop for Sent {
    fn drop(&mut self) {
        self.log
            .end(self.bytes, self.complete, self.started, &self.state);
    }
}

impl AccessLog {
    /// A request head refused before any handler saw it, on a connection that then closed:
    /// one hyper answered itself (400, 414, 431: malformed, a smuggling attempt the head
    /// check marked, too large) or one that did not arrive whole within `proxy.header_timeout`
    /// (logged 408, as nginx does; nothing is sent). Its method and target are unknown
    /// (`-`). Writes its line and counts it; no request was in flight.
    pub fn refused_head(client: IpAddr, status: u16, state: &ConnState) {
        let log = AccessLog {
            client,
            method: Method::from_bytes(b"-").unwrap_or_default(),
            url: "-".to_string(),
            status,
            ..AccessLog::default()
        };
        log.write(0, status != 408, Instant::now(), state);
    }

    /// Ends the request: writes its line, counts it, and tells the connection it is over.
    fn end(&self, bytes: u64, complete: bool, started: Instant, state: &ConnState) {
        self.write(bytes, complete, started, state);
        state.request_done();
    }

    /// Writes the request's line and counts it.
    fn write(&self, bytes: u64, complete: bool, started: Instant, state: &ConnState) {
        tracing::info!(
            target: "access",
            client = %self.client,
            method = %self.method,
            url = %self.url,
            status = self.status,
            bytes,
            complete,
            duration_ms = started.elapsed().as_millis() as u64,
            upstream_ms = self.upstream_ms.map(|m| m as u64),
            cache = self.cache,
            verdict = %self.verdict,
        );
        state
            .metrics
            .count_request(self.method.as_str(), self.status, self.cache_result);
    }
}

/// A request without a response yet. hyper drops the request's future when its client goes
/// away first (a slow origin, an impatient client); dropped so, this writes the request's
/// access-log line (status 0, nothing sent) and counts it, which otherwise only the response
/// body's [`Tracked`] did, so such requests were never logged or counted.
pub struct Unanswered {
    log: Option<AccessLog>,
    started: Instant,
    state: Arc<ConnState>,
}

impl Unanswered {
    /// A request started now on the connection `state` (calls `request_started`).
    pub fn new(log: AccessLog, state: Arc<ConnState>) -> Self {
        state.request_started();
        Unanswered {
            log: Some(log),
            started: Instant::now(),
            state,
        }
    }

    /// The line being filled in.
    pub fn log(&mut self) -> &mut AccessLog {
        self.log.get_or_insert_with(AccessLog::default)
    }

    /// Hands the line to the response body, which writes it when done or dropped.
    pub fn answer(mut self, body: Body) -> Tracked {
        let log = self.log.take().unwrap_or_default();
        tracked(body, self.started, log, Arc::clone(&self.state))
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.end(0, false, self.started, &self.state);
        }
    }
}

/// Wraps a response body; `state.request_started()` must already have been called.
fn tracked(inner: Body, started: Instant, log: AccessLog, state: Arc<ConnState>) -> Tracked {
    let sent = Sent {
        bytes: 0,
        started,
        log,
        state,
        complete: inner.is_end_stream(),
    };
    Watched::new(inner, sent)
}

impl Watch for Sent {
    fn polled(&mut self, polled: &Polled, ended: bool) -> Result<(), BoxError> {
        match polled {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    self.bytes += d.len() as u64;
                }
            }
            // hyper ends the connection on a body error; an orderly close would make a
            // close-delimited body (an HTTP/1.0 client's) look complete, so it is a reset.
            Poll::Ready(Some(Err(_))) => self.state.cut(),
            _ => {}
        }
        if ended {
            self.complete = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_connection_is_idle_until_bytes_arrive() {
        let s = ConnState::new(Default::default());
        let hdr = Duration::from_millis(0);
        assert_eq!(
            s.check(Duration::from_secs(10), Duration::ZERO),
            Check::Idle
        );
        s.on_read();
        assert_eq!(s.check(hdr, Duration::from_secs(60)), Check::HeaderTimeout);
        s.request_started();
        assert!(matches!(s.check(hdr, Duration::ZERO), Check::Wait(_)));
        s.request_done();
        assert_eq!(
            s.check(Duration::from_secs(10), Duration::ZERO),
            Check::Idle
        );
        assert!(matches!(
            s.check(Duration::from_secs(10), Duration::from_secs(60)),
            Check::Wait(_)
        ));
    }

    /// Regression: at the end of the shutdown grace period a response counted as done once
    /// hyper had taken its whole body, though its last bytes still waited for a client that
    /// read slowly; the connection then closed in order, and an HTTP/1.0 client took the
    /// part it had of a body without a length for the whole body.
    #[test]
    fn a_response_still_being_flushed_is_cut_at_the_end_of_the_grace_period() {
        let s = ConnState::new(Default::default());
        s.request_started();
        s.request_done();
        s.cut_in_flight();
        assert!(!s.cut.load(Ordering::Acquire), "all sent: an orderly close");
        s.request_started();
        s.on_write::<usize>(&Poll::Pending);
        s.request_done();
        s.cut_in_flight();
        assert!(s.cut.load(Ordering::Acquire), "bytes left unsent: a reset");
    }

    #[test]
    fn a_client_that_takes_no_bytes_for_the_idle_timeout_has_stalled() {
        let s = ConnState::new(Default::default());
        s.request_started();
        let (hdr, now) = (Duration::from_secs(10), Duration::ZERO);
        assert!(
            matches!(s.check(hdr, now), Check::Wait(_)),
            "nothing refused yet"
        );
        s.on_write::<usize>(&Poll::Pending);
        assert_eq!(s.check(hdr, now), Check::SendStalled);
        let minute = Duration::from_secs(60);
        assert!(matches!(s.check(minute, minute), Check::Wait(d) if d <= minute));
        s.on_write(&Poll::Ready(Ok(5usize)));
        assert!(
            matches!(s.check(hdr, now), Check::Wait(_)),
            "bytes taken: the clock stops"
        );
        s.request_done();
        s.on_write::<usize>(&Poll::Pending);
        assert_eq!(
            s.check(hdr, now),
            Check::SendStalled,
            "a response still being flushed after its request is done"
        );
    }
}

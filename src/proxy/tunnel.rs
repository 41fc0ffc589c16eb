//! CONNECT: a byte tunnel to an allowed port, through the host's parents or direct after the
//! destination guard, closed when no byte has crossed it either way for
//! `proxy.tunnel_idle_timeout`.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::error::ProxyError;
use super::listen::ConnSlot;
use super::target::{Target, TargetError};
use super::Proxy;
use crate::body::{self, Body};

/// Opens the upstream connection first (so failures get a proper status), answers 200, then
/// splices bytes both ways once hyper hands over the client connection.
pub async fn connect(proxy: &Proxy, req: Request<Incoming>) -> Result<Response<Body>, ProxyError> {
    let authority = req.uri().authority().ok_or(TargetError::BadAuthority)?;
    let target = Target::from_authority(authority)?;
    // RFC 9110 §9.3.6: a CONNECT request has no content. Framing that announces some leaves
    // no telling where the tunnel's bytes begin: hyper read them as a body and never handed
    // the connection over, so the client got a 200 and a tunnel that carried nothing.
    if !http_body::Body::is_end_stream(req.body()) {
        return Err(TargetError::ConnectContent.into());
    }
    if !proxy.cfg.connect_ports.contains(&target.port) {
        return Err(ProxyError::ConnectPort(target.port));
    }
    let upstream = proxy.upstream.tunnel(&target).await?;
    // The tunnel keeps its client connection's slot (it counts against
    // proxy.max_connections) and closes when the shutdown grace period ends.
    let slot = req.extensions().get::<ConnSlot>().cloned();
    let idle_limit = proxy.cfg.tunnel_idle_timeout;
    tokio::spawn(async move {
        let splice = async move {
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => {
                    let mut client = TokioIo::new(upgraded);
                    // Every byte either way passes through the upstream side: stamp it there.
                    let activity = Activity::new();
                    let mut upstream = Stamped {
                        inner: upstream,
                        activity: activity.clone(),
                    };
                    tokio::select! {
                        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                            if let Err(e) = r {
                                tracing::debug!(error = %e, target = %target.host_port(), "tunnel ended");
                            }
                        }
                        _ = activity.idle_for(idle_limit) => {
                            tracing::debug!(target = %target.host_port(), "tunnel idle; closed");
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
            }
        };
        match slot {
            Some(mut slot) => {
                tokio::select! {
                    _ = splice => {}
                    _ = slot.aborted() => tracing::debug!("tunnel closed at shutdown"),
                }
            }
            None => splice.await,
        }
    });
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}

/// When a tunnel last moved a byte, in milliseconds since it opened.
#[derive(Clone)]
struct Activity {
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn stamp(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if last.elapsed() >= limit {
                return;
            }
            tokio::time::sleep_until(last + limit).await;
        }
    }
}

pin_project_lite::pin_project! {
    /// A stream that stamps [`Activity`] whenever bytes are read from or written to it.
    struct Stamped<T> {
        #[pin]
        inner: T,
        activity: Activity,
    }
}

impl<T: AsyncRead> AsyncRead for Stamped<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.stamp();
        }
        r
    }
}

impl<T: AsyncWrite> AsyncWrite for Stamped<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.stamp();
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

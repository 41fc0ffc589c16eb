//! The admin connection's send limit: a client that takes no response bytes for
//! `proxy.idle_timeout` is cut off, as the proxy listener does for its clients (nginx's
//! `send_timeout`). hyper's header timer covers only the reading of request heads, so an
//! admin client that asked for a large listing (or pipelined requests) and stopped reading
//! held its connection, its task and the buffered response for ever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::proxy::conn::Abort;

pin_project_lite::pin_project! {
    /// An admin client stream whose writes fail once they have been refused (the client's
    /// window and our send buffer full) for `limit` without a byte taken in between.
    pub struct SendLimit<T> {
        #[pin]
        inner: T,
        limit: Duration,
        // Running while writes are refused; `None` while they are flowing.
        stalled: Option<Pin<Box<Sleep>>>,
    }
}

impl<T> SendLimit<T> {
    /// Wraps `inner`, cutting it off after `limit` of refused writes.
    pub fn new(inner: T, limit: Duration) -> Self {
        SendLimit {
            inner,
            limit,
            stalled: None,
        }
    }
}

/// A write returned `r`: a refused one runs the stall timer (which wakes the connection
/// when it ends), and when it has run out, the write fails and the stream closes in a reset;
/// a write that took bytes stops it.
fn limit<T: Abort, R>(
    r: Poll<io::Result<R>>,
    inner: &T,
    limit: Duration,
    stalled: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<R>> {
    if r.is_ready() {
        *stalled = None;
        return r;
    }
    let timer = stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    match timer.as_mut().poll(cx) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(()) => {
            // Response bytes are left unsent: a reset, not an orderly end.
            inner.abort();
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the admin client took no response bytes in time",
            )))
        }
    }
}

impl<T: AsyncRead> AsyncRead for SendLimit<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Abort> AsyncWrite for SendLimit<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut this = self.project();
        let r = this.inner.as_mut().poll_write(cx, buf);
        limit(r, &*this.inner, *this.limit, this.stalled, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut this = self.project();
        let r = this.inner.as_mut().poll_write_vectored(cx, bufs);
        limit(r, &*this.inner, *this.limit, this.stalled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        let r = this.inner.as_mut().poll_flush(cx);
        limit(r, &*this.inner, *this.limit, this.stalled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    impl Abort for tokio::io::DuplexStream {
        fn abort(&self) {}
    }

    /// A peer that takes bytes more slowly than we write, but within the limit each time,
    /// keeps the write going; one that stops reading fails it after the limit.
    #[tokio::test(start_paused = true)]
    async fn a_write_refused_for_the_limit_fails() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut s = SendLimit::new(ours, Duration::from_millis(500));
        let reader = tokio::spawn(async move {
            let mut buf = [0; 64];
            for _ in 0..16 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                tokio::io::AsyncReadExt::read_exact(&mut theirs, &mut buf)
                    .await
                    .unwrap();
            }
            theirs
        });
        let started = tokio::time::Instant::now();
        s.write_all(&[b'x'; 16 * 64]).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(4000));
        let _theirs = reader.await.unwrap();
        // Nobody reads any more.
        let started = tokio::time::Instant::now();
        let e = s.write_all(&[b'x'; 1000]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(500));
    }
}

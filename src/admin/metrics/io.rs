//! [`CountedIo`]: a client stream wrapper that counts the bytes read and written for
//! `sluice_client_bytes_received_total` / `_sent_total`.
//!
//! The counts are plain fields of the (per-connection) wrapper and are added to the shared
//! atomics every [`BYTES_FLUSH`] bytes and when the connection closes: a small request costs
//! no shared-counter traffic for them.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::counters::BYTES_FLUSH;
use super::ProxyMetrics;

pin_project_lite::pin_project! {
    /// Counts a client connection's bytes both ways.
    pub struct CountedIo<T> {
        #[pin]
        inner: T,
        metrics: ProxyMetrics,
        received: u64,
        sent: u64,
    }

    impl<T> PinnedDrop for CountedIo<T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.metrics.add_client_bytes(*this.received, *this.sent);
        }
    }
}

impl<T> CountedIo<T> {
    /// Wraps a client stream whose bytes go to `metrics`.
    pub fn new(inner: T, metrics: ProxyMetrics) -> Self {
        CountedIo {
            inner,
            metrics,
            received: 0,
            sent: 0,
        }
    }
}

/// Adds `n` to a pending count; returns the count to flush when it is large enough.
fn note(pending: &mut u64, n: usize) -> Option<u64> {
    *pending += n as u64;
    (*pending >= BYTES_FLUSH).then(|| std::mem::take(pending))
}

impl<T: AsyncRead> AsyncRead for CountedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        if let Some(n) = note(this.received, buf.filled().len() - before) {
            this.metrics.add_client_bytes(n, 0);
        }
        r
    }
}

impl<T: AsyncWrite> AsyncWrite for CountedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            if let Some(n) = note(this.sent, n) {
                this.metrics.add_client_bytes(0, n);
            }
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            if let Some(n) = note(this.sent, n) {
                this.metrics.add_client_bytes(0, n);
            }
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

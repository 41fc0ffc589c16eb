//! The one body type that flows between the proxy's phases, and small body adapters.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use tokio::time::{Instant, Sleep};

/// Errors carried inside a streaming body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed, streaming body: what the proxy sends to clients and upstreams.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A body with no bytes.
pub fn empty() -> Body {
    Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync()
}

/// A body of known bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// Boxes any compatible body.
pub fn boxed<B>(body: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// The whole body did not arrive within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("body not complete within {0:?}")]
pub struct BodyTimeout(pub Duration);

pin_project_lite::pin_project! {
    /// Ends a body with [`BodyTimeout`] once `limit` has passed since it was created: a
    /// slow-drip peer is cut, whatever the rate of its trickle.
    pub struct Deadline<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Sleep,
        limit: Duration,
    }
}

impl<B> Deadline<B> {
    /// Wraps `inner` so that it must end within `limit`.
    pub fn new(inner: B, limit: Duration) -> Self {
        Deadline {
            inner,
            sleep: tokio::time::sleep_until(Instant::now() + limit),
            limit,
        }
    }
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(*this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body read up to a limit.
pub enum Collected {
    /// The whole body, within the limit.
    Complete(Bytes),
    /// More than the limit: the chunks read so far and the unread rest, to stream on.
    TooLarge { head: Vec<Bytes>, rest: Body },
}

/// Reads `body` until it ends or more than `limit` bytes have arrived.
pub async fn collect_limited(mut body: Body, limit: usize) -> Result<Collected, BoxError> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        len += data.len();
        chunks.push(data);
        if len > limit {
            return Ok(Collected::TooLarge {
                head: chunks,
                rest: body,
            });
        }
    }
    Ok(Collected::Complete(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = bytes::BytesMut::with_capacity(len);
            for c in chunks {
                all.extend_from_slice(&c);
            }
            all.freeze()
        }
    }))
}

/// A body that yields `head` first, then everything left in `rest`.
pub fn chain(head: Vec<Bytes>, rest: Body) -> Body {
    let head = futures_util::stream::iter(head.into_iter().map(|b| Ok::<_, BoxError>(Frame::data(b))));
    let rest = http_body_util::BodyStream::new(rest);
    boxed(http_body_util::StreamBody::new(
        futures_util::StreamExt::chain(head, rest),
    ))
}

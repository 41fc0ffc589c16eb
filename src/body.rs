//! The one body type that flows between the proxy's phases, and small body adapters.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use tokio::time::{Instant, Sleep};

/// Errors carried inside a streaming body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed, streaming body: what the proxy sends to clients and upstreams.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Whether this poll ended the body: `Ready(None)`, a trailers frame (always the last one),
/// or a frame after which the body reports its end. hyper stops polling a body once
/// `is_end_stream()` is true, so a wrapper that waits for `Ready(None)` never sees the end
/// of a Content-Length body; likewise it drops a body once it has written its trailers, and
/// hyper's own `Incoming` still reports no end after them.
pub fn poll_ended<E>(polled: &Poll<Option<Result<Frame<Bytes>, E>>>, end_stream_now: bool) -> bool {
    match polled {
        Poll::Ready(None) => true,
        Poll::Ready(Some(Ok(frame))) => end_stream_now || frame.is_trailers(),
        _ => false,
    }
}

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

/// The bytes of a body being kept, made contiguous as they arrive: a body of one frame stays
/// that frame (no copy); further frames are copied into one buffer, the single copy a
/// multi-frame body needs anyway to be scanned. (Keeping one `Bytes` handle per frame made
/// an origin sending one-byte chunks cost some 40 times the body in handles.)
#[derive(Default)]
struct Kept {
    first: Option<Bytes>,
    joined: BytesMut,
}

impl Kept {
    fn push(&mut self, data: Bytes) {
        if self.first.is_none() && self.joined.is_empty() {
            self.first = Some(data);
            return;
        }
        if let Some(first) = self.first.take() {
            self.joined.reserve(first.len() + data.len());
            self.joined.extend_from_slice(&first);
        }
        self.joined.extend_from_slice(&data);
    }

    fn clear(&mut self) {
        self.first = None;
        self.joined = BytesMut::new();
    }

    fn into_bytes(self) -> Bytes {
        match self.first {
            Some(only) => only,
            None => self.joined.freeze(),
        }
    }
}

/// Reads `body` until it ends or more than `limit` bytes have arrived.
pub async fn collect_limited(mut body: Body, limit: usize) -> Result<Collected, BoxError> {
    let mut kept = Kept::default();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        len += data.len();
        kept.push(data);
        if len > limit {
            return Ok(Collected::TooLarge {
                head: vec![kept.into_bytes()],
                rest: body,
            });
        }
    }
    Ok(Collected::Complete(kept.into_bytes()))
}

/// A body that yields `head` first, then everything left in `rest`.
pub fn chain(head: Vec<Bytes>, rest: Body) -> Body {
    let head =
        futures_util::stream::iter(head.into_iter().map(|b| Ok::<_, BoxError>(Frame::data(b))));
    let rest = http_body_util::BodyStream::new(rest);
    boxed(http_body_util::StreamBody::new(
        futures_util::StreamExt::chain(head, rest),
    ))
}

/// What one poll of a body gave.
pub type Polled = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

/// What a [`Watched`] body does as the body it wraps is polled.
pub trait Watch {
    /// Sees one poll's result; `ended` says whether it ended the body ([`poll_ended`]). An
    /// error returned here is yielded in place of that result.
    fn polled(&mut self, polled: &Polled, ended: bool) -> Result<(), BoxError>;
}

pin_project_lite::pin_project! {
    /// A body passed through unchanged while a [`Watch`] sees every poll: the one shape of
    /// the wrappers that count, copy, time or release what flows past them.
    pub struct Watched<B, W> {
        // Before `inner`: a watch that acts when dropped (the access log) does so while
        // the body it watched still exists, as it would if it owned it.
        watch: W,
        #[pin]
        inner: B,
    }
}

impl<B, W> Watched<B, W> {
    /// Wraps `inner`, shown to `watch`.
    pub fn new(inner: B, watch: W) -> Self {
        Watched { watch, inner }
    }
}

impl<B, W> HttpBody for Watched<B, W>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
    W: Watch,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let polled = this
            .inner
            .as_mut()
            .poll_frame(cx)
            .map(|o| o.map(|r| r.map_err(Into::into)));
        let ended = poll_ended(&polled, this.inner.is_end_stream());
        match this.watch.polled(&polled, ended) {
            Ok(()) => polled,
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body passed through while a copy of up to its limit is kept (see [`tee`]).
pub type Tee = Watched<Body, Copying>;

/// Keeps a copy of the bytes that pass, while there are at most `limit` of them.
pub struct Copying {
    copy: Kept,
    len: usize,
    limit: usize,
    done: Option<tokio::sync::oneshot::Sender<Option<Bytes>>>,
}

/// Passes `inner` through while keeping a copy of up to `limit` bytes. The receiver gets the
/// copy when the body ends complete and within the limit (observe mode scans it), `None` as
/// soon as there will be none (more than `limit` bytes, or the body failed), and a closed
/// channel when the body is dropped before its end (the client left).
pub fn tee(inner: Body, limit: usize) -> (Tee, tokio::sync::oneshot::Receiver<Option<Bytes>>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut copying = Copying {
        copy: Kept::default(),
        len: 0,
        limit,
        done: Some(tx),
    };
    if inner.is_end_stream() {
        // hyper never polls a body that reports its end at once (a 204, `Content-Length:
        // 0`), so the empty copy is complete now.
        copying.finish();
    }
    (Watched::new(inner, copying), rx)
}

impl Copying {
    /// Sends the copy, unless it was given up.
    fn finish(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(Some(std::mem::take(&mut self.copy).into_bytes()));
        }
    }

    /// Gives the copy up, saying so at once.
    fn give_up(&mut self) {
        self.copy.clear();
        if let Some(tx) = self.done.take() {
            let _ = tx.send(None);
        }
    }
}

impl Watch for Copying {
    fn polled(&mut self, polled: &Polled, ended: bool) -> Result<(), BoxError> {
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.len += d.len();
                    if self.len > self.limit {
                        self.give_up();
                    } else if self.done.is_some() {
                        self.copy.push(d.clone());
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => self.give_up(),
            _ => {}
        }
        if ended {
            self.finish();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `n` one-byte frames, as an origin sending one-byte chunks gives.
    fn one_byte_frames(n: usize) -> Body {
        let frames = (0..n).map(|i| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![i as u8]))));
        boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    #[tokio::test]
    async fn a_body_of_one_frame_is_kept_without_a_copy() {
        let sent = Bytes::from(vec![7u8; 1024]);
        match collect_limited(full(sent.clone()), 1 << 20).await {
            Ok(Collected::Complete(kept)) => assert_eq!(kept.as_ptr(), sent.as_ptr()),
            _ => panic!("within the limit"),
        }
    }

    #[tokio::test]
    async fn one_byte_frames_are_kept_in_one_buffer_in_order() {
        let want: Vec<u8> = (0..70_000).map(|i| i as u8).collect();
        match collect_limited(one_byte_frames(70_000), 64 << 10).await {
            Ok(Collected::TooLarge { head, rest }) => {
                assert_eq!(head.len(), 1, "{} chunks for 64 KiB", head.len());
                let rest = rest.collect().await.expect("rest").to_bytes();
                assert_eq!([&head[0][..], &rest[..]].concat(), want);
            }
            _ => panic!("over the limit"),
        }
        match collect_limited(one_byte_frames(70_000), 1 << 20).await {
            Ok(Collected::Complete(all)) => assert_eq!(all, want),
            _ => panic!("within the limit"),
        }
        let (tee, copy) = tee(one_byte_frames(70_000), 1 << 20);
        let passed = boxed(tee).collect().await.expect("tee").to_bytes();
        assert_eq!(passed, want);
        assert_eq!(copy.await.expect("a complete copy"), Some(want.into()));
    }

    #[tokio::test]
    async fn an_empty_body_is_copied_without_being_polled() {
        let (_tee, copy) = tee(empty(), 1 << 20);
        assert_eq!(copy.await.expect("a complete copy"), Some(Bytes::new()));
    }

    #[tokio::test]
    async fn a_copy_is_given_up_over_the_limit_and_lost_when_the_body_is_dropped() {
        let (over, mut copy) = tee(one_byte_frames(100), 10);
        let mut over = boxed(over);
        for _ in 0..11 {
            over.frame().await.expect("a frame").expect("data");
        }
        assert_eq!(copy.try_recv(), Ok(None), "given up as the limit is passed");
        let rest = over.collect().await.expect("tee").to_bytes();
        assert_eq!(rest.len(), 89, "the body passes whole");
        let (left, copy) = tee(one_byte_frames(100), 1 << 20);
        let mut body = boxed(left);
        body.frame().await.expect("a frame").expect("data");
        drop(body);
        assert!(copy.await.is_err(), "a dropped body sends nothing");
    }
}

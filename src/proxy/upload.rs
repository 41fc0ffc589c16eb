//! The client's request body on its way upstream: bounded trailers (`proxy.max_trailer_size`).
//!
//! hyper already refuses malformed chunk sizes and more than 16 KiB of chunk extensions per
//! body, and buffers a trailer section up to `proxy.max_header_size`; this wrapper holds
//! trailers to their own, smaller limit. A failing request body ends the upstream exchange,
//! and `upstream` reports it as the client's fault (400, or 431 for trailers).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use crate::body::BoxError;

/// The trailer section of a chunked request body is larger than `proxy.max_trailer_size`.
#[derive(Debug, thiserror::Error)]
#[error("the request's trailer section is larger than {0} bytes")]
pub struct TrailersTooLarge(pub usize);

pin_project_lite::pin_project! {
    /// A request body whose trailer section may be at most `max_trailers` bytes.
    pub struct Upload {
        #[pin]
        inner: Incoming,
        max_trailers: usize,
    }
}

impl Upload {
    /// Wraps a client's request body.
    pub fn new(inner: Incoming, max_trailers: usize) -> Upload {
        Upload {
            inner,
            max_trailers,
        }
    }
}

impl HttpBody for Upload {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(trailers) = frame.trailers_ref() {
                // Each field as it was on the wire: name, ": ", value, CRLF.
                let size: usize = trailers
                    .iter()
                    .map(|(k, v)| k.as_str().len() + v.len() + 4)
                    .sum();
                if size > *this.max_trailers {
                    return Poll::Ready(Some(Err(TrailersTooLarge(*this.max_trailers).into())));
                }
            }
        }
        polled.map(|o| o.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

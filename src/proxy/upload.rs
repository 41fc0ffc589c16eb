//! The client's request body on its way upstream: bounded trailers (`proxy.max_trailer_size`).
//!
//! hyper already refuses malformed chunk sizes and more than 16 KiB of chunk extensions per
//! body, and buffers a trailer section up to `proxy.max_header_size`; this wrapper holds
//! trailers to their own, smaller limit. A failing request body ends the upstream exchange,
//! and `upstream` reports it as the client's fault (400, or 431 for trailers).

use std::task::Poll;

use hyper::body::Incoming;

use crate::body::{BoxError, Polled, Watch, Watched};

/// The trailer section of a chunked request body is larger than `proxy.max_trailer_size`.
#[derive(Debug, thiserror::Error)]
#[error("the request's trailer section is larger than {0} bytes")]
pub struct TrailersTooLarge(pub usize);

/// A request body whose trailer section may be at most its limit's bytes.
pub type Upload = Watched<Incoming, TrailerLimit>;

/// The most bytes a request's trailer section may have.
pub struct TrailerLimit(usize);

/// Wraps a client's request body.
pub fn limit_trailers(inner: Incoming, max_trailers: usize) -> Upload {
    Watched::new(inner, TrailerLimit(max_trailers))
}

impl Watch for TrailerLimit {
    fn polled(&mut self, polled: &Polled, _ended: bool) -> Result<(), BoxError> {
        if let Poll::Ready(Some(Ok(frame))) = polled {
            if let Some(trailers) = frame.trailers_ref() {
                // Each field as it was on the wire: name, ": ", value, CRLF.
                let size: usize = trailers
                    .iter()
                    .map(|(k, v)| k.as_str().len() + v.len() + 4)
                    .sum();
                if size > self.0 {
                    return Err(TrailersTooLarge(self.0).into());
                }
            }
        }
        Ok(())
    }
}

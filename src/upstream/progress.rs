//! The response timeout measured from the request's last progress: an upload that keeps
//! moving is never cut, and the clock for the origin's answer starts once the request
//! body has stopped flowing (sent completely, or stalled).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use http_body::Body as HttpBody;
use tokio::time::Instant;

use crate::body::{self, Body, BoxError, Polled, Watch, Watched};

/// When the request last made progress (a body frame went out, or the send began).
#[derive(Clone)]
pub enum Progress {
    /// A request without a body (most are): it makes no progress after the send began, so
    /// it needs no shared clock for its body to update.
    Start(Instant),
    /// A request with a body, whose frames update the time.
    Upload(Arc<Mutex<Instant>>),
}

impl Progress {
    fn touch(&self) {
        if let Progress::Upload(last) = self {
            *last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
    }

    fn last(&self) -> Instant {
        match self {
            Progress::Start(at) => *at,
            Progress::Upload(last) => *last.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// Wraps the request body so each frame it yields counts as progress.
pub fn track(req: Request<Body>) -> (Request<Body>, Progress) {
    if req.body().is_end_stream() {
        return (req, Progress::Start(Instant::now()));
    }
    let progress = Progress::Upload(Arc::new(Mutex::new(Instant::now())));
    let (parts, inner) = req.into_parts();
    let body = body::boxed(Watched::new(inner, progress.clone()));
    (Request::from_parts(parts, body), progress)
}

/// Awaits `send` until it resolves, or until `timeout` has passed with no progress;
/// `None` on timeout.
pub async fn within<F: Future>(
    send: F,
    progress: &Progress,
    timeout: Duration,
) -> Option<F::Output> {
    tokio::pin!(send);
    loop {
        let deadline = progress.last() + timeout;
        match tokio::time::timeout_at(deadline, &mut send).await {
            Ok(out) => return Some(out),
            Err(_) if progress.last() + timeout <= Instant::now() => return None,
            Err(_) => {}
        }
    }
}

/// Each poll that yields something counts as progress.
impl Watch for Progress {
    fn polled(&mut self, polled: &Polled, _ended: bool) -> Result<(), BoxError> {
        if polled.is_ready() {
            self.touch();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn progress_pushes_the_deadline_and_silence_ends_it() {
        let (_req, progress) = track(Request::new(body::full(bytes::Bytes::from_static(b"up"))));
        assert!(matches!(progress, Progress::Upload(_)), "a body is tracked");
        let t = Duration::from_millis(100);
        // Progress every 60ms keeps a 250ms wait alive.
        let p = progress.clone();
        let ticker = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                p.touch();
            }
        });
        let slow = tokio::time::sleep(Duration::from_millis(250));
        assert!(within(slow, &progress, t).await.is_some());
        ticker.await.unwrap();
        // No progress: cut after the timeout.
        let never = std::future::pending::<()>();
        let started = Instant::now();
        assert!(within(never, &progress, t).await.is_none());
        assert!(started.elapsed() >= t);
    }

    #[tokio::test]
    async fn a_request_without_a_body_is_timed_from_its_start() {
        let (req, progress) = track(Request::new(body::empty()));
        assert!(req.body().is_end_stream());
        assert!(matches!(progress, Progress::Start(_)), "nothing to track");
        let t = Duration::from_millis(50);
        let started = Instant::now();
        assert!(within(std::future::pending::<()>(), &progress, t)
            .await
            .is_none());
        assert!(started.elapsed() >= t);
    }
}

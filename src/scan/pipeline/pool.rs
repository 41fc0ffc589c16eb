//! The bounded worker pool: `spawn_blocking` gated by a semaphore, with a bounded wait queue
//! and a deadline, so scans never run on the reactor and a full pool pushes back at once.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, TryAcquireError};
use tokio::time::Instant;

/// Why a job did not produce a result.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    /// Every worker was busy and `queue` jobs were already waiting.
    #[error("scan pool full")]
    Full,
    /// The job did not finish (or start) within the timeout. It keeps its worker until it
    /// returns, so a stuck job still counts against the pool.
    #[error("scan timed out")]
    Timeout,
    /// The job panicked.
    #[error("scan job failed: {0}")]
    Failed(String),
}

/// A fixed number of worker slots in front of tokio's blocking thread pool.
pub struct Pool {
    permits: Arc<Semaphore>,
    workers: usize,
    waiting: AtomicUsize,
    queue: usize,
    timeout: Duration,
}

impl Pool {
    /// `workers` jobs at once (0 = one per core), at most `queue` waiting, each bounded by
    /// `timeout` from submission.
    pub fn new(workers: usize, queue: usize, timeout: Duration) -> Pool {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            workers
        };
        Pool {
            permits: Arc::new(Semaphore::new(workers)),
            workers,
            waiting: AtomicUsize::new(0),
            queue,
            timeout,
        }
    }

    /// Jobs that may run at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Jobs running on a worker now.
    pub fn busy(&self) -> usize {
        self.workers
            .saturating_sub(self.permits.available_permits())
    }

    /// Jobs currently waiting for a worker.
    pub fn waiting(&self) -> usize {
        self.waiting.load(SeqCst)
    }

    /// Runs `job` on a blocking thread once a worker is free. Must be called inside a tokio
    /// runtime.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let deadline = Instant::now() + self.timeout;
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return Err(PoolError::Full),
            Err(TryAcquireError::NoPermits) => {
                if self.waiting.fetch_add(1, SeqCst) >= self.queue {
                    self.waiting.fetch_sub(1, SeqCst);
                    return Err(PoolError::Full);
                }
                let _queued = Queued(&self.waiting);
                let acquire = Arc::clone(&self.permits).acquire_owned();
                match tokio::time::timeout_at(deadline, acquire).await {
                    Ok(Ok(p)) => p,
                    Ok(Err(_closed)) => return Err(PoolError::Full),
                    Err(_elapsed) => return Err(PoolError::Timeout),
                }
            }
        };
        let handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        });
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(PoolError::Failed(e.to_string())),
            Err(_elapsed) => Err(PoolError::Timeout),
        }
    }
}

/// Leaves the wait queue when dropped (also when the waiting future is cancelled).
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

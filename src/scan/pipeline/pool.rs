//! The bounded worker pool: `workers` dedicated scan threads gated by a semaphore, with a
//! bounded wait queue and a deadline, so scans never run on the reactor and a full pool pushes
//! back at once.
//!
//! The threads are the pool's own rather than tokio's blocking pool: there a scan landed on
//! whichever of a dozen threads (shared with store reads) had been idle longest, with cold
//! caches, and the rules' regex caches went through their shared slow path. On one pinned CPU
//! the dedicated thread cut a scan-miss request's user time by about a quarter.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, TryAcquireError};
use tokio::time::Instant;

use crate::threads::Threads;

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

/// A fixed number of worker slots, each with its own thread (started on first use).
pub struct Pool {
    permits: Arc<Semaphore>,
    workers: usize,
    waiting: AtomicUsize,
    queue: usize,
    timeout: Duration,
    /// The scan threads, as many as permits, so a holder of a permit waits at most for a
    /// thread to come back from its previous job. Dropping the pool ends them.
    threads: Threads,
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
            threads: Threads::new("scan", workers),
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

    /// Runs `job` on one of the pool's threads once a worker slot is free. Must be called
    /// inside a tokio runtime (for the deadline).
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
        // The permit goes with the job: a job that outlives its deadline keeps its slot. It is
        // dropped when the job returns (or unwinds), before the answer, so the caller finds the
        // slot free again.
        let ran = self.threads.run(move || {
            let _permit = permit;
            job()
        });
        match tokio::time::timeout_at(deadline, ran).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(PoolError::Failed(e.to_string())),
            Err(_elapsed) => Err(PoolError::Timeout),
        }
    }

    /// Waits until no job runs, at most `limit` (shutdown: a scan past its deadline may still
    /// be writing its verdict). True when the pool went idle.
    pub async fn idle(&self, limit: Duration) -> bool {
        self.threads.idle(limit).await
    }
}

/// Leaves the wait queue when dropped (also when the waiting future is cancelled).
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_string()
    }

    #[tokio::test]
    async fn jobs_run_on_the_pools_own_threads() {
        let pool = Pool::new(2, 0, Duration::from_secs(5));
        let names: Vec<String> =
            futures_util::future::join_all((0..6).map(|_| pool.run(thread_name)))
                .await
                .into_iter()
                .filter_map(Result::ok)
                .collect();
        assert!(!names.is_empty());
        assert!(
            names
                .iter()
                .all(|n| n == "sluice-scan-0" || n == "sluice-scan-1"),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn a_panicking_job_fails_and_its_thread_keeps_working() {
        let pool = Pool::new(1, 0, Duration::from_secs(5));
        let err = pool.run(|| -> u32 { panic!("bad input") }).await;
        assert_eq!(
            err,
            Err(PoolError::Failed(
                "scan job panicked: bad input".to_string()
            ))
        );
        assert_eq!(pool.run(|| 7).await, Ok(7));
        assert_eq!(pool.busy(), 0);
    }

    #[tokio::test]
    async fn idle_waits_for_a_running_job() {
        let pool = std::sync::Arc::new(Pool::new(1, 0, Duration::from_secs(5)));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let job = tokio::spawn({
            let pool = std::sync::Arc::clone(&pool);
            async move { pool.run(move || gate.recv().is_ok()).await }
        });
        while pool.busy() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(
            !pool.idle(Duration::from_millis(20)).await,
            "a job still runs"
        );
        release.send(()).unwrap();
        assert!(pool.idle(Duration::from_secs(5)).await);
        assert_eq!(job.await.unwrap(), Ok(true));
    }
}

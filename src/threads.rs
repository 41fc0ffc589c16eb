//! Named worker threads fed by one channel, for work that must stay off the reactor and is
//! better done by a few threads of its own than by tokio's blocking pool: scans (warm caches)
//! and store I/O (bounded memory).
//!
//! tokio's blocking pool starts a thread for every blocking task that finds none idle. Store
//! writes queue on the disk policy's lock, so 50 concurrent misses held ~45 threads, and each
//! thread's allocator heap kept a few MiB of freed memory: 130 MB of RSS after 50,000 stored
//! objects, against ~4 threads' worth here.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A job as the threads run it: it reports its own result.
type Job = Box<dyn FnOnce() + Send>;

/// Why a job produced no result.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("cannot start {0} threads: {1}")]
    Start(&'static str, String),
    #[error("{0} job panicked: {1}")]
    Panicked(&'static str, String),
    #[error("{0} thread stopped")]
    Stopped(&'static str),
}

/// `count` threads named `sluice-NAME-N`, started on first use; dropping this ends them once
/// the jobs already handed over are done.
pub struct Threads {
    name: &'static str,
    count: usize,
    /// Where jobs go to the threads; `None` until the first job (or after a failed start).
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Jobs handed over and not yet finished.
    pending: Arc<AtomicUsize>,
}

impl Threads {
    /// `count` threads (at least one) named after `name`.
    pub fn new(name: &'static str, count: usize) -> Threads {
        Threads {
            name,
            count: count.max(1),
            jobs: Mutex::new(None),
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Waits until every job handed over has finished, at most `limit` (shutdown: a store
    /// write whose caller is gone may still be running). True when none is left.
    pub async fn idle(&self, limit: Duration) -> bool {
        let end = tokio::time::Instant::now() + limit;
        while self.pending.load(SeqCst) > 0 {
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Runs `job` on one of the threads and waits for its result without blocking the caller's
    /// thread. A panic in the job is an error; the thread goes on with the next job. The job
    /// runs even if its caller has gone meanwhile (a write must still happen).
    pub async fn run<T, F>(&self, job: F) -> Result<T, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.answer(job, false).await
    }

    /// [`run`](Self::run) for a job whose only effect is its answer (a read): skipped when,
    /// by the time a thread takes it, its caller has gone (a client that hung up, a request
    /// past its deadline), so abandoned reads cannot pile up in front of wanted ones.
    pub async fn run_if_awaited<T, F>(&self, job: F) -> Result<T, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.answer(job, true).await
    }

    async fn answer<T, F>(&self, job: F, skip_abandoned: bool) -> Result<T, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let name = self.name;
        self.submit(Box::new(move || {
            if skip_abandoned && tx.is_closed() {
                return;
            }
            let result = catch_unwind(AssertUnwindSafe(job)).map_err(|panic| {
                let msg = crate::panic_message(panic.as_ref()).unwrap_or_default();
                Error::Panicked(name, msg.to_string())
            });
            // The caller may have gone (cancelled or past its deadline); nobody to tell then.
            let _ = tx.send(result);
        }))?;
        rx.await.map_err(|_| Error::Stopped(name))?
    }

    /// Hands `job` to a thread, starting the threads on first use.
    pub fn submit(&self, job: Job) -> Result<(), Error> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if jobs.is_none() {
            *jobs = Some(
                self.start()
                    .map_err(|e| Error::Start(self.name, e.to_string()))?,
            );
        }
        let pending = Arc::clone(&self.pending);
        pending.fetch_add(1, SeqCst);
        let sent = jobs.as_ref().map(|tx| {
            tx.send(Box::new(move || {
                // `run` catches its job's panic to report it; this keeps the count and the
                // thread for jobs handed to `submit` that do not.
                let _ = catch_unwind(AssertUnwindSafe(job));
                pending.fetch_sub(1, SeqCst);
            }))
        });
        match sent {
            Some(Ok(())) => Ok(()),
            // Every thread is gone (cannot happen while this lives): start afresh next time.
            _ => {
                self.pending.fetch_sub(1, SeqCst);
                *jobs = None;
                Err(Error::Stopped(self.name))
            }
        }
    }

    /// Starts the threads, taking jobs from one channel in turn.
    fn start(&self) -> std::io::Result<mpsc::Sender<Job>> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..self.count {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("sluice-{}-{n}", self.name))
                .spawn(move || loop {
                    // One thread waits in `recv` at a time; the others wait for the lock.
                    let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match next {
                        Ok(job) => job(),
                        Err(mpsc::RecvError) => return,
                    }
                })?;
        }
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[tokio::test]
    async fn jobs_run_on_named_threads_and_a_panic_is_an_error() {
        let threads = Threads::new("test", 2);
        let name = threads
            .run(|| std::thread::current().name().unwrap_or("").to_string())
            .await;
        assert!(name.unwrap().starts_with("sluice-test-"));
        let failed = threads.run(|| -> u8 { panic!("bad job") }).await;
        assert_eq!(failed, Err(Error::Panicked("test", "bad job".into())));
        assert_eq!(threads.run(|| 7).await, Ok(7), "the threads go on");
    }

    /// Occupies `threads`' one thread with a job that runs until the returned sender sends.
    async fn occupy(threads: &Threads) -> std::sync::mpsc::Sender<()> {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (started, mut running) = tokio::sync::mpsc::unbounded_channel();
        threads
            .submit(Box::new(move || {
                let _ = started.send(());
                let _ = gate.recv();
            }))
            .unwrap();
        running.recv().await.unwrap();
        release
    }

    #[tokio::test]
    async fn a_read_whose_caller_has_gone_is_skipped_and_a_write_is_not() {
        let threads = Threads::new("test", 1);
        let release = occupy(&threads).await;
        let (read_ran, write_ran) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (r, w) = (Arc::clone(&read_ran), Arc::clone(&write_ran));
        // Both queue behind the blocked job; their callers give up before it ends.
        let read = threads.run_if_awaited(move || r.store(true, SeqCst));
        let write = threads.run(move || w.store(true, SeqCst));
        assert!(tokio::time::timeout(Duration::from_millis(20), read)
            .await
            .is_err());
        assert!(tokio::time::timeout(Duration::from_millis(20), write)
            .await
            .is_err());
        release.send(()).unwrap();
        assert!(threads.idle(Duration::from_secs(10)).await);
        assert!(!read_ran.load(SeqCst), "the abandoned read was skipped");
        assert!(write_ran.load(SeqCst), "the abandoned write still ran");
    }

    #[tokio::test]
    async fn idle_waits_for_a_job_whose_caller_is_gone() {
        let threads = Threads::new("test", 1);
        let release = occupy(&threads).await;
        assert!(
            !threads.idle(Duration::from_millis(20)).await,
            "still running"
        );
        release.send(()).unwrap();
        assert!(threads.idle(Duration::from_secs(5)).await);
    }
}

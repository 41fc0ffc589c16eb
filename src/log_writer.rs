//! The log writer: each formatted line is appended to one shared buffer, and a background
//! thread writes that buffer out in batches, [`BATCH_WINDOW`] after the first line of a batch
//! (at once past `SOON` bytes, or when closing).
//!
//! A request thread logging a line takes one uncontended lock and copies the line; it makes no
//! syscall and wakes no thread, except for the first line after the writer went idle. (With a
//! channel to a writer thread, as `tracing-appender` does, the writer woke, wrote and flushed
//! for nearly every line: one `write` and one `sched_yield` per request, on the same CPU as the
//! proxy.) No line is ever dropped: past `LIMIT` unwritten bytes, loggers wait for the writer.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the writer lets lines gather after the first one of a batch.
pub const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// Buffered bytes that make the writer start at once.
const SOON: usize = 256 << 10;

/// Buffered bytes beyond which loggers wait for the writer (output slower than logging).
const LIMIT: usize = 64 << 20;

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when the writer has work (first line, `SOON`, closing) and when it drained.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    closing: bool,
}

/// Where `tracing_subscriber::fmt` writes each line.
#[derive(Clone)]
pub struct LogWriter(Arc<Shared>);

/// Writes out everything logged so far and stops the writer thread when dropped.
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out`.
pub fn spawn<W: Write + Send + 'static>(out: W) -> io::Result<(LogWriter, Flusher)> {
    let shared = Arc::new(Shared::default());
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("log".into())
            .spawn(move || run(&shared, out))?
    };
    Ok((
        LogWriter(shared.clone()),
        Flusher {
            shared,
            thread: Some(thread),
        },
    ))
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let closing = {
            let mut st = lock(&shared.state);
            while st.buf.is_empty() && !st.closing {
                st = shared
                    .changed
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let deadline = Instant::now() + BATCH_WINDOW;
            while !st.closing && st.buf.len() < SOON {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                st = shared
                    .changed
                    .wait_timeout(st, left)
                    .map_or_else(|p| p.into_inner().0, |(st, _)| st);
            }
            std::mem::swap(&mut st.buf, &mut batch);
            st.closing
        };
        // Wakes loggers waiting at `LIMIT`.
        shared.changed.notify_all();
        // Nowhere to report a failed write of the log itself; the lines are gone either way.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if closing && lock(&shared.state).buf.is_empty() {
            return;
        }
    }
}

impl Write for &LogWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let shared = &self.0;
        let mut st = lock(&shared.state);
        while st.buf.len() >= LIMIT && !st.closing {
            st = shared
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let first = st.buf.is_empty();
        st.buf.extend_from_slice(line);
        let soon = st.buf.len() >= SOON && st.buf.len() - line.len() < SOON;
        drop(st);
        if first || soon {
            shared.changed.notify_all();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = &'a LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        lock(&self.shared.state).closing = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read while the writer thread owns it.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(w: &LogWriter, text: &str) {
        let mut w = w;
        w.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_flusher_is_dropped() {
        let sink = Sink::default();
        let (w, flusher) = spawn(sink.clone()).unwrap();
        let loggers: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        line(&w, &format!("t{t} {i}\n"));
                    }
                })
            })
            .collect();
        for l in loggers {
            l.join().unwrap();
        }
        drop(flusher);
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 20_000, "no line lost");
        for t in 0..4 {
            let mine: Vec<usize> = out
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("t{t} ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(
                mine,
                (0..5_000).collect::<Vec<_>>(),
                "thread {t}'s lines in order"
            );
        }
    }

    #[test]
    fn a_lone_line_is_written_without_a_flush() {
        let sink = Sink::default();
        let (w, _flusher) = spawn(sink.clone()).unwrap();
        line(&w, "alone\n");
        // Bounded wait for the batch window to pass; the line must appear on its own.
        let until = Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().is_empty() && Instant::now() < until {
            std::thread::sleep(BATCH_WINDOW);
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"alone\n");
    }
}

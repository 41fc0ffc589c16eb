//! Atomic counters for the pipeline, read by `sluice scan` and the metrics endpoint.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use std::time::Duration;

use serde::Serialize;

use crate::admin::metrics::histogram::{Histogram, HistogramSnapshot};
use crate::scan::Class;

/// Counters of one classifier.
#[derive(Debug, Default)]
pub struct ClassifierCounters {
    /// Documents classified.
    pub calls: AtomicU64,
    /// Calls that returned an error (or panicked).
    pub errors: AtomicU64,
    /// Total time spent classifying, in microseconds.
    pub micros: AtomicU64,
    /// Time per call (`sluice_scan_seconds`).
    pub seconds: Histogram,
}

impl ClassifierCounters {
    /// Counts one call that took `elapsed` (and failed when `failed`).
    pub fn record(&self, elapsed: Duration, failed: bool) {
        self.calls.fetch_add(1, Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Relaxed);
        self.seconds.observe(elapsed);
        if failed {
            self.errors.fetch_add(1, Relaxed);
        }
    }
}

/// All pipeline counters. Cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Stats {
    /// `scan`/`scan_sync` calls.
    pub requests: AtomicU64,
    /// Requests answered from the verdict memo (no classifier ran).
    pub memo_hits: AtomicU64,
    /// Requests that ran the classifiers.
    pub scans: AtomicU64,
    /// Requests refused because the worker pool and its queue were full.
    pub rejected: AtomicU64,
    /// Requests that ran out of `scan.timeout`.
    pub timeouts: AtomicU64,
    /// Verdicts given, per class (indexed by [`class_index`]).
    pub classes: [AtomicU64; 5],
    classifiers: Mutex<BTreeMap<&'static str, Arc<ClassifierCounters>>>,
}

/// A point-in-time copy of [`Stats`], for metrics and JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// `scan`/`scan_sync` calls.
    pub requests: u64,
    /// Requests answered from the verdict memo.
    pub memo_hits: u64,
    /// Requests that ran the classifiers.
    pub scans: u64,
    /// Requests refused with `limit` because the pool and its queue were full.
    pub rejected: u64,
    /// Requests that ended with `timeout`.
    pub timeouts: u64,
    /// Verdicts per class name (`clean`, `unscanned`, `suspect`, `spam`, `listed`).
    pub classes: BTreeMap<&'static str, u64>,
    /// Per classifier name: calls, errors and microseconds spent.
    pub classifiers: BTreeMap<&'static str, ClassifierSnapshot>,
}

/// One classifier's counters at a point in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClassifierSnapshot {
    /// Documents classified.
    pub calls: u64,
    /// Calls that failed or panicked.
    pub errors: u64,
    /// Time spent, in microseconds.
    pub micros: u64,
    /// Time per call, by bucket.
    pub seconds: HistogramSnapshot,
}

const CLASSES: [Class; 5] = [
    Class::Clean,
    Class::Unscanned,
    Class::Suspect,
    Class::Spam,
    Class::Listed,
];

/// The slot of a class in [`Stats::classes`].
pub fn class_index(c: Class) -> usize {
    match c {
        Class::Clean => 0,
        Class::Unscanned => 1,
        Class::Suspect => 2,
        Class::Spam => 3,
        Class::Listed => 4,
    }
}

impl Stats {
    /// The counters for classifier `name`, created on first use (kept across reloads).
    pub fn classifier(&self, name: &'static str) -> Arc<ClassifierCounters> {
        let mut map = self
            .classifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(name).or_default())
    }

    /// Counts one verdict of class `c`.
    pub fn count_class(&self, c: Class) {
        self.classes[class_index(c)].fetch_add(1, Relaxed);
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let classifiers = self
            .classifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, c)| {
                let snap = ClassifierSnapshot {
                    calls: c.calls.load(Relaxed),
                    errors: c.errors.load(Relaxed),
                    micros: c.micros.load(Relaxed),
                    seconds: c.seconds.snapshot(),
                };
                (*name, snap)
            })
            .collect();
        StatsSnapshot {
            requests: self.requests.load(Relaxed),
            memo_hits: self.memo_hits.load(Relaxed),
            scans: self.scans.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            classes: CLASSES
                .iter()
                .map(|c| (c.as_str(), self.classes[class_index(*c)].load(Relaxed)))
                .collect(),
            classifiers,
        }
    }
}

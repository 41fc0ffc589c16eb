//! A latency histogram on atomics: a fixed array of buckets, no lock, no allocation.
//!
//! Buckets are stored non-cumulatively (one relaxed increment per observation, plus the sum);
//! the exposition makes them cumulative as Prometheus expects.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// Upper bounds of the buckets in microseconds (0.5 ms … 30 s); a last `+Inf` bucket follows.
pub const BOUNDS_MICROS: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Number of buckets including `+Inf`.
pub const BUCKETS: usize = BOUNDS_MICROS.len() + 1;

/// Observed durations by bucket, and their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    pub buckets: [u64; BUCKETS],
    /// Sum of the observations in microseconds.
    pub sum_micros: u64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_MICROS
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BOUNDS_MICROS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
        self.sum_micros.fetch_add(us, Relaxed);
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = [0; BUCKETS];
        for (out, b) in buckets.iter_mut().zip(&self.buckets) {
            *out = b.load(Relaxed);
        }
        HistogramSnapshot {
            buckets,
            sum_micros: self.sum_micros.load(Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_micros(501));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(
            (s.buckets[0], s.buckets[1], s.buckets[BUCKETS - 1]),
            (1, 1, 1)
        );
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum_micros, 60_001_001);
    }
}

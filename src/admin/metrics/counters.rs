//! The proxy's own counters, updated on the request path with relaxed atomics only.
//!
//! Per request exactly one increment: a cell of a fixed `method × status × cache result`
//! array, from which both `sluice_requests_total{method,status}` and
//! `sluice_cache_results_total{result}` are summed when scraped. Client bytes are counted per
//! connection in plain fields of the IO wrapper and added to the shared totals every
//! [`BYTES_FLUSH`] bytes and when the connection closes, so a small hit costs no atomic for
//! them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::cache::status::{CacheStatus, Fwd, STALE_IF_ERROR};

/// Methods with their own label value; anything else is `other`.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH", "TRACE", "other",
];

/// Status codes 100–599 have a slot each; slot [`STATUS_SLOTS`]` - 1` is anything else.
const STATUS_SLOTS: usize = 501;

/// Client bytes are added to the shared totals once this many are pending on a connection.
pub const BYTES_FLUSH: u64 = 64 * 1024;

/// What the cache did for a request (`sluice_cache_results_total{result}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheResult {
    /// No cache phase (CONNECT, errors before the lookup, denied clients).
    #[default]
    None,
    /// Served fresh from the cache.
    Hit,
    /// Fetched from upstream (not stored, stored, or refetched after a failed validation).
    Miss,
    /// Served stale (stale-while-revalidate, stale-if-error, max-stale).
    Stale,
    /// A stored object validated upstream with a 304 and served.
    Revalidated,
    /// Served from the cache after waiting for another request's fetch.
    Collapsed,
    /// Not cacheable by method: passed through upstream.
    Pass,
}

/// The label values of [`CacheResult`], in slot order (`None` is not exported).
pub const RESULTS: [&str; 7] = [
    "",
    "hit",
    "miss",
    "stale",
    "revalidated",
    "collapsed",
    "pass",
];

impl CacheResult {
    /// The result a `Cache-Status` describes.
    pub fn of(s: &CacheStatus) -> CacheResult {
        if s.hit {
            if s.collapsed {
                CacheResult::Collapsed
            } else if s.ttl.is_some_and(|t| t < 0) || s.detail.is_some() {
                CacheResult::Stale
            } else {
                CacheResult::Hit
            }
        } else {
            match s.fwd {
                None => CacheResult::None,
                Some(Fwd::Method | Fwd::Bypass) => CacheResult::Pass,
                Some(_) if s.detail == Some(STALE_IF_ERROR) => CacheResult::Stale,
                Some(_) if s.fwd_status == Some(304) => CacheResult::Revalidated,
                Some(_) => CacheResult::Miss,
            }
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Counters shared by the listener, connections and the metrics page. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProxyMetrics {
    inner: Arc<Counters>,
}

#[derive(Debug)]
struct Counters {
    /// `[method][status slot][result]`, row-major.
    traffic: Box<[AtomicU64]>,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    connections_open: AtomicI64,
    connections: AtomicU64,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        let n = METHODS.len() * STATUS_SLOTS * RESULTS.len();
        ProxyMetrics {
            inner: Arc::new(Counters {
                traffic: (0..n).map(|_| AtomicU64::new(0)).collect(),
                bytes_received: AtomicU64::new(0),
                bytes_sent: AtomicU64::new(0),
                connections_open: AtomicI64::new(0),
                connections: AtomicU64::new(0),
            }),
        }
    }
}

/// One `(method, status)` or `result` total, as scraped.
pub type Totals = (Vec<((&'static str, u16), u64)>, Vec<(&'static str, u64)>);

impl ProxyMetrics {
    /// Counts one finished request: one relaxed increment.
    pub fn count_request(&self, method: &str, status: u16, result: CacheResult) {
        let m = METHODS[..METHODS.len() - 1]
            .iter()
            .position(|x| *x == method)
            .unwrap_or(METHODS.len() - 1);
        let s = if (100..600).contains(&status) {
            usize::from(status) - 100
        } else {
            STATUS_SLOTS - 1
        };
        let i = (m * STATUS_SLOTS + s) * RESULTS.len() + result.slot();
        if let Some(c) = self.inner.traffic.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Adds bytes read from and written to client connections.
    pub fn add_client_bytes(&self, received: u64, sent: u64) {
        if received > 0 {
            self.inner.bytes_received.fetch_add(received, Relaxed);
        }
        if sent > 0 {
            self.inner.bytes_sent.fetch_add(sent, Relaxed);
        }
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        self.inner.connections.fetch_add(1, Relaxed);
        self.inner.connections_open.fetch_add(1, Relaxed);
    }

    /// A client connection ended.
    pub fn connection_closed(&self) {
        self.inner.connections_open.fetch_sub(1, Relaxed);
    }

    /// Requests by `(method, status)` and by cache result (non-zero ones only).
    pub fn totals(&self) -> Totals {
        let mut by_status = Vec::new();
        let mut by_result = [0u64; RESULTS.len()];
        for (m, method) in METHODS.iter().enumerate() {
            for s in 0..STATUS_SLOTS {
                let base = (m * STATUS_SLOTS + s) * RESULTS.len();
                let mut n = 0;
                for (r, total) in by_result.iter_mut().enumerate() {
                    let v = self
                        .inner
                        .traffic
                        .get(base + r)
                        .map_or(0, |c| c.load(Relaxed));
                    *total += v;
                    n += v;
                }
                if n > 0 {
                    let code = if s == STATUS_SLOTS - 1 {
                        0
                    } else {
                        s as u16 + 100
                    };
                    by_status.push(((*method, code), n));
                }
            }
        }
        let by_result = RESULTS.iter().copied().zip(by_result).skip(1).collect();
        (by_status, by_result)
    }

    /// Bytes received from and sent to clients so far.
    pub fn client_bytes(&self) -> (u64, u64) {
        (
            self.inner.bytes_received.load(Relaxed),
            self.inner.bytes_sent.load(Relaxed),
        )
    }

    /// Open client connections, and all accepted so far.
    pub fn connections(&self) -> (i64, u64) {
        (
            self.inner.connections_open.load(Relaxed),
            self.inner.connections.load(Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[rustfmt::skip]
    fn cache_status_to_result_table() {
        let hit = CacheStatus::hit();
        let rows = [
            (CacheStatus { ttl: Some(30), ..hit.clone() }, CacheResult::Hit),
            (CacheStatus { ttl: Some(-5), ..hit.clone() }, CacheResult::Stale),
            (CacheStatus::stale_on_error(Fwd::Stale, Some(503)), CacheResult::Stale),
            (CacheStatus::stale_on_error(Fwd::Request, None), CacheResult::Stale),
            (CacheStatus { collapsed: true, ..hit.clone() }, CacheResult::Collapsed),
            (CacheStatus::forward(Fwd::UriMiss), CacheResult::Miss),
            (CacheStatus { stored: true, ..CacheStatus::forward(Fwd::VaryMiss) }, CacheResult::Miss),
            (CacheStatus { fwd_status: Some(304), ..CacheStatus::forward(Fwd::Stale) }, CacheResult::Revalidated),
            (CacheStatus { fwd_status: Some(200), ..CacheStatus::forward(Fwd::Stale) }, CacheResult::Miss),
            (CacheStatus::forward(Fwd::Method), CacheResult::Pass),
            (CacheStatus::default(), CacheResult::None),
        ];
        for (status, want) in rows {
            assert_eq!(CacheResult::of(&status), want, "{status:?}");
        }
    }

    #[test]
    fn requests_sum_by_status_and_by_result() {
        let m = ProxyMetrics::default();
        m.count_request("GET", 200, CacheResult::Hit);
        m.count_request("GET", 200, CacheResult::Miss);
        m.count_request("BREW", 999, CacheResult::None);
        let (by_status, by_result) = m.totals();
        assert_eq!(by_status, vec![(("GET", 200), 2), (("other", 0), 1)]);
        assert!(by_result.contains(&("hit", 1)) && by_result.contains(&("miss", 1)));
        assert_eq!(by_result.len(), RESULTS.len() - 1);
    }
}

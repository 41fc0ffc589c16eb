//! Idle keep-alive connections to upstreams, keyed by where they lead.
//!
//! A connection is checked in only after its response body was read to the end, the
//! response allowed keep-alive and its request was sent in full; it is checked out
//! most-recently-used first (the one least likely to have been closed by the peer), and one
//! the peer closed while idle is dropped on checkout. A sweeper closes connections idle longer than `upstream.idle_timeout`.

use foldhash::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hyper::client::conn::http1::SendRequest;

use super::framing::HeadNext;
use crate::body::Body;
use crate::config::HostPort;
use crate::proxy::target::Scheme;

/// What a pooled connection is connected to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PoolKey {
    /// Directly to an origin.
    Origin {
        scheme: Scheme,
        host: String,
        port: u16,
    },
    /// To a parent proxy, carrying absolute-form `http://` requests for any origin.
    Parent(HostPort),
    /// TLS to an origin through a CONNECT tunnel opened by a parent.
    Tunnel {
        parent: HostPort,
        host: String,
        port: u16,
    },
}

/// An open connection: hyper's sender, and the mark its stream reads before each request.
pub struct Conn {
    pub tx: SendRequest<Body>,
    pub next: HeadNext,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle connections by key, oldest first in each list, and how many there are in all.
#[derive(Default)]
struct Idles {
    by_key: HashMap<PoolKey, Vec<Idle>>,
    total: usize,
}

/// The pool of idle connections.
pub struct Pool {
    idle: Mutex<Idles>,
    max_per_key: usize,
    /// Idle connections kept in all: past it the oldest one goes, so a crawl over many
    /// hosts does not hold a socket per host for `idle_timeout`.
    max_total: usize,
    idle_timeout: Duration,
}

impl Pool {
    /// A pool keeping at most `max_per_key` idle connections per key and `max_total` in all.
    pub fn new(max_per_key: usize, max_total: usize, idle_timeout: Duration) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            idle: Mutex::new(Idles::default()),
            max_per_key,
            max_total,
            idle_timeout,
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    /// An idle connection to `key` that is still open, if any.
    pub fn take(&self, key: &PoolKey) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let Idles { by_key, total } = &mut *idle;
        let list = by_key.get_mut(key)?;
        while let Some(entry) = list.pop() {
            *total -= 1;
            if entry.since.elapsed() < self.idle_timeout && entry.conn.tx.is_ready() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Returns a connection whose last response is complete. One still sending its request
    /// body (the origin answered before reading it all, RFC 9112 §9.6) is checked in only
    /// once hyper can take a new request on it, and dropped if that takes longer than the
    /// idle timeout: a request taking it sooner would queue behind the upload.
    pub fn put(self: &Arc<Self>, key: PoolKey, mut conn: Conn) {
        if conn.tx.is_closed() || self.max_per_key == 0 || self.max_total == 0 {
            return;
        }
        if !conn.tx.is_ready() {
            let (pool, wait) = (Arc::downgrade(self), self.idle_timeout);
            tokio::spawn(async move {
                if let Ok(Ok(())) = tokio::time::timeout(wait, conn.tx.ready()).await {
                    if let Some(pool) = pool.upgrade() {
                        pool.check_in(key, conn);
                    }
                }
            });
            return;
        }
        self.check_in(key, conn);
    }

    fn check_in(&self, key: PoolKey, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let Idles { by_key, total } = &mut *idle;
        let list = by_key.entry(key).or_default();
        if list.len() >= self.max_per_key {
            list.remove(0);
            *total -= 1;
        }
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
        *total += 1;
        if *total > self.max_total {
            // Full: close the oldest idle connections of any key, an eighth of the bound at
            // once, so that the pass over every list runs once per `max_total / 8`
            // check-ins, not on each one of a crawl over more hosts than the bound. The pass
            // also drops the lists `take` emptied (kept otherwise, so a key's next check-in
            // allocates nothing), which keeps it as short as the pool.
            let excess = *total - self.max_total + self.max_total / 8;
            let mut ages: Vec<Instant> = by_key.values().flatten().map(|c| c.since).collect();
            let (_, &mut cutoff, _) = ages.select_nth_unstable(excess - 1);
            let mut left = excess;
            by_key.retain(|_, list| {
                list.retain(|c| {
                    let close = left > 0 && c.since <= cutoff;
                    left -= usize::from(close);
                    !close
                });
                !list.is_empty()
            });
            *total -= excess - left;
        }
    }

    /// Number of idle connections, for metrics and tests.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    fn sweep_once(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let Idles { by_key, total } = &mut *idle;
        by_key.retain(|_, list| {
            list.retain(|c| c.since.elapsed() < self.idle_timeout && !c.conn.tx.is_closed());
            !list.is_empty()
        });
        *total = by_key.values().map(Vec::len).sum();
    }
}

async fn sweep(pool: Weak<Pool>) {
    let period = match pool.upgrade() {
        Some(p) => (p.idle_timeout / 2).max(Duration::from_millis(100)),
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        match pool.upgrade() {
            Some(p) => p.sweep_once(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;

    /// A ready connection over an in-memory pipe (the far end is kept open by the returned
    /// half).
    async fn conn() -> (Conn, tokio::io::DuplexStream) {
        let (near, far) = tokio::io::duplex(1024);
        let (mut tx, driver) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(near))
            .await
            .expect("handshake");
        tokio::spawn(driver);
        tx.ready().await.expect("ready");
        let next = HeadNext::default();
        (Conn { tx, next }, far)
    }

    fn origin(i: usize) -> PoolKey {
        PoolKey::Origin {
            scheme: Scheme::Http,
            host: format!("h{i}.example"),
            port: 80,
        }
    }

    #[tokio::test]
    async fn idle_connections_are_bounded_across_hosts() {
        // One idle connection per distinct host used to be kept for `idle_timeout` whatever
        // the number of hosts: a crawl over many hosts held a socket for each one.
        let pool = Pool::new(64, 4, Duration::from_secs(60));
        let mut far = Vec::new();
        for i in 0..10 {
            let (c, f) = conn().await;
            far.push(f);
            pool.put(origin(i), c);
            assert!(
                pool.idle_count() <= 4,
                "{} idle after {i}",
                pool.idle_count()
            );
        }
        assert!(pool.take(&origin(0)).is_none(), "the oldest went first");
        assert!(pool.take(&origin(9)).is_some(), "the newest is kept");
        assert_eq!(pool.idle_count(), 3);
        for i in 10..12 {
            let (c, f) = conn().await;
            far.push(f);
            pool.put(origin(i), c);
        }
        let keys = pool.idle.lock().unwrap().by_key.len();
        assert_eq!(
            (pool.idle_count(), keys),
            (4, 4),
            "emptied lists go when full"
        );
    }

    #[tokio::test]
    async fn a_full_pool_closes_an_eighth_of_its_bound_at_once() {
        // One pass over every list per check-in would cost a crawl over more hosts than the
        // bound a scan of the whole pool per request; a batch makes it one per 16 here.
        let pool = Pool::new(64, 16, Duration::from_secs(60));
        let mut far = Vec::new();
        for i in 0..17 {
            let (c, f) = conn().await;
            far.push(f);
            pool.put(origin(i), c);
        }
        assert_eq!(pool.idle_count(), 14, "17 - (1 over + 16 / 8)");
        for gone in 0..3 {
            assert!(pool.take(&origin(gone)).is_none(), "the oldest three went");
        }
        assert!(pool.take(&origin(3)).is_some());
        assert!(pool.take(&origin(16)).is_some());
    }
}

//! Idle keep-alive connections to upstreams, keyed by where they lead.
//!
//! A connection is checked in only after its response body was read to the end, the
//! response allowed keep-alive and its request was sent in full; it is checked out
//! most-recently-used first (the one least likely to have been closed by the peer), and one
//! the peer closed while idle is dropped on checkout. A sweeper closes connections idle longer than `upstream.idle_timeout`.

use foldhash::{HashMap, HashMapExt};
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

/// The pool of idle connections.
pub struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
    max_per_key: usize,
    idle_timeout: Duration,
}

impl Pool {
    /// A pool keeping at most `max_per_key` idle connections per key.
    pub fn new(max_per_key: usize, idle_timeout: Duration) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            idle: Mutex::new(HashMap::new()),
            max_per_key,
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
        let list = idle.get_mut(key)?;
        while let Some(entry) = list.pop() {
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
        if conn.tx.is_closed() || self.max_per_key == 0 {
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
        let list = idle.entry(key).or_default();
        if list.len() >= self.max_per_key {
            list.remove(0);
        }
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Number of idle connections, for metrics and tests.
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }

    fn sweep_once(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|_, list| {
            list.retain(|c| c.since.elapsed() < self.idle_timeout && !c.conn.tx.is_closed());
            !list.is_empty()
        });
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

//! Many-URL hit ratio (issue 7): a seeded Zipf request sequence over distinct URLs, the
//! offline replay of that sequence through the cache's own eviction policy, and a driver that
//! sends the same sequence through a running sluice to a loopback origin.
//!
//! Shared by `tests/cache_zipf.rs` (scaled down) and `examples/zipf_hit_ratio.rs` (full size);
//! `benches/eviction.rs` takes its trace and LRU replay from here too.
//!
//! What decides a hit in the proxy: `Cache::get` answers from the memory tier, then from sled.
//! The memory tier only ever holds objects that are also in sled (an object evicted from the
//! disk policy is dropped from memory too, and a put that loses admission never reaches
//! memory), so the memory tier decides *where* a hit is served from, never *whether* it is a
//! hit. Whether it is a hit is decided by the disk policy alone: a `WTinyLfu` of `max_size`
//! bytes, sized for `(max_size / 32 KiB).clamp(1024, 4M)` entries (see `Cache::open`), that
//! is `touch`ed on every hit (memory hits too) and `insert`ed with the object's
//! `accounted_size` on every stored miss. The simulation replays exactly that.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use sluice::cache::evict::{Lru, WTinyLfu};
use sluice::cache::key::CacheKey;
use sluice::cache::memory::object_key;
use sluice::cache::meta::ObjectMeta;
use sluice::proxy::headers::{add_via, response_hop};
use tokio::net::{TcpListener, TcpStream};

/// One workload: how many URLs, how many requests, the skew and the cache size.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Distinct URLs.
    pub urls: usize,
    /// Requests in the sequence.
    pub requests: usize,
    /// Zipf exponent `s` (rank `k` is requested with probability ∝ `1 / k^s`).
    pub skew: f64,
    /// Seed of the generator: the same seed gives the same sequence.
    pub seed: u64,
    /// Body bytes of every object.
    pub body: usize,
    /// The store holds this fraction of the objects (`store.max_size` in objects).
    pub fits: f64,
    /// `store.memory` as a fraction of `store.max_size` (the memory tier in front of sled).
    pub memory: f64,
}

/// splitmix64: a small seeded generator, so a sequence is the same on every run.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The seeded Zipf request sequence of a workload (see [`zipf_sequence`]).
pub fn sequence(w: &Workload) -> Vec<u32> {
    zipf_sequence(w.urls, w.requests, w.skew, w.seed)
}

/// `len` seeded Zipf(`s`) draws of object indices in `0..n`, by inverse-CDF sampling;
/// popularity ranks are scattered over the indices so popularity is not index order.
/// Also the trace of `benches/eviction.rs`.
pub fn zipf_sequence(n: usize, len: usize, s: f64, seed: u64) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for k in 1..=n {
        total += 1.0 / (k as f64).powf(s);
        cdf.push(total);
    }
    let mut rng = Rng(seed);
    let scatter = |rank: usize| ((rank as u64 * 2_654_435_761) % n as u64) as u32;
    (0..len)
        .map(|_| {
            let u = rng.next_f64() * total;
            scatter(cdf.partition_point(|&c| c < u).min(n - 1))
        })
        .collect()
}

/// The URL of object `i`. Fixed width, so every object has the same accounted size.
pub fn url(origin: SocketAddr, i: u32) -> String {
    format!("http://{origin}/obj/{i:07}")
}

/// The body of object `i`: `len` bytes, distinct per object (so bodies are not shared in
/// the content-addressed store and each miss writes its own body, as in real traffic).
pub fn body(i: u32, len: usize) -> Bytes {
    let mut b = format!("object {i:07}\n").into_bytes();
    b.resize(len, b'.');
    Bytes::from(b)
}

/// Response headers the origin sends (hyper adds `date` and `content-length`).
const CACHE_CONTROL: &str = "max-age=86400";
const CONTENT_TYPE: &str = "application/octet-stream";

/// The bytes the disk policy charges for one object, computed as the proxy computes it: the
/// origin's headers plus the proxy's `Via`, through `ObjectMeta::from_response`.
pub fn accounted_size(origin: SocketAddr, w: &Workload) -> u64 {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    h.insert("cache-control", HeaderValue::from_static(CACHE_CONTROL));
    h.insert("content-length", HeaderValue::from(w.body));
    let now = SystemTime::now();
    let date = httpdate::fmt_http_date(now);
    h.insert(
        "date",
        HeaderValue::from_str(&date).unwrap_or(HeaderValue::from_static("")),
    );
    add_via(&mut h, response_hop(Version::HTTP_11));
    let key = CacheKey::parse(&url(origin, 0)).expect("test URL parses");
    let body = body(0, w.body);
    ObjectMeta::from_response(&key, StatusCode::OK, &h, &HeaderMap::new(), now, now, &body)
        .accounted_size()
}

/// `store.max_size` for a workload: room for `fits × urls` objects.
pub fn max_size(w: &Workload, object: u64) -> u64 {
    (w.urls as f64 * w.fits) as u64 * object
}

/// The disk policy's expected-entries hint, as `Cache::open` computes it from `max_size`.
pub fn disk_expected_entries(max_size: u64) -> usize {
    (max_size / 32_768).clamp(1024, 1 << 22) as usize
}

/// Hits of the sequence replayed through a W-TinyLFU of `capacity` bytes sized for `expected`
/// entries: a present key is a hit and is touched; an absent one is inserted (and stored
/// unless it loses admission), as the proxy does.
pub fn simulate(
    seq: &[u32],
    origin: SocketAddr,
    capacity: u64,
    expected: usize,
    size: u64,
) -> usize {
    let keys: Vec<String> = (0..=seq.iter().copied().max().unwrap_or(0))
        .map(|i| object_key(&url(origin, i), ""))
        .collect();
    let mut p = WTinyLfu::new(capacity, expected);
    let mut hits = 0;
    for &i in seq {
        let k = &keys[i as usize];
        if p.contains(k) {
            hits += 1;
            p.touch(k);
        } else {
            p.insert(k.clone(), size);
        }
    }
    hits
}

/// Hits of the sequence under plain LRU of `capacity` bytes (for reference only).
pub fn simulate_lru(seq: &[u32], capacity: u64, size: u64) -> usize {
    let mut p = Lru::new(capacity);
    let mut hits = 0;
    for &i in seq {
        if p.contains(&i) {
            hits += 1;
            p.touch(&i);
        } else {
            p.insert(i, size);
        }
    }
    hits
}

/// A loopback origin serving every `/obj/NNNNNNN` as a cacheable object; counts requests.
pub struct ZipfOrigin {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ZipfOrigin {
    /// Starts the origin on `127.0.0.1:0`, serving bodies of `len` bytes.
    pub async fn start(len: usize) -> ZipfOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin address");
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let i = req
                            .uri()
                            .path()
                            .strip_prefix("/obj/")
                            .and_then(|n| n.parse::<u32>().ok());
                        let resp = match i {
                            Some(i) => Response::builder()
                                .header("content-type", CONTENT_TYPE)
                                .header("cache-control", CACHE_CONTROL)
                                .body(Full::new(body(i, len))),
                            None => Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::new())),
                        };
                        async move { Ok::<_, Infallible>(resp.unwrap_or_default()) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        });
        ZipfOrigin {
            addr,
            requests,
            task,
        }
    }

    /// Requests the origin has answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for ZipfOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the proxy did with the sequence.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// Responses whose `Cache-Status` says `hit`.
    pub hits: usize,
    /// Requests the origin answered during the run (every miss is one).
    pub origin_requests: usize,
    /// Wall time of the run.
    pub seconds: f64,
}

/// Sends the sequence to the proxy at `proxy` (absolute-form targets on `origin`) over
/// `connections` keep-alive connections at once, request `n` on connection `n % connections`
/// (with one connection: strictly in order), and counts `Cache-Status: ...; hit` responses.
/// Panics on anything but a complete `200` with the right body length.
pub async fn measure(
    proxy: SocketAddr,
    origin: &ZipfOrigin,
    seq: &[u32],
    body_len: usize,
    connections: usize,
) -> Measured {
    let connections = connections.max(1);
    let before = origin.requests();
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let mine: Vec<u32> = seq.iter().skip(c).step_by(connections).copied().collect();
            let target = origin.addr;
            tokio::spawn(async move { send_all(proxy, target, &mine, body_len).await })
        })
        .collect();
    let mut hits = 0;
    for t in tasks {
        hits += t.await.expect("client task");
    }
    Measured {
        hits,
        origin_requests: origin.requests() - before,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// One connection's share of [`measure`]: sends `seq` in order, returns the hits.
async fn send_all(proxy: SocketAddr, origin: SocketAddr, seq: &[u32], body_len: usize) -> usize {
    let stream = TcpStream::connect(proxy).await.expect("connect to proxy");
    let _ = stream.set_nodelay(true);
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("client handshake");
    let conn = tokio::spawn(conn);
    let mut hits = 0;
    for (n, &i) in seq.iter().enumerate() {
        let req = Request::get(url(origin, i))
            .header("host", origin.to_string())
            .body(Empty::<Bytes>::new())
            .expect("request");
        send.ready().await.expect("proxy connection open");
        let resp = send.send_request(req).await.expect("proxy answers");
        assert_eq!(resp.status(), StatusCode::OK, "request {n} for object {i}");
        let hit = resp
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').any(|p| p.trim() == "hit"));
        let got = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(
            got.len(),
            body_len,
            "request {n} for object {i}: body length"
        );
        hits += usize::from(hit);
    }
    drop(send);
    let _ = conn.await;
    hits
}

/// `hits / requests` in percent.
pub fn pct(hits: usize, requests: usize) -> f64 {
    100.0 * hits as f64 / requests.max(1) as f64
}

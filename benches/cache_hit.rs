//! Cache hit latency: a memory-tier hit and a sled hit (lookup + verified body read), and
//! the reuse decision for a hit with the stored response's facts derived once (as the proxy
//! does) against deriving them per hit (parsing Cache-Control and dates every time).
//!
//! `cargo bench --bench cache_hit -- --warm-up-time 1 --measurement-time 3`

use std::time::SystemTime;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method, StatusCode};
use sluice::cache::freshness::Facts;
use sluice::cache::key::CacheKey;
use sluice::cache::meta::ObjectMeta;
use sluice::cache::policy::{self, RequestInfo};
use sluice::cache::store::{Cache, CacheConfig, Found};
use sluice::store::Store;

const OBJECTS: usize = 1000;

fn fill(cache: &Cache, size: usize) -> Vec<CacheKey> {
    let mut resp = HeaderMap::new();
    resp.insert("cache-control", "max-age=3600".parse().unwrap());
    resp.insert("content-type", "image/png".parse().unwrap());
    let req = HeaderMap::new();
    let now = SystemTime::now();
    (0..OBJECTS)
        .map(|i| {
            let key = CacheKey::parse(&format!("http://cdn.example/img/{i}.png")).unwrap();
            let mut body = vec![(i % 251) as u8; size];
            body[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let meta =
                ObjectMeta::from_response(&key, StatusCode::OK, &resp, &req, now, now, &body);
            cache.put_blocking(meta, Bytes::from(body)).unwrap();
            key
        })
        .collect()
}

fn lookup(cache: &Cache, key: &CacheKey, req: &HeaderMap) -> usize {
    match cache.get_blocking(key, req).unwrap() {
        Found::Hit(h) => h.body.len(),
        _ => panic!("expected a hit"),
    }
}

fn bench(c: &mut Criterion) {
    let req = HeaderMap::new();
    for (label, size) in [("16KiB", 16 << 10), ("256KiB", 256 << 10)] {
        let store = Store::temporary().unwrap();
        let warm = Cache::open(
            &store,
            CacheConfig {
                max_size: 1 << 32,
                memory: 1 << 31,
            },
        )
        .unwrap();
        let keys = fill(&warm, size);
        let mut i = 0;
        c.bench_function(&format!("memory_hit_{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                black_box(lookup(&warm, &keys[i], &req))
            })
        });
        // Memory tier off: every lookup reads sled and verifies the SHA-256.
        let cold = Cache::open(
            &store,
            CacheConfig {
                max_size: 1 << 32,
                memory: 0,
            },
        )
        .unwrap();
        c.bench_function(&format!("sled_hit_{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                black_box(lookup(&cold, &keys[i], &req))
            })
        });
    }
}

fn decision(c: &mut Criterion) {
    let mut resp = HeaderMap::new();
    resp.insert("cache-control", "public, max-age=3600".parse().unwrap());
    resp.insert(
        "date",
        httpdate::fmt_http_date(SystemTime::now()).parse().unwrap(),
    );
    resp.insert(
        "last-modified",
        "Tue, 24 Nov 2026 10:00:00 GMT".parse().unwrap(),
    );
    resp.insert("etag", "\"v1\"".parse().unwrap());
    let key = CacheKey::parse("http://cdn.example/img/1.png").unwrap();
    let now = SystemTime::now();
    let meta = ObjectMeta::from_response(
        &key,
        StatusCode::OK,
        &resp,
        &HeaderMap::new(),
        now,
        now,
        b"x",
    );
    let facts = Facts::of(&meta);
    let req = HeaderMap::new();
    let info = RequestInfo {
        method: &Method::GET,
        headers: &req,
    };
    c.bench_function("hit_decision_reparsed", |b| {
        b.iter(|| black_box(policy::decide(&info, &meta, SystemTime::now())))
    });
    c.bench_function("hit_decision_with_facts", |b| {
        b.iter(|| black_box(policy::decide_with(&info, &meta, &facts, SystemTime::now())))
    });
}

criterion_group!(benches, bench, decision);
criterion_main!(benches);

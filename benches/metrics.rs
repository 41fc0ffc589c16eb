//! What the metrics cost on the request path: the one per-request counter increment, a
//! latency histogram observation, and a whole `/metrics` scrape's request totals.
//!
//! `cargo bench --bench metrics -- --warm-up-time 1 --measurement-time 3`

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sluice::admin::metrics::histogram::Histogram;
use sluice::admin::metrics::{CacheResult, ProxyMetrics};

fn metrics(c: &mut Criterion) {
    let m = ProxyMetrics::default();
    c.bench_function("count_request", |b| {
        b.iter(|| m.count_request(black_box("GET"), black_box(200), CacheResult::Hit))
    });
    let h = Histogram::default();
    c.bench_function("histogram_observe", |b| {
        b.iter(|| h.observe(black_box(Duration::from_micros(1234))))
    });
    c.bench_function("scrape_request_totals", |b| {
        b.iter(|| black_box(m.totals()))
    });
}

criterion_group!(benches, metrics);
criterion_main!(benches);

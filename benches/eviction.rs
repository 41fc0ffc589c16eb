//! Eviction: hit ratio of W-TinyLFU vs plain LRU over a Zipf(0.9) trace of 1M requests over
//! 100k URLs (printed), and the per-operation cost of each policy (criterion).
//!
//! `cargo bench --bench eviction -- --warm-up-time 1 --measurement-time 3`

#[path = "../tests/zipf_support/mod.rs"]
mod zipf_support;

use criterion::{black_box, Criterion};
use sluice::cache::evict::WTinyLfu;

const URLS: usize = 100_000;
const REQUESTS: usize = 1_000_000;
const SKEW: f64 = 0.9;

fn hit_ratio_tinylfu(trace: &[u32], capacity: u64) -> f64 {
    let mut p = WTinyLfu::new(capacity, capacity as usize);
    let mut hits = 0usize;
    for &k in trace {
        if p.contains(&k) {
            hits += 1;
            p.touch(&k);
        } else {
            p.insert(k, 1);
        }
    }
    hits as f64 / trace.len() as f64
}

fn hit_ratio_lru(trace: &[u32], capacity: u64) -> f64 {
    zipf_support::simulate_lru(trace, capacity, 1) as f64 / trace.len() as f64
}

fn main() {
    let trace = zipf_support::zipf_sequence(URLS, REQUESTS, SKEW, 42);
    println!("hit ratio, Zipf({SKEW}) trace: {REQUESTS} requests over {URLS} URLs (seed 42)");
    println!(
        "{:>10} {:>10} {:>10} {:>8}",
        "cache", "W-TinyLFU", "LRU", "gain"
    );
    for pct in [1u64, 5, 10, 20] {
        let cap = URLS as u64 * pct / 100;
        let (t, l) = (hit_ratio_tinylfu(&trace, cap), hit_ratio_lru(&trace, cap));
        println!(
            "{:>9}% {:>9.2}% {:>9.2}% {:>+7.2}",
            pct,
            t * 100.0,
            l * 100.0,
            (t - l) * 100.0
        );
    }

    let mut c = Criterion::default().configure_from_args();
    let short = &trace[..100_000];
    c.bench_function("wtinylfu_100k_requests", |b| {
        b.iter(|| black_box(hit_ratio_tinylfu(short, 5_000)))
    });
    c.bench_function("lru_100k_requests", |b| {
        b.iter(|| black_box(hit_ratio_lru(short, 5_000)))
    });
    c.final_summary();
}

//! PDQ index query latency at distance 31: random hashes plus planted near neighbours.
//!
//! Sizes come from `PDQ_INDEX_SIZES` (comma-separated, default `1000000`; e.g.
//! `PDQ_INDEX_SIZES=1000000,10000000`). Besides criterion's mean, p50/p99/max over 20 000
//! queries (half of them with planted neighbours) are printed per size, once over all queries
//! and once over the queries the scheduler did not preempt (run-queue wait from
//! `/proc/thread-self/schedstat` unchanged), which is what the index itself costs on a busy
//! machine.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice::scan::pdq::{PdqHash, PdqIndex};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn hash(&mut self) -> PdqHash {
        PdqHash::from_u64s([self.next(), self.next(), self.next(), self.next()])
    }
    fn near(&mut self, h: &PdqHash, n: u32) -> PdqHash {
        let mut w = h.as_u64s();
        for _ in 0..n {
            let b = self.next() % 256;
            w[(b / 64) as usize] ^= 1 << (b % 64);
        }
        PdqHash::from_u64s(w)
    }
}

/// Nanoseconds this thread has waited on a run queue so far.
fn runqueue_wait_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn percentiles(label: &str, n: usize, lat: &mut [f64]) {
    if lat.is_empty() {
        return;
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    eprintln!(
        "pdq_index: n={n} d=31 {label}: queries={} p50={:.1}us p99={:.1}us max={:.1}us",
        lat.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
}

fn sizes() -> Vec<usize> {
    let spec = std::env::var("PDQ_INDEX_SIZES").unwrap_or_else(|_| "1000000".to_string());
    spec.split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn bench_index(c: &mut Criterion) {
    for n in sizes() {
        let mut rng = Rng(n as u64);
        let mut index = PdqIndex::new();
        let start = Instant::now();
        let mut planted = Vec::new();
        for id in 0..n as u64 {
            let h = rng.hash();
            index.insert(&h, id);
            // Every 1000th hash gets a query 0..31 bits away, so matches exist.
            if id % 1000 == 0 {
                let d = (rng.next() % 32) as u32;
                planted.push(rng.near(&h, d));
            }
        }
        index.shrink_to_fit();
        eprintln!(
            "pdq_index: built {n} hashes in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        let queries: Vec<PdqHash> = (0..20_000)
            .map(|i| {
                if i % 2 == 0 {
                    planted[i / 2 % planted.len()]
                } else {
                    rng.hash()
                }
            })
            .collect();
        let mut all: Vec<f64> = Vec::with_capacity(queries.len());
        let mut unpreempted: Vec<f64> = Vec::with_capacity(queries.len());
        let mut hits = 0usize;
        for q in &queries {
            let waited = runqueue_wait_ns();
            let t = Instant::now();
            hits += black_box(index.query(q, 31)).len();
            let us = t.elapsed().as_secs_f64() * 1e6;
            all.push(us);
            if runqueue_wait_ns() == waited {
                unpreempted.push(us);
            }
        }
        eprintln!("pdq_index: n={n} d=31 hits={hits}");
        percentiles("all", n, &mut all);
        percentiles("not preempted", n, &mut unpreempted);
        let mut i = 0;
        c.bench_function(&format!("pdq_index_query_d31_{n}"), |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                index.query(black_box(&queries[i]), 31)
            })
        });
    }
}

criterion_group!(benches, bench_index);
criterion_main!(benches);

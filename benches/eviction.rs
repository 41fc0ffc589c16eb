//! Eviction: hit ratio of W-TinyLFU vs plain LRU over a Zipf(0.9) trace of 1M requests over
//! 100k URLs (printed), and the per-operation cost of each policy (criterion).
//!
//! `cargo bench --bench eviction -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, Criterion};
use sluice::cache::evict::{Lru, WTinyLfu};

const URLS: usize = 100_000;
const REQUESTS: usize = 1_000_000;
const SKEW: f64 = 0.9;

/// splitmix64: a small seeded generator, so the trace is the same on every run.
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

/// A seeded Zipf(s) trace over `n` keys by inverse-CDF sampling.
fn zipf_trace(n: usize, len: usize, s: f64, seed: u64) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for k in 1..=n {
        total += 1.0 / (k as f64).powf(s);
        cdf.push(total);
    }
    let mut rng = Rng(seed);
    // Scatter ranks over key space so popularity is not correlated with key order.
    let scatter = |rank: usize| (rank as u32).wrapping_mul(2_654_435_761) % n as u32;
    (0..len)
        .map(|_| {
            let u = rng.next_f64() * total;
            scatter(cdf.partition_point(|&c| c < u).min(n - 1))
        })
        .collect()
}

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
    let mut p = Lru::new(capacity);
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

fn main() {
    let trace = zipf_trace(URLS, REQUESTS, SKEW, 42);
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

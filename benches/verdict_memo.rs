//! Verdict memo lookup (`scan::pipeline::memo::Memo`): the verdict a cache hit carries is
//! looked up by body SHA-256 and reading. Three paths: a hot hit (in-memory map), a sled-backed hit with
//! the hot map cold (sled read + JSON parse + refill of the hot map), and a miss; and the
//! verdict header value a tagged hit then formats.
//!
//! `cargo bench --bench verdict_memo -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sluice::scan::pipeline::memo::{Key, Memo};
use sluice::scan::{Class, Finding, Verdict};
use sluice::store::Store;

const RULESET: &str = "r1-6c0f3b9a2e71d845";
const READING: &str = "text/html; charset=utf-8";
/// More than the hot map keeps (8,192): cycling through them, every `get` misses the hot map.
const COLD_KEYS: usize = 20_000;
/// Fewer than the hot map keeps: after one pass, every `get` is a hot hit.
const HOT_KEYS: usize = 1_000;

fn sha(i: usize) -> String {
    format!(
        "{:064x}",
        (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
    )
}

/// A typical verdict for a clean page with one weak rule finding.
fn verdict(i: usize) -> Verdict {
    Verdict {
        sha256: sha(i),
        media_type: "text/html".into(),
        class: Class::Clean,
        score: 0.8,
        findings: vec![Finding {
            classifier: "rules".into(),
            rule: "NEWSLETTER_FOOTER".into(),
            score: 0.8,
            detail: "body matches /unsubscribe/i".into(),
        }],
        ruleset: RULESET.into(),
        scanned_at: "2026-11-25T22:00:00Z".into(),
        reason: None,
        reading: READING.into(),
        derived: Default::default(),
    }
}

/// The memo key of body `sha256` read as every verdict here was.
fn key(sha256: &str) -> Key<'_> {
    Key {
        sha256,
        reading: READING,
        ruleset: RULESET,
    }
}

fn bench(c: &mut Criterion) {
    let store = Store::temporary().expect("temporary store");
    let memo = Memo::new(store.verdicts.clone());
    for i in 0..COLD_KEYS {
        memo.put(&verdict(i));
    }
    let hot: Vec<String> = (0..HOT_KEYS).map(sha).collect();
    let cold: Vec<String> = (0..COLD_KEYS).map(sha).collect();
    for k in &hot {
        assert!(memo.get(&key(k)).is_some(), "warm-up hit");
    }
    let mut i = 0;
    c.bench_function("memo_hot_hit", |b| {
        b.iter(|| {
            i = (i + 1) % hot.len();
            black_box(memo.get(&key(&hot[i])))
        })
    });
    c.bench_function("memo_sled_hit_hot_cold", |b| {
        b.iter(|| {
            i = (i + 1) % cold.len();
            black_box(memo.get(&key(&cold[i])))
        })
    });
    c.bench_function("memo_sled_read_only", |b| {
        b.iter(|| {
            i = (i + 1) % cold.len();
            black_box(memo.get_stored(&key(&cold[i])))
        })
    });
    // What a tagged hit adds after the lookup: the X-Sluice-Verdict value.
    let v = verdict(7);
    c.bench_function("verdict_header_value", |b| {
        b.iter(|| black_box(black_box(&v).header_value()))
    });
    let absent: Vec<String> = (COLD_KEYS..COLD_KEYS + HOT_KEYS).map(sha).collect();
    c.bench_function("memo_miss", |b| {
        b.iter(|| {
            i = (i + 1) % absent.len();
            black_box(memo.get(&key(&absent[i])))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

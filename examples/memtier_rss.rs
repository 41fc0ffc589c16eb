//! Measures what a memory-tier object really costs (RSS per held object, with sluice's
//! allocator) against what the tier charges for it, to calibrate `HELD_OVERHEAD` and
//! `FIELD_OVERHEAD` in `cache::memory`.
//!
//!   cargo run --release --example memtier_rss -- [OBJECTS] [BODY_BYTES] [--no-verdict]
//!
//! Each object is a page as the nginx origin of the benches sends it (five header fields),
//! held with a clean verdict like the ones the proxy keeps.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use sluice::cache::memory::MemoryTier;
use sluice::cache::ObjectMeta;
use sluice::scan::{Class, Verdict};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn page(i: usize, body: &[u8]) -> ObjectMeta {
    let mut h = HeaderMap::new();
    h.insert("server", HeaderValue::from_static("nginx/1.22.1"));
    h.insert(
        "date",
        HeaderValue::from_static("Thu, 26 Nov 2026 14:07:09 GMT"),
    );
    h.insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert("content-length", HeaderValue::from(body.len()));
    h.insert("cache-control", HeaderValue::from_static("max-age=3600"));
    let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    ObjectMeta {
        url: format!("http://127.0.0.1:18080/page/{i}"),
        status: 200,
        headers: h,
        request_time: t,
        response_time: t,
        stored_at: t,
        body_sha256: sluice::cache::meta::sha256(body),
        body_len: body.len() as u64,
        vary: Vec::new(),
        secondary: String::new(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |i: usize, default: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default);
    let (objects, body_len) = (number(0, 100_000), number(1, 330));
    let with_verdict = !args.iter().any(|a| a == "--no-verdict");
    // Room for every object; the policy sizes its frequency sketch from this, as the proxy does.
    let mut tier = MemoryTier::new(4 << 30);
    let before = rss_bytes();
    for i in 0..objects {
        let body = vec![(i % 251) as u8 ^ (i / 251) as u8; body_len];
        let meta = Arc::new(page(i, &body));
        let sha = meta.body_sha256;
        tier.insert(Arc::clone(&meta), Bytes::from(body));
        if with_verdict {
            let mut v =
                Verdict::unscanned(&hex::encode(sha), "text/html", "limit", "4c8ce0f146feee3a");
            v.class = Class::Clean;
            v.reason = None;
            let v = Arc::new(v);
            let _formatted = v.header();
            tier.keep_verdict(&meta, v);
        }
    }
    let used = rss_bytes().saturating_sub(before);
    println!(
        "{objects} objects of {body_len} bytes{}: RSS {} bytes per object, charged {}",
        if with_verdict { " with verdicts" } else { "" },
        used / objects.max(1) as u64,
        tier.used() / objects.max(1) as u64,
    );
}

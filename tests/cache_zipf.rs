//! Issue 7, many-URL workload (scaled down): a seeded Zipf(1.0) sequence over 20,000 distinct
//! 1 KiB objects, with room for 10% of them, sent through a real sluice; the hit ratio must be
//! within 2 points of the same sequence replayed offline through the cache's W-TinyLFU.
//! `examples/zipf_hit_ratio.rs` runs the full size (100,000 URLs). How the simulation models a
//! proxy hit is explained in `zipf_support`.

use crate::common;
use crate::zipf_support;

use sluice::config::ByteSize;
use zipf_support::{
    accounted_size, disk_expected_entries, max_size, measure, pct, sequence, simulate, Workload,
    ZipfOrigin,
};

const WORKLOAD: Workload = Workload {
    urls: 20_000,
    requests: 60_000,
    skew: 1.0,
    seed: 7,
    body: 1024,
    fits: 0.10,
    memory: 0.25,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipf_hit_ratio_matches_the_eviction_simulation() {
    let w = WORKLOAD;
    let seq = sequence(&w);
    let origin = ZipfOrigin::start(w.body).await;
    let object = accounted_size(origin.addr, &w);
    let cap = max_size(&w, object);

    let mut cfg = common::config();
    cfg.store.max_size = ByteSize(cap);
    cfg.store.memory = ByteSize((cap as f64 * w.memory) as u64);
    let sluice = common::start(cfg).await;
    let got = measure(sluice.addr, &origin, &seq, w.body, 1).await;
    let simulated = simulate(&seq, origin.addr, cap, disk_expected_entries(cap), object);

    let stats = sluice
        .running
        .as_ref()
        .map(|r| r.proxy.cache.stats())
        .expect("running");
    // The simulation charges what the store charges: every object the same accounted size.
    assert!(stats.objects > 0);
    assert_eq!(
        stats.disk_bytes,
        stats.objects as u64 * object,
        "accounted bytes per object differ from the simulation's {object}"
    );
    assert!(stats.disk_bytes <= cap, "store over its bound");
    // Every response was either a hit or one origin fetch.
    assert_eq!(got.hits + got.origin_requests, seq.len());

    let (measured, expected) = (pct(got.hits, seq.len()), pct(simulated, seq.len()));
    eprintln!(
        "zipf {} URLs, {} requests: measured {measured:.2}%, simulated {expected:.2}% \
         ({} objects stored, {:.1} s)",
        w.urls, w.requests, stats.objects, got.seconds
    );
    assert!(
        (measured - expected).abs() <= 2.0,
        "measured hit ratio {measured:.2}% vs simulated {expected:.2}%"
    );
    // Eviction mattered: well below "everything fits", well above "nothing is kept".
    assert!(
        expected > 20.0 && expected < 90.0,
        "simulated {expected:.2}%"
    );
}

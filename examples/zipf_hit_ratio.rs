//! Many-URL hit ratio, full size (issue 7): a seeded Zipf(1.0) sequence over 100,000 distinct
//! 1 KiB objects, with room for 10% of them, sent through an in-process sluice to a loopback
//! origin; prints the measured hit ratio next to the same sequence replayed offline through the
//! cache's own W-TinyLFU (the disk policy, at the same byte capacity and entry hint), plus two
//! references: W-TinyLFU with the entry hint set to the object count, and plain LRU.
//!
//! `cargo run --release --example zipf_hit_ratio [-- --urls N --requests N --seed N --connections N --sim-only]`
//!
//! With `--connections N` the sequence is spread round-robin over N concurrent connections
//! (the order across connections is then up to the scheduler).
//!
//! `tests/cache_zipf.rs` is the scaled-down check that runs in `cargo test`.

#[path = "../tests/zipf_support/mod.rs"]
mod zipf_support;

use std::net::SocketAddr;
use std::process::ExitCode;

use sluice::config::{ByteSize, Config};
use zipf_support::{
    accounted_size, disk_expected_entries, max_size, measure, pct, sequence, simulate,
    simulate_lru, Workload, ZipfOrigin,
};

fn parse_args() -> Result<(Workload, bool, usize), String> {
    let mut w = Workload {
        urls: 100_000,
        requests: 500_000,
        skew: 1.0,
        seed: 7,
        body: 1024,
        fits: 0.10,
        memory: 0.25,
    };
    let mut sim_only = false;
    let mut connections = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match a.as_str() {
            "--urls" => w.urls = value("--urls")? as usize,
            "--requests" => w.requests = value("--requests")? as usize,
            "--seed" => w.seed = value("--seed")?,
            "--connections" => connections = value("--connections")?.max(1) as usize,
            "--sim-only" => sim_only = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if w.urls == 0 {
        return Err("--urls must be at least 1".into());
    }
    Ok((w, sim_only, connections))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (w, sim_only, connections) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("zipf_hit_ratio: {e}");
            return ExitCode::from(2);
        }
    };
    let seq = sequence(&w);
    let origin = ZipfOrigin::start(w.body).await;
    let object = accounted_size(origin.addr, &w);
    let cap = max_size(&w, object);
    let expected = disk_expected_entries(cap);
    println!(
        "Zipf({}) over {} URLs, {} requests, seed {}; {} B bodies ({object} B accounted), \
         store.max_size {cap} B (~{:.0}% of the objects), memory tier {:.0}% of that",
        w.skew,
        w.urls,
        w.requests,
        w.seed,
        w.body,
        w.fits * 100.0,
        w.memory * 100.0
    );
    let sim = simulate(&seq, origin.addr, cap, expected, object);
    let fitted = (cap / object) as usize;
    let sim_fitted = simulate(&seq, origin.addr, cap, fitted, object);
    let lru = simulate_lru(&seq, cap, object);
    println!(
        "simulated  W-TinyLFU as the store sizes it (entry hint {expected}):  {:.2}%",
        pct(sim, seq.len())
    );
    println!(
        "reference  W-TinyLFU, entry hint = the {fitted} objects that fit: {:.2}%",
        pct(sim_fitted, seq.len())
    );
    println!(
        "reference  LRU:                                                 {:.2}%",
        pct(lru, seq.len())
    );
    if sim_only {
        return ExitCode::SUCCESS;
    }

    let store = match sluice::store::Store::temporary() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zipf_hit_ratio: temporary store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut cfg = Config::default();
    cfg.proxy.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.upstream.allow = vec!["127.0.0.0/8".parse().expect("CIDR")];
    cfg.store.max_size = ByteSize(cap);
    cfg.store.memory = ByteSize((cap as f64 * w.memory) as u64);
    let running = match sluice::server::start_with_store(cfg, store).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zipf_hit_ratio: sluice did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let got = measure(running.proxy_addr, &origin, &seq, w.body, connections).await;
    let stats = running.proxy.cache.stats();
    let (measured, simulated) = (pct(got.hits, seq.len()), pct(sim, seq.len()));
    println!(
        "measured   through sluice: {measured:.2}% ({} hits, {} origin fetches, {:.1} s, \
         {:.0} req/s over {connections} connection(s))",
        got.hits,
        got.origin_requests,
        got.seconds,
        seq.len() as f64 / got.seconds
    );
    println!(
        "store after the run: {} objects, {} B on disk ({} B per object), {} B in memory",
        stats.objects,
        stats.disk_bytes,
        stats.disk_bytes / stats.objects.max(1) as u64,
        stats.memory_bytes
    );
    let diff = measured - simulated;
    println!("measured - simulated: {diff:+.2} points (target: within ±2)");
    running.shutdown().await;
    if diff.abs() <= 2.0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

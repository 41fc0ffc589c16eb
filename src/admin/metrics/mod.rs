//! `GET /metrics` in the Prometheus text exposition format, and the proxy's own counters.
//!
//! - `counters`: [`ProxyMetrics`] (requests by method, status and cache result; client bytes
//!   and connections), updated on the request path with one relaxed increment per request.
//! - `histogram`: the fixed-bucket latency [`histogram::Histogram`] used for upstream connect
//!   and response times and per-classifier scan times.
//!
//! A memo hit shows as a rise of `sluice_verdict_memo_hits_total` with no rise of
//! `sluice_scans_total`.

pub mod counters;
pub mod histogram;

use std::fmt::Write as _;

use http::{Response, StatusCode};

use super::reply;
use crate::body::Body;
use crate::proxy::Proxy;

pub use counters::{CacheResult, ProxyMetrics};
use histogram::{HistogramSnapshot, BOUNDS_MICROS};

/// Appends one metric family with a single unlabelled sample.
fn family(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Appends the HELP/TYPE head of a labelled family.
fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Appends the samples of one histogram; `labels` is empty or `name="value",`.
fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    let mut cumulative = 0;
    for (i, n) in h.buckets.iter().enumerate() {
        cumulative += n;
        let le = BOUNDS_MICROS
            .get(i)
            .map_or("+Inf".to_string(), |b| (*b as f64 / 1e6).to_string());
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
    }
    let labels = match labels.trim_end_matches(',') {
        "" => String::new(),
        l => format!("{{{l}}}"),
    };
    let sum = h.sum_micros as f64 / 1e6;
    let _ = writeln!(
        out,
        "{name}_sum{labels} {sum}\n{name}_count{labels} {cumulative}"
    );
}

/// The metrics page of the exposition `text`.
pub fn page(text: String) -> Response<Body> {
    reply::text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        text,
    )
}

/// The exposition text. Blocking: it counts the `hashes` tree and sizes the store on disk,
/// both O(store); call it off the reactor.
pub fn text(proxy: &Proxy) -> String {
    let mut out = String::with_capacity(8192);
    traffic(&mut out, proxy);
    store(&mut out, proxy);
    upstream(&mut out, proxy);
    scans(&mut out, proxy);
    out
}

/// Requests, cache results, client bytes and connections.
fn traffic(out: &mut String, proxy: &Proxy) {
    let m = &proxy.metrics;
    let (by_status, by_result) = m.totals();
    head(
        out,
        "sluice_requests_total",
        "counter",
        "Requests answered to proxy clients, by method and status.",
    );
    for ((method, status), n) in by_status {
        let status = match status {
            0 => "other".to_string(),
            s => s.to_string(),
        };
        let _ = writeln!(
            out,
            "sluice_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}"
        );
    }
    head(
        out,
        "sluice_cache_results_total",
        "counter",
        "Requests by what the cache did: hit, miss, stale, revalidated, collapsed, pass.",
    );
    for (result, n) in by_result {
        let _ = writeln!(out, "sluice_cache_results_total{{result=\"{result}\"}} {n}");
    }
    let (received, sent) = m.client_bytes();
    family(
        out,
        "sluice_client_bytes_received_total",
        "counter",
        "Bytes read from client connections (flushed every 64 KiB and at close).",
        received,
    );
    family(
        out,
        "sluice_client_bytes_sent_total",
        "counter",
        "Bytes written to client connections (flushed every 64 KiB and at close).",
        sent,
    );
    let (open, accepted) = m.connections();
    family(
        out,
        "sluice_client_connections",
        "gauge",
        "Open client connections.",
        open,
    );
    family(
        out,
        "sluice_client_connections_total",
        "counter",
        "Client connections accepted.",
        accepted,
    );
}

/// Cache store figures.
fn store(out: &mut String, proxy: &Proxy) {
    let cache = proxy.cache.stats();
    family(
        out,
        "sluice_cache_objects",
        "gauge",
        "Objects in the cache store.",
        cache.objects,
    );
    family(
        out,
        "sluice_cache_disk_bytes",
        "gauge",
        "Bytes of cached objects on disk.",
        cache.disk_bytes,
    );
    family(
        out,
        "sluice_cache_memory_bytes",
        "gauge",
        "Bytes of objects in the memory tier.",
        cache.memory_bytes,
    );
    family(
        out,
        "sluice_store_size_bytes",
        "gauge",
        "Size of the sled database on disk (all trees).",
        proxy.store.db.size_on_disk().unwrap_or(0),
    );
}

/// Upstream pool and latencies.
fn upstream(out: &mut String, proxy: &Proxy) {
    family(
        out,
        "sluice_upstream_idle_connections",
        "gauge",
        "Idle pooled upstream connections.",
        proxy.upstream.idle_connections(),
    );
    head(
        out,
        "sluice_upstream_connect_seconds",
        "histogram",
        "Time to open an upstream connection (DNS, TCP, TLS, parent tunnel).",
    );
    histogram(
        out,
        "sluice_upstream_connect_seconds",
        "",
        &proxy.upstream.connect_seconds.snapshot(),
    );
    head(
        out,
        "sluice_upstream_response_seconds",
        "histogram",
        "Time from sending a request upstream to its response head.",
    );
    histogram(
        out,
        "sluice_upstream_response_seconds",
        "",
        &proxy.upstream.response_seconds.snapshot(),
    );
}

/// The scan pipeline, classifiers and lists.
fn scans(out: &mut String, proxy: &Proxy) {
    let s = proxy.pipeline.stats();
    let (workers, busy, waiting) = proxy.pipeline.pool_load();
    family(
        out,
        "sluice_scan_workers",
        "gauge",
        "Scan worker slots.",
        workers,
    );
    family(
        out,
        "sluice_scan_workers_busy",
        "gauge",
        "Scan workers running a job now.",
        busy,
    );
    family(
        out,
        "sluice_scan_queue_depth",
        "gauge",
        "Scans waiting for a worker.",
        waiting,
    );
    for (name, help, v) in [
        (
            "sluice_scan_requests_total",
            "Bodies submitted to the pipeline.",
            s.requests,
        ),
        (
            "sluice_verdict_memo_hits_total",
            "Verdicts answered from the memo.",
            s.memo_hits,
        ),
        (
            "sluice_scanned_bodies_total",
            "Bodies run through the classifiers.",
            s.scans,
        ),
        (
            "sluice_scan_rejected_total",
            "Scans refused: worker pool and queue full.",
            s.rejected,
        ),
        (
            "sluice_scan_timeouts_total",
            "Scans that ran out of scan.timeout.",
            s.timeouts,
        ),
    ] {
        family(out, name, "counter", help, v);
    }
    head(
        out,
        "sluice_verdicts_total",
        "counter",
        "Verdicts given, by class.",
    );
    for (class, n) in &s.classes {
        let _ = writeln!(out, "sluice_verdicts_total{{class=\"{class}\"}} {n}");
    }
    type Pick = fn(&crate::scan::pipeline::ClassifierSnapshot) -> f64;
    let per_classifier: [(&str, &str, Pick); 4] = [
        (
            "sluice_scans_total",
            "Classifier runs, by classifier.",
            |c| c.calls as f64,
        ),
        (
            "sluice_classifier_calls_total",
            "Classifier runs, by classifier (same as sluice_scans_total).",
            |c| c.calls as f64,
        ),
        (
            "sluice_classifier_errors_total",
            "Classifier failures, by classifier.",
            |c| c.errors as f64,
        ),
        (
            "sluice_classifier_seconds_total",
            "Time spent classifying, by classifier.",
            |c| c.micros as f64 / 1e6,
        ),
    ];
    for (name, help, pick) in per_classifier {
        head(out, name, "counter", help);
        for (classifier, c) in &s.classifiers {
            let _ = writeln!(out, "{name}{{classifier=\"{classifier}\"}} {}", pick(c));
        }
    }
    head(
        out,
        "sluice_scan_seconds",
        "histogram",
        "Time per classifier run, by classifier.",
    );
    for (classifier, c) in &s.classifiers {
        let labels = format!("classifier=\"{classifier}\",");
        histogram(out, "sluice_scan_seconds", &labels, &c.seconds);
    }
    let h = proxy.pipeline.handles();
    head(
        out,
        "sluice_rules_loaded",
        "gauge",
        "Rules and listed hashes in force, by kind.",
    );
    for (kind, n) in [
        ("rules", h.rules.as_ref().map_or(0, |r| r.len())),
        ("sha256", h.digest.as_ref().map_or(0, |d| d.len())),
        ("pdq", h.pdq.as_ref().map_or(0, |p| p.len())),
    ] {
        let _ = writeln!(out, "sluice_rules_loaded{{kind=\"{kind}\"}} {n}");
    }
    family(
        out,
        "sluice_runtime_hashes",
        "gauge",
        "Hash entries added through the admin API.",
        proxy.store.hashes.len(),
    );
}

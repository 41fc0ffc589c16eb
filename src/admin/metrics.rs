//! `GET /metrics` in the Prometheus text exposition format, and the proxy's own counters.
//!
//! A memo hit shows as a rise of `sluice_verdict_memo_hits_total` with no rise of
//! `sluice_scans_total`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use http::{Response, StatusCode};

use super::reply;
use crate::body::Body;
use crate::proxy::Proxy;

/// Counters the proxy increments as requests flow.
#[derive(Debug, Default)]
pub struct ProxyMetrics {
    /// Requests received from clients (CONNECT included).
    pub requests: AtomicU64,
}

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

/// The metrics page.
pub fn render(proxy: &Proxy) -> Response<Body> {
    reply::text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        text(proxy),
    )
}

/// The exposition text.
pub fn text(proxy: &Proxy) -> String {
    let mut out = String::with_capacity(2048);
    let requests = proxy.metrics.requests.load(Relaxed);
    family(
        &mut out,
        "sluice_requests_total",
        "counter",
        "Requests received from proxy clients.",
        requests,
    );
    let cache = proxy.cache.stats();
    family(
        &mut out,
        "sluice_cache_objects",
        "gauge",
        "Objects in the cache store.",
        cache.objects,
    );
    family(
        &mut out,
        "sluice_cache_disk_bytes",
        "gauge",
        "Bytes of cached objects on disk.",
        cache.disk_bytes,
    );
    family(
        &mut out,
        "sluice_cache_memory_bytes",
        "gauge",
        "Bytes of objects in the memory tier.",
        cache.memory_bytes,
    );
    family(
        &mut out,
        "sluice_upstream_idle_connections",
        "gauge",
        "Idle pooled upstream connections.",
        proxy.upstream.idle_connections(),
    );
    let s = proxy.pipeline.stats();
    family(
        &mut out,
        "sluice_scan_requests_total",
        "counter",
        "Bodies submitted to the pipeline.",
        s.requests,
    );
    family(
        &mut out,
        "sluice_verdict_memo_hits_total",
        "counter",
        "Verdicts answered from the memo.",
        s.memo_hits,
    );
    family(
        &mut out,
        "sluice_scans_total",
        "counter",
        "Bodies run through the classifiers.",
        s.scans,
    );
    family(
        &mut out,
        "sluice_scan_rejected_total",
        "counter",
        "Scans refused: worker pool and queue full.",
        s.rejected,
    );
    family(
        &mut out,
        "sluice_scan_timeouts_total",
        "counter",
        "Scans that ran out of scan.timeout.",
        s.timeouts,
    );
    head(
        &mut out,
        "sluice_verdicts_total",
        "counter",
        "Verdicts given, by class.",
    );
    for (class, n) in &s.classes {
        let _ = writeln!(out, "sluice_verdicts_total{{class=\"{class}\"}} {n}");
    }
    head(
        &mut out,
        "sluice_classifier_calls_total",
        "counter",
        "Documents classified, by classifier.",
    );
    for (name, c) in &s.classifiers {
        let _ = writeln!(
            out,
            "sluice_classifier_calls_total{{classifier=\"{name}\"}} {}",
            c.calls
        );
    }
    head(
        &mut out,
        "sluice_classifier_errors_total",
        "counter",
        "Classifier failures, by classifier.",
    );
    for (name, c) in &s.classifiers {
        let _ = writeln!(
            out,
            "sluice_classifier_errors_total{{classifier=\"{name}\"}} {}",
            c.errors
        );
    }
    head(
        &mut out,
        "sluice_classifier_seconds_total",
        "counter",
        "Time spent classifying, by classifier.",
    );
    for (name, c) in &s.classifiers {
        let secs = c.micros as f64 / 1e6;
        let _ = writeln!(
            out,
            "sluice_classifier_seconds_total{{classifier=\"{name}\"}} {secs}"
        );
    }
    let h = proxy.pipeline.handles();
    head(
        &mut out,
        "sluice_rules_loaded",
        "gauge",
        "Rules and listed hashes in force, by kind.",
    );
    let _ = writeln!(
        out,
        "sluice_rules_loaded{{kind=\"rules\"}} {}",
        h.rules.as_ref().map_or(0, |r| r.len())
    );
    let _ = writeln!(
        out,
        "sluice_rules_loaded{{kind=\"sha256\"}} {}",
        h.digest.as_ref().map_or(0, |d| d.len())
    );
    let _ = writeln!(
        out,
        "sluice_rules_loaded{{kind=\"pdq\"}} {}",
        h.pdq.as_ref().map_or(0, |p| p.len())
    );
    family(
        &mut out,
        "sluice_runtime_hashes",
        "gauge",
        "Hash entries added through the admin API.",
        proxy.store.hashes.len(),
    );
    out
}

//! Cache test support: scripted origin answers with arbitrary headers, per-path request
//! counts, HTTP dates relative to now, and bounded waits on a condition (never a bare sleep).

use std::time::{Duration, SystemTime};

use super::origin::Origin;
use super::LIMIT;

/// Stores `n` small objects, fresh for ten minutes, at `{prefix}{i}` straight into `cache`
/// (through the proxy, that many misses would take most of a test).
pub async fn store_directly(cache: sluice::cache::store::Cache, prefix: &str, n: usize) {
    let prefix = prefix.to_string();
    tokio::task::spawn_blocking(move || {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "cache-control",
            http::HeaderValue::from_static("max-age=600"),
        );
        let (req, now) = (http::HeaderMap::new(), SystemTime::now());
        for i in 0..n {
            let key = sluice::cache::key::CacheKey::parse(&format!("{prefix}{i}")).expect("key");
            let body = bytes::Bytes::from(format!("body {i}"));
            let meta = sluice::cache::meta::ObjectMeta::from_response(
                &key,
                http::StatusCode::OK,
                &headers,
                &req,
                now,
                now,
                &body,
            );
            cache.put_blocking(meta, body).expect("stored");
        }
    })
    .await
    .expect("puts");
}

/// `HTTP/1.1 {status}` with the given header lines, a `Content-Length` and `body`.
pub fn answer(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut s = format!("HTTP/1.1 {status}\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = s.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A `200 OK` with `headers` and `body`.
pub fn ok_with(headers: &[&str], body: &str) -> Vec<u8> {
    answer("200 OK", headers, body.as_bytes())
}

/// An origin answering `/p` with `headers` and the body "body of /p".
pub async fn origin_with(headers: &'static [&'static str]) -> Origin {
    Origin::respond(move |r| ok_with(headers, &format!("body of {}", r.target()))).await
}

/// The number at the end of a request target (`/obj/17` → 17).
pub fn index_of(target: &str) -> Option<usize> {
    target.rsplit('/').next()?.parse().ok()
}

/// A `304 Not Modified` with `headers` (no body, no Content-Length).
pub fn not_modified(headers: &[&str]) -> Vec<u8> {
    let mut s = String::from("HTTP/1.1 304 Not Modified\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// An HTTP-date `offset_secs` from now (negative: in the past).
pub fn http_date(offset_secs: i64) -> String {
    let now = SystemTime::now();
    let t = if offset_secs >= 0 {
        now + Duration::from_secs(offset_secs as u64)
    } else {
        now - Duration::from_secs(offset_secs.unsigned_abs())
    };
    httpdate::fmt_http_date(t)
}

/// How many requests the origin received whose target ends with `path`.
pub fn hits(origin: &Origin, path: &str) -> usize {
    origin
        .requests()
        .iter()
        .filter(|r| r.target().ends_with(path))
        .count()
}

/// Polls `cond` until it holds; panics after [`LIMIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Asserts a `Cache-Status` value contains every `;`-separated part of `want`.
#[track_caller]
pub fn assert_cache_status(resp: &super::Response, want: &str) {
    let got = resp.header("cache-status").unwrap_or("");
    let parts: Vec<&str> = got.split(';').map(str::trim).collect();
    for w in want.split(';').map(str::trim) {
        assert!(
            parts.contains(&w),
            "Cache-Status {got:?} should contain {w:?}"
        );
    }
}

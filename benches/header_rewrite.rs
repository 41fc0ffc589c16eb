//! Header rewrite on the proxy's hot path: the request as sent upstream (hop-by-hop fields
//! removed, `Via` added, `Host` from the target, `Max-Forwards`) for a realistic browser
//! request, and the response as sent to the client (`proxy::handle::downstream_response`) for
//! a realistic origin response; and the per-request parsing beside it: the response's
//! Cache-Control and the request URL's cache key.
//!
//! `cargo bench --bench header_rewrite -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, Version};
use sluice::body;
use sluice::cache::directives::CacheControl;
use sluice::cache::key::CacheKey;
use sluice::proxy::handle::{add_upstream_fields, downstream_response, set_host};
use sluice::proxy::headers::{strip_hop_by_hop, wants_keep_alive, Order, ViaName};
use sluice::proxy::target::Target;

/// A browser's GET through a forward proxy (13 fields, two of them hop-by-hop).
const REQUEST: [(&str, &str); 13] = [
    ("host", "www.example.com"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("accept-language", "en-GB,en;q=0.5"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("referer", "https://www.example.com/news/index.html"),
    ("cookie", "session=8f2c1e5a9b7d4c3e; theme=dark; consent=1"),
    ("upgrade-insecure-requests", "1"),
    ("sec-fetch-dest", "document"),
    ("sec-fetch-mode", "navigate"),
    ("if-none-match", "\"5f3a-61b2c8d0e4f00\""),
    ("proxy-connection", "keep-alive"),
    ("connection", "keep-alive"),
];

/// An origin's 200 for a page (12 fields, two of them hop-by-hop).
const RESPONSE: [(&str, &str); 12] = [
    ("date", "Wed, 25 Nov 2026 22:00:00 GMT"),
    ("server", "nginx/1.26.2"),
    ("content-type", "text/html; charset=utf-8"),
    ("content-length", "24411"),
    ("cache-control", "public, max-age=600"),
    ("etag", "\"5f3a-61b2c8d0e4f00\""),
    ("last-modified", "Wed, 25 Nov 2026 21:30:00 GMT"),
    ("vary", "Accept-Encoding"),
    ("content-encoding", "gzip"),
    ("accept-ranges", "bytes"),
    ("connection", "keep-alive"),
    ("keep-alive", "timeout=5, max=1000"),
];

fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).expect("valid bench header"),
        );
    }
    h
}

fn bench(c: &mut Criterion) {
    let req = map(&REQUEST);
    let resp = map(&RESPONSE);
    let target =
        Target::from_uri(&"http://www.example.com/news/".parse().expect("uri")).expect("target");
    let via = ViaName::new();
    c.bench_function("request_rewrite_13_fields", |b| {
        b.iter_batched(
            || req.clone(),
            |mut headers| {
                // What a miss does: the cache phase strips, the upstream request adds.
                strip_hop_by_hop(&mut headers, Order::Kept);
                set_host(&mut headers, &target);
                add_upstream_fields(&mut headers, &via, Version::HTTP_11);
                black_box(headers)
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("response_rewrite_12_fields", |b| {
        b.iter_batched(
            || {
                let mut r = Response::new(body::empty());
                *r.headers_mut() = resp.clone();
                r
            },
            |r| black_box(downstream_response(r)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("wants_keep_alive_13_fields", |b| {
        b.iter(|| black_box(wants_keep_alive(Version::HTTP_11, black_box(&req))))
    });
    c.bench_function("cache_control_parse", |b| {
        b.iter(|| black_box(CacheControl::parse(black_box(&resp))))
    });
    let mut qualified = HeaderMap::new();
    qualified.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("private=\"Set-Cookie\", Max-Age=0, no-cache=\"X-A, X-B\""),
    );
    c.bench_function("cache_control_parse_qualified", |b| {
        b.iter(|| black_box(CacheControl::parse(black_box(&qualified))))
    });
    c.bench_function("cache_key_parse", |b| {
        b.iter(|| {
            black_box(CacheKey::parse(black_box(
                "http://www.example.com/news/2026/11/index.html?page=2&lang=en",
            )))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Decode throughput: HTML to text, gzip + HTML, plain text, the pipeline with no
//! classifiers, and how fast a 10 MB gzip bomb is refused.

use std::io::Write;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::scan::decode::{decode, DecodeLimits};
use sluice::scan::pipeline::{Pipeline, Settings};
use sluice::scan::Content;

/// About 256 KB of newsletter-like HTML with links, scripts and styles.
fn html_page() -> String {
    let section = include_str!("../data/samples/newsletter.html");
    let spam = include_str!("../data/samples/spam-lottery.html");
    let mut page = String::from("<!doctype html><html><body>");
    while page.len() < 256 << 10 {
        page.push_str(section);
        page.push_str(spam);
    }
    page.push_str("</body></html>");
    page
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn content(bytes: Vec<u8>, declared: &str, coding: &str) -> Content {
    Content {
        bytes: Bytes::from(bytes),
        declared_type: declared.into(),
        content_encoding: coding.into(),
        url: Some("http://bench.example/page".into()),
        ..Content::default()
    }
}

fn benches(c: &mut Criterion) {
    let limits = DecodeLimits::default();
    let page = html_page();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(page.len() as u64));
    let html = content(page.clone().into_bytes(), "text/html", "");
    g.bench_function("html_256k", |b| {
        b.iter(|| decode(&html, &limits, None).unwrap())
    });
    let gz = content(gzip(page.as_bytes()), "text/html", "gzip");
    g.bench_function("gzip_html_256k", |b| {
        b.iter(|| decode(&gz, &limits, None).unwrap())
    });
    let text = content(page.clone().into_bytes(), "text/plain", "");
    g.bench_function("plain_text_256k", |b| {
        b.iter(|| decode(&text, &limits, None).unwrap())
    });
    let pipeline = Pipeline::new(Vec::new(), Settings::default());
    g.bench_function("scan_sync_no_classifiers_256k", |b| {
        b.iter(|| pipeline.scan_sync(&html))
    });
    g.finish();

    let member = gzip(&vec![0u8; 16 << 20]);
    let bomb = content(
        member.repeat(10_000_000 / member.len() + 1),
        "text/html",
        "gzip",
    );
    let mut g = c.benchmark_group("bomb");
    g.sample_size(10);
    g.bench_function("gzip_10MB_to_10GB_refused", |b| {
        b.iter(|| decode(&bomb, &limits, None).unwrap_err())
    });
    g.finish();
}

criterion_group!(decode_benches, benches);
criterion_main!(decode_benches);

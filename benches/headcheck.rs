//! Cost of the strict request-head check on the client hot path: one typical GET head
//! (~350 bytes, 9 fields) and one POST head with a 1 KiB Content-Length body.
//!
//! `cargo bench --bench headcheck -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice::proxy::headcheck::HeadCheck;

const GET: &[u8] = b"GET http://cdn.example/img/1234.png?size=large HTTP/1.1\r\n\
Host: cdn.example\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: image/avif,image/webp,*/*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789abcdef\r\n\
Cache-Control: no-cache\r\n\
Proxy-Connection: keep-alive\r\n\r\n";

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("headcheck");
    g.throughput(Throughput::Bytes(GET.len() as u64));
    let mut buf = GET.to_vec();
    let mut check = HeadCheck::default();
    g.bench_function("get_head", |b| {
        b.iter(|| {
            check.scan(black_box(&mut buf));
            assert!(!check.is_off());
        })
    });
    let mut post = b"POST http://api.example/v1/items HTTP/1.1\r\nHost: api.example\r\nContent-Type: application/json\r\nContent-Length: 1024\r\n\r\n".to_vec();
    post.extend(std::iter::repeat_n(b'x', 1024));
    let mut check = HeadCheck::default();
    g.throughput(Throughput::Bytes(post.len() as u64));
    g.bench_function("post_head_and_1k_body", |b| {
        b.iter(|| {
            check.scan(black_box(&mut post));
            assert!(!check.is_off());
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! PDQ hashing throughput, JPEG decode included: images/s for a 512×512 and a 1920×1080 JPEG
//! generated here, plus the 1600×1004 reference photo from the test vectors.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::scan::pdq::hash_image;

/// A photo-like test image: smooth gradients, a few edges and some noise, as JPEG quality 90.
fn synthetic_jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let noise = (seed % 24) as u32;
        let edge = if (x / 97 + y / 61) % 3 == 0 { 60 } else { 0 };
        let r = (x * 255 / w + noise + edge).min(255) as u8;
        let g = (y * 255 / h + noise).min(255) as u8;
        let b = ((x + y) * 255 / (w + h) + edge / 2).min(255) as u8;
        image::Rgb([r, g, b])
    });
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    img.write_with_encoder(enc)
        .expect("encoding into memory does not fail");
    out
}

fn bench_hash(c: &mut Criterion) {
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pdq/images/dih/bridge-1-original.jpg"
    ))
    .expect("test vector present");
    let inputs = [
        ("jpeg_512x512", synthetic_jpeg(512, 512)),
        ("jpeg_1920x1080", synthetic_jpeg(1920, 1080)),
        ("jpeg_photo_1600x1004", photo),
    ];
    let mut group = c.benchmark_group("pdq_hash");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in &inputs {
        group.bench_function(*name, |b| {
            b.iter(|| hash_image(black_box(bytes), 64_000_000).expect("bench image hashes"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_hash);
criterion_main!(benches);

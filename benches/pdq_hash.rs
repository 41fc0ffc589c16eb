//! PDQ hashing throughput, JPEG decode included: images/s for 512×512 and 1920×1080 JPEGs
//! made here (quality 90, 4:4:4 by `image` and 4:2:0 as most of the web) from the 1600×1004
//! bridge photo of the test vectors, the photo as it is, and a worst case: a 1920×1080 image of pixel noise (a large file, slow to entropy-decode).
//!
//! Each input is measured twice: `pdq_hash/*` in wall-clock time (criterion's default) and
//! `pdq_hash_cpu/*` in CPU time of the benchmarking thread (`/proc/thread-self/schedstat`), which
//! stays meaningful on a machine whose cores are shared with other work.

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::scan::pdq::hash_image;

fn jpeg_q90(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    img.write_with_encoder(enc)
        .expect("encoding into memory does not fail");
    out
}

/// The bridge photo resized to `w`×`h`, as JPEG quality 90.
fn photo_jpeg(photo: &[u8], w: u32, h: u32) -> Vec<u8> {
    let img = image::load_from_memory(photo).expect("test vector decodes");
    jpeg_q90(
        &img.resize_exact(w, h, image::imageops::FilterType::Triangle)
            .to_rgb8(),
    )
}

/// The bridge photo resized to `w`×`h`, as JPEG quality 90 with 4:2:0 chroma: what cjpeg,
/// Pillow, cameras and most of the web write (the `image` encoder above writes 4:4:4).
fn photo_jpeg_420(photo: &[u8], w: u32, h: u32) -> Vec<u8> {
    let img = image::load_from_memory(photo)
        .expect("test vector decodes")
        .resize_exact(w, h, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    c.set_size(w as usize, h as usize);
    c.set_quality(90.0);
    c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
    let mut started = c.start_compress(Vec::new()).expect("encoder starts");
    started
        .write_scanlines(img.as_raw())
        .expect("encoding into memory does not fail");
    started
        .finish()
        .expect("encoding into memory does not fail")
}

/// Gradients, blocky edges and strong per-pixel noise, as JPEG quality 90.
fn noisy_jpeg(w: u32, h: u32) -> Vec<u8> {
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

/// CPU time (ns) this thread has run, from the scheduler's accounting.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A criterion measurement of the benchmarking thread's CPU time.
struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical >= 1e6 {
            (1e6, "ms cpu")
        } else {
            (1e3, "us cpu")
        };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match t {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
        };
        values.iter_mut().for_each(|v| *v = n * 1e9 / *v);
        "elem/s cpu"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench_hash<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pdq/images/dih/bridge-1-original.jpg"
    ))
    .expect("test vector present");
    let inputs = [
        ("jpeg_512x512", photo_jpeg(&photo, 512, 512)),
        ("jpeg_1920x1080", photo_jpeg(&photo, 1920, 1080)),
        ("jpeg_512x512_420", photo_jpeg_420(&photo, 512, 512)),
        ("jpeg_1920x1080_420", photo_jpeg_420(&photo, 1920, 1080)),
        ("jpeg_1600x1004_original", photo.clone()),
        ("jpeg_1920x1080_noise", noisy_jpeg(1920, 1080)),
    ];
    for (name, bytes) in &inputs {
        eprintln!("{group_name}: {name}: {} bytes", bytes.len());
    }
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in &inputs {
        group.bench_function(*name, |b| {
            b.iter(|| hash_image(black_box(bytes), 64_000_000).expect("bench image hashes"))
        });
    }
    group.finish();
}

fn wall(c: &mut Criterion) {
    bench_hash(c, "pdq_hash");
}

fn cpu(c: &mut Criterion<CpuTime>) {
    bench_hash(c, "pdq_hash_cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(CpuTime);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);

//! Writes distinct 512×512 JPEGs for `bench/sluice_only.sh`'s image-miss workload.
//!
//! `cargo run --release --example bench_images -- DIR N` writes `DIR/1.jpg` … `DIR/N.jpg`:
//! smooth colour fields with per-image frequencies and phases, so every file has its own bytes
//! and its own PDQ hash, and each is a realistic photo-like size (tens of KiB), not noise.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(n)) = (args.next(), args.next().and_then(|n| n.parse::<u32>().ok()))
    else {
        eprintln!("usage: bench_images DIR N");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("{}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for i in 1..=n {
        let f = i as f32;
        let (fx, fy, ph) = (1.0 + (f * 0.37) % 7.0, 1.0 + (f * 0.61) % 5.0, f * 0.13);
        let img = image::RgbImage::from_fn(512, 512, |x, y| {
            let (u, v) = (x as f32 / 512.0, y as f32 / 512.0);
            let a = (u * fx * std::f32::consts::TAU + ph).sin();
            let b = (v * fy * std::f32::consts::TAU - ph).cos();
            let c = ((u + v) * (fx + fy) + ph * 2.0).sin();
            let px = |t: f32| ((t * 0.5 + 0.5) * 255.0) as u8;
            image::Rgb([px(a), px(b), px(a * b + c * 0.5)])
        });
        let path = dir.join(format!("{i}.jpg"));
        if let Err(e) = img.save(&path) {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

//! PDQ against the public reference vectors (exact) and against transforms (near), through
//! the real `sluice hash` binary and the library.
//!
//! The vectors in tests/data/pdq/ are ThreatExchange's (BSD licence, LICENSE-ThreatExchange.txt
//! beside them); hashes and qualities come from the official C++ `pdq-photo-hasher`.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use image::{DynamicImage, ImageFormat};
use serde_json::Value;
use sluice::scan::pdq::{hash_image, hash_image_dihedral, PdqHash};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pdq")
}

fn expected() -> Vec<Value> {
    let text = std::fs::read_to_string(data_dir().join("expected.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn run_hash(args: &[PathBuf]) -> (Vec<Value>, i32) {
    let (values, code, _) = run_hash_stderr(args);
    (values, code)
}

fn run_hash_stderr(args: &[PathBuf]) -> (Vec<Value>, i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("hash")
        .args(args)
        .output()
        .unwrap();
    let lines = String::from_utf8(out.stdout).unwrap();
    let values = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (values, out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn sluice_hash_reproduces_every_reference_vector() {
    let expected = expected();
    assert_eq!(expected.len(), 20);
    let files: Vec<PathBuf> = expected
        .iter()
        .map(|e| data_dir().join(e["file"].as_str().unwrap()))
        .collect();
    let (lines, code) = run_hash(&files);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), expected.len());
    for ((line, exp), file) in lines.iter().zip(&expected).zip(&files) {
        let name = exp["file"].as_str().unwrap();
        assert_eq!(line["path"].as_str(), Some(file.to_str().unwrap()));
        assert_eq!(line["sha256"], exp["sha256"], "{name}");
        assert_eq!(line["pdq"], exp["pdq"], "{name}");
        assert_eq!(line["quality"], exp["quality"], "{name}");
        let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{name}: {keys:?}");
    }
}

#[test]
fn dihedral_hashes_match_the_reference() {
    let text = std::fs::read_to_string(data_dir().join("dihedral.jsonl")).unwrap();
    let names = [
        "orig",
        "rot90",
        "rot180",
        "rot270",
        "flipx",
        "flipy",
        "flipplus1",
        "flipminus1",
    ];
    let mut count = 0;
    for line in text.lines() {
        let exp: Value = serde_json::from_str(line).unwrap();
        let file = exp["file"].as_str().unwrap();
        let bytes = std::fs::read(data_dir().join(file)).unwrap();
        let hashes = hash_image_dihedral(&bytes, u64::MAX).unwrap();
        for (h, name) in hashes.iter().zip(names) {
            assert_eq!(
                Some(h.to_hex().as_str()),
                exp[name].as_str(),
                "{file} {name}"
            );
            assert_eq!(Value::from(h.quality), exp["quality"], "{file} {name}");
        }
        count += 1;
    }
    assert_eq!(count, 20);
}

#[test]
fn sluice_hash_reports_bad_files_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not an image").unwrap();
    let good = data_dir().join("images/misc-images/wee.jpg");
    let missing = dir.path().join("missing.png");
    let (lines, code, stderr) = run_hash_stderr(&[good, text.clone(), missing.clone()]);
    assert_eq!(code, 1);
    // Also on stderr, for a user whose stdout goes to a file (as `sluice scan` does).
    for bad in [&text, &missing] {
        assert!(
            stderr.contains(&bad.display().to_string()),
            "{bad:?} named on stderr: {stderr:?}"
        );
    }
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["quality"], 100);
    assert!(lines[1]["sha256"].is_string());
    assert!(lines[1]["pdq"].is_null());
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .starts_with("undecodable"));
    assert!(lines[2]["sha256"].is_null());
    assert!(lines[2]["error"]
        .as_str()
        .unwrap()
        .starts_with("cannot read file"));
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn jpeg_q70(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 70);
    img.to_rgb8().write_with_encoder(enc).unwrap();
    out
}

#[test]
fn transformed_copies_stay_within_distance_31() {
    // Photos of ordinary detail. Small, busy images are more fragile (a property of PDQ, whose
    // blur window follows the image size): upscaling the 256×256 q0122 by 1.5 moves 82 bits.
    let photos = [
        "images/dih/bridge-1-original.jpg",
        "images/dih/bridge-2-rotate-90.jpg",
        "images/labelme-subset/q0291.jpg",
        "images/labelme-subset/q0746.jpg",
        "images/labelme-subset/q2821.jpg",
    ];
    for rel in photos {
        let bytes = std::fs::read(data_dir().join(rel)).unwrap();
        let original = hash_image(&bytes, u64::MAX).unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        let (w, h) = (img.width(), img.height());
        let (cx, cy) = (w / 100, h / 100); // 1% off every side
        let variants = [
            (
                "half size",
                encode(
                    &img.resize_exact(w / 2, h / 2, image::imageops::FilterType::Triangle),
                    ImageFormat::Png,
                ),
            ),
            (
                "1.5x size",
                encode(
                    &img.resize_exact(
                        w * 3 / 2,
                        h * 3 / 2,
                        image::imageops::FilterType::CatmullRom,
                    ),
                    ImageFormat::Png,
                ),
            ),
            ("jpeg q70", jpeg_q70(&img)),
            (
                "crop",
                encode(
                    &img.crop_imm(cx, cy, w - 2 * cx, h - 2 * cy),
                    ImageFormat::Png,
                ),
            ),
        ];
        for (what, data) in variants {
            let h: PdqHash = hash_image(&data, u64::MAX).unwrap();
            let d = h.distance(&original);
            assert!(d <= 31, "{rel} {what}: distance {d}");
            assert!(h.quality >= 50, "{rel} {what}: quality {}", h.quality);
        }
    }
}

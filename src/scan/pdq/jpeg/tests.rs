//! Differential tests: the fast path against libjpeg on the same bytes, pixel for pixel.
//!
//! Besides real files, a small baseline *encoder* here writes JPEGs straight from random
//! quantised coefficients: every sampling layout the fast path takes, odd sizes, restart
//! intervals, and coefficients large enough to hit the IDCT's range-limit wrap-around.

use super::*;
use crate::scan::pdq::decode::decode_jpeg_libjpeg;

const MAX: u64 = 64_000_000;

/// Fast path and libjpeg give the same luma plane; the fast path must accept the file.
fn assert_same(bytes: &[u8], what: &str) {
    let fast =
        decode(bytes, MAX, Vec::new()).unwrap_or_else(|_| panic!("{what}: fast path declined"));
    let slow = decode_jpeg_libjpeg(bytes, MAX, Vec::new()).expect("libjpeg decodes");
    assert_eq!(
        (fast.width, fast.height),
        (slow.width, slow.height),
        "{what}"
    );
    let first_diff = fast
        .data
        .iter()
        .zip(&slow.data)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(first_diff, None, "{what}: first differing sample");
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> i32 {
        (self.next() % n) as i32
    }
}

/// MSB-first bit writer with 0xFF stuffing.
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}
impl BitWriter {
    fn put(&mut self, value: u32, len: u32) {
        for i in (0..len).rev() {
            self.acc = self.acc << 1 | (value >> i & 1);
            self.n += 1;
            if self.n == 8 {
                let byte = self.acc as u8;
                self.out.push(byte);
                if byte == 0xFF {
                    self.out.push(0);
                }
                self.acc = 0;
                self.n = 0;
            }
        }
    }
    fn pad(&mut self) {
        while self.n != 0 {
            self.put(1, 1);
        }
    }
}

/// Magnitude category and its extra bits (`HUFF_EXTEND` inverted).
fn category(v: i32) -> (u32, u32) {
    let s = 32 - v.unsigned_abs().leading_zeros();
    let bits = if v < 0 { v + (1 << s) - 1 } else { v };
    (s, bits as u32)
}

/// A baseline JPEG of random coefficients. `sampling` per component; DC codes are 4 bits
/// (symbol = code), AC codes 8 bits (symbol index = code), one table pair for all.
fn synthetic(rng: &mut Rng, w: usize, h: usize, sampling: &[(u8, u8)], restart: u16) -> Vec<u8> {
    let ac_symbols: Vec<u8> = std::iter::once(0x00)
        .chain(std::iter::once(0xF0))
        .chain((0..16u8).flat_map(|r| (1..=10u8).map(move |s| r << 4 | s)))
        .collect();
    let mut out = vec![0xFF, 0xD8];
    let mut segment = |marker: u8, body: &[u8]| {
        out.extend([0xFF, marker]);
        out.extend(((body.len() + 2) as u16).to_be_bytes());
        out.extend(body);
    };
    let quant: Vec<u8> = (0..64).map(|_| 1 + rng.below(40) as u8).collect();
    segment(0xDB, &[&[0u8][..], &quant].concat());
    let mut sof = vec![8];
    sof.extend((h as u16).to_be_bytes());
    sof.extend((w as u16).to_be_bytes());
    sof.push(sampling.len() as u8);
    for (i, (sh, sv)) in sampling.iter().enumerate() {
        sof.extend([i as u8 + 1, sh << 4 | sv, 0]);
    }
    segment(0xC0, &sof);
    let mut dht = vec![0x00];
    dht.extend([0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    dht.extend(0..12u8);
    dht.push(0x10);
    dht.extend([
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        ac_symbols.len() as u8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    dht.extend(&ac_symbols);
    segment(0xC4, &dht);
    if restart > 0 {
        segment(0xDD, &restart.to_be_bytes());
    }
    let mut sos = vec![sampling.len() as u8];
    for i in 0..sampling.len() {
        sos.extend([i as u8 + 1, 0x00]);
    }
    sos.extend([0, 63, 0]);
    segment(0xDA, &sos);

    let (mh, mv) = sampling
        .iter()
        .fold((1, 1), |(a, b), &(h, v)| (a.max(h), b.max(v)));
    let (mcus_x, mcus_y) = if sampling.len() == 1 {
        (w.div_ceil(8), h.div_ceil(8))
    } else {
        (
            w.div_ceil(8 * usize::from(mh)),
            h.div_ceil(8 * usize::from(mv)),
        )
    };
    let blocks: Vec<usize> = if sampling.len() == 1 {
        vec![1]
    } else {
        sampling.iter().map(|&(h, v)| usize::from(h * v)).collect()
    };
    let ac_code = |sym: u8| ac_symbols.iter().position(|&s| s == sym).unwrap() as u32;
    let mut bw = BitWriter { out, acc: 0, n: 0 };
    let mut pred = vec![0i32; sampling.len()];
    for mcu in 0..mcus_x * mcus_y {
        if restart > 0 && mcu > 0 && mcu % usize::from(restart) == 0 {
            bw.pad();
            bw.out
                .extend([0xFF, 0xD0 + ((mcu / usize::from(restart) - 1) % 8) as u8]);
            pred.fill(0);
        }
        for (ci, &n) in blocks.iter().enumerate() {
            for _ in 0..n {
                // DC walks within the 8-bit range; AC mostly small, sometimes large.
                let dc = (pred[ci] + rng.below(61) - 30).clamp(-60, 60);
                let (s, bits) = category(dc - pred[ci]);
                pred[ci] = dc;
                bw.put(s, 4);
                bw.put(bits, s);
                let nonzero = rng.below(20) as usize;
                let mut k = 1;
                for _ in 0..nonzero {
                    let run = rng.below(6) as usize;
                    if k + run > 63 {
                        break;
                    }
                    let v = match rng.below(10) {
                        0 => rng.below(1023) - 511,
                        _ => rng.below(15) - 7,
                    };
                    if v == 0 {
                        continue;
                    }
                    let (s, bits) = category(v);
                    bw.put(ac_code((run as u8) << 4 | s as u8), 8);
                    bw.put(bits, s);
                    k += run + 1;
                }
                if k <= 63 {
                    bw.put(ac_code(0x00), 8);
                }
            }
        }
    }
    bw.pad();
    let mut out = bw.out;
    out.extend([0xFF, 0xD9]);
    out
}

#[test]
fn synthetic_files_of_every_layout_match_libjpeg() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let layouts: [&[(u8, u8)]; 7] = [
        &[(1, 1)],
        &[(2, 2)],
        &[(1, 1), (1, 1), (1, 1)],
        &[(2, 1), (1, 1), (1, 1)],
        &[(1, 2), (1, 1), (1, 1)],
        &[(2, 2), (1, 1), (1, 1)],
        &[(2, 2), (1, 2), (2, 1)],
    ];
    let sizes = [
        (1, 1),
        (3, 5),
        (17, 9),
        (33, 31),
        (64, 48),
        (97, 130),
        (700, 37),
    ];
    for sampling in layouts {
        for (w, h) in sizes {
            for restart in [0, 1, 7] {
                let bytes = synthetic(&mut rng, w, h, sampling, restart);
                assert_same(&bytes, &format!("{sampling:?} {w}x{h} restart {restart}"));
            }
        }
    }
}

fn photo_jpeg(w: u32, h: u32, quality: u8) -> Vec<u8> {
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pdq/images/labelme-subset/q0122.jpg"
    ))
    .unwrap();
    let img = image::load_from_memory(&photo).unwrap();
    let img = img.resize_exact(w, h, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    img.to_rgb8().write_with_encoder(enc).unwrap();
    out
}

#[test]
fn real_files_match_libjpeg_including_resampled_sizes() {
    for name in [
        "labelme-subset/q0122.jpg",
        "labelme-subset/q0003.jpg",
        "bridge-mods/square-512x512.jpg",
        "bridge-mods/shrink-a-little.jpg",
        "dih/bridge-1-original.jpg",
    ] {
        let path = format!(
            "{}/tests/data/pdq/images/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        assert_same(&std::fs::read(path).unwrap(), name);
    }
    for (w, h, q) in [(1000, 700, 90), (513, 2000, 40), (77, 600, 100)] {
        assert_same(&photo_jpeg(w, h, q), &format!("photo {w}x{h} q{q}"));
    }
}

#[test]
fn unsupported_and_damaged_files_are_declined() {
    let progressive = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pdq/images/dih/bridge-5-flipx.jpg"
    ))
    .unwrap();
    assert!(decode(&progressive, MAX, Vec::new()).is_err());
    let mut rng = Rng(7);
    let good = synthetic(&mut rng, 40, 40, &[(2, 2), (1, 1), (1, 1)], 2);
    // Truncated entropy data: libjpeg's own recovery applies, so the fast path declines.
    assert!(decode(&good[..good.len() / 2], MAX, Vec::new()).is_err());
    // A misnumbered restart marker.
    let rst = good.windows(2).position(|w| w == [0xFF, 0xD0]).unwrap();
    let mut bad = good.clone();
    bad[rst + 1] = 0xD3;
    assert!(decode(&bad, MAX, Vec::new()).is_err());
    // Over the pixel limit: declined, so libjpeg reports the limit.
    assert!(decode(&good, 40 * 40 - 1, Vec::new()).is_err());
    assert!(decode(&good, 40 * 40, Vec::new()).is_ok());
}

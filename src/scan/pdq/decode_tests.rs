//! Tests of `decode`: limits, damaged input, colour handling, resampling.

use std::io::Write;
use std::time::{Duration, Instant};

use super::*;

const MAX: u64 = 64_000_000;

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A PNG whose header claims 100000×100000 RGB, followed by a little real IDAT data.
fn png_bomb() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![0u8; 1 << 20]).unwrap();
    png_chunk(&mut out, b"IDAT", &z.finish().unwrap());
    png_chunk(&mut out, b"IEND", &[]);
    out
}

fn small_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, 90])
    });
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    img.write_with_encoder(enc).unwrap();
    out
}

fn sof_offset(jpeg: &[u8]) -> usize {
    jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap()
}

#[test]
fn png_bomb_fails_fast_as_limit() {
    let bomb = png_bomb();
    let start = Instant::now();
    let err = luma_from_bytes(&bomb, MAX, Vec::new()).unwrap_err();
    assert!(matches!(err, ScanError::Limit(_)), "{err}");
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn jpeg_over_the_pixel_limit_fails_before_decoding() {
    let mut jpeg = small_jpeg();
    let sof = sof_offset(&jpeg);
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]); // 60000×60000
    let err = luma_from_bytes(&jpeg, MAX, Vec::new()).unwrap_err();
    assert!(matches!(err, ScanError::Limit(_)), "{err}");
    // The real image is within a small limit and over a tiny one.
    assert!(luma_from_bytes(&small_jpeg(), 64 * 48, Vec::new()).is_ok());
    assert!(matches!(
        luma_from_bytes(&small_jpeg(), 64 * 48 - 1, Vec::new()),
        Err(ScanError::Limit(_))
    ));
}

/// A flat grey progressive JPEG whose last scan is repeated `copies` times: each copy is a
/// few dozen bytes that make libjpeg walk every block of the image again.
fn jpeg_with_repeated_scan(copies: usize) -> Vec<u8> {
    let mut c = mozjpeg::Compress::new(ColorSpace::JCS_GRAYSCALE);
    c.set_size(1000, 1000);
    c.set_progressive_mode();
    let mut started = c.start_compress(Vec::new()).unwrap();
    started.write_scanlines(&vec![128u8; 1000 * 1000]).unwrap();
    let jpeg = started.finish().unwrap();
    let last = jpeg.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
    let (body, scan) = (&jpeg[..jpeg.len() - 2], &jpeg[last..jpeg.len() - 2]);
    let mut out = body.to_vec();
    for _ in 0..copies {
        out.extend_from_slice(scan);
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

#[test]
fn a_jpeg_with_thousands_of_scans_is_a_limit() {
    let bomb = jpeg_with_repeated_scan(5000);
    let start = Instant::now();
    let err = luma_from_bytes(&bomb, MAX, Vec::new()).unwrap_err();
    assert!(matches!(err, ScanError::Limit(_)), "{err}");
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    // A few repeated scans are within the limit and still decode.
    luma_from_bytes(&jpeg_with_repeated_scan(3), MAX, Vec::new()).unwrap();
}

#[test]
fn corrupt_jpeg_is_undecodable_not_a_panic() {
    let mut bad_precision = small_jpeg();
    let sof = sof_offset(&bad_precision);
    bad_precision[sof + 4] = 3;
    for bytes in [
        b"\xFF\xD8\xFF\xE0garbage".to_vec(),
        bad_precision,
        small_jpeg()[..40].to_vec(),
    ] {
        let err = luma_from_bytes(&bytes, MAX, Vec::new()).unwrap_err();
        assert!(matches!(err, ScanError::Undecodable(_)), "{err}");
    }
}

#[test]
fn damaged_images_never_panic() {
    let jpeg = small_jpeg();
    let mut seed = 0x1234_5678u64;
    for _ in 0..60 {
        let mut bytes = jpeg.clone();
        for _ in 0..4 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pos = (seed >> 33) as usize % bytes.len();
            bytes[pos] ^= (seed >> 17) as u8 | 1;
        }
        // Either outcome is fine; returning at all is the point.
        let _ = luma_from_bytes(&bytes, MAX, Vec::new());
    }
    let truncated = &jpeg[..jpeg.len() / 2];
    let _ = luma_from_bytes(truncated, MAX, Vec::new());
}

#[test]
fn other_formats_and_non_images() {
    assert!(matches!(
        luma_from_bytes(b"hello world", MAX, Vec::new()),
        Err(ScanError::Undecodable(_))
    ));
    let mut png = Vec::new();
    let img = image::GrayAlphaImage::from_fn(20, 10, |x, _| image::LumaA([x as u8 * 10, 0]));
    img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    let luma = luma_from_bytes(&png, MAX, Vec::new()).unwrap();
    assert_eq!((luma.width, luma.height), (20, 10));
    // Grey values are used as they are; alpha is dropped, not composited.
    assert_eq!(luma.data[3], 30.0);
    png.truncate(png.len() - 20);
    assert!(matches!(
        luma_from_bytes(&png, MAX, Vec::new()),
        Err(ScanError::Undecodable(_))
    ));
}

#[test]
fn sampler_resizes_large_images_to_512_square() {
    let s = Sampler::new(1600, 100, Vec::new());
    assert_eq!((s.cols.len(), s.rows.len()), (512, 512));
    assert_eq!(s.cols[1], 3); // floor(1 * 1600 / 512)
    assert_eq!(s.rows[511], 99);
    let s = Sampler::new(300, 200, Vec::new());
    assert_eq!((s.cols.len(), s.rows.len()), (300, 200));
}

fn decode_all(bytes: &[u8], space: ColorSpace) -> Vec<u8> {
    let d = Decompress::new_mem(bytes).unwrap();
    d.to_colorspace(space)
        .unwrap()
        .read_scanlines::<u8>()
        .unwrap()
}

#[test]
fn ycbcr_conversion_matches_libjpeg_rgb_output_exactly() {
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pdq/images/labelme-subset/q0122.jpg"
    ))
    .unwrap();
    // Saturated colours exercise the range limiting.
    let vivid = image::RgbImage::from_fn(96, 80, |x, y| {
        image::Rgb([
            (x * 37 % 256) as u8,
            (y * 53 % 256) as u8,
            ((x ^ y) * 29 % 256) as u8,
        ])
    });
    let mut vivid_jpeg = Vec::new();
    vivid
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut vivid_jpeg,
            95,
        ))
        .unwrap();
    for bytes in [photo, vivid_jpeg] {
        let rgb = decode_all(&bytes, ColorSpace::JCS_RGB);
        let ycc = decode_all(&bytes, ColorSpace::JCS_YCbCr);
        assert_eq!(rgb.len(), ycc.len());
        for (want, p) in rgb.chunks_exact(3).zip(ycc.chunks_exact(3)) {
            let got = YCC_TABLES.rgb(p[0], p[1], p[2]);
            assert_eq!((want[0], want[1], want[2]), got);
        }
    }
}

/// A `w`×`h` JPEG of colour gradients, hard colour edges and noise (rounding differences in
/// upsampling show up on it), chroma sampled at `chroma` pixels per sample, or greyscale.
fn jpeg_sampled(w: usize, h: usize, chroma: Option<(u8, u8)>, progressive: bool) -> Vec<u8> {
    let space = if chroma.is_some() {
        ColorSpace::JCS_RGB
    } else {
        ColorSpace::JCS_GRAYSCALE
    };
    let mut c = mozjpeg::Compress::new(space);
    c.set_size(w, h);
    c.set_quality(88.0);
    if let Some(px) = chroma {
        c.set_chroma_sampling_pixel_sizes(px, px);
    }
    if progressive {
        c.set_progressive_mode();
    }
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (w * 31 + h) as u64;
    let channels = space.num_components();
    let mut pixels = Vec::with_capacity(w * h * channels);
    for y in 0..h {
        for x in 0..w {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed % 40) as usize;
            let edge = if (x / 5 + y / 3) % 2 == 0 { 120 } else { 0 };
            let rgb = [
                ((x * 255 / w.max(1) + noise + edge) % 256) as u8,
                ((y * 255 / h.max(1) + edge / 2) % 256) as u8,
                ((x * 7 + y * 13 + noise * 3) % 256) as u8,
            ];
            pixels.extend_from_slice(&rgb[..channels]);
        }
    }
    let mut started = c.start_compress(Vec::new()).unwrap();
    started.write_scanlines(&pixels).unwrap();
    started.finish().unwrap()
}

fn open(bytes: &[u8]) -> Decompress<&[u8]> {
    let mut d = Decompress::new_mem(bytes).unwrap();
    d.dct_method(DctMethod::IntegerSlow);
    d.do_fancy_upsampling(true);
    d
}

/// The raw path (planes, upsampling only at sampled pixels) gives bit for bit the luma of
/// libjpeg-turbo's own upsampling, for every sampling layout and at every edge (greyscale
/// has no raw layout: it always streams).
#[test]
fn raw_planes_give_exactly_libjpegs_upsampled_pixels() {
    use Upsample::*;
    let layouts = [
        (Some((1, 1)), Full),
        (Some((2, 1)), H2V1),
        (Some((1, 2)), H1V2),
        (Some((2, 2)), H2V2),
        (Some((4, 1)), Box { h: 4, v: 1 }),
        (Some((4, 2)), Box { h: 4, v: 2 }),
        (None, Full),
    ];
    let sizes = [
        (1, 1),
        (2, 3),
        (4, 2),
        (5, 7),
        (6, 9),
        (17, 9),
        (64, 48),
        (333, 129),
        (513, 300),
        (700, 520),
        (1001, 3),
    ];
    let mut seen = std::collections::HashSet::new();
    for (chroma, up) in layouts {
        for (w, h) in sizes {
            for progressive in [false, true] {
                let bytes = jpeg_sampled(w, h, chroma, progressive);
                let Some(layout) = raw_layout(&open(&bytes)) else {
                    assert_eq!(chroma, None, "{w}x{h}: a YCbCr JPEG has a raw layout");
                    continue;
                };
                // Planes 1–2 samples wide fall back to replication, as in libjpeg.
                let narrow = matches!(up, H2V1 | H2V2) && layout.chroma.0 <= 2;
                let want = if narrow {
                    Box {
                        h: 2,
                        v: if up == H2V2 { 2 } else { 1 },
                    }
                } else {
                    up
                };
                assert_eq!(layout.up, want, "{w}x{h} {chroma:?}");
                seen.insert(format!("{:?}", layout.up));
                let rows = decode_jpeg_rows(open(&bytes), Vec::new()).unwrap();
                let raw = decode_jpeg_raw(open(&bytes), layout, Vec::new()).unwrap();
                assert_eq!((raw.width, raw.height), (rows.width, rows.height));
                let differ = rows
                    .data
                    .iter()
                    .zip(&raw.data)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(
                    differ, 0,
                    "{w}x{h} chroma {chroma:?} progressive {progressive}: {differ} pixels differ"
                );
            }
        }
    }
    assert_eq!(
        seen.len(),
        8,
        "every upsampling kind was exercised: {seen:?}"
    );
}

#[test]
fn a_truncated_jpeg_gives_the_same_pixels_on_both_paths() {
    let bytes = jpeg_sampled(640, 480, Some((2, 2)), false);
    let cut = &bytes[..bytes.len() * 2 / 3];
    let layout = raw_layout(&open(cut)).unwrap();
    let rows = decode_jpeg_rows(open(cut), Vec::new()).unwrap();
    let raw = decode_jpeg_raw(open(cut), layout, Vec::new()).unwrap();
    assert_eq!(rows.data.len(), 512 * 512);
    assert!(rows
        .data
        .iter()
        .zip(&raw.data)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
}

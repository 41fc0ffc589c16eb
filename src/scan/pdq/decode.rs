//! Image bytes to the luma plane the reference hashes, with bounded memory.
//!
//! JPEG goes through libjpeg-turbo's decoder (the `mozjpeg` crate: islow IDCT, fancy
//! upsampling — what the reference's ImageMagick does), PNG/GIF/WebP/BMP through `image`.
//! The header is read first and an image over `max_pixels` is refused before any pixel buffer
//! is allocated. Images larger than 512 on a side are resampled to 512×512 by nearest
//! neighbour (`pdq/cpp/io/pdqio.cpp`, CImg's `resize`) while decoding. A JPEG streams row by
//! row, except a resampled one with subsampled chroma (up to 16 MP): its planes are decoded
//! raw and only the pixels the resampling reads are upsampled and converted, with libjpeg's
//! exact arithmetic. No EXIF orientation is applied: the reference hashes stored pixels.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::LazyLock;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};
use mozjpeg::{ColorSpace, ColorSpaceExt, CompInfoExt, DctMethod, Decompress, Format};

use super::hash::Luma;
use crate::scan::ScanError;

/// Images wider or taller than this are resampled to exactly this square (`DOWNSAMPLE_DIMS`).
const DOWNSAMPLE_DIMS: usize = 512;

/// The image formats this module decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Jpeg,
    Other(ImageFormat),
}

/// Recognises a supported image format by its magic bytes.
pub(crate) fn sniff(bytes: &[u8]) -> Option<Kind> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Kind::Jpeg);
    }
    match image::guess_format(bytes).ok()? {
        f @ (ImageFormat::Png | ImageFormat::Gif | ImageFormat::WebP | ImageFormat::Bmp) => {
            Some(Kind::Other(f))
        }
        _ => None,
    }
}

/// Decodes `bytes` into the (pre-resized) luma plane the PDQ hasher takes.
/// `data` is a buffer to fill (its capacity is reused).
pub(crate) fn luma_from_bytes(
    bytes: &[u8],
    max_pixels: u64,
    data: Vec<f32>,
) -> Result<Luma, ScanError> {
    let kind =
        sniff(bytes).ok_or_else(|| undecodable("not a JPEG, PNG, GIF, WebP or BMP image"))?;
    // libjpeg reports fatal errors by unwinding (without the panic hook); a bug in a decoder
    // must not take the worker down either.
    let run = AssertUnwindSafe(|| match kind {
        Kind::Jpeg => decode_jpeg(bytes, max_pixels, data),
        Kind::Other(format) => decode_other(bytes, format, max_pixels, data),
    });
    match catch_unwind(run) {
        Ok(result) => result,
        Err(payload) => {
            let msg = crate::panic_message(payload.as_ref()).unwrap_or("decoder failed");
            Err(undecodable(msg.trim_start_matches("libjpeg fatal error: ")))
        }
    }
}

fn undecodable(msg: impl std::fmt::Display) -> ScanError {
    ScanError::Undecodable(msg.to_string())
}

fn check_pixels(width: usize, height: usize, max_pixels: u64) -> Result<(), ScanError> {
    let pixels = (width as u64).saturating_mul(height as u64);
    if pixels > max_pixels {
        return Err(ScanError::Limit(format!(
            "image is {width}x{height} ({pixels} pixels), more than the {max_pixels} allowed"
        )));
    }
    Ok(())
}

/// How pixels of one stored row are turned into luma.
#[derive(Clone, Copy)]
enum Pixels {
    /// Grey value first in each pixel of `channels` bytes (grey, grey+alpha).
    Grey { channels: usize },
    /// R, G, B first in each pixel of `channels` bytes (RGB, RGBA).
    Rgb { channels: usize },
    /// JPEG YCbCr, converted to RGB here (only for sampled pixels) exactly as libjpeg does.
    YCbCr,
    /// Adobe (inverted) CMYK, as libjpeg returns it.
    InvertedCmyk,
}

/// Nearest-neighbour resampling plan and the luma plane being filled, one source row at a time.
struct Sampler {
    cols: Vec<usize>,
    rows: Vec<usize>,
    next_row: usize,
    luma: Luma,
}

impl Sampler {
    fn new(width: usize, height: usize, mut data: Vec<f32>) -> Sampler {
        let resize = width > DOWNSAMPLE_DIMS || height > DOWNSAMPLE_DIMS;
        let (w, h) = if resize {
            (DOWNSAMPLE_DIMS, DOWNSAMPLE_DIMS)
        } else {
            (width, height)
        };
        // CImg's nearest neighbour: output x reads input floor(x * old / new), in double.
        let map = |old: usize, new: usize| -> Vec<usize> {
            (0..new)
                .map(|x| ((x as f64 * old as f64 / new as f64) as usize).min(old - 1))
                .collect()
        };
        data.clear();
        data.reserve(w * h);
        Sampler {
            cols: map(width, w),
            rows: map(height, h),
            next_row: 0,
            luma: Luma {
                width: w,
                height: h,
                data,
            },
        }
    }

    /// Feeds source row `y` (rows must come in order); emits every output row that samples it.
    /// A row shorter than the image width yields black pixels rather than a panic.
    fn row(&mut self, y: usize, row: &[u8], px: Pixels) {
        while self.rows.get(self.next_row) == Some(&y) {
            self.next_row += 1;
            let out = &mut self.luma.data;
            let cols = &self.cols;
            match px {
                Pixels::Grey { channels } => out.extend(
                    cols.iter()
                        .map(|&x| row.get(x * channels).map_or(0.0, |g| f32::from(*g))),
                ),
                Pixels::Rgb { channels } => {
                    out.extend(cols.iter().map(
                        |&x| match row.get(x * channels..x * channels + 3) {
                            Some(p) => rgb_luma(p[0], p[1], p[2]),
                            None => 0.0,
                        },
                    ))
                }
                Pixels::YCbCr => {
                    let t = &*YCC_TABLES;
                    out.extend(cols.iter().map(|&x| match row.get(x * 3..x * 3 + 3) {
                        Some(p) => {
                            let (r, g, b) = t.rgb(p[0], p[1], p[2]);
                            rgb_luma(r, g, b)
                        }
                        None => 0.0,
                    }))
                }
                Pixels::InvertedCmyk => {
                    out.extend(cols.iter().map(|&x| match row.get(x * 4..x * 4 + 4) {
                        Some(p) => {
                            let ink = |c: u8| ((u32::from(c) * u32::from(p[3]) + 127) / 255) as u8;
                            rgb_luma(ink(p[0]), ink(p[1]), ink(p[2]))
                        }
                        None => 0.0,
                    }))
                }
            }
        }
    }

    /// Fills the whole output a row at a time: `row(xs, y, out)` appends the luma of source
    /// pixels (`xs`, `y`) (all planes are in memory).
    fn fill(
        mut self,
        mut row: impl FnMut(&[usize], usize, &mut Vec<f32>),
    ) -> Result<Luma, ScanError> {
        for &y in &self.rows {
            row(&self.cols, y, &mut self.luma.data);
        }
        self.finish()
    }

    fn finish(self) -> Result<Luma, ScanError> {
        if self.luma.data.len() != self.luma.width * self.luma.height {
            return Err(undecodable("image data ended early"));
        }
        Ok(self.luma)
    }
}

/// `fillFloatLumaFromRGB`: f32 constants, f32 products, summed left to right.
fn rgb_luma(r: u8, g: u8, b: u8) -> f32 {
    0.299f32 * f32::from(r) + 0.587f32 * f32::from(g) + 0.114f32 * f32::from(b)
}

/// libjpeg's YCbCr→RGB tables (`build_ycc_rgb_table` in jdcolor.c, 16-bit fixed point).
struct YccTables {
    cr_r: [i32; 256],
    cb_b: [i32; 256],
    cr_g: [i64; 256],
    cb_g: [i64; 256],
}

const SCALEBITS: u32 = 16;

static YCC_TABLES: LazyLock<YccTables> = LazyLock::new(|| {
    let fix = |x: f64| (x * f64::from(1u32 << SCALEBITS) + 0.5) as i64;
    let half = 1i64 << (SCALEBITS - 1);
    let mut t = YccTables {
        cr_r: [0; 256],
        cb_b: [0; 256],
        cr_g: [0; 256],
        cb_g: [0; 256],
    };
    for i in 0..256usize {
        let x = i as i64 - 128;
        t.cr_r[i] = ((fix(1.40200) * x + half) >> SCALEBITS) as i32;
        t.cb_b[i] = ((fix(1.77200) * x + half) >> SCALEBITS) as i32;
        t.cr_g[i] = -fix(0.71414) * x;
        t.cb_g[i] = -fix(0.34414) * x + half;
    }
    t
});

impl YccTables {
    /// `ycc_rgb_convert` for one pixel, range-limited to 0..=255.
    fn rgb(&self, y: u8, cb: u8, cr: u8) -> (u8, u8, u8) {
        let (y, cb, cr) = (i32::from(y), usize::from(cb), usize::from(cr));
        let clamp = |v: i32| v.clamp(0, 255) as u8;
        let g = ((self.cb_g[cb] + self.cr_g[cr]) >> SCALEBITS) as i32;
        (
            clamp(y + self.cr_r[cr]),
            clamp(y + g),
            clamp(y + self.cb_b[cb]),
        )
    }
}

/// Most scans (SOS markers) a JPEG may have. libjpeg walks every block of a component in
/// each progressive scan however few bytes the scan has, so a body of tiny repeated scans
/// made a worker loop for minutes (31 bytes a scan cost 1.3 ms on a 16 MP image). Real
/// images have a handful (a progressive one about ten); libjpeg-turbo's own guard is a scan
/// limit too (TurboJPEG's `TJPARAM_SCANLIMIT`, djpeg's `-maxscans`).
const MAX_SCANS: usize = 500;

fn decode_jpeg(bytes: &[u8], max_pixels: u64, data: Vec<f32>) -> Result<Luma, ScanError> {
    // Every SOS marker is the bytes FF DA (entropy-coded data stuffs each FF with 00), so this
    // count is never below the real one; metadata (an EXIF thumbnail) may add a few.
    let scans = memchr::memmem::find_iter(bytes, &[0xFF, 0xDA]).count();
    if scans > MAX_SCANS {
        return Err(ScanError::Limit(format!(
            "JPEG has {scans} scans, more than the {MAX_SCANS} allowed"
        )));
    }
    let mut dec = Decompress::new_mem(bytes).map_err(undecodable)?;
    let (width, height) = dec.size();
    check_pixels(width, height, max_pixels)?;
    if width == 0 || height == 0 {
        return Err(undecodable("image has no pixels"));
    }
    // libjpeg-turbo's defaults, set explicitly because bit-exactness depends on them.
    dec.dct_method(DctMethod::IntegerSlow);
    dec.do_fancy_upsampling(true);
    // The raw path pays for whole planes in memory and wins only by skipping libjpeg's
    // upsampling of pixels the resampling never reads: so only for subsampled chroma (4:2:0,
    // 4:2:2, …) on images that are resampled. Measured (`pdq_hash` bench): a 1600×1004 4:2:0
    // photo 80 → 95 img/s; 4:4:4 and ≤ 512 images were 4–13% slower, so they stream.
    let resampled = width > DOWNSAMPLE_DIMS || height > DOWNSAMPLE_DIMS;
    match raw_layout(&dec) {
        Some(layout)
            if resampled
                && layout.up != Upsample::Full
                && (width * height) as u64 <= RAW_MAX_PIXELS =>
        {
            decode_jpeg_raw(dec, layout, data)
        }
        _ => decode_jpeg_rows(dec, data),
    }
}

/// Images up to this many pixels may be decoded as whole planes (1.5–2 bytes a pixel when
/// subsampled); larger ones stream row by row through libjpeg's own upsampling.
const RAW_MAX_PIXELS: u64 = 16_000_000;

/// Decodes through libjpeg's full output path (upsampling included), one row at a time.
fn decode_jpeg_rows(dec: Decompress<&[u8]>, data: Vec<f32>) -> Result<Luma, ScanError> {
    let (width, height) = dec.size();
    let (mut started, px, channels) = if dec.color_space() == ColorSpace::JCS_YCbCr {
        // Upsampled but not colour-converted: only the sampled pixels are converted.
        let s = dec
            .to_colorspace(ColorSpace::JCS_YCbCr)
            .map_err(undecodable)?;
        (s, Pixels::YCbCr, 3)
    } else {
        let s = match dec.image().map_err(undecodable)? {
            Format::RGB(s) | Format::Gray(s) | Format::CMYK(s) => s,
        };
        match s.color_space().num_components() {
            1 => (s, Pixels::Grey { channels: 1 }, 1),
            3 => (s, Pixels::Rgb { channels: 3 }, 3),
            4 => (s, Pixels::InvertedCmyk, 4),
            n => {
                return Err(undecodable(format!(
                    "unsupported JPEG with {n} colour components"
                )))
            }
        }
    };
    let mut row = vec![0u8; width * channels];
    let mut sampler = Sampler::new(width, height, data);
    for y in 0..height {
        started
            .read_scanlines_into(&mut row[..])
            .map_err(undecodable)?;
        sampler.row(y, &row, px);
    }
    // Trailing garbage after the image is not worth failing for; the pixels are complete.
    let _ = started.finish();
    sampler.finish()
}

/// How libjpeg-turbo (`jinit_upsampler`, fancy upsampling on) brings a chroma plane to full
/// size; the raw path applies the same arithmetic, but only at the sampled pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upsample {
    /// Already full size.
    Full,
    /// `h2v1_fancy_upsample`: ¾ nearer + ¼ further column.
    H2V1,
    /// `h1v2_fancy_upsample`: ¾ nearer + ¼ further row.
    H1V2,
    /// `h2v2_fancy_upsample`: the triangle filter on both axes.
    H2V2,
    /// `int_upsample` (and the non-fancy 2× cases for planes ≤ 2 samples wide): replication.
    Box { h: usize, v: usize },
}

/// What the raw path needs to know about a YCbCr JPEG before decoding it: Y is at full size,
/// Cb and Cr are upsampled alike by `up`, each `chroma` samples wide and tall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RawLayout {
    up: Upsample,
    chroma: (usize, usize),
}

/// The raw layout of `dec`, or `None` when only libjpeg's full path handles it (grey, RGB,
/// CMYK, YCCK, luma not at full size, chroma planes sampled differently or by fractions).
fn raw_layout(dec: &Decompress<&[u8]>) -> Option<RawLayout> {
    let comps = dec.components();
    match (dec.color_space(), comps) {
        (ColorSpace::JCS_YCbCr, [y, cb, cr]) => {
            let factors = |c: &mozjpeg::CompInfo| {
                (
                    usize::try_from(c.h_samp_factor).ok().filter(|&f| f > 0),
                    usize::try_from(c.v_samp_factor).ok().filter(|&f| f > 0),
                )
            };
            let (Some(max_h), Some(max_v)) = factors(y) else {
                return None;
            };
            let (Some(h), Some(v)) = factors(cb) else {
                return None;
            };
            if factors(cr) != (Some(h), Some(v))
                || [cb, cr]
                    .iter()
                    .any(|c| factors(c).0 > Some(max_h) || factors(c).1 > Some(max_v))
                || max_h % h != 0
                || max_v % v != 0
            {
                return None;
            }
            let (width, height) = dec.size();
            // `downsampled_width`/`height` (jdinput.c `initial_setup`): rounded up.
            let chroma = ((width * h).div_ceil(max_h), (height * v).div_ceil(max_v));
            let up = match (max_h / h, max_v / v) {
                (1, 1) => Upsample::Full,
                (2, 1) if chroma.0 > 2 => Upsample::H2V1,
                (1, 2) => Upsample::H1V2,
                (2, 2) if chroma.0 > 2 => Upsample::H2V2,
                (h, v) => Upsample::Box { h, v },
            };
            Some(RawLayout { up, chroma })
        }
        _ => None,
    }
}

/// Decodes the component planes without upsampling or colour conversion (libjpeg's raw
/// mode), then upsamples and converts only the pixels the nearest-neighbour resampling reads:
/// for a 1080p photo that is one pixel in eight.
fn decode_jpeg_raw(
    dec: Decompress<&[u8]>,
    layout: RawLayout,
    data: Vec<f32>,
) -> Result<Luma, ScanError> {
    let (width, height) = dec.size();
    let strides: Vec<usize> = dec.components().iter().map(|c| c.row_stride()).collect();
    let mut started = dec.raw().map_err(undecodable)?;
    let mut planes: Vec<Vec<u8>> = vec![Vec::new(); strides.len()];
    {
        let mut dest: Vec<&mut Vec<u8>> = planes.iter_mut().collect();
        started.read_raw_data(&mut dest);
    }
    let _ = started.finish();
    let plane = |i: usize| Plane {
        data: &planes[i],
        stride: strides[i],
    };
    let sampler = Sampler::new(width, height, data);
    let (luma, cb, cr) = (plane(0), plane(1), plane(2));
    let t = &*YCC_TABLES;
    let up = Upsampler::new(layout.up, layout.chroma, &sampler.cols);
    let (mut cb_row, mut cr_row, mut sums) = (Vec::new(), Vec::new(), Vec::new());
    sampler.fill(|xs, y, out| {
        cb.upsample_row(&up, xs, y, &mut cb_row, &mut sums);
        cr.upsample_row(&up, xs, y, &mut cr_row, &mut sums);
        let luma = luma.row(y);
        out.extend(
            xs.iter()
                .zip(cb_row.iter().zip(&cr_row))
                .map(|(&x, (&b, &r))| {
                    let (r, g, b) = t.rgb(sample(luma, x), b, r);
                    rgb_luma(r, g, b)
                }),
        );
    })
}

/// One decoded component plane, `stride` samples a row (padded to whole blocks).
struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
}

impl Plane<'_> {
    /// The full-size values at pixels (`xs`, `y`) of this chroma plane into `out`, computed
    /// exactly as libjpeg-turbo's upsampler computes them (`xs` are the columns `up`'s taps
    /// were made for). Past an edge libjpeg reuses the edge sample (jdmainct.c replicates the
    /// first and last rows), which the clamped `far` taps do.
    fn upsample_row(
        &self,
        up: &Upsampler,
        xs: &[usize],
        y: usize,
        out: &mut Vec<u8>,
        sums: &mut Vec<u32>,
    ) {
        out.clear();
        let v = u32::from;
        let taps = &up.taps;
        match up.kind {
            Upsample::Full => {
                let row = self.row(y);
                out.extend(xs.iter().map(|&x| sample(row, x)))
            }
            Upsample::Box { h, v: vf } => {
                let row = self.row(y / vf);
                out.extend(xs.iter().map(|&x| sample(row, x / h)))
            }
            Upsample::H2V1 => {
                let row = self.row(y);
                out.extend(taps.iter().map(|t| {
                    ((3 * v(sample(row, t.near)) + v(sample(row, t.far)) + 1 + t.odd) >> 2) as u8
                }))
            }
            Upsample::H1V2 => {
                let (near, far, odd) = tap(y, up.size.1);
                let (near, far) = (self.row(near), self.row(far));
                out.extend(
                    xs.iter().map(|&x| {
                        ((3 * v(sample(near, x)) + v(sample(far, x)) + 1 + odd) >> 2) as u8
                    }),
                )
            }
            Upsample::H2V2 => {
                // The vertical pass once per chroma column, then the horizontal one per pixel.
                let (row, other, _) = tap(y, up.size.1);
                let (row, other) = (self.row(row), self.row(other));
                sums.clear();
                sums.extend((0..up.size.0).map(|c| 3 * v(sample(row, c)) + v(sample(other, c))));
                let sum = |c: usize| sums.get(c).copied().unwrap_or(0);
                out.extend(
                    taps.iter()
                        .map(|t| ((3 * sum(t.near) + sum(t.far) + 8 - t.odd) >> 4) as u8),
                )
            }
        }
    }

    /// Row `y` of the plane (empty past the decoded data).
    fn row(&self, y: usize) -> &[u8] {
        self.data
            .get(y * self.stride..(y + 1) * self.stride)
            .unwrap_or(&[])
    }
}

/// How the sampled columns read a chroma plane: its kind and size, and per sampled column
/// the horizontal taps of the 2× kinds (computed once per image, not per row).
struct Upsampler {
    kind: Upsample,
    size: (usize, usize),
    taps: Vec<Tap>,
}

struct Tap {
    near: usize,
    far: usize,
    odd: u32,
}

impl Upsampler {
    fn new(kind: Upsample, size: (usize, usize), xs: &[usize]) -> Upsampler {
        let taps = match kind {
            Upsample::H2V1 | Upsample::H2V2 => xs
                .iter()
                .map(|&x| {
                    let (near, far, odd) = tap(x, size.0);
                    Tap { near, far, odd }
                })
                .collect(),
            _ => Vec::new(),
        };
        Upsampler { kind, size, taps }
    }
}

/// Sample `x` of a plane row; 0 past its end (a short plane is never a panic).
fn sample(row: &[u8], x: usize) -> u8 {
    row.get(x).copied().unwrap_or(0)
}

/// For full-size position `p` on a 2× upsampled axis of `len` samples: the nearer sample,
/// the further one (across the pixel's centre, clamped at the edges) and 1 when `p` is the
/// second pixel of its pair (which picks libjpeg's rounding bias).
fn tap(p: usize, len: usize) -> (usize, usize, u32) {
    let near = p / 2;
    if p.is_multiple_of(2) {
        (near, near.saturating_sub(1), 0)
    } else {
        (near, (near + 1).min(len - 1), 1)
    }
}

fn decode_other(
    bytes: &[u8],
    format: ImageFormat,
    max_pixels: u64,
    data: Vec<f32>,
) -> Result<Luma, ScanError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    // Room for the decoded image (up to 8 bytes a pixel) plus decoder state.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(image_error)?;
    let (w, h) = decoder.dimensions();
    let (width, height) = (w as usize, h as usize);
    check_pixels(width, height, max_pixels)?;
    if width == 0 || height == 0 {
        return Err(undecodable("image has no pixels"));
    }
    let img = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    let mut sampler = Sampler::new(width, height, data);
    let mut feed = |raw: &[u8], px: Pixels, channels: usize| {
        for (y, row) in raw.chunks_exact(width * channels).enumerate() {
            sampler.row(y, row, px);
        }
    };
    match &img {
        DynamicImage::ImageLuma8(b) => feed(b.as_raw(), Pixels::Grey { channels: 1 }, 1),
        DynamicImage::ImageLumaA8(b) => feed(b.as_raw(), Pixels::Grey { channels: 2 }, 2),
        DynamicImage::ImageRgb8(b) => feed(b.as_raw(), Pixels::Rgb { channels: 3 }, 3),
        DynamicImage::ImageRgba8(b) => feed(b.as_raw(), Pixels::Rgb { channels: 4 }, 4),
        DynamicImage::ImageLuma16(_) | DynamicImage::ImageLumaA16(_) => {
            feed(img.to_luma8().as_raw(), Pixels::Grey { channels: 1 }, 1)
        }
        _ => feed(img.to_rgb8().as_raw(), Pixels::Rgb { channels: 3 }, 3),
    }
    sampler.finish()
}

fn image_error(e: ImageError) -> ScanError {
    match e {
        ImageError::Limits(l) => ScanError::Limit(l.to_string()),
        other => undecodable(other),
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;

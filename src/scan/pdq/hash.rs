//! The PDQ algorithm proper: a float luma plane in, 256 bits and a quality out.
//!
//! A bit-exact port of Meta's reference (`pdq/cpp/hashing/pdqhashing.cpp` and
//! `pdq/cpp/downscaling/downscaling.cpp` in ThreatExchange): Jarosz tent filter (two passes of
//! box filters per axis), decimation to 64×64, the image-domain quality metric, a 16×64 DCT on
//! both axes, and Torben's median. Every float sum runs in `f32` in the reference's order; the
//! loops are only *interchanged* (many independent lines at once) so the compiler can vectorise
//! them without changing any single line's arithmetic.

use std::sync::LazyLock;

use super::types::PdqHash;

/// Images smaller than this on a side get an all-zero hash and quality 0 (`MIN_HASHABLE_DIM`).
const MIN_HASHABLE_DIM: usize = 5;
/// Box-filter passes per axis (`PDQ_NUM_JAROSZ_XY_PASSES`).
const JAROSZ_PASSES: usize = 2;
/// Rows box-filtered together (transposed into lanes) so their sums run side by side.
const ROW_BLOCK: usize = 16;

/// A row-major plane of luma values in `f32`, as the reference feeds its hasher.
#[derive(Clone, Debug)]
pub(crate) struct Luma {
    pub width: usize,
    pub height: usize,
    /// `height * width` values, row-major.
    pub data: Vec<f32>,
}

/// The 16×64 DCT matrix (`dct_matrix_64`), row-major, computed the reference's way: the scale
/// factor is rounded to `f32`, the product is taken in `f64` and rounded to `f32`.
static DCT: LazyLock<[[f32; 64]; 16]> = LazyLock::new(|| {
    let scale = (2.0f64 / 64.0).sqrt() as f32;
    let mut d = [[0f32; 64]; 16];
    for (i, row) in d.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            let arg = (std::f64::consts::PI / 2.0 / 64.0) * (i + 1) as f64 * (2 * j + 1) as f64;
            *v = (f64::from(scale) * arg.cos()) as f32;
        }
    }
    d
});

/// The DCT matrix transposed (64×16), for the second, vectorised product.
static DCT_T: LazyLock<[[f32; 16]; 64]> = LazyLock::new(|| {
    let mut t = [[0f32; 16]; 64];
    for (i, row) in DCT.iter().enumerate() {
        for (k, v) in row.iter().enumerate() {
            t[k][i] = *v;
        }
    }
    t
});

/// Hashes a luma plane, filtering it in place; `tmp` is scratch space (its capacity is reused).
pub(crate) fn hash_luma(luma: &mut Luma, tmp: &mut Vec<f32>) -> PdqHash {
    match dct_of(luma, tmp) {
        Some((dct, quality)) => PdqHash {
            bits: bits_from_dct(&dct),
            quality,
        },
        None => PdqHash {
            bits: [0; 16],
            quality: 0,
        },
    }
}

/// The eight dihedral hashes (`pdqDihedralHash256esFromFloatLuma`), in the order
/// original, rot90, rot180, rot270, flipx, flipy, flipplus1, flipminus1, each derived from the
/// one DCT by sign changes and transposition.
pub(crate) fn dihedral_luma(luma: &mut Luma, tmp: &mut Vec<f32>) -> [PdqHash; 8] {
    let Some((dct, quality)) = dct_of(luma, tmp) else {
        return [PdqHash {
            bits: [0; 16],
            quality: 0,
        }; 8];
    };
    // (transpose?, sign of coefficient (i, j)) per variant, from pdqhashing.cpp.
    let variants: [(bool, KeepSign); 8] = [
        (false, |_, _| true),
        (true, |_, j| j & 1 == 1),
        (false, |i, j| (i + j) & 1 == 0),
        (true, |i, _| i & 1 == 1),
        (false, |i, _| i & 1 == 1),
        (false, |_, j| j & 1 == 1),
        (true, |_, _| true),
        (true, |i, j| (i + j) & 1 == 0),
    ];
    variants.map(|(transpose, keep_sign)| {
        let mut b = [[0f32; 16]; 16];
        for (i, row) in dct.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let v = if keep_sign(i, j) { *v } else { -*v };
                if transpose {
                    b[j][i] = v;
                } else {
                    b[i][j] = v;
                }
            }
        }
        PdqHash {
            bits: bits_from_dct(&b),
            quality,
        }
    })
}

/// Whether coefficient (i, j) keeps its sign in a dihedral variant.
type KeepSign = fn(usize, usize) -> bool;

/// The 16×16 DCT coefficients the hash bits are taken from.
type Dct16 = [[f32; 16]; 16];

/// Blur, decimate, quality and DCT: the 16×16 coefficients and the quality, or `None` for an
/// image under 5 pixels on a side.
fn dct_of(luma: &mut Luma, tmp: &mut Vec<f32>) -> Option<(Dct16, u8)> {
    let (rows, cols) = (luma.height, luma.width);
    if rows < MIN_HASHABLE_DIM || cols < MIN_HASHABLE_DIM || luma.data.len() != rows * cols {
        return None;
    }
    let mut block = [[0f32; 64]; 64];
    if rows == 64 && cols == 64 {
        // The reference skips the blur for inputs that are already 64×64 (a window of 1 would
        // leave them unchanged anyway).
        for (i, row) in block.iter_mut().enumerate() {
            row.copy_from_slice(&luma.data[i * 64..(i + 1) * 64]);
        }
    } else {
        jarosz_filter(&mut luma.data, tmp, rows, cols);
        decimate(&luma.data, rows, cols, &mut block);
    }
    Some((dct64_to_16(&block), quality_metric(&block)))
}

/// `computeJaroszFilterWindowSize`: half of the old-to-64 ratio, rounded up.
fn window_size(old: usize, new: usize) -> usize {
    old.div_ceil(2 * new)
}

/// `jaroszFilterFloat`: box filters along rows then columns, twice; the result is in `buf`.
fn jarosz_filter(buf: &mut [f32], tmp: &mut Vec<f32>, rows: usize, cols: usize) {
    let along_rows = window_size(cols, 64);
    let along_cols = window_size(rows, 64);
    tmp.clear();
    tmp.resize(buf.len(), 0.0);
    let mut sums = vec![0f32; cols.max(ROW_BLOCK)];
    let mut block_in = vec![0f32; cols * ROW_BLOCK];
    let mut block_out = vec![0f32; cols * ROW_BLOCK];
    for _ in 0..JAROSZ_PASSES {
        // Rows: each block of up to 8 rows is transposed so the rows become lanes.
        for r0 in (0..rows).step_by(ROW_BLOCK) {
            let lanes = ROW_BLOCK.min(rows - r0);
            for k in 0..lanes {
                let src = &buf[(r0 + k) * cols..(r0 + k + 1) * cols];
                for (c, v) in src.iter().enumerate() {
                    block_in[c * lanes + k] = *v;
                }
            }
            let (bi, bo) = (&block_in[..cols * lanes], &mut block_out[..cols * lanes]);
            box_lanes(bi, bo, cols, lanes, along_rows, &mut sums[..lanes]);
            for k in 0..lanes {
                let dst = &mut tmp[(r0 + k) * cols..(r0 + k + 1) * cols];
                for (c, v) in dst.iter_mut().enumerate() {
                    *v = block_out[c * lanes + k];
                }
            }
        }
        // Columns: the plane is already laid out with columns as lanes.
        box_lanes(tmp, buf, rows, cols, along_cols, &mut sums[..cols]);
    }
}

/// `box1DFloat` run on `lanes` independent lines at once. Element (step, lane) of a line set
/// is at `step * lanes + lane`; each lane sees exactly the reference's sequence of adds,
/// subtracts and divisions.
fn box_lanes(
    input: &[f32],
    out: &mut [f32],
    len: usize,
    lanes: usize,
    window: usize,
    sums: &mut [f32],
) {
    let half = (window + 2) / 2;
    let phase1 = half - 1;
    let phase2 = (window + 1).saturating_sub(half);
    let phase3 = len.saturating_sub(window);
    let phase4 = half - 1;
    let row = |i: usize| &input[i * lanes..(i + 1) * lanes];
    sums.fill(0.0);
    let (mut li, mut ri, mut oi, mut count) = (0usize, 0usize, 0usize, 0u32);
    for _ in 0..phase1 {
        sums.iter_mut().zip(row(ri)).for_each(|(s, v)| *s += v);
        count += 1;
        ri += 1;
    }
    for _ in 0..phase2 {
        sums.iter_mut().zip(row(ri)).for_each(|(s, v)| *s += v);
        count += 1;
        write_mean(&mut out[oi * lanes..(oi + 1) * lanes], sums, count);
        ri += 1;
        oi += 1;
    }
    for _ in 0..phase3 {
        let (add, sub) = (row(ri), row(li));
        for ((s, a), b) in sums.iter_mut().zip(add).zip(sub) {
            *s += a;
            *s -= b;
        }
        write_mean(&mut out[oi * lanes..(oi + 1) * lanes], sums, count);
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..phase4 {
        sums.iter_mut().zip(row(li)).for_each(|(s, v)| *s -= v);
        count -= 1;
        write_mean(&mut out[oi * lanes..(oi + 1) * lanes], sums, count);
        li += 1;
        oi += 1;
    }
}

/// `outvec[oi] = sum / current_window_size`: a true division, as the reference does.
fn write_mean(out: &mut [f32], sums: &[f32], count: u32) {
    let n = count as f32;
    out.iter_mut().zip(sums).for_each(|(o, s)| *o = s / n);
}

/// `decimateFloat` to 64×64, sampling the centres of the target cells.
fn decimate(buf: &[f32], rows: usize, cols: usize, block: &mut [[f32; 64]; 64]) {
    for (oi, out_row) in block.iter_mut().enumerate() {
        let ini = (((oi as f64 + 0.5) * rows as f64) / 64.0) as usize;
        for (oj, v) in out_row.iter_mut().enumerate() {
            let inj = (((oj as f64 + 0.5) * cols as f64) / 64.0) as usize;
            *v = buf[ini * cols + inj];
        }
    }
}

/// `pdqImageDomainQualityMetric`: quantised gradients summed, scaled to 0..=100.
fn quality_metric(block: &[[f32; 64]; 64]) -> u8 {
    let grad = |u: f32, v: f32| (((u - v) * 100.0) / 255.0) as i32;
    let mut sum: i64 = 0;
    for (upper, lower) in block.iter().zip(&block[1..]) {
        for (u, v) in upper.iter().zip(lower) {
            sum += i64::from(grad(*u, *v).abs());
        }
    }
    for row in block.iter() {
        for j in 0..63 {
            sum += i64::from(grad(row[j], row[j + 1]).abs());
        }
    }
    (sum / 90).min(100) as u8
}

/// `dct64To16`: B = D A Dᵀ with the intermediate T = D A, each output summed over k ascending.
fn dct64_to_16(a: &[[f32; 64]; 64]) -> [[f32; 16]; 16] {
    let d = &*DCT;
    let dt = &*DCT_T;
    let mut t = [[0f32; 64]; 16];
    for (i, t_row) in t.iter_mut().enumerate() {
        for (k, a_row) in a.iter().enumerate() {
            let dik = d[i][k];
            t_row.iter_mut().zip(a_row).for_each(|(s, x)| *s += dik * x);
        }
    }
    let mut b = [[0f32; 16]; 16];
    for (b_row, t_row) in b.iter_mut().zip(&t) {
        for (tik, dt_row) in t_row.iter().zip(dt) {
            b_row
                .iter_mut()
                .zip(dt_row)
                .for_each(|(s, x)| *s += tik * x);
        }
    }
    b
}

/// `pdqBuffer16x16ToBits`: bit `i*16+j` is set when coefficient (i,j) exceeds the median.
fn bits_from_dct(dct: &[[f32; 16]; 16]) -> [u16; 16] {
    let flat: Vec<f32> = dct.iter().flatten().copied().collect();
    let median = torben(&flat);
    let mut words = [0u16; 16];
    for (word, row) in words.iter_mut().zip(dct) {
        for (j, v) in row.iter().enumerate() {
            if *v > median {
                *word |= 1 << j;
            }
        }
    }
    words
}

/// Torben's median (as `pdq/cpp/hashing/torben.cpp`): no copy, no reordering.
fn torben(m: &[f32]) -> f32 {
    let Some(&first) = m.first() else { return 0.0 };
    let n = m.len();
    let (mut min, mut max) = (first, first);
    for &v in &m[1..] {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let half = n.div_ceil(2);
    loop {
        let guess = (min + max) / 2.0;
        let (mut less, mut greater, mut equal) = (0usize, 0usize, 0usize);
        let (mut max_lt, mut min_gt) = (min, max);
        for &v in m {
            if v < guess {
                less += 1;
                if v > max_lt {
                    max_lt = v;
                }
            } else if v > guess {
                greater += 1;
                if v < min_gt {
                    min_gt = v;
                }
            } else {
                equal += 1;
            }
        }
        if less <= half && greater <= half {
            return if less >= half {
                max_lt
            } else if less + equal >= half {
                guess
            } else {
                min_gt
            };
        } else if less > greater {
            max = max_lt;
        } else {
            min = min_gt;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torben_returns_lower_median() {
        let v: Vec<f32> = (0..256).rev().map(|x| x as f32).collect();
        assert_eq!(torben(&v), 127.0);
        assert_eq!(torben(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(torben(&[5.0; 10]), 5.0);
    }

    #[test]
    fn window_size_rounds_up_half_ratio() {
        assert_eq!(window_size(1024, 64), 8);
        assert_eq!(window_size(512, 64), 4);
        assert_eq!(window_size(100, 64), 1);
        assert_eq!(window_size(5, 64), 1);
    }

    #[test]
    fn box_lanes_matches_reference_example() {
        // The worked example of downscaling.cpp: window 7 over 0..16.
        let input: Vec<f32> = (0..16).map(|x| x as f32).collect();
        let mut out = vec![0f32; 16];
        box_lanes(&input, &mut out, 16, 1, 7, &mut [0.0]);
        let sums = [
            6, 10, 15, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 75, 65, 54,
        ];
        let counts = [4, 5, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 5, 4];
        for i in 0..16 {
            assert_eq!(out[i], sums[i] as f32 / counts[i] as f32, "index {i}");
        }
    }

    #[test]
    fn tiny_and_flat_images() {
        let mut tiny = Luma {
            width: 4,
            height: 100,
            data: vec![1.0; 400],
        };
        assert_eq!(
            hash_luma(&mut tiny, &mut Vec::new()),
            PdqHash {
                bits: [0; 16],
                quality: 0
            }
        );
        let mut flat = Luma {
            width: 100,
            height: 100,
            data: vec![128.0; 10_000],
        };
        assert_eq!(hash_luma(&mut flat, &mut Vec::new()).quality, 0);
    }
}

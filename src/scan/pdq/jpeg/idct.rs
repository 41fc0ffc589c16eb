//! libjpeg's "islow" inverse DCT (`jpeg_idct_islow` in jidctint.c), ported operation for
//! operation: the same 64-bit fixed-point products, the same descaling and the same
//! range-limit table, so every sample equals libjpeg-turbo's (whose SIMD versions are
//! bit-exact with this C code). Only the output rows the caller asks for are computed in the
//! second pass; the first pass needs every column anyway.

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;
const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

/// `IDCT_range_limit` indexed by `value & RANGE_MASK` (jdmaster.c's
/// `prepare_range_limit_table`): clamps -512..=511 to 0..=255 after the +128 level shift and
/// wraps beyond, exactly as libjpeg's table does.
static RANGE_LIMIT: [u8; 1024] = {
    let mut t = [0u8; 1024];
    let mut i = 0;
    while i < 1024 {
        t[i] = if i < 128 {
            (i + 128) as u8
        } else if i < 512 {
            255
        } else if i < 896 {
            0
        } else {
            (i - 896) as u8
        };
        i += 1;
    }
    t
};

#[inline]
fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

#[inline]
fn limit(x: i64) -> u8 {
    RANGE_LIMIT[(x & 1023) as usize]
}

/// The value every sample of a block with no AC coefficient takes (both passes' zero
/// shortcuts, composed).
#[inline]
pub(crate) fn dc_only(dc: i16, quant: i32) -> u8 {
    let ws = ((i64::from(i32::from(dc) * quant)) << PASS1_BITS) as i32;
    limit(descale(i64::from(ws), PASS1_BITS + 3))
}

/// The even and odd halves shared by both passes: (tmp10, tmp11, tmp12, tmp13) and
/// (tmp0, tmp1, tmp2, tmp3) from inputs 0..8 of one line.
#[inline]
fn butterfly(x: [i64; 8], dc_shifted: (i64, i64)) -> ([i64; 4], [i64; 4]) {
    let (z2, z3) = (x[2], x[6]);
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let (tmp0, tmp1) = dc_shifted;
    let even = [tmp0 + tmp3, tmp1 + tmp2, tmp1 - tmp2, tmp0 - tmp3];

    let (mut t0, mut t1, mut t2, mut t3) = (x[7], x[5], x[3], x[1]);
    let z1 = t0 + t3;
    let z2 = t1 + t2;
    let z3 = t0 + t2;
    let z4 = t1 + t3;
    let z5 = (z3 + z4) * FIX_1_175875602;
    t0 *= FIX_0_298631336;
    t1 *= FIX_2_053119869;
    t2 *= FIX_3_072711026;
    t3 *= FIX_1_501321110;
    let z1 = z1 * -FIX_0_899976223;
    let z2 = z2 * -FIX_2_562915447;
    let z3 = z3 * -FIX_1_961570560 + z5;
    let z4 = z4 * -FIX_0_390180644 + z5;
    t0 += z1 + z3;
    t1 += z2 + z4;
    t2 += z2 + z3;
    t3 += z1 + z4;
    (even, [t0, t1, t2, t3])
}

/// Output index k of a line from the butterfly halves: (even term, odd term, sign).
const OUTPUTS: [(usize, usize, bool); 8] = [
    (0, 3, true),
    (1, 2, true),
    (2, 1, true),
    (3, 0, true),
    (3, 0, false),
    (2, 1, false),
    (1, 2, false),
    (0, 3, false),
];

/// Inverse-transforms `coef` (natural order) with `quant`, writing row `r` of the 8×8
/// result to `out[8r..8r+8]` for every bit `r` set in `rows`.
pub(crate) fn islow(coef: &[i16; 64], quant: &[i32; 64], rows: u8, out: &mut [u8; 64]) {
    let mut ws = [0i32; 64];
    // Pass 1: columns, results scaled by 2^PASS1_BITS.
    for c in 0..8 {
        let deq = |r: usize| i64::from(i32::from(coef[r * 8 + c]) * quant[r * 8 + c]);
        if (1..8).all(|r| coef[r * 8 + c] == 0) {
            let dcval = (deq(0) << PASS1_BITS) as i32;
            for r in 0..8 {
                ws[r * 8 + c] = dcval;
            }
            continue;
        }
        let x = [
            deq(0),
            deq(1),
            deq(2),
            deq(3),
            deq(4),
            deq(5),
            deq(6),
            deq(7),
        ];
        let shifted = ((x[0] + x[4]) << CONST_BITS, (x[0] - x[4]) << CONST_BITS);
        let (even, odd) = butterfly(x, shifted);
        for (r, &(e, o, plus)) in OUTPUTS.iter().enumerate() {
            let v = if plus {
                even[e] + odd[o]
            } else {
                even[e] - odd[o]
            };
            ws[r * 8 + c] = descale(v, CONST_BITS - PASS1_BITS) as i32;
        }
    }
    // Pass 2: the requested rows, descaled by 8 and 2^PASS1_BITS.
    for r in 0..8 {
        if rows & (1 << r) == 0 {
            continue;
        }
        let w = &ws[r * 8..r * 8 + 8];
        let o = &mut out[r * 8..r * 8 + 8];
        if w[1..].iter().all(|&v| v == 0) {
            o.fill(limit(descale(i64::from(w[0]), PASS1_BITS + 3)));
            continue;
        }
        let x = [
            i64::from(w[0]),
            i64::from(w[1]),
            i64::from(w[2]),
            i64::from(w[3]),
            i64::from(w[4]),
            i64::from(w[5]),
            i64::from(w[6]),
            i64::from(w[7]),
        ];
        let shifted = ((x[0] + x[4]) << CONST_BITS, (x[0] - x[4]) << CONST_BITS);
        let (even, odd) = butterfly(x, shifted);
        for (k, &(e, od, plus)) in OUTPUTS.iter().enumerate() {
            let v = if plus {
                even[e] + odd[od]
            } else {
                even[e] - odd[od]
            };
            o[k] = limit(descale(v, CONST_BITS + PASS1_BITS + 3));
        }
    }
}

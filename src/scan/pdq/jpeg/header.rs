//! JPEG marker parsing up to the first scan: frame, quantisation and Huffman tables, restart
//! interval, and where the entropy-coded data starts.
//!
//! Only what the fast path decodes is accepted: one 8-bit baseline or extended-sequential
//! Huffman frame of 1 (grey) or 3 (YCbCr) components, coded in one scan. Anything else
//! (progressive, arithmetic, 12-bit, Adobe or RGB colour, several scans, odd markers) is
//! [`Unsupported`] and goes to libjpeg, which also owns every error message.

use super::entropy::HuffTable;

/// Why the fast path declined an image; the caller decodes it with libjpeg instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsupported;

/// One frame component with its tables resolved.
#[derive(Debug, Clone)]
pub(crate) struct Component {
    /// Horizontal and vertical sampling factors (1..=4).
    pub h: usize,
    pub v: usize,
    /// Dequantisation table in natural (row-major) order.
    pub quant: [i32; 64],
    /// Huffman table indices (0..=3) for DC and AC.
    pub dc_table: usize,
    pub ac_table: usize,
}

/// Everything the entropy decoder needs, parsed from the markers before the first scan.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub width: usize,
    pub height: usize,
    pub components: Vec<Component>,
    pub dc_tables: [Option<HuffTable>; 4],
    pub ac_tables: [Option<HuffTable>; 4],
    /// MCUs between restart markers (0: none).
    pub restart_interval: usize,
    /// Offset of the first entropy-coded byte.
    pub data_start: usize,
}

/// Raw frame component before its quantisation table is latched at the scan.
struct FrameComponent {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
}

fn be16(b: &[u8], at: usize) -> Result<usize, Unsupported> {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(usize::from(hi) << 8 | usize::from(lo)),
        _ => Err(Unsupported),
    }
}

/// Parses markers from SOI to the first SOS.
pub(crate) fn parse(b: &[u8]) -> Result<Header, Unsupported> {
    if b.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(Unsupported);
    }
    let mut pos = 2;
    let mut quant: [Option<[i32; 64]>; 4] = [None; 4];
    let mut dc_tables: [Option<HuffTable>; 4] = Default::default();
    let mut ac_tables: [Option<HuffTable>; 4] = Default::default();
    let mut frame: Option<(usize, usize, Vec<FrameComponent>)> = None;
    let mut restart_interval = 0;
    let mut adobe = false;
    loop {
        // Exactly one 0xFF (fill bytes are legal, but libjpeg warns on other junk).
        if b.get(pos) != Some(&0xFF) {
            return Err(Unsupported);
        }
        while b.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *b.get(pos).ok_or(Unsupported)?;
        pos += 1;
        let len = be16(b, pos)?;
        if len < 2 {
            return Err(Unsupported);
        }
        let seg = b.get(pos + 2..pos + len).ok_or(Unsupported)?;
        match marker {
            0xC0 | 0xC1 => {
                if frame.is_some() {
                    return Err(Unsupported);
                }
                frame = Some(parse_sof(seg)?);
            }
            0xC4 => parse_dht(seg, &mut dc_tables, &mut ac_tables)?,
            0xDB => parse_dqt(seg, &mut quant)?,
            0xDD => restart_interval = be16(seg, 0)?,
            0xEE if seg.starts_with(b"Adobe") => adobe = true,
            0xE0..=0xEF | 0xFE => {}
            0xDA => {
                let (width, height, comps) = frame.ok_or(Unsupported)?;
                let components = parse_sos(seg, &comps, &quant)?;
                // libjpeg's colour-space guess: an Adobe marker or R,G,B component ids
                // mean RGB (or a transform flag); the fast path only does YCbCr and grey.
                let rgb_ids = comps.iter().map(|c| c.id).eq([b'R', b'G', b'B']);
                if adobe || rgb_ids {
                    return Err(Unsupported);
                }
                return Ok(Header {
                    width,
                    height,
                    components,
                    dc_tables,
                    ac_tables,
                    restart_interval,
                    data_start: pos + len,
                });
            }
            // Progressive, lossless, arithmetic, hierarchical frames, DNL, EOI before a
            // scan, and anything unknown.
            _ => return Err(Unsupported),
        }
        pos += len;
    }
}

fn parse_sof(seg: &[u8]) -> Result<(usize, usize, Vec<FrameComponent>), Unsupported> {
    let precision = *seg.first().ok_or(Unsupported)?;
    let height = be16(seg, 1)?;
    let width = be16(seg, 3)?;
    let n = usize::from(*seg.get(5).ok_or(Unsupported)?);
    if precision != 8 || width == 0 || height == 0 || !(n == 1 || n == 3) {
        return Err(Unsupported);
    }
    let mut comps = Vec::with_capacity(n);
    for k in 0..n {
        let c = seg.get(6 + 3 * k..9 + 3 * k).ok_or(Unsupported)?;
        let (h, v) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
            return Err(Unsupported);
        }
        comps.push(FrameComponent {
            id: c[0],
            h,
            v,
            tq: usize::from(c[2]),
        });
    }
    Ok((width, height, comps))
}

fn parse_dqt(mut seg: &[u8], quant: &mut [Option<[i32; 64]>; 4]) -> Result<(), Unsupported> {
    while let Some(&pq_tq) = seg.first() {
        let (wide, id) = (pq_tq >> 4, usize::from(pq_tq & 15));
        if wide > 1 || id > 3 {
            return Err(Unsupported);
        }
        let size = if wide == 1 { 128 } else { 64 };
        let body = seg.get(1..1 + size).ok_or(Unsupported)?;
        let mut table = [0i32; 64];
        for (k, &natural) in ZIGZAG.iter().enumerate() {
            let q = if wide == 1 {
                i32::from(body[2 * k]) << 8 | i32::from(body[2 * k + 1])
            } else {
                i32::from(body[k])
            };
            // libjpeg keeps 16-bit quantisers as `short` when built with SIMD and as `int`
            // without; above 32767 the two differ, so leave such tables to libjpeg.
            if q > 32767 {
                return Err(Unsupported);
            }
            table[natural] = q;
        }
        quant[id] = Some(table);
        seg = &seg[1 + size..];
    }
    Ok(())
}

fn parse_dht(
    mut seg: &[u8],
    dc: &mut [Option<HuffTable>; 4],
    ac: &mut [Option<HuffTable>; 4],
) -> Result<(), Unsupported> {
    while let Some(&tc_th) = seg.first() {
        let (class, id) = (tc_th >> 4, usize::from(tc_th & 15));
        if class > 1 || id > 3 {
            return Err(Unsupported);
        }
        let counts = seg.get(1..17).ok_or(Unsupported)?;
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let symbols = seg.get(17..17 + total).ok_or(Unsupported)?;
        let mut lens = [0u8; 16];
        lens.copy_from_slice(counts);
        let table = HuffTable::new(&lens, symbols, class == 0)?;
        if class == 0 {
            dc[id] = Some(table);
        } else {
            ac[id] = Some(table);
        }
        seg = &seg[17 + total..];
    }
    Ok(())
}

fn parse_sos(
    seg: &[u8],
    frame: &[FrameComponent],
    quant: &[Option<[i32; 64]>; 4],
) -> Result<Vec<Component>, Unsupported> {
    let n = usize::from(*seg.first().ok_or(Unsupported)?);
    // One scan with every component, in frame order (libjpeg allows other orders, but
    // encoders do not make them).
    if n != frame.len() {
        return Err(Unsupported);
    }
    let mut out = Vec::with_capacity(n);
    for (k, fc) in frame.iter().enumerate() {
        let c = seg.get(1 + 2 * k..3 + 2 * k).ok_or(Unsupported)?;
        if c[0] != fc.id || c[1] >> 4 > 3 || c[1] & 15 > 3 {
            return Err(Unsupported);
        }
        out.push(Component {
            h: fc.h,
            v: fc.v,
            quant: quant[fc.tq].ok_or(Unsupported)?,
            dc_table: usize::from(c[1] >> 4),
            ac_table: usize::from(c[1] & 15),
        });
    }
    // Spectral selection 0..63 and no successive approximation: a sequential scan.
    if seg.get(1 + 2 * n..4 + 2 * n) != Some(&[0, 63, 0]) {
        return Err(Unsupported);
    }
    Ok(out)
}

/// Zig-zag position → natural (row-major) index.
pub(crate) const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

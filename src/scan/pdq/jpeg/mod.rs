//! A fast path for baseline JPEGs that computes only the pixels PDQ samples.
//!
//! The reference hashes a 1920×1080 photo from 512×512 nearest-neighbour samples, so most of
//! a full decode is thrown away. This decoder Huffman-decodes every block (that cannot be
//! skipped), but inverse-transforms only the block rows and columns a sample (or a chroma
//! neighbour it is interpolated from) falls in, then upsamples and converts only the sampled
//! pixels. Each step is a port of libjpeg-turbo's default path — `jdhuff.c` decoding, the
//! islow IDCT (`jidctint.c`), fancy upsampling (`jdsample.c`, with `jdmainct.c`'s edge
//! replication) and YCbCr→RGB (`jdcolor.c`) — so every sampled pixel equals libjpeg's.
//!
//! Anything outside that path (progressive, arithmetic, 12-bit, CMYK/RGB/Adobe, several
//! scans, unusual sampling, damaged data) is declined and decoded by libjpeg instead.

mod entropy;
mod header;
mod idct;
mod planes;

use header::{Header, Unsupported};
use planes::{Layout, Plane};

use super::decode::{rgb_luma, Sampler, DOWNSAMPLE_DIMS, YCC_TABLES};
use super::hash::Luma;

/// The fast path declined; the luma buffer is handed back for the libjpeg path.
pub(crate) struct Declined(pub Vec<f32>);

/// Decodes `bytes` into the (pre-resized) luma plane if the fast path supports the file and
/// it is within `max_pixels`; otherwise gives `data` back.
pub(crate) fn decode(bytes: &[u8], max_pixels: u64, data: Vec<f32>) -> Result<Luma, Declined> {
    let Ok(header) = header::parse(bytes) else {
        return Err(Declined(data));
    };
    let pixels = (header.width as u64).saturating_mul(header.height as u64);
    // An image hashed at its own size needs every pixel, and libjpeg's full decode is faster
    // then; this path pays off only when sampling skips work (tests run it on every size).
    let resampled = header.width > DOWNSAMPLE_DIMS || header.height > DOWNSAMPLE_DIMS;
    if pixels > max_pixels || !(resampled || cfg!(test)) {
        return Err(Declined(data));
    }
    let Ok(layout) = Layout::new(&header) else {
        return Err(Declined(data));
    };
    let mut sampler = Sampler::new(header.width, header.height, data);
    let mut planes = layout.planes(&sampler.rows, &sampler.cols);
    if decode_scan(bytes, &header, &layout, &mut planes).is_err() {
        return Err(Declined(std::mem::take(&mut sampler.luma.data)));
    }
    fill_luma(&mut sampler, &planes);
    Ok(sampler.luma)
}

/// Entropy-decodes the scan, transforming the blocks that hold needed rows and columns.
fn decode_scan(
    bytes: &[u8],
    h: &Header,
    layout: &Layout,
    planes: &mut [Plane],
) -> Result<(), Unsupported> {
    let mut bits = entropy::Bits::new(bytes, h.data_start);
    let mut tables = Vec::with_capacity(h.components.len());
    for c in &h.components {
        let dc = h.dc_tables[c.dc_table].as_ref().ok_or(Unsupported)?;
        let ac = h.ac_tables[c.ac_table].as_ref().ok_or(Unsupported)?;
        tables.push((dc, ac));
    }
    let mut last_dc = vec![0i32; h.components.len()];
    let mut block = [0i16; 64];
    let mut pixels = [0u8; 64];
    let mut next_rst = 0u8;
    let total = layout.mcus_x * layout.mcus_y;
    for mcu in 0..total {
        if h.restart_interval > 0 && mcu > 0 && mcu % h.restart_interval == 0 {
            bits.restart(next_rst)?;
            next_rst = (next_rst + 1) & 7;
            last_dc.iter_mut().for_each(|d| *d = 0);
        }
        let (mx, my) = (mcu % layout.mcus_x, mcu / layout.mcus_x);
        for (ci, comp) in h.components.iter().enumerate() {
            let (bh, bv) = layout.blocks_per_mcu[ci];
            let (dc, ac) = tables[ci];
            let plane = &mut planes[ci];
            for v in 0..bv {
                for u in 0..bh {
                    block.fill(0);
                    let any_ac = bits.block(dc, ac, &mut last_dc[ci], &mut block)?;
                    let (bx, by) = (mx * bh + u, my * bv + v);
                    let rows = plane.row_mask(bx, by);
                    if rows == 0 {
                        continue;
                    }
                    if any_ac {
                        idct::islow(&block, &comp.quant, rows, &mut pixels);
                    } else {
                        pixels.fill(idct::dc_only(block[0], comp.quant[0]));
                    }
                    plane.store(bx, by, rows, &pixels);
                }
            }
        }
    }
    bits.check()
}

/// Upsamples and colour-converts the sampled pixels into the sampler's luma plane.
fn fill_luma(sampler: &mut Sampler, planes: &[Plane]) {
    let out = &mut sampler.luma.data;
    out.clear();
    let t = &*YCC_TABLES;
    for &y in &sampler.rows {
        match planes {
            [grey] => out.extend(sampler.cols.iter().map(|&x| f32::from(grey.at(y, x)))),
            [luma, cb, cr] => out.extend(sampler.cols.iter().map(|&x| {
                let (r, g, b) = t.rgb(luma.at(y, x), cb.sample(y, x), cr.sample(y, x));
                rgb_luma(r, g, b)
            })),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;

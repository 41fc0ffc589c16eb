//! Block geometry of a frame, and component planes that hold only the rows and columns PDQ's
//! nearest-neighbour samples (and their chroma neighbours) need.
//!
//! Chroma is upsampled per sampled pixel exactly as libjpeg-turbo's `jdsample.c` does it for
//! the whole row: triangle ("fancy") filters for h2v1, h1v2 and h2v2 with their alternating
//! rounding biases, and plain replication when a component is at most two samples wide. Rows
//! above the first and below the last replicate the edge row (`jdmainct.c`'s context
//! pointers); columns use the edge cases of the filters themselves.

use super::header::{Header, Unsupported};

/// Marks a plane row that is not stored.
const NONE: u32 = u32::MAX;
/// libjpeg's limit on blocks in one MCU (`D_MAX_BLOCKS_IN_MCU`).
const MAX_BLOCKS_IN_MCU: usize = 10;

/// How a component's samples become full-resolution pixels (`jinit_upsampler`'s choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upsample {
    Full,
    H2V1Fancy,
    H2V1Box,
    H1V2Fancy,
    H2V2Fancy,
    H2V2Box,
}

/// Per-component geometry.
#[derive(Debug, Clone)]
struct Geometry {
    blocks_w: usize,
    blocks_h: usize,
    /// `downsampled_width` / `downsampled_height`: the component's real sample extent.
    width: usize,
    height: usize,
    upsample: Upsample,
}

/// MCU grid of the scan and each component's geometry.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub mcus_x: usize,
    pub mcus_y: usize,
    /// Blocks per MCU, horizontally and vertically, per component.
    pub blocks_per_mcu: Vec<(usize, usize)>,
    geometry: Vec<Geometry>,
}

impl Layout {
    /// The layout of `h`, or [`Unsupported`] for sampling the fast path does not port.
    pub(crate) fn new(h: &Header) -> Result<Layout, Unsupported> {
        if let [_] = h.components.as_slice() {
            // A single-component scan is not interleaved: one block per MCU, whatever the
            // sampling factors say.
            let (bw, bh) = (h.width.div_ceil(8), h.height.div_ceil(8));
            return Ok(Layout {
                mcus_x: bw,
                mcus_y: bh,
                blocks_per_mcu: vec![(1, 1)],
                geometry: vec![Geometry {
                    blocks_w: bw,
                    blocks_h: bh,
                    width: h.width,
                    height: h.height,
                    upsample: Upsample::Full,
                }],
            });
        }
        let max_h = h.components.iter().map(|c| c.h).max().ok_or(Unsupported)?;
        let max_v = h.components.iter().map(|c| c.v).max().ok_or(Unsupported)?;
        let in_mcu: usize = h.components.iter().map(|c| c.h * c.v).sum();
        if in_mcu > MAX_BLOCKS_IN_MCU {
            return Err(Unsupported);
        }
        let mcus_x = h.width.div_ceil(8 * max_h);
        let mcus_y = h.height.div_ceil(8 * max_v);
        let mut geometry = Vec::with_capacity(h.components.len());
        for (i, c) in h.components.iter().enumerate() {
            if max_h % c.h != 0 || max_v % c.v != 0 {
                return Err(Unsupported);
            }
            let width = (h.width * c.h).div_ceil(max_h);
            let height = (h.height * c.v).div_ceil(max_v);
            let upsample = match (max_h / c.h, max_v / c.v) {
                (1, 1) => Upsample::Full,
                // The luma component is never upsampled in the files this path takes.
                _ if i == 0 => return Err(Unsupported),
                (2, 1) if width > 2 => Upsample::H2V1Fancy,
                (2, 1) => Upsample::H2V1Box,
                (1, 2) => Upsample::H1V2Fancy,
                (2, 2) if width > 2 => Upsample::H2V2Fancy,
                (2, 2) => Upsample::H2V2Box,
                _ => return Err(Unsupported),
            };
            geometry.push(Geometry {
                blocks_w: mcus_x * c.h,
                blocks_h: mcus_y * c.v,
                width,
                height,
                upsample,
            });
        }
        Ok(Layout {
            mcus_x,
            mcus_y,
            blocks_per_mcu: h.components.iter().map(|c| (c.h, c.v)).collect(),
            geometry,
        })
    }

    /// Empty planes that will keep what sampling output rows `rows` and columns `cols`
    /// (source coordinates) needs of each component.
    pub(crate) fn planes(&self, rows: &[usize], cols: &[usize]) -> Vec<Plane> {
        self.geometry
            .iter()
            .map(|g| Plane::new(g, rows, cols))
            .collect()
    }
}

/// The sample rows/columns of a component that full-resolution positions `at` read.
fn needed(at: &[usize], factor: usize, extent: usize, len: usize) -> Vec<bool> {
    let mut need = vec![false; len];
    for &p in at {
        if factor == 1 {
            if let Some(n) = need.get_mut(p) {
                *n = true;
            }
        } else {
            let s = p / 2;
            let last = extent.saturating_sub(1);
            for q in [s.saturating_sub(1), s, (s + 1).min(last)] {
                if let Some(n) = need.get_mut(q) {
                    *n = true;
                }
            }
        }
    }
    need
}

/// One component's samples, stored only for the needed rows (full padded width).
pub(crate) struct Plane {
    geometry: Geometry,
    stride: usize,
    /// Plane row → storage row, or `NONE`.
    slot: Vec<u32>,
    /// Per block row: which of its 8 rows are stored.
    row_masks: Vec<u8>,
    /// Per block column: whether any needed column falls in it.
    col_blocks: Vec<bool>,
    data: Vec<u8>,
}

impl Plane {
    fn new(g: &Geometry, rows: &[usize], cols: &[usize]) -> Plane {
        let (fh, fv) = match g.upsample {
            Upsample::Full => (1, 1),
            Upsample::H2V1Fancy | Upsample::H2V1Box => (2, 1),
            Upsample::H1V2Fancy => (1, 2),
            Upsample::H2V2Fancy | Upsample::H2V2Box => (2, 2),
        };
        let stride = g.blocks_w * 8;
        let need_rows = needed(rows, fv, g.height, g.blocks_h * 8);
        let need_cols = needed(cols, fh, g.width, stride);
        let mut slot = vec![NONE; need_rows.len()];
        let mut row_masks = vec![0u8; g.blocks_h];
        let mut n = 0u32;
        for (r, _) in need_rows.iter().enumerate().filter(|(_, &need)| need) {
            slot[r] = n;
            row_masks[r / 8] |= 1 << (r % 8);
            n += 1;
        }
        let col_blocks = need_cols.chunks(8).map(|c| c.contains(&true)).collect();
        Plane {
            geometry: g.clone(),
            stride,
            slot,
            row_masks,
            col_blocks,
            data: vec![0; n as usize * stride],
        }
    }

    /// Rows of block (bx, by) to keep, as a bit mask (0: skip the block).
    #[inline]
    pub(crate) fn row_mask(&self, bx: usize, by: usize) -> u8 {
        if self.col_blocks.get(bx) == Some(&true) {
            self.row_masks.get(by).copied().unwrap_or(0)
        } else {
            0
        }
    }

    /// Stores the masked rows of an 8×8 block of samples.
    pub(crate) fn store(&mut self, bx: usize, by: usize, rows: u8, pixels: &[u8; 64]) {
        for r in (0..8).filter(|r| rows & (1 << r) != 0) {
            let Some(&s) = self.slot.get(by * 8 + r) else {
                continue;
            };
            let at = s as usize * self.stride + bx * 8;
            if let Some(dst) = self.data.get_mut(at..at + 8) {
                dst.copy_from_slice(&pixels[r * 8..r * 8 + 8]);
            }
        }
    }

    /// The stored sample at (row, col) of this component.
    #[inline]
    pub(crate) fn at(&self, row: usize, col: usize) -> u8 {
        match self.slot.get(row) {
            Some(&s) if s != NONE => self
                .data
                .get(s as usize * self.stride + col)
                .copied()
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// The upsampled value of this component at full-resolution pixel (y, x).
    pub(crate) fn sample(&self, y: usize, x: usize) -> u8 {
        let g = &self.geometry;
        // The nearer and the next-nearer sample row of a vertically fancy filter.
        let rows = || {
            let r = y / 2;
            if y.is_multiple_of(2) {
                (r, r.saturating_sub(1))
            } else {
                (r, (r + 1).min(g.height.saturating_sub(1)))
            }
        };
        match g.upsample {
            Upsample::Full => self.at(y, x),
            Upsample::H2V1Box => self.at(y, x / 2),
            Upsample::H2V2Box => self.at(y / 2, x / 2),
            Upsample::H2V1Fancy => {
                let c = x / 2;
                let v = |c: usize| i32::from(self.at(y, c));
                let out = if x.is_multiple_of(2) {
                    if c == 0 {
                        v(0)
                    } else {
                        (v(c) * 3 + v(c - 1) + 1) >> 2
                    }
                } else if c + 1 >= g.width {
                    v(c)
                } else {
                    (v(c) * 3 + v(c + 1) + 2) >> 2
                };
                out as u8
            }
            Upsample::H1V2Fancy => {
                let (near, far) = rows();
                let bias = if y.is_multiple_of(2) { 1 } else { 2 };
                let v = i32::from(self.at(near, x)) * 3 + i32::from(self.at(far, x));
                ((v + bias) >> 2) as u8
            }
            Upsample::H2V2Fancy => {
                let (near, far) = rows();
                let colsum =
                    |c: usize| i32::from(self.at(near, c)) * 3 + i32::from(self.at(far, c));
                let c = x / 2;
                let out = if x.is_multiple_of(2) {
                    if c == 0 {
                        (colsum(0) * 4 + 8) >> 4
                    } else {
                        (colsum(c) * 3 + colsum(c - 1) + 8) >> 4
                    }
                } else if c + 1 >= g.width {
                    (colsum(c) * 4 + 7) >> 4
                } else {
                    (colsum(c) * 3 + colsum(c + 1) + 7) >> 4
                };
                out as u8
            }
        }
    }
}

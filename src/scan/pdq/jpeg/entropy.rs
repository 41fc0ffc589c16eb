//! Huffman decoding of baseline JPEG blocks, coefficient for coefficient what libjpeg's
//! `decode_mcu` produces for a well-formed stream.
//!
//! Anything libjpeg would only *warn* about (a bad code, data that runs out, a missing or
//! misnumbered restart marker) is [`Unsupported`] here, so the caller falls back to libjpeg
//! and gets libjpeg's own recovery, bit for bit.

use super::header::{Unsupported, ZIGZAG};

/// Bits looked up at once; longer codes take the canonical slow path.
const LOOKUP_BITS: u32 = 9;

/// A Huffman table in decoding form (`jpeg_make_d_derived_tbl`).
#[derive(Debug, Clone)]
pub(crate) struct HuffTable {
    /// For each `LOOKUP_BITS`-bit prefix: code length << 8 | symbol, or 0 for longer codes.
    lookup: Vec<u16>,
    /// Largest code of each length (index 1..=16), -1 when there is none.
    maxcode: [i32; 18],
    /// Symbol index = code + `valoffset[len]`.
    valoffset: [i32; 17],
    symbols: Vec<u8>,
}

impl HuffTable {
    /// Builds the canonical code from a DHT segment's counts and symbols; rejects tables
    /// libjpeg rejects (over-full code space, DC symbols above 15).
    pub(crate) fn new(counts: &[u8; 16], symbols: &[u8], dc: bool) -> Result<Self, Unsupported> {
        if symbols.len() > 256 || (dc && symbols.iter().any(|&s| s > 15)) {
            return Err(Unsupported);
        }
        let mut lookup = vec![0u16; 1 << LOOKUP_BITS];
        let mut maxcode = [-1i32; 18];
        let mut valoffset = [0i32; 17];
        let (mut code, mut p) = (0i32, 0usize);
        for len in 1..=16usize {
            let n = usize::from(counts[len - 1]);
            if n > 0 {
                valoffset[len] = p as i32 - code;
                for _ in 0..n {
                    if len as u32 <= LOOKUP_BITS {
                        let shift = LOOKUP_BITS - len as u32;
                        let first = (code as usize) << shift;
                        let entry = (len as u16) << 8 | u16::from(symbols[p]);
                        lookup[first..first + (1 << shift)].fill(entry);
                    }
                    code += 1;
                    p += 1;
                }
                maxcode[len] = code - 1;
            }
            if code >= 1 << len {
                return Err(Unsupported);
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        Ok(HuffTable {
            lookup,
            maxcode,
            valoffset,
            symbols: symbols.to_vec(),
        })
    }
}

/// An MSB-first bit reader over entropy-coded data with 0xFF00 unstuffing. At a marker (or
/// the end of the data) it supplies zero bits and counts them, as libjpeg does; consuming
/// any of them means the stream was short, which the caller treats as unsupported.
pub(crate) struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    nbits: u32,
    /// Zero bits supplied past a marker, at the low end of `acc`.
    fake: u32,
}

impl<'a> Bits<'a> {
    pub(crate) fn new(data: &'a [u8], pos: usize) -> Self {
        Bits {
            data,
            pos,
            acc: 0,
            nbits: 0,
            fake: 0,
        }
    }

    /// Tops the buffer up to at least 57 bits.
    #[inline]
    fn refill(&mut self) {
        if self.nbits > 56 {
            return;
        }
        // Fast path: the next 8 bytes hold no 0xFF (no stuffing, no marker), so as many
        // whole bytes as fit go in at once.
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let v = u64::from_be_bytes(word);
            let inverted = !v;
            let has_ff =
                inverted.wrapping_sub(0x0101_0101_0101_0101) & !inverted & 0x8080_8080_8080_8080;
            if has_ff == 0 {
                let bits = (64 - self.nbits) / 8 * 8;
                self.acc |= (v >> (64 - bits)) << (64 - self.nbits - bits);
                self.nbits += bits;
                self.pos += (bits / 8) as usize;
                return;
            }
        }
        while self.nbits <= 56 {
            let byte = match self.data.get(self.pos) {
                Some(&b) if b != 0xFF => {
                    self.pos += 1;
                    b
                }
                Some(_) => {
                    let mut p = self.pos + 1;
                    while self.data.get(p) == Some(&0xFF) {
                        p += 1;
                    }
                    if self.data.get(p) == Some(&0) {
                        self.pos = p + 1;
                        0xFF
                    } else {
                        self.fake += 8;
                        0
                    }
                }
                None => {
                    self.fake += 8;
                    0
                }
            };
            self.acc |= u64::from(byte) << (56 - self.nbits);
            self.nbits += 8;
        }
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.nbits -= n;
    }

    /// `n` (1..=16) bits as an unsigned value; the buffer must hold them.
    #[inline]
    fn take(&mut self, n: u32) -> i32 {
        let v = (self.acc >> (64 - n)) as i32;
        self.consume(n);
        v
    }

    /// One Huffman symbol; the buffer must hold at least 16 bits.
    #[inline]
    fn symbol(&mut self, t: &HuffTable) -> Result<u8, Unsupported> {
        let entry = t.lookup[(self.acc >> (64 - LOOKUP_BITS)) as usize];
        if entry != 0 {
            self.consume(u32::from(entry >> 8));
            return Ok(entry as u8);
        }
        for len in LOOKUP_BITS + 1..=16 {
            let code = (self.acc >> (64 - len)) as i32;
            if code <= t.maxcode[len as usize] {
                self.consume(len);
                let i = code + t.valoffset[len as usize];
                return t.symbols.get(i as usize).copied().ok_or(Unsupported);
            }
        }
        Err(Unsupported)
    }

    /// Decodes one block into `block` (natural order; must be zeroed), updating the DC
    /// predictor. Returns whether any AC coefficient is non-zero.
    pub(crate) fn block(
        &mut self,
        dc: &HuffTable,
        ac: &HuffTable,
        last_dc: &mut i32,
        block: &mut [i16; 64],
    ) -> Result<bool, Unsupported> {
        self.refill();
        let s = u32::from(self.symbol(dc)?);
        let diff = if s == 0 {
            0
        } else {
            self.refill();
            extend(self.take(s), s)
        };
        *last_dc = last_dc.wrapping_add(diff);
        block[0] = *last_dc as i16;
        let mut any_ac = false;
        let mut k = 1usize;
        while k < 64 {
            self.refill();
            let rs = self.symbol(ac)?;
            let (r, s) = (usize::from(rs >> 4), u32::from(rs & 15));
            if s != 0 {
                k += r;
                let v = extend(self.take(s), s);
                // libjpeg's natural-order table maps positions past 63 to 63.
                block[ZIGZAG[k.min(63)]] = v as i16;
                any_ac = true;
            } else if r != 15 {
                break;
            } else {
                k += 15;
            }
            k += 1;
        }
        if self.fake > 512 {
            // The data ran out long ago; stop decoding zeros.
            return Err(Unsupported);
        }
        Ok(any_ac)
    }

    /// At a restart boundary: drops the padding bits and reads the expected `RSTn` marker.
    pub(crate) fn restart(&mut self, n: u8) -> Result<(), Unsupported> {
        self.check()?;
        // Only the padding of the last byte may be left; more real data is garbage.
        if self.nbits - self.fake >= 8 {
            return Err(Unsupported);
        }
        let mut p = self.pos;
        if self.data.get(p) != Some(&0xFF) {
            return Err(Unsupported);
        }
        while self.data.get(p) == Some(&0xFF) {
            p += 1;
        }
        if self.data.get(p) != Some(&(0xD0 + n)) {
            return Err(Unsupported);
        }
        self.pos = p + 1;
        self.acc = 0;
        self.nbits = 0;
        self.fake = 0;
        Ok(())
    }

    /// Fails if any supplied zero bit was consumed (the stream was truncated).
    pub(crate) fn check(&self) -> Result<(), Unsupported> {
        if self.nbits < self.fake {
            Err(Unsupported)
        } else {
            Ok(())
        }
    }
}

/// `HUFF_EXTEND`: the signed value of an `s`-bit magnitude category.
#[inline]
fn extend(v: i32, s: u32) -> i32 {
    if v < 1 << (s - 1) {
        v - (1 << s) + 1
    } else {
        v
    }
}

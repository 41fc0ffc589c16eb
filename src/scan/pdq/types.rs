//! The PDQ hash value: 256 bits plus the quality of the image it came from.

use std::fmt;

/// A 256-bit PDQ hash and its quality (0–100).
///
/// Bit `k` (coefficient `(k / 16, k % 16)` of the 16×16 DCT) lives in `bits[k >> 4]` at
/// position `k & 15`, as in the reference's `Hash256`; the hex form prints `bits[15]` first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PdqHash {
    /// The 16 16-bit words of the hash.
    pub bits: [u16; 16],
    /// 0–100; images below `scan.pdq_min_quality` are too flat to match on. A hash parsed from
    /// text carries no quality and has 0 here.
    pub quality: u8,
}

/// Why a string is not a PDQ hash.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// Not 64 characters long.
    #[error("expected 64 hex digits, found {0} characters")]
    Length(usize),
    /// A character outside `0-9a-fA-F`.
    #[error("invalid hex digit {0:?}")]
    Digit(char),
}

impl PdqHash {
    /// Builds a hash from its 16 words, with quality 0.
    pub fn from_words(bits: [u16; 16]) -> PdqHash {
        PdqHash { bits, quality: 0 }
    }

    /// The 64-digit lowercase hex form (`Hash256::format`: `bits[15]` first, `%04x` each).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for w in self.bits.iter().rev() {
            s.push_str(&format!("{w:04x}"));
        }
        s
    }

    /// Parses the 64-digit hex form (either case); quality is 0.
    pub fn from_hex(s: &str) -> Result<PdqHash, HexError> {
        let n = s.chars().count();
        if n != 64 {
            return Err(HexError::Length(n));
        }
        let mut bits = [0u16; 16];
        for (i, c) in s.chars().enumerate() {
            let d = c.to_digit(16).ok_or(HexError::Digit(c))? as u16;
            let word = 15 - i / 4;
            bits[word] = (bits[word] << 4) | d;
        }
        Ok(PdqHash { bits, quality: 0 })
    }

    /// Hamming distance of the bits (quality is ignored).
    pub fn distance(&self, other: &PdqHash) -> u32 {
        distance_words(&self.as_u64s(), &other.as_u64s())
    }

    /// The bits packed as four `u64`s: word `i` holds `bits[4i..4i+4]`, lowest first.
    pub fn as_u64s(&self) -> [u64; 4] {
        let mut out = [0u64; 4];
        for (i, w) in self.bits.iter().enumerate() {
            out[i / 4] |= u64::from(*w) << (16 * (i % 4));
        }
        out
    }

    /// The inverse of [`PdqHash::as_u64s`], with quality 0.
    pub fn from_u64s(words: [u64; 4]) -> PdqHash {
        let mut bits = [0u16; 16];
        for (i, b) in bits.iter_mut().enumerate() {
            *b = (words[i / 4] >> (16 * (i % 4))) as u16;
        }
        PdqHash { bits, quality: 0 }
    }

    /// True when bit `k` (0..256) is set.
    pub fn bit(&self, k: usize) -> bool {
        self.bits
            .get(k >> 4)
            .is_some_and(|w| w >> (k & 15) & 1 == 1)
    }
}

/// Hamming distance of two hashes in packed form.
pub(crate) fn distance_words(a: &[u64; 4], b: &[u64; 4]) -> u32 {
    (a[0] ^ b[0]).count_ones()
        + (a[1] ^ b[1]).count_ones()
        + (a[2] ^ b[2]).count_ones()
        + (a[3] ^ b[3]).count_ones()
}

impl fmt::Display for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22";

    #[test]
    fn hex_round_trips_and_orders_words_high_first() {
        let h = PdqHash::from_hex(HEX).unwrap();
        assert_eq!(h.to_hex(), HEX);
        assert_eq!(h.bits[15], 0xd8f8);
        assert_eq!(h.bits[0], 0x9b22);
        // Bit 0 is the lowest bit of the last hex digit (2 = 0b0010).
        assert!(!h.bit(0));
        assert!(h.bit(1));
        assert_eq!(PdqHash::from_hex(&HEX.to_uppercase()).unwrap(), h);
    }

    #[test]
    fn hex_errors() {
        assert_eq!(PdqHash::from_hex("abc"), Err(HexError::Length(3)));
        let bad = format!("{}g", &HEX[..63]);
        assert_eq!(PdqHash::from_hex(&bad), Err(HexError::Digit('g')));
        let multibyte = format!("{}é", &HEX[..63]);
        assert_eq!(PdqHash::from_hex(&multibyte), Err(HexError::Digit('é')));
    }

    #[test]
    fn distance_counts_differing_bits() {
        let a = PdqHash::from_hex(HEX).unwrap();
        let mut b = a;
        assert_eq!(a.distance(&b), 0);
        b.bits[3] ^= 0b1011;
        b.bits[15] ^= 0x8000;
        b.quality = 7;
        assert_eq!(a.distance(&b), 4);
        assert_eq!(PdqHash::from_u64s(a.as_u64s()), a);
    }
}

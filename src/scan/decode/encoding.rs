//! Undoing `Content-Encoding` (gzip, deflate, br, identity, stacked) with bounded output.
//!
//! Each coding streams through its decoder in chunks. Output stops at `max_body + 1` bytes
//! (so a 10 GB gzip bomb costs one `max_body` buffer), and a step whose output grows past
//! `max_decode_ratio` times the input consumed so far is cut as a bomb (ClamAV's approach).

use std::io::{self, Read};

use bytes::Bytes;
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use super::DecodeLimits;
use crate::scan::ScanError;

/// Read granularity while decoding; limits are checked after every chunk.
const CHUNK: usize = 64 << 10;

/// Most codings (`identity` aside) undone for one body; a longer chain is a limit.
const MAX_CODINGS: usize = 5;

/// Decodes `bytes` as sent with `Content-Encoding: encoding` (a comma-separated list,
/// applied by the origin in order, so undone in reverse; at most [`MAX_CODINGS`] of them).
pub fn decode_content_encoding(
    bytes: &Bytes,
    encoding: &str,
    limits: &DecodeLimits,
) -> Result<Bytes, ScanError> {
    let codings: Vec<String> = encoding
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    // Each step may cost a whole max_body of output whatever its ratio (a stored gzip layer
    // expands 1:1), so a long chain multiplies the work a small body buys (curl caps its
    // chain at 5 for the same reason, CVE-2022-32206).
    if codings.len() > MAX_CODINGS {
        return Err(ScanError::Limit(format!(
            "{} stacked codings in Content-Encoding (at most {MAX_CODINGS} are undone)",
            codings.len()
        )));
    }
    let mut body = bytes.clone();
    for coding in codings.iter().rev() {
        body = decode_one(&body, coding, limits)?;
    }
    Ok(body)
}

/// Undoes one coding.
fn decode_one(input: &[u8], coding: &str, limits: &DecodeLimits) -> Result<Bytes, ScanError> {
    if input.is_empty() {
        // Origins send `Content-Encoding: gzip` on empty bodies (204, HEAD-like responses).
        return Ok(Bytes::new());
    }
    let counter = CountingReader {
        inner: input,
        read: 0,
    };
    match coding {
        "gzip" | "x-gzip" => drain(MultiGzDecoder::new(counter), coding, limits),
        "deflate" if looks_like_zlib(input) => drain(ZlibDecoder::new(counter), coding, limits),
        "deflate" => drain(DeflateDecoder::new(counter), coding, limits),
        "br" => drain(brotli::Decompressor::new(counter, 4096), coding, limits),
        other => Err(ScanError::Undecodable(format!(
            "unsupported Content-Encoding {other:?}"
        ))),
    }
}

/// RFC 1950 header check: CM = 8 (deflate), CINFO ≤ 7 and the FCHECK multiple of 31.
/// Servers send both zlib-wrapped and raw deflate as `deflate`.
fn looks_like_zlib(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// A decoder's input side, counting how many compressed bytes it has consumed.
struct CountingReader<'a> {
    inner: &'a [u8],
    read: u64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Gives the consumed-input count of the reader under a decoder.
trait Consumed {
    fn consumed(&self) -> u64;
}

impl Consumed for MultiGzDecoder<CountingReader<'_>> {
    fn consumed(&self) -> u64 {
        self.get_ref().read
    }
}
impl Consumed for ZlibDecoder<CountingReader<'_>> {
    fn consumed(&self) -> u64 {
        self.get_ref().read
    }
}
impl Consumed for DeflateDecoder<CountingReader<'_>> {
    fn consumed(&self) -> u64 {
        self.get_ref().read
    }
}
impl Consumed for brotli::Decompressor<CountingReader<'_>> {
    fn consumed(&self) -> u64 {
        self.get_ref().read
    }
}

/// Reads the decoder to its end in chunks, enforcing `max_body` and the ratio limit.
fn drain<D: Read + Consumed>(
    mut decoder: D,
    coding: &str,
    limits: &DecodeLimits,
) -> Result<Bytes, ScanError> {
    let cap = limits.max_body.saturating_add(1);
    let mut out: Vec<u8> = Vec::with_capacity(CHUNK.min(cap));
    loop {
        let want = CHUNK.min(cap - out.len());
        if want == 0 {
            return Err(ScanError::Limit(format!(
                "{coding}-decoded body is larger than scan.max_body ({} bytes)",
                limits.max_body
            )));
        }
        let start = out.len();
        out.resize(start + want, 0);
        let n = match decoder.read(&mut out[start..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(ScanError::Undecodable(format!("{coding}: {e}"))),
        };
        out.truncate(start + n);
        if n == 0 {
            break;
        }
        check_ratio(out.len(), decoder.consumed(), coding, limits)?;
    }
    Ok(Bytes::from(out))
}

/// Fails when `produced` bytes from `consumed` input exceed the configured ratio.
fn check_ratio(
    produced: usize,
    consumed: u64,
    coding: &str,
    limits: &DecodeLimits,
) -> Result<(), ScanError> {
    if limits.max_decode_ratio == 0 || produced <= limits.ratio_floor {
        return Ok(());
    }
    let allowed = limits.max_decode_ratio.saturating_mul(consumed.max(1));
    if produced as u64 > allowed {
        return Err(ScanError::Limit(format!(
            "{coding} expands {consumed} bytes to more than {produced} (ratio above scan.max_decode_ratio {})",
            limits.max_decode_ratio
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::{Duration, Instant};

    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;

    use super::*;

    const TEXT: &[u8] = b"<html><body><p>Hello, decoded world.</p></body></html>";

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }
    fn zlib(b: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }
    fn raw_deflate(b: &[u8]) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }
    fn brotli(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(b).unwrap();
        }
        out
    }
    fn run(bytes: Vec<u8>, enc: &str, limits: &DecodeLimits) -> Result<Bytes, ScanError> {
        decode_content_encoding(&Bytes::from(bytes), enc, limits)
    }

    #[test]
    fn each_coding_and_stacks_decode() {
        let l = DecodeLimits::default();
        for (bytes, enc) in [
            (TEXT.to_vec(), ""),
            (TEXT.to_vec(), "identity"),
            (gzip(TEXT), "gzip"),
            (gzip(TEXT), "X-GZIP"),
            (zlib(TEXT), "deflate"),
            (raw_deflate(TEXT), "deflate"),
            (brotli(TEXT), "br"),
            (brotli(&gzip(TEXT)), "gzip, br"),
            (gzip(&zlib(&brotli(TEXT))), "br,deflate, gzip"),
            (gzip(TEXT), "identity, gzip"),
            ([gzip(b"<html>"), gzip(&TEXT[6..])].concat(), "gzip"),
            (Vec::new(), "gzip"),
        ] {
            let want: &[u8] = if bytes.is_empty() { b"" } else { TEXT };
            let got = run(bytes, enc, &l).unwrap_or_else(|e| panic!("{enc}: {e}"));
            assert_eq!(&got[..], want, "{enc}");
        }
    }

    #[test]
    fn unknown_and_corrupt_codings_are_undecodable() {
        let l = DecodeLimits::default();
        let mut truncated = gzip(&vec![b'x'; 10_000]);
        truncated.truncate(truncated.len() / 2);
        let mut bad_crc = gzip(TEXT);
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 0xff;
        for (bytes, enc) in [
            (TEXT.to_vec(), "compress"),
            (TEXT.to_vec(), "zstd"),
            (TEXT.to_vec(), "gzip"),
            (truncated, "gzip"),
            (bad_crc, "gzip"),
            (b"\xff\xff\xff\xff garbage".to_vec(), "br"),
            (gzip(TEXT), "gzip, gzip"),
        ] {
            match run(bytes, enc, &l) {
                Err(ScanError::Undecodable(_)) => {}
                other => panic!("{enc}: expected Undecodable, got {other:?}"),
            }
        }
    }

    #[test]
    fn output_is_capped_at_max_body() {
        let l = DecodeLimits {
            max_body: 1000,
            ..DecodeLimits::default()
        };
        assert_eq!(run(gzip(&[b'a'; 1000]), "gzip", &l).unwrap().len(), 1000);
        assert!(matches!(
            run(gzip(&[b'a'; 1001]), "gzip", &l),
            Err(ScanError::Limit(_))
        ));
    }

    /// 10 MB of gzip that expands to ~10 GB: must stop at max_body quickly, in bounded memory.
    #[test]
    fn gzip_bomb_stops_at_max_body() {
        // Concatenated gzip members are one valid body; build 10 MB from one 16 MiB member.
        let member = gzip(&vec![0u8; 16 << 20]);
        let bomb = member.repeat(10_000_000 / member.len() + 1);
        assert!(bomb.len() >= 10_000_000);
        let l = DecodeLimits::default();
        let t = Instant::now();
        match run(bomb, "gzip", &l) {
            Err(ScanError::Limit(m)) => assert!(m.contains("max_body"), "{m}"),
            other => panic!("expected Limit, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    /// With a generous max_body the ratio limit is what stops a bomb, after ratio_floor.
    #[test]
    fn brotli_bomb_stops_at_the_ratio_limit() {
        let bomb = brotli(&vec![0u8; 16 << 20]);
        let l = DecodeLimits {
            max_body: 1 << 30,
            ..DecodeLimits::default()
        };
        let t = Instant::now();
        match run(bomb, "br", &l) {
            Err(ScanError::Limit(m)) => assert!(m.contains("ratio"), "{m}"),
            other => panic!("expected Limit, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    /// Stored (uncompressed) gzip layers decode at a ratio of 1, so no ratio limit catches
    /// them: 40 of them around 8 MiB of zeros, deflated once, are ~60 KB that cost 40 full
    /// `max_body` decodes. The chain is refused before any decoding.
    #[test]
    fn a_long_coding_chain_is_refused_before_decoding() {
        let mut body = vec![0u8; (8 << 20) - (64 << 10)];
        for _ in 0..40 {
            let mut e = GzEncoder::new(Vec::new(), Compression::none());
            e.write_all(&body).unwrap();
            body = e.finish().unwrap();
        }
        let body = gzip(&body);
        let enc = ["gzip"; 41].join(", ");
        let t = Instant::now();
        match run(body, &enc, &DecodeLimits::default()) {
            Err(ScanError::Limit(m)) => assert!(m.contains("codings"), "{m}"),
            other => panic!("expected Limit, got {:?}", other.map(|b| b.len())),
        }
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        // Identity does not count; a chain of MAX_CODINGS still decodes.
        let mut nested = TEXT.to_vec();
        for _ in 0..MAX_CODINGS {
            nested = gzip(&nested);
        }
        let enc = format!("identity, {}", ["gzip"; MAX_CODINGS].join(", "));
        assert_eq!(
            &run(nested, &enc, &DecodeLimits::default()).unwrap()[..],
            TEXT
        );
    }

    #[test]
    fn small_bodies_with_high_ratios_are_fine() {
        // 200 KB of one byte compresses ~1000:1 but stays under the ratio floor.
        let body = vec![b'z'; 200_000];
        let l = DecodeLimits::default();
        assert_eq!(run(gzip(&body), "gzip", &l).unwrap().len(), body.len());
    }
}

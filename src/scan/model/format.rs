//! The model file: a small versioned binary container.
//!
//! ```text
//! magic    8 bytes   "SLUICETM"
//! version  u32 LE    1
//! hlen     u32 LE    length of the header
//! header   hlen      JSON: ModelHeader (feature config, bias, calibration, operating point)
//! weights  4·2^bits  f32 LE, one per hash bucket
//! sha256   32 bytes  of everything before it
//! ```
//! Decoding checks every length, the checksum and that every number is finite, so a truncated
//! or corrupt file is a clear error, never a panic or a silently wrong model.

use sha2::{Digest, Sha256};

use super::{ModelData, ModelHeader};

/// The first bytes of every model file.
pub const MAGIC: &[u8; 8] = b"SLUICETM";
/// The container version this build reads and writes.
pub const VERSION: u32 = 1;
/// Headers are small; anything larger is corrupt.
const MAX_HEADER: usize = 64 * 1024;

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormatError {
    /// Not a sluice model file.
    #[error("not a sluice text model (bad magic)")]
    Magic,
    /// Written by a different format version.
    #[error("unsupported model format version {0} (this build reads version {VERSION})")]
    Version(u32),
    /// Shorter or longer than its header says.
    #[error("model file is truncated or has trailing bytes ({0})")]
    Length(String),
    /// The checksum does not match the contents.
    #[error("model file is corrupt (checksum mismatch)")]
    Checksum,
    /// The header is not valid JSON or has impossible values.
    #[error("bad model header: {0}")]
    Header(String),
    /// A weight is NaN or infinite.
    #[error("model weights contain a non-finite number")]
    Weights,
}

/// Serialises a model; refuses one that [`decode`] would reject.
pub fn encode(model: &ModelData) -> Result<Vec<u8>, FormatError> {
    validate(&model.header)?;
    if model.weights.len() != 1usize << model.header.features.bits {
        return Err(FormatError::Length(
            "weights do not match features.bits".into(),
        ));
    }
    if !model.weights.iter().all(|w| w.is_finite()) {
        return Err(FormatError::Weights);
    }
    let header =
        serde_json::to_vec(&model.header).map_err(|e| FormatError::Header(e.to_string()))?;
    let hlen = u32::try_from(header.len()).map_err(|_| FormatError::Header("too large".into()))?;
    let mut out = Vec::with_capacity(16 + header.len() + model.weights.len() * 4 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&hlen.to_le_bytes());
    out.extend_from_slice(&header);
    for w in &model.weights {
        out.extend_from_slice(&w.to_le_bytes());
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    Ok(out)
}

/// Splits `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], FormatError> {
    if rest.len() < n {
        return Err(FormatError::Length(format!("{what} cut short")));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn u32_le(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

/// Parses and validates a model file.
pub fn decode(bytes: &[u8]) -> Result<ModelData, FormatError> {
    let mut rest = bytes;
    if take(&mut rest, 8, "magic").map_err(|_| FormatError::Magic)? != MAGIC {
        return Err(FormatError::Magic);
    }
    let version = u32_le(take(&mut rest, 4, "version")?);
    if version != VERSION {
        return Err(FormatError::Version(version));
    }
    let hlen = u32_le(take(&mut rest, 4, "header length")?) as usize;
    if hlen > MAX_HEADER {
        return Err(FormatError::Header(format!(
            "header length {hlen} too large"
        )));
    }
    let header_bytes = take(&mut rest, hlen, "header")?;
    let body_end = bytes.len().saturating_sub(32);
    if rest.len() < 32 {
        return Err(FormatError::Length("checksum cut short".into()));
    }
    let (content, sum) = bytes.split_at(body_end);
    if Sha256::digest(content).as_slice() != sum {
        return Err(FormatError::Checksum);
    }
    let header: ModelHeader =
        serde_json::from_slice(header_bytes).map_err(|e| FormatError::Header(e.to_string()))?;
    validate(&header)?;
    let n = 1usize << header.features.bits;
    let weight_bytes = rest.len() - 32;
    if weight_bytes != n * 4 {
        return Err(FormatError::Length(format!(
            "{weight_bytes} bytes of weights, expected {}",
            n * 4
        )));
    }
    let weights: Vec<f32> = rest[..weight_bytes]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if !weights.iter().all(|w| w.is_finite()) {
        return Err(FormatError::Weights);
    }
    Ok(ModelData { header, weights })
}

/// Rejects headers whose numbers would make scoring meaningless or panic.
fn validate(h: &ModelHeader) -> Result<(), FormatError> {
    let bad = |m: &str| Err(FormatError::Header(m.to_string()));
    let f = &h.features;
    if !(8..=24).contains(&f.bits) {
        return bad("features.bits must be in 8..=24");
    }
    if f.char_min > 16 || f.char_max > 16 || f.max_bytes == 0 {
        return bad("char n-gram sizes must be at most 16 and max_bytes positive");
    }
    let finite = [
        f64::from(h.bias),
        f64::from(f.char_weight),
        h.platt_a,
        h.platt_b,
        h.spam_margin,
        h.zero_margin,
    ];
    if !finite.iter().all(|x| x.is_finite()) {
        return bad("non-finite number");
    }
    if h.zero_margin >= h.spam_margin {
        return bad("zero_margin must be below spam_margin");
    }
    if h.platt_a <= 0.0 {
        return bad("platt_a must be positive");
    }
    Ok(())
}

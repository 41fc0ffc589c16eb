//! PDQ perceptual image hashing and near-neighbour matching against `*.pdq` lists.
//!
//! - `decode`: image bytes → luma plane, bounded by `scan.max_image_pixels`, pre-resized to
//!   512×512 by nearest neighbour (JPEG through libjpeg-turbo for bit-exactness).
//! - `hash`: the PDQ algorithm, bit-exact with Meta's C++ reference (hash and quality).
//! - `types`: [`PdqHash`], its hex form and Hamming distance.
//! - `index`: [`PdqIndex`], a multi-index answering "all hashes within distance d".
//! - `list`: `*.pdq` list files.
//! - `classifier`: [`PdqClassifier`], the pipeline's `pdq` classifier.

mod classifier;
mod decode;
mod hash;
mod index;
mod list;
mod types;

#[cfg(test)]
mod fuzz_tests;

pub use classifier::{finding, is_finding_for, PdqClassifier, PdqEntry, PdqMatch, RUNTIME_LIST};
pub use index::PdqIndex;
pub use types::{HexError, PdqHash};

use std::cell::RefCell;

use crate::scan::ScanError;

thread_local! {
    /// Per-thread luma and filter buffers (at most 512×512 `f32` each), reused across images.
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Hashes an image (JPEG, PNG, GIF, WebP or BMP): the same hash and quality as the reference
/// `pdq-photo-hasher`. Images over `max_pixels` fail with [`ScanError::Limit`] before any
/// pixel is decoded; bytes that are not a decodable image fail with [`ScanError::Undecodable`].
pub fn hash_image(bytes: &[u8], max_pixels: u64) -> Result<PdqHash, ScanError> {
    let (data, mut tmp) = BUFFERS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let mut luma = decode::luma_from_bytes(bytes, max_pixels, data)?;
    let hash = hash::hash_luma(&mut luma, &mut tmp);
    BUFFERS.with(|b| *b.borrow_mut() = (luma.data, tmp));
    Ok(hash)
}

/// The eight dihedral PDQ hashes of an image, as `pdq-photo-hasher --pdqdih` prints them:
/// original, rot90, rot180, rot270, flipx, flipy, flipplus1, flipminus1. A rotated or mirrored
/// copy of a listed image is near one of them (ThreatExchange advises matching all eight, not
/// a "canonical" one). Errors as [`hash_image`].
pub fn hash_image_dihedral(bytes: &[u8], max_pixels: u64) -> Result<[PdqHash; 8], ScanError> {
    let (data, mut tmp) = BUFFERS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let mut luma = decode::luma_from_bytes(bytes, max_pixels, data)?;
    let hashes = hash::dihedral_luma(&mut luma, &mut tmp);
    BUFFERS.with(|b| *b.borrow_mut() = (luma.data, tmp));
    Ok(hashes)
}

//! Exact SHA-256 hash lists (`*.sha256`, ClamAV `*.hsb`) in `scan.hash_lists`.

use crate::config::ScanConfig;
use crate::scan::{Classifier, Document, Finding, Loaded, ScanError};

/// The loaded digest lists (stub: replaced by the digest work).
#[derive(Default)]
pub struct DigestList;

impl DigestList {
    /// Loads from the configured directory; a missing directory loads an empty set.
    pub fn load(_cfg: &ScanConfig) -> Loaded<DigestList> {
        Ok((DigestList, Vec::new()))
    }
}

impl Classifier for DigestList {
    fn name(&self) -> &'static str {
        "digest"
    }
    fn classify(&self, _doc: &Document) -> Result<Vec<Finding>, ScanError> {
        Ok(Vec::new())
    }
    fn fingerprint(&self) -> String {
        String::new()
    }
}

//! PDQ perceptual image hashing and near-neighbour matching against `*.pdq` lists.

use crate::config::ScanConfig;
use crate::scan::{Classifier, Document, Finding, Loaded, ScanError};

/// PDQ lists and their index (stub: replaced by the pdq work).
#[derive(Default)]
pub struct PdqClassifier;

impl PdqClassifier {
    /// Loads from the configured directory; a missing directory loads an empty set.
    pub fn load(_cfg: &ScanConfig) -> Loaded<PdqClassifier> {
        Ok((PdqClassifier, Vec::new()))
    }
}

impl Classifier for PdqClassifier {
    fn name(&self) -> &'static str {
        "pdq"
    }
    fn classify(&self, _doc: &Document) -> Result<Vec<Finding>, ScanError> {
        Ok(Vec::new())
    }
    fn fingerprint(&self) -> String {
        String::new()
    }
}

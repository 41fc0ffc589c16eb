//! SpamAssassin-style rules from `scan.rules/*.cf`.

use crate::config::ScanConfig;
use crate::scan::{Classifier, Document, Finding, Loaded, ScanError};

/// A compiled rule set (stub: replaced by the rules work).
#[derive(Default)]
pub struct RuleSet;

impl RuleSet {
    /// Loads from the configured directory; a missing directory loads an empty set.
    pub fn load(_cfg: &ScanConfig) -> Loaded<RuleSet> {
        Ok((RuleSet, Vec::new()))
    }
}

impl Classifier for RuleSet {
    fn name(&self) -> &'static str {
        "rules"
    }
    fn classify(&self, _doc: &Document) -> Result<Vec<Finding>, ScanError> {
        Ok(Vec::new())
    }
    fn fingerprint(&self) -> String {
        String::new()
    }
}

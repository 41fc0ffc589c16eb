//! The verdict memo: verdicts in the sled `verdicts` tree keyed by decoded-body SHA-256, plus
//! an in-process map from (raw-bytes SHA-256, Content-Encoding) to decoded SHA-256 so that a
//! compressed body seen before is recognised without decoding it again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::scan::{Class, Verdict};

/// Entries kept in the raw→decoded map before it is cleared (about 100 bytes each).
const RAW_MAP_CAP: usize = 100_000;

/// A raw body's identity: SHA-256 of the bytes as received and the normalised coding list.
pub type RawKey = ([u8; 32], String);

/// Memoised verdicts.
pub struct Memo {
    tree: sled::Tree,
    raw: Mutex<HashMap<RawKey, String>>,
}

impl Memo {
    /// A memo over the `verdicts` tree of the store.
    pub fn new(tree: sled::Tree) -> Memo {
        Memo {
            tree,
            raw: Mutex::new(HashMap::new()),
        }
    }

    /// The stored verdict for `sha256`, if it was produced by `ruleset`. Store errors and
    /// unreadable entries count as misses (the body is simply scanned again).
    pub fn get(&self, sha256: &str, ruleset: &str) -> Option<Verdict> {
        let bytes = match self.tree.get(sha256.as_bytes()) {
            Ok(v) => v?,
            Err(e) => {
                tracing::warn!(error = %e, "verdict memo read failed");
                return None;
            }
        };
        let v: Verdict = serde_json::from_slice(&bytes).ok()?;
        (v.ruleset == ruleset).then_some(v)
    }

    /// Stores a verdict (replacing one from an older ruleset). Unscanned verdicts are not
    /// stored: their causes (time, load, limits) are not properties of the bytes.
    pub fn put(&self, v: &Verdict) {
        if v.class == Class::Unscanned || v.sha256.is_empty() {
            return;
        }
        match serde_json::to_vec(v) {
            Ok(json) => {
                if let Err(e) = self.tree.insert(v.sha256.as_bytes(), json) {
                    tracing::warn!(error = %e, "verdict memo write failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "verdict not serialisable"),
        }
    }

    /// The decoded SHA-256 of a raw body seen before.
    pub fn decoded_sha(&self, key: &RawKey) -> Option<String> {
        self.raw
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Remembers that `key` decodes to a body with SHA-256 `decoded`.
    pub fn remember(&self, key: RawKey, decoded: &str) {
        let mut map = self.raw.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= RAW_MAP_CAP {
            map.clear();
        }
        map.insert(key, decoded.to_string());
    }
}

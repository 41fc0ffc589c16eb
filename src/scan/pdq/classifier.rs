//! The PDQ list classifier: hash an image, report list entries within the match distance.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::decode;
use super::hash_image;
use super::index::PdqIndex;
use super::list;
use super::types::PdqHash;
use crate::config::ScanConfig;
use crate::scan::{sha256_hex, Classifier, Document, Finding, Loaded, ScanError};

/// The list name given to entries added at runtime without one.
pub const RUNTIME_LIST: &str = "runtime";

/// Media types this classifier decodes; another `image/*` type it cannot sniff is skipped.
const DECODED_TYPES: [&str; 6] = [
    "image/jpeg",
    "image/pjpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/bmp",
];

/// One hash of a list, as loaded or added at runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdqEntry {
    pub hash: PdqHash,
    /// The finding's rule: the line's label, else the list name.
    pub rule: String,
    /// The list file's stem (or the name given at runtime).
    pub list: String,
}

/// One list entry close to a hashed image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdqMatch {
    pub entry: PdqEntry,
    pub distance: u32,
}

#[derive(Default)]
struct State {
    index: PdqIndex,
    entries: HashMap<u64, PdqEntry>,
    next_id: u64,
    /// Order-independent digest of the entries: lane-wise wrapping sum of their SHA-256s.
    digest: [u64; 4],
}

impl State {
    fn entry_digest(e: &PdqEntry) -> [u64; 4] {
        let hex = sha256_hex(format!("{}\0{}\0{}", e.hash.to_hex(), e.rule, e.list).as_bytes());
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u64::from_str_radix(&hex[i * 16..(i + 1) * 16], 16).unwrap_or(0);
        }
        out
    }

    fn add(&mut self, entry: PdqEntry) -> bool {
        let exists = self.index.query(&entry.hash, 0).iter().any(|(id, _)| {
            self.entries
                .get(id)
                .is_some_and(|e| e.rule == entry.rule && e.list == entry.list)
        });
        if exists {
            return false;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.index.insert(&entry.hash, id);
        let d = Self::entry_digest(&entry);
        self.digest
            .iter_mut()
            .zip(d)
            .for_each(|(a, b)| *a = a.wrapping_add(b));
        self.entries.insert(id, entry);
        true
    }

    fn remove(&mut self, hash: &PdqHash) -> usize {
        let ids: Vec<u64> = self
            .index
            .query(hash, 0)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for id in &ids {
            self.index.remove(hash, *id);
            if let Some(entry) = self.entries.remove(id) {
                let d = Self::entry_digest(&entry);
                self.digest
                    .iter_mut()
                    .zip(d)
                    .for_each(|(a, b)| *a = a.wrapping_sub(b));
            }
        }
        ids.len()
    }
}

/// PDQ lists and their index; entries can be added and removed while scans run.
pub struct PdqClassifier {
    state: RwLock<State>,
    max_distance: u32,
    min_quality: u8,
    max_pixels: u64,
}

impl Default for PdqClassifier {
    fn default() -> Self {
        PdqClassifier::empty(&ScanConfig::default())
    }
}

impl PdqClassifier {
    /// Loads from the configured directory; a missing directory loads an empty set.
    pub fn load(cfg: &ScanConfig) -> Loaded<PdqClassifier> {
        let lists = list::load_dir(&cfg.hash_lists)?;
        let classifier = PdqClassifier::empty(cfg);
        {
            let mut state = classifier.write();
            for l in lists {
                for e in l.entries {
                    let rule = e.label.unwrap_or_else(|| l.name.clone());
                    state.add(PdqEntry {
                        hash: e.hash,
                        rule,
                        list: l.name.clone(),
                    });
                }
            }
        }
        Ok((classifier, Vec::new()))
    }

    /// A classifier with no entries and the thresholds of `cfg`.
    pub fn empty(cfg: &ScanConfig) -> PdqClassifier {
        PdqClassifier {
            state: RwLock::new(State::default()),
            max_distance: cfg.pdq_distance,
            min_quality: cfg.pdq_min_quality,
            max_pixels: cfg.max_image_pixels,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a hash under `label` to the runtime list; false if that entry already exists.
    pub fn add(&self, hash: PdqHash, label: &str) -> bool {
        self.add_to_list(hash, label, RUNTIME_LIST)
    }

    /// Adds a hash to a named list; an empty label makes the list name the rule.
    pub fn add_to_list(&self, hash: PdqHash, label: &str, list: &str) -> bool {
        let rule = if label.is_empty() { list } else { label };
        let hash = PdqHash::from_words(hash.bits);
        self.write().add(PdqEntry {
            hash,
            rule: rule.to_string(),
            list: list.to_string(),
        })
    }

    /// Removes every entry with exactly these bits; returns how many there were.
    pub fn remove(&self, hash: &PdqHash) -> usize {
        self.write().remove(hash)
    }

    /// Number of entries loaded or added.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// True when no entries are loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All entries, ordered by list, then hash, then rule (for listings).
    pub fn entries(&self) -> Vec<PdqEntry> {
        let mut v: Vec<PdqEntry> = self.read().entries.values().cloned().collect();
        v.sort_by(|a, b| (&a.list, a.hash.bits, &a.rule).cmp(&(&b.list, b.hash.bits, &b.rule)));
        v
    }

    /// Entries within the configured distance of `hash`, nearest first (quality not checked).
    pub fn matches(&self, hash: &PdqHash) -> Vec<PdqMatch> {
        let state = self.read();
        state
            .index
            .query(hash, self.max_distance)
            .into_iter()
            .filter_map(|(id, distance)| {
                state.entries.get(&id).map(|e| PdqMatch {
                    entry: e.clone(),
                    distance,
                })
            })
            .collect()
    }

    /// The PDQ hash of a document's image; `None` when the body is not an image this
    /// classifier decodes (e.g. SVG). A supported type that fails to decode is an error.
    pub fn hash_of(&self, doc: &Document) -> Result<Option<PdqHash>, ScanError> {
        if !doc.is_image() {
            return Ok(None);
        }
        if decode::sniff(&doc.body).is_none() && !DECODED_TYPES.contains(&doc.media_type.as_str()) {
            return Ok(None);
        }
        hash_image(&doc.body, self.max_pixels).map(Some)
    }
}

impl Classifier for PdqClassifier {
    fn name(&self) -> &'static str {
        "pdq"
    }

    fn classify(&self, doc: &Document) -> Result<Vec<Finding>, ScanError> {
        let Some(hash) = self.hash_of(doc)? else {
            return Ok(Vec::new());
        };
        if hash.quality < self.min_quality || self.is_empty() {
            return Ok(Vec::new());
        }
        let findings = self
            .matches(&hash)
            .into_iter()
            .map(|m| Finding {
                classifier: "pdq".to_string(),
                rule: m.entry.rule,
                score: 0.0,
                detail: format!(
                    "distance {} to {} (image pdq {} quality {})",
                    m.distance,
                    m.entry.hash.to_hex(),
                    hash.to_hex(),
                    hash.quality
                ),
            })
            .collect();
        Ok(findings)
    }

    fn fingerprint(&self) -> String {
        let state = self.read();
        let mut text = format!(
            "pdq v1 n={} d={} q={} ",
            state.entries.len(),
            self.max_distance,
            self.min_quality
        );
        for w in state.digest {
            text.push_str(&format!("{w:016x}"));
        }
        sha256_hex(text.as_bytes())[..16].to_string()
    }
}

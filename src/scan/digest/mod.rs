//! Exact SHA-256 hash lists (`*.sha256`, ClamAV `*.hsb`) in `scan.hash_lists`.
//!
//! `*.sha256`: `<64 hex> [label]` per line (also `sha256sum` output), `#` comments.
//! `*.hsb`: ClamAV `sha256:size:Name[:flevel]`; the body length must equal `size` (`*` = any).
//! MD5/SHA-1 `.hsb` lines are skipped with a warning (sluice keys bodies by SHA-256 only).
//! Entries can be added and removed at run time (admin API); the fingerprint follows.

use foldhash::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

mod parse;

use crate::config::ScanConfig;
use crate::scan::{Classifier, Document, Finding, LoadError, Loaded, ScanError};

/// One listed hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestEntry {
    /// Label from the list (the ClamAV signature name for `.hsb`); may be empty.
    pub label: String,
    /// The list it came from: a file name (`local.sha256`) or a runtime list name.
    pub list: String,
    /// Required body length (`.hsb` only).
    pub size: Option<u64>,
}

/// A runtime edit that could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// The hash is not 64 hex digits.
    #[error("not a SHA-256 hash (64 hex digits): {0}")]
    BadHash(String),
}

#[derive(Default)]
struct Inner {
    map: HashMap<[u8; 32], Vec<DigestEntry>>,
    /// XOR of a digest of every entry: order-independent and updated in O(1).
    fold: [u8; 32],
}

/// The loaded digest lists.
#[derive(Default)]
pub struct DigestList {
    inner: RwLock<Inner>,
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

fn entry_digest(hash: &[u8; 32], e: &DigestEntry) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(hash);
    h.update(e.label.as_bytes());
    h.update([0]);
    h.update(e.list.as_bytes());
    h.update([0]);
    h.update(e.size.map(|s| s.to_string()).unwrap_or_default().as_bytes());
    h.finalize().into()
}

impl Inner {
    fn insert(&mut self, hash: [u8; 32], e: DigestEntry) {
        let entries = self.map.entry(hash).or_default();
        if entries.contains(&e) {
            return;
        }
        xor(&mut self.fold, &entry_digest(&hash, &e));
        entries.push(e);
    }
}

fn xor(acc: &mut [u8; 32], d: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(d) {
        *a ^= b;
    }
}

impl DigestList {
    /// Loads from the configured directory; a missing directory loads an empty set.
    pub fn load(cfg: &ScanConfig) -> Loaded<DigestList> {
        Self::load_dir(&cfg.hash_lists)
    }

    /// Loads every `*.sha256` and `*.hsb` file of `dir`, in file-name order.
    pub fn load_dir(dir: &Path) -> Loaded<DigestList> {
        let list = DigestList::default();
        if !dir.exists() {
            return Ok((list, Vec::new()));
        }
        let at_dir = |message: String| {
            vec![LoadError {
                file: dir.to_path_buf(),
                line: 0,
                message,
            }]
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|e| at_dir(format!("cannot read hash list directory: {e}")))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "sha256" || x == "hsb"))
            .collect();
        paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let mut inner = Inner::default();
        for path in paths {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    parse::parse_file(&path, &bytes, &mut inner, &mut errors, &mut warnings)
                }
                Err(e) => errors.push(LoadError {
                    file: path,
                    line: 0,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((
            DigestList {
                inner: RwLock::new(inner),
            },
            warnings,
        ))
    }

    /// Adds an entry at run time (e.g. from the admin API).
    pub fn add(&self, hex: &str, label: &str, list: &str) -> Result<(), DigestError> {
        let (hash, e) = runtime_entry(hex, label, list)?;
        self.write().insert(hash, e);
        Ok(())
    }

    /// Removes the runtime entry (no size) with this label and list; true when it was there.
    pub fn remove_entry(&self, hex: &str, label: &str, list: &str) -> Result<bool, DigestError> {
        let (hash, e) = runtime_entry(hex, label, list)?;
        let mut inner = self.write();
        let Some(entries) = inner.map.get_mut(&hash) else {
            return Ok(false);
        };
        let Some(pos) = entries.iter().position(|x| *x == e) else {
            return Ok(false);
        };
        entries.remove(pos);
        if entries.is_empty() {
            inner.map.remove(&hash);
        }
        xor(&mut inner.fold, &entry_digest(&hash, &e));
        Ok(true)
    }

    /// Removes every entry for a hash; returns how many were removed.
    pub fn remove(&self, hex: &str) -> Result<usize, DigestError> {
        let hash = parse_hex(&hex.to_ascii_lowercase())
            .ok_or_else(|| DigestError::BadHash(hex.to_string()))?;
        let mut inner = self.write();
        let Some(entries) = inner.map.remove(&hash) else {
            return Ok(0);
        };
        for e in &entries {
            xor(&mut inner.fold, &entry_digest(&hash, e));
        }
        Ok(entries.len())
    }

    /// The entries for a hash (empty when unlisted or malformed).
    pub fn lookup(&self, hex: &str) -> Vec<DigestEntry> {
        match parse_hex(&hex.to_ascii_lowercase()) {
            Some(h) => self.read().map.get(&h).cloned().unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Every entry as (lowercase hex, entry), sorted by hash (for paged listings).
    pub fn entries(&self) -> Vec<(String, DigestEntry)> {
        let inner = self.read();
        let mut out: Vec<(String, DigestEntry)> = inner
            .map
            .iter()
            .flat_map(|(h, es)| es.iter().map(move |e| (hex::encode(h), e.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.list.cmp(&b.1.list)));
        out
    }

    /// Number of listed hashes.
    pub fn len(&self) -> usize {
        self.read().map.len()
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while holding the lock cannot leave the map half-updated (each edit is one
    // insert/remove), so a poisoned lock is safe to keep using.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Classifier for DigestList {
    fn name(&self) -> &'static str {
        "digest"
    }

    fn classify(&self, doc: &Document) -> Result<Vec<Finding>, ScanError> {
        let Some(hash) = parse_hex(&doc.sha256.to_ascii_lowercase()) else {
            return Ok(Vec::new());
        };
        let inner = self.read();
        let Some(entries) = inner.map.get(&hash) else {
            return Ok(Vec::new());
        };
        let len = doc.body.len() as u64;
        Ok(entries
            .iter()
            .filter(|e| e.size.is_none_or(|s| s == len))
            .map(|e| finding(&e.label, &e.list))
            .collect())
    }

    fn fingerprint(&self) -> String {
        let inner = self.read();
        let mut s = hex::encode(&inner.fold[..8]);
        s.push_str(&format!("-{}", inner.map.len()));
        s
    }
}

/// The finding of a body listed by the entry with this label and list: named by its label,
/// else its list. Retro-match builds and recognises the same findings with it.
pub fn finding(label: &str, list: &str) -> Finding {
    Finding {
        classifier: "digest".into(),
        rule: crate::scan::list_rule(label, list).to_string(),
        score: 0.0,
        detail: format!("sha256 listed in {list}"),
    }
}

/// A hash and entry added at run time (no size): what the admin API adds and removes.
fn runtime_entry(
    hex: &str,
    label: &str,
    list: &str,
) -> Result<([u8; 32], DigestEntry), DigestError> {
    let hash = parse_hex(&hex.to_ascii_lowercase())
        .ok_or_else(|| DigestError::BadHash(hex.to_string()))?;
    let e = DigestEntry {
        label: label.to_string(),
        list: list.to_string(),
        size: None,
    };
    Ok((hash, e))
}

#[cfg(test)]
mod tests;

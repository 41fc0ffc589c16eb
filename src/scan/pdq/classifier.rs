//! The PDQ list classifier: hash an image, report list entries within the match distance.

use foldhash::HashMap;
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
    /// The listed hash (quality 0: lists carry none).
    pub hash: PdqHash,
    /// The finding's rule: the line's label, else the list name.
    pub rule: String,
    /// The list file's stem (or the name given at runtime).
    pub list: String,
}

/// One list entry close to a hashed image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdqMatch {
    /// The list entry that matched.
    pub entry: PdqEntry,
    /// Hamming distance between the image's hash and the entry's.
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
            state.index.shrink_to_fit();
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
        let rule = crate::scan::list_rule(label, list);
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

    /// Removes the entry [`add_to_list`](Self::add_to_list) made with these arguments;
    /// true when it was there. Other entries with the same bits stay.
    pub fn remove_from_list(&self, hash: PdqHash, label: &str, list: &str) -> bool {
        let rule = crate::scan::list_rule(label, list);
        let hash = PdqHash::from_words(hash.bits);
        let mut state = self.write();
        let id = state.index.query(&hash, 0).into_iter().find_map(|(id, _)| {
            state
                .entries
                .get(&id)
                .is_some_and(|e| e.rule == rule && e.list == list)
                .then_some(id)
        });
        let Some(id) = id else {
            return false;
        };
        state.index.remove(&hash, id);
        if let Some(entry) = state.entries.remove(&id) {
            let d = State::entry_digest(&entry);
            state
                .digest
                .iter_mut()
                .zip(d)
                .for_each(|(a, b)| *a = a.wrapping_sub(b));
        }
        true
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

    /// [`Classifier::classify`] that also returns the image's hash (when it has one), so a
    /// caller can store it with the verdict without hashing twice.
    pub fn classify_with_hash(
        &self,
        doc: &Document,
    ) -> Result<(Option<PdqHash>, Vec<Finding>), ScanError> {
        let Some(hash) = self.hash_of(doc)? else {
            return Ok((None, Vec::new()));
        };
        if hash.quality < self.min_quality || self.is_empty() {
            return Ok((Some(hash), Vec::new()));
        }
        let findings = self
            .matches(&hash)
            .into_iter()
            .map(|m| finding(m.entry.rule, m.distance, &m.entry.hash, &hash))
            .collect();
        Ok((Some(hash), findings))
    }
}

/// The finding of an image (`image`, with its quality) within `distance` of the listed
/// hash `listed`, named `rule`. Retro-match builds and recognises the same findings.
pub fn finding(rule: String, distance: u32, listed: &PdqHash, image: &PdqHash) -> Finding {
    Finding {
        classifier: "pdq".to_string(),
        rule,
        score: 0.0,
        detail: format!(
            "distance {distance} to {} (image pdq {} quality {})",
            listed.to_hex(),
            image.to_hex(),
            image.quality
        ),
    }
}

/// Whether `f` is a finding [`finding`] made for the listed hash `listed_hex` under `rule`.
pub fn is_finding_for(f: &Finding, rule: &str, listed_hex: &str) -> bool {
    f.classifier == "pdq" && f.rule == rule && f.detail.contains(&format!(" to {listed_hex} "))
}

impl Classifier for PdqClassifier {
    fn name(&self) -> &'static str {
        "pdq"
    }

    fn classify(&self, doc: &Document) -> Result<Vec<Finding>, ScanError> {
        self.classify_with_hash(doc).map(|(_, findings)| findings)
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const BRIDGE: &str = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22";
    const Q0003: &str = "54a9f7c321d1443c43ba566e21d4a13989a3553f1472611cbbc5fda59e03b677";

    #[test]
    fn remove_from_list_takes_out_one_entry_of_a_hash() {
        let c = PdqClassifier::default();
        let h = PdqHash::from_hex(BRIDGE).unwrap();
        let empty_digest = c.read().digest;
        assert!(c.add_to_list(h, "old", "a"));
        let one = c.read().digest;
        assert!(c.add_to_list(h, "", "b"));
        assert!(c.remove_from_list(h, "", "b"));
        assert!(!c.remove_from_list(h, "", "b"), "already gone");
        assert!(!c.remove_from_list(h, "other", "a"), "another rule stays");
        let left = c.entries();
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].rule.as_str(), left[0].list.as_str()), ("old", "a"));
        assert_eq!(c.read().digest, one, "the fingerprint follows");
        assert!(c.remove_from_list(h, "old", "a"));
        assert_eq!((c.len(), c.read().digest), (0, empty_digest));
    }

    fn image(rel: &str) -> bytes::Bytes {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/pdq/images")
            .join(rel);
        std::fs::read(path).unwrap().into()
    }

    fn doc(body: bytes::Bytes, media_type: &str) -> Document {
        Document {
            body,
            media_type: media_type.to_string(),
            ..Document::default()
        }
    }

    fn load(lists: &[(&str, String)]) -> (tempfile::TempDir, Loaded<PdqClassifier>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in lists {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let cfg = ScanConfig {
            hash_lists: dir.path().to_path_buf(),
            ..ScanConfig::default()
        };
        let loaded = PdqClassifier::load(&cfg);
        (dir, loaded)
    }

    #[test]
    fn a_resized_copy_of_a_listed_image_is_reported() {
        let (_dir, loaded) = load(&[("banned.pdq", format!("# test\n{BRIDGE} bridge\n"))]);
        let (c, warnings) = loaded.unwrap();
        assert!(warnings.is_empty());
        assert_eq!(c.len(), 1);
        let found = c
            .classify(&doc(image("bridge-mods/shrink-a-lot.jpg"), "image/jpeg"))
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].classifier.as_str(), found[0].rule.as_str()),
            ("pdq", "bridge")
        );
        assert!(
            found[0]
                .detail
                .starts_with(&format!("distance 14 to {BRIDGE}")),
            "{}",
            found[0].detail
        );
        assert!(
            found[0].detail.contains("image pdq d0f8f1ccc0f4a84d"),
            "{}",
            found[0].detail
        );
        // An unrelated image is not.
        let other = c
            .classify(&doc(image("labelme-subset/q0122.jpg"), "image/jpeg"))
            .unwrap();
        assert!(other.is_empty());
    }

    #[test]
    fn low_quality_images_and_non_images_give_no_findings() {
        let (_dir, loaded) = load(&[("flat.pdq", format!("{Q0003}\n"))]);
        let (c, _) = loaded.unwrap();
        let low = doc(image("labelme-subset/q0003.jpg"), "image/jpeg");
        assert_eq!(
            c.hash_of(&low).unwrap().map(|h| h.to_hex()).as_deref(),
            Some(Q0003)
        );
        assert!(
            c.classify(&low).unwrap().is_empty(),
            "quality 3 is below 50"
        );
        let html = doc(bytes::Bytes::from_static(b"<html></html>"), "text/html");
        assert!(c.classify(&html).unwrap().is_empty());
        let svg = doc(bytes::Bytes::from_static(b"<svg/>"), "image/svg+xml");
        assert!(c.classify(&svg).unwrap().is_empty());
        let broken = doc(
            bytes::Bytes::from_static(b"\x89PNG\r\n\x1a\nbroken"),
            "image/png",
        );
        assert!(matches!(
            c.classify(&broken),
            Err(ScanError::Undecodable(_))
        ));
        let garbage = doc(bytes::Bytes::from_static(b"garbage"), "image/jpeg");
        assert!(matches!(
            c.classify(&garbage),
            Err(ScanError::Undecodable(_))
        ));
    }

    #[test]
    fn unlabelled_entries_take_the_list_name() {
        let (_dir, loaded) = load(&[("known-bad.pdq", format!("{BRIDGE}\n"))]);
        let (c, _) = loaded.unwrap();
        let found = c
            .classify(&doc(image("dih/bridge-1-original.jpg"), "image/jpeg"))
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, "known-bad");
        assert!(found[0].detail.starts_with("distance 0 to"));
    }

    #[test]
    fn malformed_list_fails_to_load_with_file_and_line() {
        let (_dir, loaded) = load(&[("x.pdq", format!("{BRIDGE}\n\nxyz label\n"))]);
        let errors = loaded.err().unwrap();
        assert_eq!(errors.len(), 1);
        assert!(errors[0]
            .to_string()
            .ends_with("x.pdq:3: not a PDQ hash: expected 64 hex digits, found 3 characters"));
    }

    #[test]
    fn runtime_add_and_remove_update_matches_and_fingerprint() {
        let c = PdqClassifier::default();
        let empty_fp = c.fingerprint();
        let bridge = PdqHash::from_hex(BRIDGE).unwrap();
        let body = doc(image("bridge-mods/square-256x256.jpg"), "image/jpeg");
        assert!(c.classify(&body).unwrap().is_empty());
        assert!(c.add(bridge, "bridge"));
        assert!(
            !c.add(bridge, "bridge"),
            "the same entry twice is one entry"
        );
        assert!(c.add_to_list(bridge, "", "other"));
        assert_eq!(c.len(), 2);
        let fp = c.fingerprint();
        assert_ne!(fp, empty_fp);
        let rules: Vec<String> = c
            .classify(&body)
            .unwrap()
            .into_iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(rules.len(), 2);
        assert!(rules.contains(&"bridge".to_string()) && rules.contains(&"other".to_string()));
        // The same entries added in another order give the same fingerprint.
        let d = PdqClassifier::default();
        d.add_to_list(bridge, "", "other");
        d.add(bridge, "bridge");
        assert_eq!(d.fingerprint(), fp);
        assert_eq!(d.entries(), c.entries());
        assert_eq!(c.remove(&bridge), 2);
        assert!(c.is_empty());
        assert_eq!(c.fingerprint(), empty_fp);
        assert!(c.classify(&body).unwrap().is_empty());
    }
}

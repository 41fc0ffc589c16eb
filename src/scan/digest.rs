//! Exact SHA-256 hash lists (`*.sha256`, ClamAV `*.hsb`) in `scan.hash_lists`.
//!
//! `*.sha256`: `<64 hex> [label]` per line (also `sha256sum` output), `#` comments.
//! `*.hsb`: ClamAV `sha256:size:Name[:flevel]`; the body length must equal `size` (`*` = any).
//! MD5/SHA-1 `.hsb` lines are skipped with a warning (sluice keys bodies by SHA-256 only).
//! Entries can be added and removed at run time (admin API); the fingerprint follows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

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
                Ok(bytes) => parse_file(&path, &bytes, &mut inner, &mut errors, &mut warnings),
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
        let hash = parse_hex(&hex.to_ascii_lowercase())
            .ok_or_else(|| DigestError::BadHash(hex.to_string()))?;
        let e = DigestEntry {
            label: label.to_string(),
            list: list.to_string(),
            size: None,
        };
        self.write().insert(hash, e);
        Ok(())
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

fn parse_file(
    path: &Path,
    bytes: &[u8],
    inner: &mut Inner,
    errors: &mut Vec<LoadError>,
    warnings: &mut Vec<LoadError>,
) {
    let list = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hsb = path.extension().is_some_and(|x| x == "hsb");
    for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let err = |message: String| LoadError {
            file: path.to_path_buf(),
            line: n + 1,
            message,
        };
        let Ok(line) = std::str::from_utf8(raw) else {
            errors.push(err("line is not valid UTF-8".into()));
            continue;
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = if hsb {
            parse_hsb(line, &list)
        } else {
            parse_sha256(line, &list)
        };
        match parsed {
            Ok(Some((hash, e))) => inner.insert(hash, e),
            Ok(None) => warnings.push(err(
                "MD5/SHA-1 signature skipped (only SHA-256 is matched)".into()
            )),
            Err(m) => errors.push(err(m)),
        }
    }
}

type Parsed = Option<([u8; 32], DigestEntry)>;

/// `<64 hex> [label]`; `sha256sum`'s `*file` binary marker is dropped from the label.
fn parse_sha256(line: &str, list: &str) -> Result<Parsed, String> {
    let (hash, label) = match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], line[i..].trim()),
        None => (line, ""),
    };
    let hash = parse_hex(&hash.to_ascii_lowercase())
        .ok_or_else(|| format!("expected 64 hex digits, found '{hash}'"))?;
    let label = label.strip_prefix('*').unwrap_or(label).to_string();
    Ok(Some((
        hash,
        DigestEntry {
            label,
            list: list.to_string(),
            size: None,
        },
    )))
}

/// ClamAV `hash:size:Name[:flevel]`.
fn parse_hsb(line: &str, list: &str) -> Result<Parsed, String> {
    let parts: Vec<&str> = line.split(':').collect();
    if !(3..=4).contains(&parts.len()) {
        return Err("expected hash:size:name[:flevel]".into());
    }
    let (hash, size, name) = (parts[0], parts[1], parts[2]);
    if let Some(flevel) = parts.get(3) {
        if flevel.parse::<u32>().is_err() {
            return Err(format!("bad flevel '{flevel}'"));
        }
    }
    if name.is_empty() {
        return Err("missing signature name".into());
    }
    let size = match size {
        "*" => None,
        s => Some(s.parse::<u64>().map_err(|_| format!("bad size '{s}'"))?),
    };
    if (hash.len() == 32 || hash.len() == 40) && hash.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let hash = parse_hex(&hash.to_ascii_lowercase())
        .ok_or_else(|| format!("expected a 64-hex-digit SHA-256, found '{hash}'"))?;
    Ok(Some((
        hash,
        DigestEntry {
            label: name.to_string(),
            list: list.to_string(),
            size,
        },
    )))
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
            .map(|e| Finding {
                classifier: "digest".into(),
                rule: if e.label.is_empty() {
                    e.list.clone()
                } else {
                    e.label.clone()
                },
                score: 0.0,
                detail: format!("sha256 listed in {}", e.list),
            })
            .collect())
    }

    fn fingerprint(&self) -> String {
        let inner = self.read();
        let mut s = hex::encode(&inner.fold[..8]);
        s.push_str(&format!("-{}", inner.map.len()));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EICAR: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).expect("write");
        }
        d
    }

    fn doc(body: &[u8]) -> Document {
        Document {
            body: bytes::Bytes::copy_from_slice(body),
            sha256: crate::scan::sha256_hex(body),
            ..Default::default()
        }
    }

    #[test]
    fn sha256_and_hsb_lists_match_by_hash_and_size() {
        let body = b"hello world";
        let h = crate::scan::sha256_hex(body);
        let d = dir(&[
            ("a.sha256", &format!("# comment\n\n{h}  *hello.txt\n")),
            (
                "b.hsb",
                &format!("{}:11:Hello.Sig:73\n{EICAR}:68:Eicar\n", h.to_uppercase()),
            ),
        ]);
        let (list, warnings) = DigestList::load_dir(d.path()).expect("loads");
        assert!(warnings.is_empty());
        let f = list.classify(&doc(body)).expect("classify");
        let rules: Vec<(&str, &str)> = f
            .iter()
            .map(|f| (f.rule.as_str(), f.detail.as_str()))
            .collect();
        assert_eq!(
            rules,
            vec![
                ("hello.txt", "sha256 listed in a.sha256"),
                ("Hello.Sig", "sha256 listed in b.hsb")
            ]
        );
        assert!(f.iter().all(|f| f.classifier == "digest" && f.score == 0.0));
        assert!(list.classify(&doc(b"other")).expect("classify").is_empty());
    }

    #[test]
    fn hsb_size_must_match_unless_star() {
        let body = b"abc";
        let h = crate::scan::sha256_hex(body);
        let d = dir(&[("x.hsb", &format!("{h}:4:Wrong.Size\n"))]);
        let (list, _) = DigestList::load_dir(d.path()).expect("loads");
        assert!(list.classify(&doc(body)).expect("classify").is_empty());
        let d = dir(&[("x.hsb", &format!("{h}:*:Any.Size\n"))]);
        let (list, _) = DigestList::load_dir(d.path()).expect("loads");
        assert_eq!(
            list.classify(&doc(body)).expect("classify")[0].rule,
            "Any.Size"
        );
    }

    #[test]
    fn unlabelled_entry_is_named_after_its_list() {
        let h = crate::scan::sha256_hex(b"x");
        let d = dir(&[("bad.sha256", &h)]);
        let (list, _) = DigestList::load_dir(d.path()).expect("loads");
        assert_eq!(
            list.classify(&doc(b"x")).expect("classify")[0].rule,
            "bad.sha256"
        );
    }

    #[test]
    fn md5_hsb_lines_are_warnings() {
        let d = dir(&[(
            "m.hsb",
            "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n",
        )]);
        let (list, warnings) = DigestList::load_dir(d.path()).expect("loads");
        assert!(list.is_empty());
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].line, 1);
    }

    #[test]
    fn malformed_lines_are_errors_with_positions() {
        for (name, text, want) in [
            (
                "a.sha256",
                "abc label\n",
                "a.sha256:1: expected 64 hex digits, found 'abc'",
            ),
            (
                "a.sha256",
                &format!("# c\n{}zz\n", &EICAR[..62]),
                "a.sha256:2: expected 64 hex digits",
            ),
            (
                "b.hsb",
                &format!("{EICAR}:68\n"),
                "b.hsb:1: expected hash:size:name",
            ),
            (
                "b.hsb",
                &format!("{EICAR}:big:Name\n"),
                "b.hsb:1: bad size 'big'",
            ),
            (
                "b.hsb",
                &format!("{EICAR}:68:\n"),
                "b.hsb:1: missing signature name",
            ),
            (
                "b.hsb",
                &format!("{EICAR}:68:N:x\n"),
                "b.hsb:1: bad flevel 'x'",
            ),
            (
                "b.hsb",
                "nothex:68:N\n",
                "b.hsb:1: expected a 64-hex-digit SHA-256",
            ),
        ] {
            let d = dir(&[(name, text)]);
            let errs = DigestList::load_dir(d.path()).err().expect("errors");
            let shown = errs[0].to_string();
            let rel = shown.rsplit('/').next().unwrap_or_default().to_string();
            assert!(rel.starts_with(want), "{text:?}: {shown}");
        }
    }

    #[test]
    fn missing_directory_is_empty() {
        let (list, _) =
            DigestList::load_dir(Path::new("/nonexistent/sluice/hashes")).expect("empty");
        assert!(list.is_empty());
    }

    #[test]
    fn runtime_add_remove_and_fingerprint() {
        let list = DigestList::default();
        let empty = list.fingerprint();
        let h = crate::scan::sha256_hex(b"body");
        list.add(&h.to_uppercase(), "bad page", "admin")
            .expect("add");
        let with = list.fingerprint();
        assert_ne!(with, empty);
        assert_eq!(
            list.classify(&doc(b"body")).expect("classify")[0].rule,
            "bad page"
        );
        assert_eq!(list.lookup(&h)[0].list, "admin");
        assert_eq!(list.entries().len(), 1);
        list.add(&h, "bad page", "admin").expect("idempotent");
        assert_eq!(list.fingerprint(), with);
        assert_eq!(list.remove(&h), Ok(1));
        assert_eq!(list.fingerprint(), empty);
        assert!(list.classify(&doc(b"body")).expect("classify").is_empty());
        assert_eq!(list.remove(&h), Ok(0));
        assert!(matches!(
            list.add("xyz", "", "admin"),
            Err(DigestError::BadHash(_))
        ));
    }

    #[test]
    fn fingerprint_is_order_independent() {
        let (a, b) = (crate::scan::sha256_hex(b"a"), crate::scan::sha256_hex(b"b"));
        let one = DigestList::default();
        one.add(&a, "", "l").expect("add");
        one.add(&b, "", "l").expect("add");
        let two = DigestList::default();
        two.add(&b, "", "l").expect("add");
        two.add(&a, "", "l").expect("add");
        assert_eq!(one.fingerprint(), two.fingerprint());
    }
}

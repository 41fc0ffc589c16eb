//! The verdict memo: verdicts in the sled `verdicts` tree keyed by decoded-body SHA-256 (each
//! naming the reading and ruleset it holds for; see [`Key`]), plus
//! an in-process map from (raw-bytes SHA-256, Content-Encoding) to decoded SHA-256 so that a
//! compressed body seen before is recognised without decoding it again.
//!
//! Recently used verdicts are also kept decoded in memory (`hot`), so a cache hit's verdict
//! costs a map lookup instead of a sled read and a JSON parse. Every write goes through
//! [`Memo::put`], which refreshes that copy; entries are checked against the current ruleset
//! like the stored ones.
//!
//! With [`Memo::with_pdq`], the PDQ hash of every image scanned is kept too (`pdq_of`:
//! decoded SHA-256 → [`encode_pdq`]), so a PDQ entry added later can be matched against the
//! images seen before without decoding them again (admin retro-match).

use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::scan::pdq::PdqHash;
use crate::scan::Verdict;

/// Entries kept in the raw→decoded map before it is cleared (about 100 bytes each).
const RAW_MAP_CAP: usize = 100_000;

/// Bodies whose verdicts are kept in memory before that map is cleared (a verdict is a few
/// hundred bytes; clearing is crude but bounded, and the hot set refills on the next hits).
const HOT_CAP: usize = 8_192;

/// Readings of one body kept in memory (the same bytes served under a few content types).
const READINGS_CAP: usize = 4;

/// What a memoised verdict must have been produced for to be reused: the decoded body, how it
/// was read ([`super::reading`]) and the ruleset version.
#[derive(Clone, Copy, Debug)]
pub struct Key<'a> {
    pub sha256: &'a str,
    pub reading: &'a str,
    pub ruleset: &'a str,
}

impl Key<'_> {
    fn fits(&self, v: &Verdict) -> bool {
        v.ruleset == self.ruleset && v.reading == self.reading
    }
}

/// A raw body's identity: SHA-256 of the bytes as received and the normalised coding list.
pub type RawKey = ([u8; 32], String);

/// Memoised verdicts.
pub struct Memo {
    tree: sled::Tree,
    /// `verdicts_by_class` (see [`super::index`]), kept in step with `tree` when set.
    index: Option<sled::Tree>,
    /// `pdq_of`: image hashes by decoded SHA-256, when set.
    pdq: Option<sled::Tree>,
    raw: Mutex<HashMap<RawKey, String>>,
    /// Decoded-body SHA-256 → its latest verdict per reading, for verdicts read or written
    /// recently. The `verdicts` tree keeps only the latest verdict of a body.
    hot: Mutex<HashMap<String, Vec<Arc<Verdict>>>>,
    /// How long after its scan a verdict is reused (`store.verdict_retention`); `None`: always.
    reuse_for: Option<Duration>,
}

impl Memo {
    /// A memo over the `verdicts` tree of the store.
    pub fn new(tree: sled::Tree) -> Memo {
        Memo {
            tree,
            index: None,
            pdq: None,
            raw: Mutex::new(HashMap::new()),
            hot: Mutex::new(HashMap::new()),
            reuse_for: None,
        }
    }

    /// Reuses a verdict only while its scan is at most `age` old; an older one counts as a
    /// miss, so the body is scanned again and its verdict (stamped now) replaces the old.
    /// Every verdict served is then younger than `age`, and the retention sweep, which keeps
    /// verdicts for twice that, never removes one that a URL record still names.
    pub fn reusing_for(mut self, age: Duration) -> Memo {
        self.reuse_for = Some(age);
        self
    }

    /// Whether `v` is young enough to be reused (see [`reusing_for`](Self::reusing_for)).
    /// A `scanned_at` that does not parse counts as too old, and so does one past the present
    /// (the wall clock went back since the scan): its age is unknown, and counted from the
    /// future stamp it would be reused, and kept by the sweep, for the clock's error on top
    /// of the limit (years, after a boot with the clock far ahead). Scanned again, the body
    /// gets a verdict stamped by the corrected clock.
    pub fn reusable(&self, v: &Verdict) -> bool {
        let Some(age) = self.reuse_for else {
            return true;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        v.scanned_secs()
            .is_some_and(|t| t <= now && t.saturating_add(age.as_secs()) >= now)
    }

    /// Also maintains the by-class index in `index` on every [`put`](Self::put).
    pub fn with_index(mut self, index: sled::Tree) -> Memo {
        self.index = Some(index);
        self
    }

    /// Also records the PDQ hash of every scanned image in `tree` ([`put_pdq`](Self::put_pdq)).
    pub fn with_pdq(mut self, tree: sled::Tree) -> Memo {
        self.pdq = Some(tree);
        self
    }

    /// Records the PDQ hash (with its quality) of the image whose decoded SHA-256 is `sha256`.
    pub fn put_pdq(&self, sha256: &str, hash: &PdqHash) {
        let Some(tree) = &self.pdq else { return };
        if let Err(e) = tree.insert(sha256.as_bytes(), &encode_pdq(hash)[..]) {
            tracing::warn!(error = %e, "recording an image's PDQ hash failed");
        }
    }

    /// The stored verdict for `sha256`, whatever ruleset and reading produced it.
    pub fn get_any(&self, sha256: &str) -> Option<Verdict> {
        let bytes = self.tree.get(sha256.as_bytes()).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// The verdict for `key`'s body, if it was produced under its reading and ruleset. Store
    /// errors and unreadable entries count as misses (the body is simply scanned again).
    /// Shared with the hot map: a hit costs a reference count, not a copy.
    pub fn get(&self, key: &Key<'_>) -> Option<Arc<Verdict>> {
        if let Some(v) = self.get_hot(key) {
            return Some(v);
        }
        let v = Arc::new(self.get_stored(key)?);
        self.keep_hot(Arc::clone(&v));
        Some(v)
    }

    /// [`get`](Self::get) from the in-memory copy only: no store read.
    pub fn get_hot(&self, key: &Key<'_>) -> Option<Arc<Verdict>> {
        lock(&self.hot)
            .get(key.sha256)?
            .iter()
            .find(|v| key.fits(v) && self.reusable(v))
            .cloned()
    }

    fn keep_hot(&self, v: Arc<Verdict>) {
        let mut hot = lock(&self.hot);
        if hot.len() >= HOT_CAP && !hot.contains_key(&v.sha256) {
            hot.clear();
        }
        let readings = hot.entry(v.sha256.clone()).or_default();
        readings.retain(|o| o.reading != v.reading);
        if readings.len() >= READINGS_CAP {
            readings.remove(0);
        }
        readings.push(v);
    }

    /// [`get`](Self::get) from the `verdicts` tree only, bypassing the in-memory copy.
    pub fn get_stored(&self, key: &Key<'_>) -> Option<Verdict> {
        let bytes = match self.tree.get(key.sha256.as_bytes()) {
            Ok(v) => v?,
            Err(e) => {
                tracing::warn!(error = %e, "verdict memo read failed");
                return None;
            }
        };
        let v: Verdict = serde_json::from_slice(&bytes).ok()?;
        (key.fits(&v) && self.reusable(&v)).then_some(v)
    }

    /// Stores a verdict (replacing the body's older one, whatever its ruleset or reading; the
    /// in-memory copy keeps a few readings of a body). Unscanned verdicts are not
    /// stored: their causes (time, load, limits) are not properties of the bytes.
    pub fn put(&self, v: &Verdict) {
        if !v.is_lasting() {
            return;
        }
        match serde_json::to_vec(v) {
            Ok(json) => match self.tree.insert(v.sha256.as_bytes(), json) {
                Ok(old) => {
                    self.keep_hot(Arc::new(v.clone()));
                    self.reindex(old.as_deref(), v);
                }
                Err(e) => tracing::warn!(error = %e, "verdict memo write failed"),
            },
            Err(e) => tracing::warn!(error = %e, "verdict not serialisable"),
        }
    }

    /// Moves the verdict's by-class index entry from the replaced verdict's to its own.
    /// Best effort: the listing checks every entry against the `verdicts` tree anyway.
    fn reindex(&self, old: Option<&[u8]>, v: &Verdict) {
        let Some(index) = &self.index else { return };
        let old_key = old
            .and_then(|b| serde_json::from_slice::<Verdict>(b).ok())
            .and_then(|o| super::index::key(&o));
        let new_key = super::index::key(v);
        if old_key == new_key {
            return;
        }
        let result = old_key
            .map_or(Ok(None), |k| index.remove(k))
            .and_then(|_| new_key.map_or(Ok(None), |k| index.insert(k, &[])));
        if let Err(e) = result {
            tracing::warn!(error = %e, "verdict index write failed");
        }
    }

    /// The decoded SHA-256 of a raw body seen before.
    pub fn decoded_sha(&self, key: &RawKey) -> Option<String> {
        lock(&self.raw).get(key).cloned()
    }

    /// Remembers that `key` decodes to a body with SHA-256 `decoded`.
    pub fn remember(&self, key: RawKey, decoded: &str) {
        let mut map = lock(&self.raw);
        if map.len() >= RAW_MAP_CAP {
            map.clear();
        }
        map.insert(key, decoded.to_string());
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A PDQ hash as stored in `pdq_of`: the 16 words big-endian, then the quality byte.
pub fn encode_pdq(h: &PdqHash) -> [u8; 33] {
    let mut out = [0u8; 33];
    for (i, w) in h.bits.iter().enumerate() {
        out[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
    }
    out[32] = h.quality;
    out
}

/// The inverse of [`encode_pdq`]; `None` for a damaged record.
pub fn decode_pdq(b: &[u8]) -> Option<PdqHash> {
    if b.len() != 33 {
        return None;
    }
    let mut bits = [0u16; 16];
    for (i, w) in bits.iter_mut().enumerate() {
        *w = u16::from_be_bytes([*b.get(2 * i)?, *b.get(2 * i + 1)?]);
    }
    Some(PdqHash {
        bits,
        quality: *b.get(32)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdq_records_round_trip_and_damaged_ones_are_refused() {
        let mut h = PdqHash::from_hex(&"0123456789abcdef".repeat(4)).unwrap();
        h.quality = 87;
        assert_eq!(decode_pdq(&encode_pdq(&h)), Some(h));
        assert_eq!(decode_pdq(&encode_pdq(&h)[..32]), None);
    }

    #[test]
    fn a_verdict_is_reused_only_while_its_scan_is_young_enough() {
        let store = crate::store::Store::temporary().unwrap();
        let memo = Memo::new(store.verdicts.clone()).reusing_for(Duration::from_secs(3600));
        let scanned = |secs_ago: u64| Verdict {
            sha256: "s".into(),
            media_type: "text/plain".into(),
            class: crate::scan::Class::Clean,
            score: 0.0,
            findings: Vec::new(),
            ruleset: "r".into(),
            scanned_at: super::super::rfc3339(SystemTime::now() - Duration::from_secs(secs_ago)),
            reason: None,
            reading: "text".into(),
            derived: Default::default(),
        };
        let key = Key {
            sha256: "s",
            reading: "text",
            ruleset: "r",
        };
        for (secs_ago, reused) in [(60, true), (3500, true), (3700, false), (86_400, false)] {
            let v = scanned(secs_ago);
            memo.put(&v);
            assert_eq!(memo.reusable(&v), reused, "{secs_ago} s");
            assert_eq!(
                memo.get_hot(&key).is_some(),
                reused,
                "{secs_ago} s, in memory"
            );
            assert_eq!(
                memo.get_stored(&key).is_some(),
                reused,
                "{secs_ago} s, stored"
            );
        }
        let ahead = Verdict {
            scanned_at: super::super::rfc3339(SystemTime::now() + Duration::from_secs(86_400)),
            ..scanned(0)
        };
        memo.put(&ahead);
        assert!(
            !memo.reusable(&ahead),
            "stamped a day ahead: the clock went back since the scan, whose age is unknown"
        );
        assert!(memo.get_hot(&key).is_none(), "ahead, in memory");
        assert!(memo.get_stored(&key).is_none(), "ahead, stored");
        let unparsed = Verdict {
            scanned_at: "yesterday".into(),
            ..scanned(0)
        };
        assert!(!memo.reusable(&unparsed));
        let forever = Memo::new(store.verdicts.clone());
        assert!(
            forever.reusable(&unparsed),
            "no age limit without reusing_for"
        );
    }
}

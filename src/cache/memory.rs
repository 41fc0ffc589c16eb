//! The memory tier: hot objects (meta and body as `Bytes`, so a hit is a reference-count bump)
//! in front of sled, bounded by `store.memory` bytes with the same W-TinyLFU policy as the disk.
//! Each held object also keeps its body's verdict once one is known, so a hit needs no memo
//! lookup however many distinct bodies are held.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use super::evict::WTinyLfu;
use super::freshness::Facts;
use super::meta::ObjectMeta;
use super::vary;
use crate::scan::Verdict;

/// Objects larger than `capacity / LARGE_DIVISOR` bypass the memory tier, so one large
/// download cannot flush every hot small object.
const LARGE_DIVISOR: u64 = 8;

/// Variants of one URL held at most; holding another drops the oldest (it stays on disk).
/// A hit tries the held variants one by one under the tier's lock, so without a bound a URL
/// with `Vary: Cookie` and many clients made every hit, on any URL, wait for thousands of
/// secondary keys to be built (Traffic Server keeps 5 alternates per URL by default).
pub(super) const MAX_VARIANTS: usize = 32;

/// What holding an object costs beyond [`ObjectMeta::accounted_size`] (the bytes its response
/// carries), so that `store.memory` bounds the memory actually used: per object, the maps,
/// keys and policy nodes that find it, its meta and derived facts, the verdict it keeps and
/// the allocator's rounding; per header field, its map entry and value allocation. Measured
/// with `examples/memtier_rss.rs` (RSS per held object, verdict kept): 3.2 KB for a 330-byte
/// page with five fields (charged 3.6 KB), 4.0 KB for 1 KiB (charged 4.3 KB), 19.6 KB for
/// 16 KiB (charged 19.6 KB).
const HELD_OVERHEAD: u64 = 2_400;
const FIELD_OVERHEAD: u64 = 96;

/// Whether a verdict computed for `old` holds for `new` (a 304's merged meta): the same bytes
/// with the same header fields. A scan reads the body through its `Content-Encoding`,
/// `Content-Type` and charset, and `header` rules read any field, so a 304 that changes a
/// field (it usually changes `Date`) leaves the object without a verdict until its next hit
/// asks the memo, which knows which of those the verdict depends on.
pub fn verdict_carries_over(old: &ObjectMeta, new: &ObjectMeta) -> bool {
    old.body_sha256 == new.body_sha256 && old.headers == new.headers
}

/// The memory-tier charge for an object.
fn held_size(meta: &ObjectMeta) -> u64 {
    meta.accounted_size() + HELD_OVERHEAD + FIELD_OVERHEAD * meta.headers.len() as u64
}

/// One held variant.
pub struct Entry {
    /// The stored meta.
    pub meta: Arc<ObjectMeta>,
    /// The body.
    pub body: Bytes,
    /// Derived once when held, so a hit reparses no header.
    pub facts: Arc<Facts>,
    /// Its [`object_key`], kept so a hit builds no key.
    pub key: String,
    /// The body's verdict, once known ([`MemoryTier::keep_verdict`]); whether the current
    /// ruleset produced it is for the reader to check.
    pub verdict: Option<Arc<Verdict>>,
}

/// An object copied for the memory tier, its facts derived: made before the tier's lock is
/// taken, so hits never wait on the copy of a large body (up to `store.memory / 8`).
pub struct Held {
    meta: Arc<ObjectMeta>,
    body: Bytes,
    facts: Arc<Facts>,
    size: u64,
    verdict: Option<Arc<Verdict>>,
}

impl Held {
    /// A copy of the object for a tier of `capacity` bytes, or `None` when the tier does not
    /// take it (disabled, or the object is over `capacity / 8`: one large download must not
    /// flush every hot small object). The copy is what keeps the bound honest: a body or
    /// header value off the network is a slice of the connection's read buffer, and holding
    /// it would hold the whole buffer.
    pub fn copy(capacity: u64, meta: &ObjectMeta, body: &[u8]) -> Option<Held> {
        let size = held_size(meta);
        if capacity == 0 || size > capacity / LARGE_DIVISOR {
            return None;
        }
        let meta = Arc::new(meta.detached());
        Some(Held {
            facts: Arc::new(Facts::of(&meta)),
            meta,
            body: Bytes::copy_from_slice(body),
            size,
            verdict: None,
        })
    }

    /// Held with the verdict scanned for this very response (its body and header fields),
    /// unless the verdict is not lasting.
    pub fn with_verdict(mut self, verdict: Option<Arc<Verdict>>) -> Held {
        self.verdict = verdict.filter(|v| v.is_lasting());
        self
    }
}

/// In-memory objects keyed by primary key, each with its variants.
pub struct MemoryTier {
    capacity: u64,
    policy: WTinyLfu<String>,
    by_primary: HashMap<String, Vec<Entry>>,
}

/// The key of one variant: `primary \0 secondary` (the same bytes as its sled key).
pub fn object_key(primary: &str, secondary: &str) -> String {
    let mut k = String::with_capacity(primary.len() + secondary.len() + 1);
    k.push_str(primary);
    k.push('\0');
    k.push_str(secondary);
    k
}

impl MemoryTier {
    /// A tier bounded at `capacity` bytes (0 disables it).
    pub fn new(capacity: u64) -> Self {
        MemoryTier {
            capacity,
            policy: WTinyLfu::new(capacity, (capacity / 16_384).max(1024) as usize),
            by_primary: HashMap::new(),
        }
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.policy.used()
    }

    /// The variant of `primary` matching the request's Vary fields, if held; the newest when
    /// several match (RFC 9111 §4.1), as when a URL's Vary changed: an older Vary-less object
    /// matches every request, and must not shadow the variant that replaced it (the disk
    /// tier follows the URL's latest Vary).
    pub fn get(&mut self, primary: &str, req: &HeaderMap) -> Option<&Entry> {
        let e = self
            .by_primary
            .get(primary)?
            .iter()
            .rev()
            .find(|e| vary::secondary_key(&e.meta.vary, req) == e.meta.secondary)?;
        self.policy.touch(&e.key);
        Some(e)
    }

    /// Holds a copy of an object (replacing the same variant), evicting colder ones: [`Held`]
    /// and [`insert_held`](Self::insert_held) in one step.
    pub fn insert(&mut self, meta: Arc<ObjectMeta>, body: Bytes) {
        match Held::copy(self.capacity, &meta, &body) {
            Some(held) => self.insert_held(held),
            None => self.remove(&meta.url, &meta.secondary),
        }
    }

    /// Holds an object copied by [`Held::copy`] (replacing the same variant), evicting colder
    /// ones, and the URL's oldest variant when it has [`MAX_VARIANTS`].
    pub fn insert_held(&mut self, held: Held) {
        let Held {
            meta,
            body,
            facts,
            size,
            verdict,
        } = held;
        let key = object_key(&meta.url, &meta.secondary);
        let (url, secondary) = (meta.url.clone(), meta.secondary.clone());
        self.detach(&url, &secondary);
        let variants = self.by_primary.entry(url).or_default();
        let oldest = (variants.len() >= MAX_VARIANTS).then(|| variants.remove(0));
        variants.push(Entry {
            facts,
            meta,
            body,
            key: key.clone(),
            verdict,
        });
        if let Some(oldest) = oldest {
            self.policy.remove(&oldest.key);
        }
        self.charge(key, size);
    }

    /// Charges `key` `size` bytes in the policy and drops what it evicts.
    fn charge(&mut self, key: String, size: u64) {
        for gone in self.policy.insert(key, size) {
            if let Some((p, s)) = gone.split_once('\0') {
                self.detach(p, s);
            }
        }
    }

    /// Replaces the meta of a held variant (after a 304), keeping its body. A meta of another
    /// size is charged anew, which may evict colder objects (or this one).
    pub fn update_meta(&mut self, meta: Arc<ObjectMeta>) {
        let Some(e) = self
            .by_primary
            .get_mut(&meta.url)
            .and_then(|v| v.iter_mut().find(|e| e.meta.secondary == meta.secondary))
        else {
            return;
        };
        if e.meta.body_sha256 != meta.body_sha256 {
            return;
        }
        if !verdict_carries_over(&e.meta, &meta) {
            e.verdict = None;
        }
        let (old_size, new_size) = (held_size(&e.meta), held_size(&meta));
        e.facts = Arc::new(Facts::of(&meta));
        e.meta = Arc::new(meta.detached());
        if new_size != old_size {
            let key = e.key.clone();
            self.charge(key, new_size);
        }
    }

    /// Keeps `verdict`, computed for the object `scanned` (its body and header fields), with
    /// the held variant it describes. A variant replaced (or evicted) since keeps nothing, and
    /// so does one whose fields a 304 changed while the scan ran ([`verdict_carries_over`]).
    pub fn keep_verdict(&mut self, scanned: &ObjectMeta, verdict: Arc<Verdict>) {
        if let Some(e) = self.by_primary.get_mut(&scanned.url).and_then(|v| {
            v.iter_mut().find(|e| {
                e.meta.secondary == scanned.secondary && verdict_carries_over(&e.meta, scanned)
            })
        }) {
            e.verdict = Some(verdict);
        }
    }

    /// Drops one variant.
    pub fn remove(&mut self, primary: &str, secondary: &str) {
        self.detach(primary, secondary);
        self.policy.remove(&object_key(primary, secondary));
    }

    /// Drops every variant of `primary`.
    pub fn remove_primary(&mut self, primary: &str) {
        if let Some(variants) = self.by_primary.remove(primary) {
            for e in variants {
                self.policy.remove(&object_key(primary, &e.meta.secondary));
            }
        }
    }

    fn detach(&mut self, primary: &str, secondary: &str) {
        if let Some(v) = self.by_primary.get_mut(primary) {
            v.retain(|e| e.meta.secondary != secondary);
            if v.is_empty() {
                self.by_primary.remove(primary);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::meta::tests::sample;

    #[test]
    fn variants_are_matched_by_vary_and_bounded() {
        let mut m = MemoryTier::new(100_000);
        let mut gz = sample("http://a/x", &[("vary", "accept-encoding")], b"gz");
        gz.vary = vec!["accept-encoding".into()];
        gz.secondary = "accept-encoding:gzip".into();
        let mut plain = gz.clone();
        plain.secondary = "accept-encoding".into();
        m.insert(Arc::new(gz), Bytes::from_static(b"gz"));
        m.insert(Arc::new(plain), Bytes::from_static(b"plain"));
        let mut req = HeaderMap::new();
        assert_eq!(m.get("http://a/x", &req).unwrap().body, "plain");
        req.insert("accept-encoding", "gzip".parse().unwrap());
        assert_eq!(m.get("http://a/x", &req).unwrap().body, "gz");
        req.insert("accept-encoding", "br".parse().unwrap());
        assert!(m.get("http://a/x", &req).is_none());
        m.remove_primary("http://a/x");
        assert!(m.get("http://a/x", &HeaderMap::new()).is_none());
        assert_eq!(m.used(), 0);
        for i in 0..1000 {
            m.insert(
                Arc::new(sample(&format!("http://a/{i}"), &[], &[0u8; 500])),
                Bytes::from(vec![0u8; 500]),
            );
            assert!(m.used() <= 100_000);
        }
        let big = sample("http://a/big", &[], &[0u8; 50_000]);
        m.insert(Arc::new(big), Bytes::from(vec![0u8; 50_000]));
        assert!(
            m.get("http://a/big", &HeaderMap::new()).is_none(),
            "large objects bypass memory"
        );
    }

    #[test]
    fn variants_held_per_url_are_bounded() {
        // `Vary: Cookie` (or User-Agent) with many clients: one URL's variants used to grow
        // to whatever the tier held, and every hit on it built a secondary key per variant
        // under the tier's one lock, stalling hits on every other URL.
        let mut m = MemoryTier::new(64 << 20);
        let variant = |i: usize| {
            let mut v = sample("http://a/x", &[("vary", "cookie")], b"v");
            v.vary = vec!["cookie".into()];
            v.secondary = format!("cookie:id={i}");
            v
        };
        let mut req = HeaderMap::new();
        for i in 0..2_000 {
            m.insert(Arc::new(variant(i)), Bytes::from_static(b"v"));
            assert!(
                m.by_primary["http://a/x"].len() <= MAX_VARIANTS,
                "after {i}"
            );
        }
        let held: u64 = m.by_primary["http://a/x"]
            .iter()
            .map(|e| held_size(&e.meta))
            .sum();
        assert_eq!(m.used(), held, "dropped variants are no longer charged");
        req.insert("cookie", "id=1999".parse().unwrap());
        assert!(m.get("http://a/x", &req).is_some(), "the newest stays");
        req.insert("cookie", "id=0".parse().unwrap());
        assert!(m.get("http://a/x", &req).is_none(), "the oldest went");
    }

    #[test]
    fn the_newest_matching_variant_wins() {
        let mut m = MemoryTier::new(100_000);
        let any = sample("http://a/x", &[], b"old, no vary");
        let mut gz = sample("http://a/x", &[("vary", "accept-encoding")], b"new");
        gz.vary = vec!["accept-encoding".into()];
        gz.secondary = "accept-encoding:gzip".into();
        m.insert(Arc::new(any), Bytes::from_static(b"old, no vary"));
        m.insert(Arc::new(gz), Bytes::from_static(b"new"));
        let mut req = HeaderMap::new();
        req.insert("accept-encoding", "gzip".parse().unwrap());
        assert_eq!(m.get("http://a/x", &req).unwrap().body, "new");
        let other = HeaderMap::new();
        assert_eq!(m.get("http://a/x", &other).unwrap().body, "old, no vary");
    }

    #[test]
    fn a_replaced_meta_brings_its_own_facts() {
        let mut m = MemoryTier::new(100_000);
        let old = sample("http://a/x", &[("cache-control", "max-age=5")], b"x");
        let mut new = old.clone();
        new.headers
            .insert("cache-control", "max-age=600".parse().unwrap());
        m.insert(Arc::new(old), Bytes::from_static(b"x"));
        let held = |m: &mut MemoryTier| {
            m.get("http://a/x", &HeaderMap::new())
                .unwrap()
                .facts
                .lifetime
                .secs
        };
        assert_eq!(held(&mut m), 5);
        m.update_meta(Arc::new(new));
        assert_eq!(
            held(&mut m),
            600,
            "a 304's new max-age must be what hits see"
        );
    }

    #[test]
    fn a_304_that_changes_the_fields_changes_the_charge() {
        let mut m = MemoryTier::new(100_000);
        let old = sample("http://a/x", &[("cache-control", "max-age=5")], b"x");
        m.insert(Arc::new(old.clone()), Bytes::from_static(b"x"));
        let before = m.used();
        assert_eq!(before, held_size(&old));
        let mut merged = old.clone();
        merged
            .headers
            .insert("x-long", "v".repeat(2000).parse().unwrap());
        m.update_meta(Arc::new(merged.clone()));
        assert_eq!(m.used(), held_size(&merged));
        assert!(m.used() > before + 2000);
        assert!(
            m.get("http://a/x", &HeaderMap::new()).is_some(),
            "still held"
        );
    }

    #[test]
    fn a_kept_verdict_lasts_as_long_as_its_body_and_fields() {
        use crate::scan::{Class, Verdict};
        let verdict = Arc::new(Verdict {
            class: Class::Clean,
            ..Verdict::unscanned("ab", "text/html", "limit", "r1")
        });
        let kept = |m: &mut MemoryTier| {
            m.get("http://a/x", &HeaderMap::new())
                .and_then(|e| e.verdict.clone())
        };
        let mut m = MemoryTier::new(100_000);
        let old = sample("http://a/x", &[("cache-control", "max-age=5")], b"x");
        m.insert(Arc::new(old.clone()), Bytes::from_static(b"x"));
        assert!(kept(&mut m).is_none(), "nothing kept before a scan");
        m.keep_verdict(&sample("http://a/x", &[], b"other"), verdict.clone());
        assert!(kept(&mut m).is_none(), "another body's verdict is not kept");
        m.keep_verdict(&old, verdict.clone());
        assert!(Arc::ptr_eq(&kept(&mut m).unwrap(), &verdict));
        // A 304 that changes nothing keeps it; one that changes any field does not (the
        // type, the coding and the fields `header` rules read all change how it reads).
        m.update_meta(Arc::new(old.clone()));
        assert!(kept(&mut m).is_some(), "an unchanged 304 keeps the verdict");
        let mut merged = old.clone();
        merged
            .headers
            .insert("content-type", "text/plain".parse().unwrap());
        m.update_meta(Arc::new(merged.clone()));
        assert!(kept(&mut m).is_none(), "a changed field drops the verdict");
        // A scan of the object as it was, finishing after the 304: not kept with the new one.
        m.keep_verdict(&old, verdict.clone());
        assert!(
            kept(&mut m).is_none(),
            "a verdict for other fields is not kept"
        );
        m.keep_verdict(&merged, verdict.clone());
        assert!(kept(&mut m).is_some(), "the object as it is now keeps it");
        let new = sample("http://a/x", &[], b"y");
        m.insert(Arc::new(new), Bytes::from_static(b"y"));
        assert!(kept(&mut m).is_none(), "a new body has no verdict yet");
        // Held with the verdict of its own scan, unless that one is not lasting.
        let held = |v: Verdict| {
            let mut m = MemoryTier::new(100_000);
            let h = Held::copy(100_000, &old, b"x").unwrap();
            m.insert_held(h.with_verdict(Some(Arc::new(v))));
            kept(&mut m).is_some()
        };
        assert!(held((*verdict).clone()));
        assert!(!held(Verdict::unscanned("ab", "text/html", "limit", "r1")));
    }

    #[test]
    fn held_objects_do_not_pin_the_read_buffer_they_came_from() {
        // A response read off the network: head and body slices of one larger buffer.
        let buffer = Bytes::from(vec![b'a'; 16_384]);
        let within = |p: *const u8| buffer.as_ptr_range().contains(&p);
        let mut meta = sample("http://a/x", &[], &buffer[8_000..8_600]);
        let value = http::HeaderValue::from_maybe_shared(buffer.slice(100..110)).unwrap();
        assert!(
            within(value.as_bytes().as_ptr()),
            "the test's value is a slice"
        );
        meta.headers.insert("x-from-wire", value);
        let mut m = MemoryTier::new(1 << 20);
        m.insert(Arc::new(meta.clone()), buffer.slice(8_000..8_600));
        let e = m.get("http://a/x", &HeaderMap::new()).unwrap();
        assert_eq!(
            (&e.body[..], &e.meta.headers),
            (&buffer[8_000..8_600], &meta.headers)
        );
        assert!(!within(e.body.as_ptr()), "the body is a copy");
        assert!(
            !within(e.meta.headers["x-from-wire"].as_bytes().as_ptr()),
            "so is each value"
        );
    }
}

//! The object store: sled (`objects`, `bodies`) behind a memory tier, bounded by
//! `store.max_size` with W-TinyLFU eviction.
//!
//! `objects` layout: `url` → the Vary field names of the latest stored response for that URL
//! (newline-separated, empty without Vary); `url \0 secondary` → encoded [`ObjectMeta`]. A lookup
//! reads the first, builds the secondary key from the request, then reads the second. Purge
//! removes `url` and every key under the `url \0` prefix. URLs never contain NUL.
//!
//! Crash safety: a put is one sled transaction over both trees that writes the body chunks (if
//! new), bumps the body's reference count and writes the meta, in that order; sled recovers
//! transactions atomically, so after kill -9 a meta never names a missing body. Should a body
//! still be missing or damaged (disk corruption, a foreign writer), `get` verifies length and
//! SHA-256 on every sled read and drops the object instead of serving it; `open` additionally
//! recounts references (mark and sweep) and deletes unreferenced bodies and body-less metas.

use foldhash::quality::RandomState;
use foldhash::{HashMap, HashMapExt};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};

use super::bodies::{self, ReadFailure};
use super::evict::WTinyLfu;
use super::freshness::Facts;
use super::key::CacheKey;
use super::memory::{object_key, Held, MemoryTier, MAX_VARIANTS};
use super::meta::{sha256, ObjectMeta};
use super::{policy, vary};
use crate::scan::Verdict;
use crate::threads::Threads;

/// Sizes for the store, from `[store]`.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// Bound on accounted bytes (metas plus bodies) in sled.
    pub max_size: u64,
    /// Bytes of hot objects held in memory.
    pub memory: u64,
}

impl CacheConfig {
    /// From the `[store]` section.
    pub fn from_config(c: &crate::config::StoreConfig) -> Self {
        CacheConfig {
            max_size: c.max_size.0,
            memory: c.memory.0,
        }
    }
}

/// Errors from the object store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// sled failed.
    #[error("cache store: {0}")]
    Sled(#[from] sled::Error),
    /// The body does not have the length or SHA-256 its meta claims.
    #[error("cache put: the body does not match its meta")]
    BodyMismatch,
    /// The body is shorter or longer than its Content-Length: never stored.
    #[error("cache put: truncated body (length differs from Content-Length)")]
    Truncated,
    /// A store-thread job panicked or its thread stopped (see [`crate::threads`]).
    #[error("cache task failed: {0}")]
    Join(String),
}

/// Where a hit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// The memory tier: no disk I/O.
    Memory,
    /// sled (now also promoted to memory).
    Disk,
}

/// A stored response matching the request's URL and Vary fields (freshness not yet decided).
#[derive(Clone, Debug)]
pub struct Hit {
    /// The stored meta.
    pub meta: Arc<ObjectMeta>,
    /// The verified body.
    pub body: Bytes,
    /// What reuse decisions need, derived from `meta`.
    pub facts: Arc<Facts>,
    /// Which tier answered.
    pub tier: Tier,
    /// The verdict the memory tier keeps with the object, if any (of any ruleset).
    pub verdict: Option<Arc<crate::scan::Verdict>>,
}

/// The result of a lookup.
#[derive(Clone, Debug)]
pub enum Found {
    /// A stored variant matches.
    Hit(Hit),
    /// Objects exist for the URL but none for this request's Vary values (Cache-Status
    /// `fwd=vary-miss`).
    VaryMiss,
    /// Nothing stored for the URL (`fwd=uri-miss`).
    Miss,
}

/// The result of a put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written (it may still be evicted later).
    Stored,
    /// Larger than the store can hold (its bound less the eviction window): not written.
    TooLarge,
    /// Its URL was removed (purge, invalidation) after its request went out, so it may be
    /// what was removed: not written.
    Outdated,
}

/// Size and count figures for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Objects (variants) in sled.
    pub objects: usize,
    /// Accounted bytes in sled.
    pub disk_bytes: u64,
    /// Bytes in the memory tier.
    pub memory_bytes: u64,
}

/// The cache's object store. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    objects: Tree,
    bodies: Tree,
    /// The disk policy; holding it also serialises writers so policy and sled agree.
    disk: Mutex<WTinyLfu<String>>,
    memory: Mutex<MemoryTier>,
    /// `store.memory`, for copying objects before taking the memory lock ([`Held::copy`]).
    memory_capacity: u64,
    /// How many variants sled holds per URL, by a hash of the URL: a miss for a URL never
    /// stored is answered without a sled read or a hop to the store threads. Updated under
    /// the `disk` lock; a stale count only costs a sled read (or, if too low, one refetch).
    primaries: Mutex<HashMap<u64, u32>>,
    hasher: RandomState,
    /// When URLs were last removed, for puts of responses fetched before that.
    removals: Mutex<Removals>,
    /// Where sled reads and writes run, off the reactor (see [`crate::threads`]).
    reads: Threads,
    writes: Threads,
}

/// When URLs were last removed, by a hash of the URL (`Inner::hasher`): a miss whose request
/// went out before its URL was purged or invalidated would otherwise store what the purge
/// removed once its body arrived, and serve it as fresh. Bounded by [`REMOVALS_CAP`]: past
/// it the times are forgotten and `floor` takes the latest, which refuses every put whose
/// request is older (a collision only refuses a put too). A prefix purge keeps its prefix
/// and start time in `by_prefix` (at most [`PREFIX_REMOVALS_CAP`], past which `floor` takes
/// over as well): it removes only the URLs it finds stored, so a URL under the prefix whose
/// miss was still in flight had no removal time of its own.
struct Removals {
    by_url: HashMap<u64, SystemTime>,
    by_prefix: Vec<(String, SystemTime)>,
    floor: Option<SystemTime>,
}

/// URLs whose removal time is kept (an entry is 16 bytes plus the map's overhead).
const REMOVALS_CAP: usize = 16_384;
/// Prefix purges whose start time is kept (each put compares its URL with every one).
const PREFIX_REMOVALS_CAP: usize = 64;

/// Threads for sled reads of objects not in memory, which run side by side.
const READ_THREADS: usize = 4;
/// Writes (puts, 304 updates, removals) hold the disk policy's lock for their whole
/// transaction, so one thread does them all, and reads never queue behind them.
const WRITE_THREADS: usize = 1;

/// URLs a prefix purge lists per walk of the `objects` keys.
pub(super) const PURGE_BATCH: usize = 1_000;

/// Which store threads a job runs on.
#[derive(Clone, Copy)]
enum Job {
    Read,
    Write,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves only approximate policy state behind; carry on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn tx_err(e: TransactionError<()>) -> Error {
    match e {
        TransactionError::Storage(e) => Error::Sled(e),
        TransactionError::Abort(()) => Error::Join("transaction aborted".into()),
    }
}

impl Cache {
    /// Opens the cache on the store's trees, rebuilding the eviction index and sweeping
    /// unreferenced bodies. Blocking (reads every meta once); call at start-up.
    pub fn open(store: &crate::store::Store, cfg: CacheConfig) -> Result<Cache, Error> {
        let expected = (cfg.max_size / 32_768).clamp(1024, 1 << 22) as usize;
        let cache = Cache {
            inner: Arc::new(Inner {
                objects: store.objects.clone(),
                bodies: store.bodies.clone(),
                disk: Mutex::new(WTinyLfu::new(cfg.max_size, expected)),
                memory: Mutex::new(MemoryTier::new(cfg.memory)),
                memory_capacity: cfg.memory,
                primaries: Mutex::new(HashMap::new()),
                hasher: RandomState::default(),
                removals: Mutex::new(Removals {
                    by_url: HashMap::new(),
                    by_prefix: Vec::new(),
                    floor: None,
                }),
                reads: Threads::new("store-read", READ_THREADS),
                writes: Threads::new("store-write", WRITE_THREADS),
            }),
        };
        super::recover::rebuild(&cache)?;
        Ok(cache)
    }

    pub(super) fn trees(&self) -> (&Tree, &Tree) {
        (&self.inner.objects, &self.inner.bodies)
    }

    pub(super) fn disk(&self) -> MutexGuard<'_, WTinyLfu<String>> {
        lock(&self.inner.disk)
    }

    /// Memory-tier lookup only: never touches disk, safe on a reactor thread.
    pub fn get_memory(&self, key: &CacheKey, req: &HeaderMap) -> Option<Hit> {
        let mut memory = lock(&self.inner.memory);
        let e = memory.get(key.as_str(), req)?;
        // Frequency for the disk policy too; skipped when a writer holds it (approximate).
        if let Ok(mut d) = self.inner.disk.try_lock() {
            d.touch(&e.key);
        }
        Some(Hit {
            meta: e.meta.clone(),
            body: e.body.clone(),
            facts: e.facts.clone(),
            tier: Tier::Memory,
            verdict: e.verdict.clone(),
        })
    }

    /// Keeps `verdict`, computed for the object `scanned`, with its held variant (see
    /// [`MemoryTier::keep_verdict`]), so its next hits need no memo lookup. Memory only: an
    /// unscanned verdict, or an object no longer held as scanned, keeps nothing.
    pub fn keep_verdict(&self, scanned: &ObjectMeta, verdict: &Arc<Verdict>) {
        if verdict.is_lasting() {
            lock(&self.inner.memory).keep_verdict(scanned, Arc::clone(verdict));
        }
    }

    /// Full lookup (memory, then sled with body verification). Blocking.
    pub fn get_blocking(&self, key: &CacheKey, req: &HeaderMap) -> Result<Found, Error> {
        if let Some(hit) = self.get_memory(key, req) {
            return Ok(Found::Hit(hit));
        }
        let url = key.as_str();
        let Some(spec) = self.inner.objects.get(url)? else {
            return Ok(Found::Miss);
        };
        let spec = decode_spec(&spec);
        let okey = object_key(url, &vary::secondary_key(&spec, req));
        let Some(raw) = self.inner.objects.get(okey.as_bytes())? else {
            return Ok(Found::VaryMiss);
        };
        let Ok(meta) = ObjectMeta::decode(&raw) else {
            tracing::warn!(key = %url, "cache: undecodable meta dropped");
            self.forget(okey, &raw, None)?;
            return Ok(Found::Miss);
        };
        match bodies::read(&self.inner.bodies, &meta.body_sha256)? {
            Ok(body) => {
                let meta = Arc::new(meta);
                // Frequency for the disk policy, skipped while a writer holds it (as for
                // memory hits): a read never waits for a write's transaction.
                if let Ok(mut d) = self.inner.disk.try_lock() {
                    d.touch(&okey);
                }
                self.hold_if_current(&okey, &raw, &meta, &body)?;
                Ok(Found::Hit(Hit {
                    facts: Arc::new(Facts::of(&meta)),
                    meta,
                    body,
                    tier: Tier::Disk,
                    verdict: None,
                }))
            }
            Err(failure) => {
                tracing::debug!(key = %url, ?failure, "cache: body missing or corrupt on read");
                self.forget(okey, &raw, Some(&meta.body_sha256))?;
                Ok(Found::Miss)
            }
        }
    }

    /// Puts an object just read from sled (`raw`: its meta as read) into the memory tier,
    /// unless a purge, put or 304 committed since the read. Writers commit to sled before they
    /// update memory, so a meta still the same under the memory lock cannot bring back what
    /// they removed or replaced.
    pub(super) fn hold_if_current(
        &self,
        okey: &str,
        raw: &[u8],
        meta: &Arc<ObjectMeta>,
        body: &Bytes,
    ) -> Result<(), Error> {
        let held = Held::copy(self.inner.memory_capacity, meta, body);
        let mut memory = lock(&self.inner.memory);
        if self.inner.objects.get(okey.as_bytes())?.as_deref() == Some(raw) {
            match held {
                Some(held) => memory.insert_held(held),
                None => memory.remove(&meta.url, &meta.secondary),
            }
        }
        Ok(())
    }

    /// Stores a complete response (build `meta` with [`ObjectMeta::from_response`]). Blocking.
    /// Rejects a body that does not match its meta or its Content-Length.
    pub fn put_blocking(&self, meta: ObjectMeta, body: Bytes) -> Result<PutOutcome, Error> {
        if body.len() as u64 != meta.body_len || sha256(&body) != meta.body_sha256 {
            return Err(Error::BodyMismatch);
        }
        self.commit(meta, body, None)
    }

    /// Writes an object whose meta describes `body` (its length and SHA-256 checked), with
    /// the `verdict` scanned from this very response for the memory tier to keep (a lasting
    /// one), so its hits need no memo lookup.
    fn commit(
        &self,
        meta: ObjectMeta,
        body: Bytes,
        verdict: Option<Arc<Verdict>>,
    ) -> Result<PutOutcome, Error> {
        if !policy::body_complete(&meta.headers, meta.body_len) {
            return Err(Error::Truncated);
        }
        let size = meta.accounted_size();
        let okey = object_key(&meta.url, &meta.secondary);
        let encoded = meta.encode();
        let spec = meta.vary.join("\n");
        let sha = meta.body_sha256;
        // Copied before any lock is taken (the copy is the slow part).
        let held =
            Held::copy(self.inner.memory_capacity, &meta, &body).map(|h| h.with_verdict(verdict));
        let mut disk = self.disk();
        // Past what the disk policy can hold (the bound less its window): written, it would
        // only be evicted again, after what it displaced.
        if !disk.fits(size) {
            return Ok(PutOutcome::TooLarge);
        }
        // Under the disk lock, which removals hold too: a removal either finished before
        // this check or starts after the commit.
        if self.removed_since(&meta.url, meta.request_time) {
            return Ok(PutOutcome::Outdated);
        }
        let crowded = if meta.vary.is_empty() || disk.contains(&okey) {
            Vec::new()
        } else {
            self.crowded_variants(&meta.url)?
        };
        (&self.inner.objects, &self.inner.bodies)
            .transaction(|(o, b)| {
                bodies::add_ref(b, &sha, &body)?;
                if let Some(old) = o.get(okey.as_bytes())? {
                    if let Ok(old) = ObjectMeta::decode(&old) {
                        bodies::release(b, &old.body_sha256)?;
                    }
                }
                o.insert(okey.as_bytes(), encoded.as_slice())?;
                o.insert(meta.url.as_bytes(), spec.as_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_err)?;
        self.count_variant(&meta.url, i32::from(!disk.contains(&okey)));
        for k in &crowded {
            disk.remove(k);
        }
        self.drop_objects(&crowded)?;
        let evicted = disk.insert(okey.clone(), size);
        let self_evicted = evicted.contains(&okey);
        self.drop_objects(&evicted)?;
        // Still under the disk lock, which purges hold too: a purge right after this put
        // cannot run between the commit and the memory insert and leave the object servable
        // from memory.
        if !self_evicted {
            let mut memory = lock(&self.inner.memory);
            match held {
                Some(held) => memory.insert_held(held),
                None => memory.remove(&meta.url, &meta.secondary),
            }
        }
        drop(disk);
        Ok(PutOutcome::Stored)
    }

    /// The variants of `url` that must go before a new one is stored, oldest first, so that
    /// a URL keeps at most [`MAX_VARIANTS`]: `Vary: Cookie` with many clients otherwise stored
    /// one per client, and invalidating or purging the URL removed them all in one write job.
    /// Blocking; the caller holds the disk lock.
    fn crowded_variants(&self, url: &str) -> Result<Vec<String>, Error> {
        let mut prefix = url.as_bytes().to_vec();
        prefix.push(0);
        let mut variants = Vec::new();
        for kv in self.inner.objects.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let stored_at = ObjectMeta::decode(&v).map_or(std::time::UNIX_EPOCH, |m| m.stored_at);
            if let Ok(k) = String::from_utf8(k.to_vec()) {
                variants.push((stored_at, k));
            }
        }
        let excess = (variants.len() + 1).saturating_sub(MAX_VARIANTS);
        if excess == 0 {
            return Ok(Vec::new());
        }
        variants.sort();
        Ok(variants.into_iter().take(excess).map(|(_, k)| k).collect())
    }

    /// Replaces a stored meta after a 304 merge (same body). False when the object is gone or
    /// now has another body. A meta of another size is charged anew, which may evict colder
    /// objects (or this one). Blocking.
    pub fn update_meta_blocking(&self, meta: ObjectMeta) -> Result<bool, Error> {
        let okey = object_key(&meta.url, &meta.secondary);
        let encoded = meta.encode();
        let mut disk = self.disk();
        let Some(raw) = self.inner.objects.get(okey.as_bytes())? else {
            return Ok(false);
        };
        match ObjectMeta::decode(&raw) {
            Ok(old) if old.body_sha256 == meta.body_sha256 => {
                // compare_and_swap: a concurrent put of a new body wins over this update.
                let swapped = self
                    .inner
                    .objects
                    .compare_and_swap(okey.as_bytes(), Some(raw), Some(encoded))?
                    .is_ok();
                if !swapped {
                    return Ok(false);
                }
                let size = meta.accounted_size();
                if size != old.accounted_size() && disk.contains(&okey) {
                    let evicted = disk.insert(okey.clone(), size);
                    self.drop_objects(&evicted)?;
                    if evicted.contains(&okey) {
                        return Ok(true);
                    }
                }
                lock(&self.inner.memory).update_meta(Arc::new(meta));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The metas of every variant stored for `key`'s URL (undecodable ones skipped), for a
    /// 304 that freshens each stored response it selects (RFC 9111 §4.3.4). Blocking.
    pub fn variants_blocking(&self, key: &CacheKey) -> Result<Vec<ObjectMeta>, Error> {
        let mut prefix = key.as_str().as_bytes().to_vec();
        prefix.push(0);
        let mut metas = Vec::new();
        for kv in self.inner.objects.scan_prefix(&prefix) {
            let (_, v) = kv?;
            if let Ok(meta) = ObjectMeta::decode(&v) {
                metas.push(meta);
            }
        }
        Ok(metas)
    }

    /// Purges every variant stored for `key`; returns how many were removed. Blocking.
    pub fn remove_blocking(&self, key: &CacheKey) -> Result<usize, Error> {
        let url = key.as_str();
        let mut prefix = url.as_bytes().to_vec();
        prefix.push(0);
        // The variants are listed under the disk lock that puts commit under: a variant
        // committed between listing and removing would otherwise outlive its Vary index.
        let mut disk = self.disk();
        let keys: Vec<String> = self
            .inner
            .objects
            .scan_prefix(&prefix)
            .keys()
            .filter_map(|k| k.ok().and_then(|k| String::from_utf8(k.to_vec()).ok()))
            .collect();
        for k in &keys {
            disk.remove(k);
        }
        self.drop_objects(&keys)?;
        self.inner.objects.remove(url)?;
        lock(&self.inner.memory).remove_primary(url);
        self.note_removal(url);
        drop(disk);
        Ok(keys.len())
    }

    /// Remembers that `url` was removed now (the caller holds the disk lock).
    fn note_removal(&self, url: &str) {
        self.note_removal_at(url, SystemTime::now());
    }

    /// [`note_removal`](Self::note_removal) at `now` (tests set the clock).
    pub(super) fn note_removal_at(&self, url: &str, now: SystemTime) {
        let h = self.inner.hasher.hash_one(url);
        let mut r = lock(&self.inner.removals);
        if r.by_url.len() >= REMOVALS_CAP {
            r.by_url.clear();
            r.floor = Some(now);
        }
        r.by_url.insert(h, now);
    }

    /// Remembers that every URL starting with `prefix` is removed from `now` on (a prefix
    /// purge, before its walk: a put that commits after this is refused if its request is
    /// older, one that committed before is found by the walk).
    fn note_prefix_removal(&self, prefix: &str, now: SystemTime) {
        let mut r = lock(&self.inner.removals);
        r.by_prefix.retain(|(p, _)| p != prefix);
        if r.by_prefix.len() >= PREFIX_REMOVALS_CAP {
            r.by_prefix.clear();
            r.floor = Some(now);
        }
        r.by_prefix.push((prefix.to_string(), now));
    }

    /// Whether `url` was removed at or after `request_time` (kept to the millisecond, rounded
    /// down, so a tie counts as removed after). The caller holds the disk lock.
    ///
    /// A removal time past the present means the wall clock went back since (NTP stepping a
    /// fast clock, a VM resumed): it becomes the present, so a request sent from now on is
    /// stored again. Left as it was, every put of the URL (of every URL, for `floor`) was
    /// refused until the clock caught up, which after a boot with a clock far ahead was
    /// for as long as sluice ran.
    fn removed_since(&self, url: &str, request_time: SystemTime) -> bool {
        let h = self.inner.hasher.hash_one(url);
        let now = SystemTime::now();
        let mut r = lock(&self.inner.removals);
        let r = &mut *r;
        let prefixes = r
            .by_prefix
            .iter_mut()
            .filter(|(p, _)| url.starts_with(p.as_str()));
        let times = (r.by_url.get_mut(&h).into_iter())
            .chain(r.floor.as_mut())
            .chain(prefixes.map(|(_, t)| t));
        let mut removed = None;
        for t in times {
            *t = (*t).min(now);
            removed = removed.max(Some(*t));
        }
        removed.is_some_and(|t| request_time <= t)
    }

    /// Up to `limit` stored URLs starting with `prefix`, each once, in key order, from the
    /// first one after the URL `after`. Blocking: walks the `objects` keys under the prefix.
    pub(super) fn urls_under(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, Error> {
        // A URL's keys are `url` and `url \0 secondary`; URLs hold no control bytes, so
        // `url \x01` sorts after all of them and before any longer URL it prefixes.
        let start = match after {
            Some(u) => format!("{u}\u{1}"),
            None => prefix.to_string(),
        };
        let mut urls: Vec<String> = Vec::new();
        for k in self.inner.objects.range(start.as_bytes()..).keys() {
            let k = k?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let primary = k.split(|b| *b == 0).next().unwrap_or(&[]);
            if let Ok(u) = std::str::from_utf8(primary) {
                if urls.last().map(String::as_str) != Some(u) {
                    if urls.len() == limit {
                        break;
                    }
                    urls.push(u.to_string());
                }
            }
        }
        Ok(urls)
    }

    /// Purges every URL starting with `prefix` (all variants); returns how many objects were
    /// removed. The walk runs on a read thread, [`PURGE_BATCH`] URLs at a time, so a purge of
    /// a large store never lists every URL in memory at once; each URL is its own write job,
    /// so puts and revalidations queue behind one URL's removal at a time, never behind the
    /// whole purge (20,000 objects under one prefix held an unrelated put for 1.5 s as one
    /// job).
    pub async fn remove_prefix(&self, prefix: &str) -> Result<usize, Error> {
        self.note_prefix_removal(prefix, SystemTime::now());
        let mut removed = 0;
        let mut after: Option<String> = None;
        loop {
            let (prefix, from) = (prefix.to_string(), after.clone());
            let urls = self
                .blocking(Job::Read, move |c| {
                    c.urls_under(&prefix, from.as_deref(), PURGE_BATCH)
                })
                .await?;
            let Some(last) = urls.last().cloned() else {
                return Ok(removed);
            };
            for u in urls {
                if let Ok(key) = CacheKey::parse(&u) {
                    removed += self.remove(&key).await?;
                }
            }
            after = Some(last);
        }
    }

    /// Drops one object found unusable on read (`raw`: its meta as read), from sled, the
    /// policy and memory, unless a writer replaced or removed it since the read.
    ///
    /// With `body`, the read found that body missing or damaged. A put that replaces an object
    /// releases its old body, so a read that lost that race finds the body gone, and dropping
    /// the object then deleted the response just stored. Under the disk lock, which every
    /// body write holds, the body is read again; only a failure then is damage. A damaged
    /// body is deleted (every meta naming it would fail the same check; the others are
    /// dropped as body-less when next read).
    pub(super) fn forget(
        &self,
        okey: String,
        raw: &[u8],
        body: Option<&[u8; 32]>,
    ) -> Result<(), Error> {
        let mut disk = self.disk();
        if self.inner.objects.get(okey.as_bytes())?.as_deref() != Some(raw) {
            return Ok(());
        }
        if let Some(sha) = body {
            match bodies::read(&self.inner.bodies, sha)? {
                Ok(_) => return Ok(()),
                Err(ReadFailure::Corrupt { chunks }) => {
                    self.inner
                        .bodies
                        .transaction(|b| bodies::delete(b, sha, chunks).map_err(Into::into))
                        .map_err(tx_err)?;
                }
                Err(ReadFailure::Missing) => {}
            }
            let url = okey.split('\0').next().unwrap_or_default();
            tracing::warn!(key = %url, "cache: body missing or corrupt; object dropped");
        }
        disk.remove(&okey);
        self.drop_objects(&[okey])
    }

    /// Removes objects by sled key (`url \0 secondary`), releasing their bodies, and the URL's
    /// Vary index once its last variant is gone. Callers hold the disk lock (writers are
    /// serialised), which makes the "last variant" check safe.
    pub(super) fn drop_objects(&self, keys: &[String]) -> Result<(), Error> {
        for okey in keys {
            (&self.inner.objects, &self.inner.bodies)
                .transaction(|(o, b)| {
                    if let Some(old) = o.remove(okey.as_bytes())? {
                        if let Ok(old) = ObjectMeta::decode(&old) {
                            bodies::release(b, &old.body_sha256)?;
                        }
                    }
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(tx_err)?;
            if let Some((p, s)) = okey.split_once('\0') {
                self.count_variant(p, -1);
                lock(&self.inner.memory).remove(p, s);
                let mut prefix = p.as_bytes().to_vec();
                prefix.push(0);
                if self.inner.objects.scan_prefix(&prefix).next().is_none() {
                    self.inner.objects.remove(p.as_bytes())?;
                }
            }
        }
        Ok(())
    }

    /// Adds `delta` to the variant count of `url` (see `Inner::primaries`); a `delta` of 0 or
    /// more leaves the count at least 1 (the URL has something stored).
    pub(super) fn count_variant(&self, url: &str, delta: i32) {
        let h = self.inner.hasher.hash_one(url);
        let mut map = lock(&self.inner.primaries);
        let n = map.entry(h).or_insert(0);
        *n = n.saturating_add_signed(delta).max(u32::from(delta >= 0));
        if *n == 0 {
            map.remove(&h);
        }
    }

    /// False only when nothing is stored for `url`.
    fn may_hold(&self, url: &str) -> bool {
        let h = self.inner.hasher.hash_one(url);
        lock(&self.inner.primaries).contains_key(&h)
    }

    /// Current figures.
    pub fn stats(&self) -> Stats {
        let (objects, disk_bytes) = {
            let d = self.disk();
            (d.len(), d.used())
        };
        Stats {
            objects,
            disk_bytes,
            memory_bytes: lock(&self.inner.memory).used(),
        }
    }

    /// Lookup from async code: memory inline, sled on the store threads.
    pub async fn get(&self, key: &CacheKey, req: &HeaderMap) -> Result<Found, Error> {
        if let Some(hit) = self.get_memory(key, req) {
            return Ok(Found::Hit(hit));
        }
        if !self.may_hold(key.as_str()) {
            return Ok(Found::Miss);
        }
        let (key, req) = (key.clone(), req.clone());
        self.blocking(Job::Read, move |c| c.get_blocking(&key, &req))
            .await
    }

    /// Stores a complete response whose meta `build` makes from the body ([`put_blocking`]
    /// without the check), on the store threads: hashing a large body (the meta names its
    /// SHA-256) is no work for a reactor thread, and a meta made from the very bytes stored
    /// needs no second hash to check it. `build` also gives the verdict scanned from exactly
    /// the meta's body and fields, if there is one: a lasting one is kept with the object in
    /// the memory tier.
    ///
    /// [`put_blocking`]: Self::put_blocking
    pub async fn put_built(
        &self,
        build: impl FnOnce(&[u8]) -> (ObjectMeta, Option<Arc<Verdict>>) + Send + 'static,
        body: Bytes,
    ) -> Result<PutOutcome, Error> {
        self.blocking(Job::Write, move |c| {
            let (meta, verdict) = build(&body);
            c.commit(meta, body, verdict)
        })
        .await
    }

    /// [`update_meta_blocking`](Self::update_meta_blocking) on the store threads.
    pub async fn update_meta(&self, meta: ObjectMeta) -> Result<bool, Error> {
        self.blocking(Job::Write, move |c| c.update_meta_blocking(meta))
            .await
    }

    /// [`variants_blocking`](Self::variants_blocking) on the store threads.
    pub async fn variants(&self, key: &CacheKey) -> Result<Vec<ObjectMeta>, Error> {
        let key = key.clone();
        self.blocking(Job::Read, move |c| c.variants_blocking(&key))
            .await
    }

    /// [`remove_blocking`](Self::remove_blocking) on the store threads.
    pub async fn remove(&self, key: &CacheKey) -> Result<usize, Error> {
        let key = key.clone();
        self.blocking(Job::Write, move |c| c.remove_blocking(&key))
            .await
    }

    /// Removes every variant of each of `keys` (RFC 9111 §4.4 invalidation) in one write
    /// job: once submitted it runs to the end even if the caller's future is dropped (a
    /// client that hangs up), and shutdown waits for it ([`Cache::idle`]). A key that fails
    /// is logged and the rest are still removed.
    pub async fn invalidate(&self, keys: Vec<CacheKey>) -> Result<usize, Error> {
        self.blocking(Job::Write, move |c| {
            let mut removed = 0;
            for key in &keys {
                match c.remove_blocking(key) {
                    Ok(n) => removed += n,
                    Err(e) => {
                        tracing::warn!(url = key.as_str(), error = %e, "cache invalidation failed")
                    }
                }
            }
            Ok(removed)
        })
        .await
    }

    /// Waits until no store job is left running, at most `limit` (shutdown: a write whose
    /// caller has gone may still be in its transaction). True when none is.
    pub async fn idle(&self, limit: Duration) -> bool {
        let end = tokio::time::Instant::now() + limit;
        self.inner.writes.idle(limit).await
            && self
                .inner
                .reads
                .idle(end.saturating_duration_since(tokio::time::Instant::now()))
                .await
    }

    /// Runs `f` on the store's read or write threads and waits for it.
    async fn blocking<T: Send + 'static>(
        &self,
        job: Job,
        f: impl FnOnce(&Cache) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let this = self.clone();
        let answer = match job {
            // A read nobody waits for any more is skipped; a write always happens.
            Job::Read => self.inner.reads.run_if_awaited(move || f(&this)).await,
            Job::Write => self.inner.writes.run(move || f(&this)).await,
        };
        answer.map_err(|e| Error::Join(e.to_string()))?
    }
}

fn decode_spec(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .split('\n')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reference counts of bodies named by metas, for the start-up sweep.
pub(super) type RefCounts = HashMap<[u8; 32], u64>;

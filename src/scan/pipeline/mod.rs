//! The pipeline: decode a body, run every classifier, decide the class, memoise the verdict.
//!
//! [`Pipeline`] is cheap to clone (one `Arc`) and shared by the proxy, the admin API and
//! `sluice scan`. [`Pipeline::scan_sync`] does the work on the calling thread (worker threads,
//! the CLI); [`Pipeline::scan`] runs it on the bounded worker pool off the reactor.
//!
//! - `verdict`: class decision, `Verdict::unscanned`, `Verdict::header_value`, timestamps.
//! - `memo`: verdicts in sled by decoded-body SHA-256 (+ raw→decoded map for encoded bodies).
//! - `reading`: what besides the bytes a verdict depends on (declared type, charset, the
//!   header fields rules read); a memoised verdict holds only for the same reading.
//! - `pool`: semaphore-gated dedicated scan threads with a bounded queue and a deadline.
//! - `stats`: atomic counters for metrics.
//! - `content`: a `Content` from an HTTP response's header map.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::ScanConfig;
use crate::scan::decode::{decode, reconcile, sniff, DecodeLimits};
use crate::scan::digest::DigestList;
use crate::scan::model::TextModel;
use crate::scan::pdq::PdqClassifier;
use crate::scan::rules::RuleSet;
use crate::scan::{Classifier, Content, HeaderUse, LoadError, Loaded, ScanError, Verdict};
use crate::store::Store;

pub mod content;
pub mod index;
pub mod memo;
pub mod pool;
pub mod reading;
pub mod stats;
pub mod verdict;

pub use content::{content_encoding, content_from_response, parse_content_type};
use memo::{Key, Memo, RawKey};
use pool::{Pool, PoolError};
use stats::{ClassifierCounters, Stats};
pub use stats::{ClassifierSnapshot, StatsSnapshot};
pub use verdict::{format_score, rfc3339, Thresholds};

#[cfg(test)]
mod tests;

/// Bodies up to this size are hashed and looked up in the memo on the calling task before
/// any hop to the worker pool (hashing 64 KiB takes tens of microseconds).
const INLINE_MEMO_MAX: usize = 64 << 10;

/// Everything the pipeline needs from `[scan]` besides the classifiers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Scores at which a body becomes `suspect` and `spam`.
    pub thresholds: Thresholds,
    /// Decode bounds (`max_body`, `max_decode_ratio`, URI cap).
    pub limits: DecodeLimits,
    /// Scan jobs at once (0 = one per core).
    pub workers: usize,
    /// Jobs allowed to wait for a worker; more are refused with reason `limit`.
    pub queue: usize,
    /// Deadline of one scan, from submission (→ reason `timeout`).
    pub timeout: Duration,
}

impl Settings {
    /// The settings configured in `[scan]`.
    pub fn from_config(cfg: &ScanConfig) -> Settings {
        Settings {
            thresholds: Thresholds {
                spam: cfg.spam_threshold,
                suspect: cfg.suspect_threshold,
            },
            limits: DecodeLimits::from_config(cfg),
            workers: cfg.workers,
            queue: cfg.queue,
            timeout: cfg.timeout,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&ScanConfig::default())
    }
}

/// The loaded classifiers with their counters, and the ruleset version they make up.
struct ClassifierSet {
    classifiers: Vec<(Arc<dyn Classifier>, Arc<ClassifierCounters>)>,
    thresholds: Thresholds,
    ruleset: String,
    /// The response header fields the classifiers read (part of every reading).
    header_use: HeaderUse,
    handles: Handles,
}

impl ClassifierSet {
    /// The reading of a body described by `source`, under this set.
    fn reading(&self, source: Source<'_>) -> String {
        match source {
            Source::Content(c) => reading::of_content(&self.header_use, c),
            Source::Headers(h) => reading::of_headers(&self.header_use, h),
        }
    }
}

/// What describes a body besides its bytes: a scan input, or the response header map it
/// would be built from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Content(&'a Content),
    Headers(&'a http::HeaderMap),
}

/// Typed handles to the classifiers of the current set that the admin API edits or counts
/// (`None` for a pipeline built from an explicit classifier list).
#[derive(Clone, Default)]
pub struct Handles {
    /// The SHA-256 digest lists (runtime `add`/`remove`).
    pub digest: Option<Arc<DigestList>>,
    /// The PDQ lists and index (runtime `add_to_list`/`remove`).
    pub pdq: Option<Arc<PdqClassifier>>,
    /// The rule set (for counts).
    pub rules: Option<Arc<RuleSet>>,
}

impl Handles {
    /// Rules plus listed hashes: what `POST /rules/reload` reports as loaded.
    pub fn loaded(&self) -> usize {
        self.rules.as_ref().map_or(0, |r| r.len())
            + self.digest.as_ref().map_or(0, |d| d.len())
            + self.pdq.as_ref().map_or(0, |p| p.len())
    }
}

struct Inner {
    set: RwLock<Arc<ClassifierSet>>,
    settings: Settings,
    memo: OnceLock<Memo>,
    pool: Pool,
    stats: Stats,
    /// Set by [`Pipeline::drain`]: background work (a rescan) stops submitting.
    draining: std::sync::atomic::AtomicBool,
}

/// The classifier pipeline. Clone it freely; clones share classifiers, memo, pool and stats.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

/// What the job already knows when a scan times out: decoded SHA-256 and media type.
type Progress = Arc<Mutex<Option<(String, String)>>>;

impl Pipeline {
    /// Loads every classifier from `[scan]` (digest lists, PDQ lists, rules, text model).
    /// Returns the pipeline and the loaders' warnings, or every loader's errors.
    pub fn from_config(cfg: &ScanConfig) -> Result<(Pipeline, Vec<LoadError>), Vec<LoadError>> {
        let (classifiers, handles, warnings) = load_classifiers(cfg)?;
        let pipeline = Pipeline::new(classifiers, Settings::from_config(cfg));
        pipeline.swap(|set| set.handles = handles);
        Ok((pipeline, warnings))
    }

    /// A pipeline over the given classifiers (tests, embedding).
    pub fn new(classifiers: Vec<Arc<dyn Classifier>>, settings: Settings) -> Pipeline {
        let stats = Stats::default();
        let set = build_set(classifiers, settings.thresholds, &stats, Handles::default());
        Pipeline {
            inner: Arc::new(Inner {
                set: RwLock::new(Arc::new(set)),
                pool: Pool::new(settings.workers, settings.queue, settings.timeout),
                settings,
                memo: OnceLock::new(),
                stats,
                draining: Default::default(),
            }),
        }
    }

    /// Memoises verdicts in `store`'s `verdicts` tree (call once, before sharing the pipeline).
    pub fn with_store(self, store: &Store) -> Pipeline {
        self.with_memo(Self::memo_over(store))
    }

    /// [`with_store`](Self::with_store), reusing a verdict (memoised, or kept with a cached
    /// object) only while its scan is at most `age` old (`store.verdict_retention`; see
    /// [`Memo::reusing_for`]).
    pub fn with_store_reusing_for(self, store: &Store, age: Duration) -> Pipeline {
        self.with_memo(Self::memo_over(store).reusing_for(age))
    }

    fn memo_over(store: &Store) -> Memo {
        Memo::new(store.verdicts.clone())
            .with_index(store.verdicts_by_class.clone())
            .with_pdq(store.pdq_of.clone())
    }

    fn with_memo(self, memo: Memo) -> Pipeline {
        let _already_set = self.inner.memo.set(memo);
        self
    }

    /// Replaces the classifiers with freshly loaded ones (admin `POST /rules/reload`). On
    /// errors the current set stays in force. Verdicts of the old ruleset are rescanned lazily.
    pub fn reload(&self, cfg: &ScanConfig) -> Result<Vec<LoadError>, Vec<LoadError>> {
        self.reload_with(cfg, |_| {})
    }

    /// [`reload`](Self::reload) that lets `prepare` edit the new classifiers (re-apply the
    /// admin API's runtime hash entries) before they replace the current ones, so no scan
    /// ever sees a set without them.
    pub fn reload_with(
        &self,
        cfg: &ScanConfig,
        prepare: impl FnOnce(&Handles),
    ) -> Result<Vec<LoadError>, Vec<LoadError>> {
        // A missing rules directory or model file loads nothing at start (with a warning).
        // At a reload, while what it held is in force, it is more likely a deploy swapping it
        // than a wish to scan without it, and taking it at its word would pass every spam page
        // as clean, answering 200.
        let rules = self.handles().rules.map_or(0, |r| r.len());
        let model = self
            .current()
            .classifiers
            .iter()
            .any(|(c, _)| c.name() == crate::scan::model::NAME && !c.fingerprint().is_empty());
        let sources = [
            (
                rules > 0,
                cfg.rules.clone(),
                format!("no rules directory; the {rules} rules in force are kept (restart to run without rules)"),
            ),
            (
                model,
                cfg.models.join(crate::scan::model::MODEL_FILE),
                "no text model file; the model in force is kept (restart to run without it)".into(),
            ),
        ];
        if let Some((_, file, message)) = sources
            .into_iter()
            .find(|(in_force, path, _)| *in_force && !path.exists())
        {
            return Err(vec![LoadError {
                file,
                line: 0,
                message,
            }]);
        }
        let (classifiers, handles, warnings) = load_classifiers(cfg)?;
        prepare(&handles);
        let thresholds = Thresholds {
            spam: cfg.spam_threshold,
            suspect: cfg.suspect_threshold,
        };
        let set = build_set(classifiers, thresholds, &self.inner.stats, handles);
        *self
            .inner
            .set
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
        Ok(warnings)
    }

    /// Typed handles to the current digest lists, PDQ lists and rules.
    pub fn handles(&self) -> Handles {
        self.current().handles.clone()
    }

    /// Recomputes the ruleset version after a runtime list edit (the classifiers'
    /// fingerprints changed): memoised verdicts of the old version are then rescanned on
    /// their next use, which is how a newly listed hash reaches bodies cached before.
    pub fn refresh_ruleset(&self) {
        self.swap(|_| {});
    }

    /// Rebuilds the current set (same classifiers, fresh ruleset hash) after `edit`.
    fn swap(&self, edit: impl FnOnce(&mut ClassifierSet)) {
        let mut guard = self
            .inner
            .set
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut set = ClassifierSet {
            classifiers: guard.classifiers.clone(),
            thresholds: guard.thresholds,
            ruleset: String::new(),
            header_use: guard.header_use.clone(),
            handles: guard.handles.clone(),
        };
        edit(&mut set);
        let plain: Vec<Arc<dyn Classifier>> =
            set.classifiers.iter().map(|(c, _)| Arc::clone(c)).collect();
        set.ruleset = ruleset_hash(&plain, set.thresholds);
        *guard = Arc::new(set);
    }

    /// The stored verdict for a decoded-body SHA-256, whatever ruleset produced it.
    pub fn stored(&self, sha256: &str) -> Option<Verdict> {
        self.inner.memo.get()?.get_any(sha256)
    }

    /// Stores `v` as the verdict of its body (replacing any older one and moving its by-class
    /// index entry); the admin API's retro-match and rescan write through here.
    pub fn put_verdict(&self, v: &Verdict) {
        if let Some(m) = self.inner.memo.get() {
            m.put(v);
        }
    }

    /// Worker slots of the scan pool, how many are busy, and how many jobs wait for one.
    pub fn pool_load(&self) -> (usize, usize, usize) {
        let p = &self.inner.pool;
        (p.workers(), p.busy(), p.waiting())
    }

    /// The ruleset version: a short hash over the classifiers' fingerprints and thresholds.
    pub fn ruleset(&self) -> String {
        self.current().ruleset.clone()
    }

    /// The settings this pipeline was built with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Waits for running scans to finish (at most `scan.timeout`), so that their verdicts are
    /// written before the store closes. From here on [`draining`](Self::draining) is true.
    pub async fn drain(&self) {
        self.inner.draining.store(true, Relaxed);
        if !self.inner.pool.idle(self.inner.settings.timeout).await {
            tracing::warn!("scans still running at shutdown; their verdicts may be lost");
        }
    }

    /// Whether shutdown has begun draining scans: a rescan stops instead of submitting
    /// more, which would hold the drain for `scan.timeout` and write verdicts after the
    /// store's final flush.
    pub fn draining(&self) -> bool {
        self.inner.draining.load(Relaxed)
    }

    /// The stored verdict for a decoded-body SHA-256, if the current ruleset produced it
    /// (under whatever reading); read from the store itself (an admin query), not from the
    /// in-memory copy hits use.
    pub fn lookup(&self, sha256: &str) -> Option<Verdict> {
        let ruleset = self.ruleset();
        self.stored(sha256).filter(|v| v.ruleset == ruleset)
    }

    /// Whether a verdict kept with a cached object still stands, that is, the current ruleset
    /// produced it and the memo would still reuse it (its age); counted like a memo hit of [`scan`](Self::scan) when it does.
    pub fn still_stands(&self, v: &Verdict) -> bool {
        if v.ruleset != self.current().ruleset
            || !self.inner.memo.get().is_none_or(|m| m.reusable(v))
        {
            return false;
        }
        let stats = &self.inner.stats;
        stats.requests.fetch_add(1, Relaxed);
        stats.memo_hits.fetch_add(1, Relaxed);
        stats.count_class(v.class);
        true
    }

    /// The verdict for a cached body, whose raw SHA-256 is known, when its object keeps none
    /// that [`still_stands`](Self::still_stands): the memo in memory, else the worker pool,
    /// whose worker reads the store before it scans. The store is read on the reactor only
    /// when the pool refuses the job (full or timed out), as for a miss.
    pub async fn verdict_for_known(&self, raw_sha: &[u8; 32], content: Content) -> Arc<Verdict> {
        self.inner.stats.requests.fetch_add(1, Relaxed);
        let source = Source::Content(&content);
        match self.memo_hit(raw_sha, &content.content_encoding, source, Read::Hot) {
            Some(v) => v,
            None => Arc::new(self.scan_unmemoised(content, Some(*raw_sha)).await),
        }
    }

    /// The memoised verdict of the current ruleset for a body with this raw SHA-256 read as
    /// `source` describes, counted as a memo hit (not as a request); `read` says whether a
    /// miss in memory reads the store.
    fn memo_hit(
        &self,
        raw_sha: &[u8; 32],
        content_encoding: &str,
        source: Source<'_>,
        read: Read,
    ) -> Option<Arc<Verdict>> {
        let memo = self.inner.memo.get()?;
        let coding = normalise_coding(content_encoding);
        let (mut hex, decoded);
        let sha = if coding.is_empty() {
            // On the stack: this runs on every cache hit.
            hex = [0u8; 64];
            hex::encode_to_slice(raw_sha, &mut hex).ok()?;
            std::str::from_utf8(&hex).ok()?
        } else {
            decoded = memo.decoded_sha(&(*raw_sha, coding))?;
            decoded.as_str()
        };
        let set = self.current();
        let reading = set.reading(source);
        let key = Key {
            sha256: sha,
            reading: &reading,
            ruleset: &set.ruleset,
        };
        let v = match read {
            Read::Stored => memo.get(&key),
            Read::Hot => memo.get_hot(&key),
        }?;
        let stats = &self.inner.stats;
        stats.memo_hits.fetch_add(1, Relaxed);
        stats.count_class(v.class);
        Some(v)
    }

    /// How many scans may run or wait at once (`scan.workers` + `scan.queue`).
    pub fn capacity(&self) -> usize {
        self.inner.pool.workers() + self.inner.settings.queue
    }

    /// Counts a body the proxy did not hand over because the pipeline's capacity was taken
    /// already (observe mode's bound on bodies copied for a later scan).
    pub fn count_rejected(&self) {
        self.inner.stats.rejected.fetch_add(1, Relaxed);
    }

    /// A copy of the counters (scans, memo hits, per classifier, per class).
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Scans on the calling thread: memo, decode, classifiers, class decision. Never panics
    /// on hostile input; every failure is an `unscanned` verdict with a reason.
    pub fn scan_sync(&self, content: &Content) -> Verdict {
        self.inner.stats.requests.fetch_add(1, Relaxed);
        self.scan_counted(content, None, None)
    }

    /// Scans on the worker pool. Returns at once with `unscanned`/`limit` when every worker
    /// is busy and `queue` jobs already wait, and with `unscanned`/`timeout` after
    /// `scan.timeout`. The `sha256` of those two verdicts is empty when the body had not been
    /// hashed yet. Must be called inside a tokio runtime.
    pub async fn scan(&self, content: Content) -> Verdict {
        let source = Source::Content(&content);
        match self.memo_for(&content.bytes, &content.content_encoding, source) {
            Ok(v) => owned(v),
            Err(known_sha) => self.scan_unmemoised(content, known_sha).await,
        }
    }

    /// The first half of [`scan`](Self::scan), for callers that can skip building a
    /// [`Content`] when the answer is memoised: a small body whose verdict is in memory is
    /// answered here (hashing it costs less than the hop to a worker thread and back). The
    /// store is not read here, on the reactor: the worker reads it. Counts the request.
    /// `Err` carries the body's raw SHA-256 when it was hashed, for
    /// [`scan_unmemoised`](Self::scan_unmemoised). `headers` are the response's, from which
    /// the scan input would be built ([`content_from_response`]).
    pub fn memo_for_body(
        &self,
        bytes: &[u8],
        headers: &http::HeaderMap,
    ) -> Result<Arc<Verdict>, Option<[u8; 32]>> {
        let coding = content_encoding(headers);
        self.memo_for(bytes, &coding, Source::Headers(headers))
    }

    fn memo_for(
        &self,
        bytes: &[u8],
        content_encoding: &str,
        source: Source<'_>,
    ) -> Result<Arc<Verdict>, Option<[u8; 32]>> {
        self.inner.stats.requests.fetch_add(1, Relaxed);
        if bytes.len() > INLINE_MEMO_MAX.min(self.inner.settings.limits.max_body) {
            return Err(None);
        }
        let raw: [u8; 32] = Sha256::digest(bytes).into();
        self.memo_hit(&raw, content_encoding, source, Read::Hot)
            .ok_or(Some(raw))
    }

    /// The second half of [`scan`](Self::scan), after [`memo_for_body`](Self::memo_for_body)
    /// found nothing: the scan on the worker pool (`known_sha`: the worker does not hash the
    /// body again).
    pub async fn scan_unmemoised(&self, content: Content, known_sha: Option<[u8; 32]>) -> Verdict {
        let stats = &self.inner.stats;
        let progress: Progress = Arc::new(Mutex::new(None));
        let media_guess = quick_media_type(&content);
        // Shared with the job, to ask the store itself if no worker takes it.
        let content = Arc::new(content);
        let job = Arc::clone(&content);
        let this = self.clone();
        let job_progress = Arc::clone(&progress);
        let result = self
            .inner
            .pool
            .run(move || this.scan_counted(&job, known_sha, Some(&job_progress)))
            .await;
        let ruleset = self.ruleset();
        let known = progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (sha, media) = known.unwrap_or((String::new(), media_guess));
        if result.is_err() {
            // A body scanned before whose verdict memory has dropped (after a restart): the
            // store still knows it, and a stored `block` must not pass as `unscanned`.
            if let Some(v) = self.stored_for_refused(&content, known_sha).await {
                return owned(v);
            }
        }
        let verdict = match result {
            Ok(v) => return v,
            Err(PoolError::Full) => {
                stats.rejected.fetch_add(1, Relaxed);
                let detail = format!(
                    "all {} scan workers busy and {} scans queued",
                    self.inner.pool.workers(),
                    self.inner.settings.queue
                );
                Verdict::unscanned_with(&sha, &media, "limit", detail, &ruleset)
            }
            Err(PoolError::Timeout) => {
                stats.timeouts.fetch_add(1, Relaxed);
                let detail = format!(
                    "scan did not finish within {:?}",
                    self.inner.settings.timeout
                );
                Verdict::unscanned_with(&sha, &media, "timeout", detail, &ruleset)
            }
            Err(e @ PoolError::Failed(_)) => {
                Verdict::unscanned_with(&sha, &media, "error", e.to_string(), &ruleset)
            }
        };
        stats.count_class(verdict.class);
        verdict
    }

    /// The stored verdict of a body whose scan the pool refused. A body over 64 KiB comes
    /// unhashed (`known_sha`), and a Content-Encoded body's verdict is stored under its
    /// decoded SHA-256, which only the in-process raw → decoded map knows (empty after a
    /// restart): what is missing is computed on the blocking pool, not the reactor (the
    /// coding alone undone, bounded like any decode).
    async fn stored_for_refused(
        &self,
        content: &Arc<Content>,
        known_sha: Option<[u8; 32]>,
    ) -> Option<Arc<Verdict>> {
        let raw = match known_sha {
            Some(raw) => raw,
            None => {
                let job = Arc::clone(content);
                tokio::task::spawn_blocking(move || <[u8; 32]>::from(Sha256::digest(&job.bytes)))
                    .await
                    .ok()?
            }
        };
        let (coding, source) = (&content.content_encoding, Source::Content(content));
        if let Some(v) = self.memo_hit(&raw, coding, source, Read::Stored) {
            return Some(v);
        }
        let memo = self.inner.memo.get()?;
        let raw_key: RawKey = (raw, normalise_coding(coding));
        if raw_key.1.is_empty() || memo.decoded_sha(&raw_key).is_some() {
            return None; // its decoded SHA-256 was known: nothing is stored for it
        }
        let job = Arc::clone(content);
        let limits = self.inner.settings.limits.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let body = crate::scan::decode::decode_content_encoding(
                &job.bytes,
                &job.content_encoding,
                &limits,
            )
            .ok()?;
            (body.len() <= limits.max_body).then(|| crate::scan::sha256_hex(&body))
        })
        .await
        .ok()??;
        memo.remember(raw_key, &decoded);
        self.memo_hit(&raw, coding, Source::Content(content), Read::Stored)
    }

    fn current(&self) -> Arc<ClassifierSet> {
        Arc::clone(
            &self
                .inner
                .set
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn scan_counted(
        &self,
        content: &Content,
        raw_sha: Option<[u8; 32]>,
        progress: Option<&Progress>,
    ) -> Verdict {
        let v = self.evaluate(content, raw_sha, progress);
        self.inner.stats.count_class(v.class);
        v
    }

    /// `raw_sha` is the body's SHA-256 when the caller already computed it.
    fn evaluate(
        &self,
        content: &Content,
        raw_sha: Option<[u8; 32]>,
        progress: Option<&Progress>,
    ) -> Verdict {
        let set = self.current();
        let stats = &self.inner.stats;
        let limits = &self.inner.settings.limits;
        let memo = self.inner.memo.get();
        let raw_sha: [u8; 32] = raw_sha.unwrap_or_else(|| Sha256::digest(&content.bytes).into());
        let raw_hex = hex::encode(raw_sha);
        let coding = normalise_coding(&content.content_encoding);
        let identity = coding.is_empty();
        let report = |sha: &str, media: &str| {
            if let Some(p) = progress {
                *p.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((sha.to_string(), media.to_string()));
            }
        };
        if identity {
            report(&raw_hex, &quick_media_type(content));
        }
        if content.bytes.len() > limits.max_body {
            let detail = format!(
                "body of {} bytes is larger than scan.max_body ({} bytes)",
                content.bytes.len(),
                limits.max_body
            );
            let media = quick_media_type(content);
            return Verdict::unscanned_with(&raw_hex, &media, "too_large", detail, &set.ruleset);
        }
        let raw_key: RawKey = (raw_sha, coding);
        let reading = set.reading(Source::Content(content));
        let memoised = |sha256: &str| -> Option<Arc<Verdict>> {
            memo?.get(&Key {
                sha256,
                reading: &reading,
                ruleset: &set.ruleset,
            })
        };
        if let Some(m) = memo {
            let decoded = if identity {
                Some(raw_hex.clone())
            } else {
                m.decoded_sha(&raw_key)
            };
            if let Some(v) = decoded.and_then(|sha| memoised(&sha)) {
                stats.memo_hits.fetch_add(1, Relaxed);
                return owned(v);
            }
        }
        let doc = match decode(content, limits, Some(&raw_hex)) {
            Ok(d) => d,
            Err(e) => {
                let media = quick_media_type(content);
                return Verdict::unscanned_with(
                    &raw_hex,
                    &media,
                    e.reason(),
                    e.to_string(),
                    &set.ruleset,
                );
            }
        };
        report(&doc.sha256, &doc.media_type);
        if let Some(m) = memo {
            if !identity {
                m.remember(raw_key, &doc.sha256);
            }
            // An identity-coded body decodes to itself: its SHA-256 was asked just above.
            let asked = identity && doc.sha256 == raw_hex;
            if let Some(v) = (!asked).then(|| memoised(&doc.sha256)).flatten() {
                stats.memo_hits.fetch_add(1, Relaxed);
                return owned(v);
            }
        }
        stats.scans.fetch_add(1, Relaxed);
        // The PDQ classifier hands back the image's hash, kept with the verdict (`pdq_of`)
        // so a PDQ entry added later can be matched without decoding the image again.
        let mut image_hash = None;
        let outcomes = set
            .classifiers
            .iter()
            .map(|(c, counters)| match &set.handles.pdq {
                Some(pdq) if c.name() == pdq.name() => run_classifier(pdq.name(), counters, || {
                    let (hash, findings) = pdq.classify_with_hash(&doc)?;
                    image_hash = hash;
                    Ok(findings)
                }),
                _ => run_classifier(c.name(), counters, || c.classify(&doc)),
            })
            .collect();
        let mut v = verdict::decide(
            doc.sha256.clone(),
            doc.media_type.clone(),
            outcomes,
            set.thresholds,
            &set.ruleset,
        );
        v.reading = reading;
        if let Some(m) = memo {
            m.put(&v);
            if let Some(h) = &image_hash {
                m.put_pdq(&doc.sha256, h);
            }
        }
        v
    }
}

/// Where a memo lookup may look.
#[derive(Clone, Copy)]
enum Read {
    /// The in-memory copy only (on the reactor, for a body about to be scanned anyway).
    Hot,
    /// The in-memory copy, then the store.
    Stored,
}

/// Runs one classifier's `classify`, timing it and turning a panic into an error.
fn run_classifier(
    name: &'static str,
    counters: &ClassifierCounters,
    classify: impl FnOnce() -> Result<Vec<crate::scan::Finding>, ScanError>,
) -> verdict::Outcome {
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(classify))
        .unwrap_or_else(|_| Err(ScanError::Other("classifier panicked".to_string())));
    counters.record(start.elapsed(), result.is_err());
    verdict::Outcome {
        classifier: name,
        result,
    }
}

/// Loaded classifiers, typed handles to some of them, and the loaders' warnings.
type LoadedSet = (Vec<Arc<dyn Classifier>>, Handles, Vec<LoadError>);

/// Runs every loader so that all errors are reported together.
fn load_classifiers(cfg: &ScanConfig) -> Result<LoadedSet, Vec<LoadError>> {
    fn add<T: Classifier + 'static>(
        loaded: Loaded<T>,
        out: &mut Vec<Arc<dyn Classifier>>,
        warnings: &mut Vec<LoadError>,
        errors: &mut Vec<LoadError>,
    ) -> Option<Arc<T>> {
        match loaded {
            Ok((c, w)) => {
                let c = Arc::new(c);
                out.push(Arc::clone(&c) as Arc<dyn Classifier>);
                warnings.extend(w);
                Some(c)
            }
            Err(e) => {
                errors.extend(e);
                None
            }
        }
    }
    let (mut out, mut warnings, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let digest = add(DigestList::load(cfg), &mut out, &mut warnings, &mut errors);
    let pdq = add(
        PdqClassifier::load(cfg),
        &mut out,
        &mut warnings,
        &mut errors,
    );
    let rules = add(RuleSet::load(cfg), &mut out, &mut warnings, &mut errors);
    add(TextModel::load(cfg), &mut out, &mut warnings, &mut errors);
    let handles = Handles { digest, pdq, rules };
    if errors.is_empty() {
        Ok((out, handles, warnings))
    } else {
        Err(errors)
    }
}

fn build_set(
    classifiers: Vec<Arc<dyn Classifier>>,
    thresholds: Thresholds,
    stats: &Stats,
    handles: Handles,
) -> ClassifierSet {
    let ruleset = ruleset_hash(&classifiers, thresholds);
    let header_use = classifiers
        .iter()
        .map(|c| c.header_use())
        .fold(HeaderUse::default(), HeaderUse::union);
    ClassifierSet {
        classifiers: classifiers
            .into_iter()
            .map(|c| {
                let counters = stats.classifier(c.name());
                (c, counters)
            })
            .collect(),
        thresholds,
        ruleset,
        header_use,
        handles,
    }
}

/// 16 hex digits of SHA-256 over every classifier's name and fingerprint and the thresholds.
fn ruleset_hash(classifiers: &[Arc<dyn Classifier>], t: Thresholds) -> String {
    let mut h = Sha256::new();
    h.update(b"sluice-ruleset-v1\n");
    for c in classifiers {
        h.update(format!("{}\t{}\n", c.name(), c.fingerprint()).as_bytes());
    }
    h.update(format!("spam={}\nsuspect={}\n", t.spam, t.suspect).as_bytes());
    let digest = h.finalize();
    hex::encode(&digest[..8])
}

/// The coding list, lowercased and without `identity` entries (`""` for none).
fn normalise_coding(enc: &str) -> String {
    enc.split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect::<Vec<_>>()
        .join(",")
}

/// The media type without decoding: sniffed from the first KB of an unencoded body, else the
/// declared type. Cheap enough for the reactor.
fn quick_media_type(content: &Content) -> String {
    if normalise_coding(&content.content_encoding).is_empty() {
        reconcile(&content.declared_type, sniff(&content.bytes))
    } else {
        content.declared_type.clone()
    }
}

/// A memoised verdict handed out by value: the caller may edit it, so it must not keep the
/// values derived for the shared copy (a unique `Arc` is moved out, cache and all).
fn owned(v: Arc<Verdict>) -> Verdict {
    let mut v = Arc::unwrap_or_clone(v);
    v.derived = crate::scan::Derived::default();
    v
}

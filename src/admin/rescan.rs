//! `POST /rescan` and `GET /rescan`: re-classify stored bodies with the current ruleset in the
//! background, and report progress.
//!
//! A rescan selects verdicts (`{"class": C, "since": T}` walks the `verdicts_by_class` index
//! newest first down to `since`; `{"sha256": [...]}` names them), finds each one's body in the
//! cache (through the URL recorded for it in `urls`, so the stored headers and
//! Content-Encoding come along; else the `bodies` tree under the SHA-256 itself) and scans it
//! again through [`Pipeline::scan`](crate::scan::pipeline::Pipeline::scan): one job at a time,
//! submitted only while no proxy scan waits for a worker, so a rescan never starves the
//! proxy. The scan stores the new verdict and moves its index entry. A verdict already
//! produced by the current ruleset is answered by the memo (unchanged). Bodies no longer
//! stored count as `skipped`; unscanned outcomes as `errors` (the old verdict stays).
//!
//! One rescan runs at a time: a second `POST` while one runs gets 409 with its progress.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::reply::{self, ApiError};
use super::{blocking, Admin};
use crate::body::Body;
use crate::cache::key::CacheKey;
use crate::cache::memory::object_key;
use crate::cache::{bodies, meta::ObjectMeta};
use crate::proxy::Proxy;
use crate::scan::pipeline::reading::declared;
use crate::scan::pipeline::{content_from_response, index, rfc3339};
use crate::scan::{Class, Content, Verdict};
use crate::store::Store;

/// Most SHA-256s one `{"sha256": [...]}` request may name.
const MAX_SHAS: usize = 100_000;

/// How long the job waits before looking again when proxy scans occupy the pool.
const YIELD: Duration = Duration::from_millis(10);

/// The body of `POST /rescan`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RescanRequest {
    class: Option<String>,
    since: Option<String>,
    sha256: Option<Vec<String>>,
}

/// Which verdicts to rescan.
#[derive(Clone, Debug)]
enum Selector {
    /// A class, newest first, down to `since` (seconds since the epoch).
    Class { class: Class, since: Option<u64> },
    /// These decoded-body SHA-256s (lowercase, deduplicated).
    Shas(Vec<String>),
}

/// Where a rescan is: what `GET /rescan` answers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Progress {
    /// `idle` (none yet), `selecting`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// The request that started it.
    pub request: Value,
    /// The ruleset version the bodies are scanned with: the one in force when the rescan
    /// started, then that of the latest body scanned (each body is scanned with the ruleset
    /// in force when its turn comes, so a reload or hash-list edit during a rescan applies
    /// to the bodies after it, and this says so).
    pub ruleset: String,
    /// Verdicts selected.
    pub total: u64,
    /// Verdicts handled so far (changed, unchanged, skipped or failed).
    pub done: u64,
    /// Verdicts whose class changed.
    pub changed: u64,
    /// Verdicts whose body is no longer stored.
    pub skipped: u64,
    /// Bodies that could not be scanned (the old verdict stays).
    pub errors: u64,
    /// RFC 3339 start time.
    pub started_at: Option<String>,
    /// RFC 3339 end time, once done or failed.
    pub finished_at: Option<String>,
    /// Why the rescan failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Progress {
    fn running(&self) -> bool {
        matches!(self.state, "selecting" | "running")
    }

    /// Counts one handled verdict; `ruleset` is the one its body was scanned with, if it was.
    fn record(&mut self, outcome: Outcome, ruleset: Option<String>) {
        self.done += 1;
        match outcome {
            Outcome::Same => {}
            Outcome::Changed => self.changed += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Failed => self.errors += 1,
        }
        if let Some(r) = ruleset {
            self.ruleset = r;
        }
    }
}

/// The rescan state shared by the endpoint and the background job.
pub struct Rescans {
    progress: Mutex<Progress>,
}

impl Default for Rescans {
    fn default() -> Self {
        Rescans {
            progress: Mutex::new(Progress {
                state: "idle",
                ..Progress::default()
            }),
        }
    }
}

impl Rescans {
    fn update<T>(&self, f: impl FnOnce(&mut Progress) -> T) -> T {
        f(&mut self.progress.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A copy of the current progress.
    pub fn progress(&self) -> Progress {
        self.update(|p| p.clone())
    }
}

/// `GET /rescan`.
pub fn status(admin: &Admin) -> Response<Body> {
    reply::json(StatusCode::OK, &to_json(&admin.rescans.progress()))
}

/// `POST /rescan`: 202 with the new progress, 409 with the running one's, 400 on bad input.
pub async fn start(admin: &Admin, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body: RescanRequest =
        reply::read_json(req, reply::MAX_BODY, admin.proxy.cfg.header_timeout).await?;
    let selector = selector(body)?;
    let request = match &selector {
        Selector::Class { class, since } => json!({ "class": class, "since": since.map(|s| {
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s))
        }) }),
        Selector::Shas(s) => json!({ "sha256": s.len() }),
    };
    let started = admin.rescans.update(|p| {
        if p.running() {
            return Err(Box::new(p.clone()));
        }
        *p = Progress {
            state: "selecting",
            request,
            ruleset: admin.proxy.pipeline.ruleset(),
            started_at: Some(rfc3339(SystemTime::now())),
            ..Progress::default()
        };
        Ok(p.clone())
    });
    match started {
        Err(running) => {
            let mut v = to_json(&running);
            if let Some(o) = v.as_object_mut() {
                o.insert("error".into(), json!("a rescan is already running"));
            }
            Ok(reply::json(StatusCode::CONFLICT, &v))
        }
        Ok(p) => {
            tracing::info!(request = %p.request, "rescan started");
            tokio::spawn(job(
                admin.proxy.clone(),
                Arc::clone(&admin.rescans),
                selector,
            ));
            Ok(reply::json(StatusCode::ACCEPTED, &to_json(&p)))
        }
    }
}

fn to_json(p: &Progress) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// Checks the request: exactly one of `class` (with optional `since`) or `sha256`.
fn selector(r: RescanRequest) -> Result<Selector, ApiError> {
    match (r.class, r.since, r.sha256) {
        (Some(class), since, None) => {
            let class: Class = serde_json::from_value(Value::String(class.clone()))
                .map_err(|_| ApiError::bad_request(format!("unknown class {class:?}")))?;
            let since = match since {
                None => None,
                Some(s) => Some(index::parse_rfc3339(&s).ok_or_else(|| {
                    ApiError::bad_request(format!("since must be an RFC 3339 time, not {s:?}"))
                })?),
            };
            Ok(Selector::Class { class, since })
        }
        (None, None, Some(list)) => {
            if list.is_empty() || list.len() > MAX_SHAS {
                return Err(ApiError::bad_request(format!(
                    "sha256 must list 1 to {MAX_SHAS} hashes"
                )));
            }
            let mut seen = HashSet::new();
            let mut out = Vec::with_capacity(list.len());
            for (i, s) in list.into_iter().enumerate() {
                if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ApiError::bad_request(format!(
                        "not a SHA-256 (64 hex digits): {s:?}"
                    ))
                    .at(i));
                }
                let s = s.to_ascii_lowercase();
                if seen.insert(s.clone()) {
                    out.push(s);
                }
            }
            Ok(Selector::Shas(out))
        }
        (None, Some(_), None) => Err(ApiError::bad_request("since needs a class")),
        _ => Err(ApiError::bad_request(
            "give {\"class\": C[, \"since\": T]} or {\"sha256\": [...]}",
        )),
    }
}

/// Ends a rescan that stops without saying how (its job panicked) as failed: otherwise it
/// stayed "running", and every later `POST /rescan` got 409 until a restart.
struct Unfinished {
    rescans: Arc<Rescans>,
    /// Until the job's last update: after it the progress may be a newer rescan's.
    armed: bool,
}

impl Unfinished {
    fn new(rescans: Arc<Rescans>) -> Self {
        Unfinished {
            rescans,
            armed: true,
        }
    }

    /// The job's last update. Disarms the guard: a `POST /rescan` may start the next
    /// rescan as soon as this one is no longer running, before this job has returned.
    fn end<T>(&mut self, f: impl FnOnce(&mut Progress) -> T) -> T {
        self.armed = false;
        self.rescans.update(f)
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.rescans.update(|p| {
            if p.running() {
                p.state = "failed";
                p.error = Some("the rescan stopped unexpectedly (see the log)".into());
                p.finished_at = Some(rfc3339(SystemTime::now()));
            }
        });
    }
}

/// The background job.
async fn job(proxy: Arc<Proxy>, rescans: Arc<Rescans>, selector: Selector) {
    let mut unfinished = Unfinished::new(Arc::clone(&rescans));
    let p = proxy.clone();
    let selected = blocking(move || {
        // Selection waits for hash-list edits and reloads in progress, so it sees their
        // ruleset. Finding the URLs does not: they say where each body is stored, which no
        // edit changes, and walking every URL under the lock kept `POST /hashes` (and
        // reloads) waiting for the whole walk on a large store.
        let shas = {
            let _edits = p.list_edits.lock().unwrap_or_else(PoisonError::into_inner);
            select(&p.store, &selector)?
        };
        let urls = urls_of(&p.store, &shas)?;
        Ok((shas, urls))
    })
    .await;
    let (shas, urls) = match selected {
        Ok(s) => s,
        Err(e) => {
            unfinished.end(|p| {
                p.state = "failed";
                p.error = Some(e.message);
                p.finished_at = Some(rfc3339(SystemTime::now()));
            });
            return;
        }
    };
    rescans.update(|p| {
        p.state = "running";
        p.total = shas.len() as u64;
        p.ruleset = proxy.pipeline.ruleset();
    });
    for sha in shas {
        if proxy.pipeline.draining() {
            unfinished.end(|p| {
                p.state = "failed";
                p.error = Some("stopped: sluice is shutting down".into());
                p.finished_at = Some(rfc3339(SystemTime::now()));
            });
            return;
        }
        let (outcome, ruleset) = rescan_one(&proxy, &sha, urls.get(&sha).cloned()).await;
        rescans.update(|p| p.record(outcome, ruleset));
    }
    let p = unfinished.end(|p| {
        p.state = "done";
        p.finished_at = Some(rfc3339(SystemTime::now()));
        p.clone()
    });
    tracing::info!(
        total = p.total,
        changed = p.changed,
        skipped = p.skipped,
        errors = p.errors,
        "rescan done"
    );
}

/// What became of one verdict.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Same,
    Changed,
    Skipped,
    Failed,
}

/// Rescans one verdict's body; with the outcome, the ruleset it was scanned with (none when
/// it was not scanned).
async fn rescan_one(
    proxy: &Arc<Proxy>,
    sha: &str,
    url: Option<String>,
) -> (Outcome, Option<String>) {
    let store = proxy.store.clone();
    let key = sha.to_string();
    let stored = proxy.pipeline.stored(sha);
    let old = stored.as_ref().map(|v| v.class);
    let loaded = blocking(move || load(&store, &key, url.as_deref(), stored.as_ref())).await;
    let content = match loaded {
        Ok(Some(c)) => c,
        Ok(None) => return (Outcome::Skipped, None),
        Err(e) => {
            tracing::warn!(sha, error = %e.message, "rescan could not read a body");
            return (Outcome::Failed, None);
        }
    };
    // Proxy scans first: submit only when no worker is contended.
    loop {
        let (workers, busy, waiting) = proxy.pipeline.pool_load();
        if waiting == 0 && busy < workers {
            break;
        }
        tokio::time::sleep(YIELD).await;
    }
    let v = proxy.pipeline.scan(content).await;
    let outcome = if v.class == Class::Unscanned {
        tracing::warn!(sha, reason = ?v.reason, "rescan left a body unscanned");
        Outcome::Failed
    } else if v.sha256 != sha {
        Outcome::Skipped // the URL now holds another body; that one's verdict was refreshed
    } else if old == Some(v.class) {
        Outcome::Same
    } else {
        Outcome::Changed
    };
    (outcome, Some(v.ruleset))
}

/// The selected SHA-256s, in order.
fn select(store: &Store, selector: &Selector) -> Result<Vec<String>, ApiError> {
    let (class, since) = match selector {
        Selector::Shas(s) => return Ok(s.clone()),
        Selector::Class { class, since } => (*class, *since),
    };
    let prefix = index::class_prefix(class);
    let mut out = Vec::new();
    for kv in store.verdicts_by_class.scan_prefix(&prefix) {
        let (k, _) = kv?;
        let Some(rest) = k.get(prefix.len()..) else {
            continue;
        };
        let Some(secs) = index::key_secs(rest) else {
            continue;
        };
        if since.is_some_and(|s| secs < s) {
            break;
        }
        let sha = String::from_utf8_lossy(rest.get(16..).unwrap_or_default()).into_owned();
        let current = store
            .verdicts
            .get(sha.as_bytes())?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .and_then(|v| index::key(&v));
        // A stale index entry (the verdict changed class or time since) is not selected.
        if current.as_deref() == Some(k.as_ref()) {
            out.push(sha);
        }
    }
    Ok(out)
}

/// For each wanted SHA-256, a URL whose latest body had it (one pass over `urls`).
fn urls_of(store: &Store, shas: &[String]) -> Result<HashMap<String, String>, ApiError> {
    let wanted: HashSet<&str> = shas.iter().map(String::as_str).collect();
    let mut out = HashMap::new();
    for kv in store.urls.iter() {
        let (url, rec) = kv?;
        let Ok(rec) = serde_json::from_slice::<Value>(&rec) else {
            continue;
        };
        if let Some(sha) = rec.get("sha256").and_then(Value::as_str) {
            if wanted.contains(sha) && !out.contains_key(sha) {
                out.insert(sha.to_string(), String::from_utf8_lossy(&url).into_owned());
            }
        }
    }
    Ok(out)
}

/// The stored body of a verdict as scan input: a cached variant of its URL (with the stored
/// headers), else the body stored under the SHA-256 itself (an unencoded body), read as the
/// `stored` verdict says it was: the declared type and charset of its reading, or for a
/// reading that also has header fields (kept only as a digest) or none at all (a verdict
/// from before readings), its resolved media type, which reads the body the same way.
fn load(
    store: &Store,
    sha: &str,
    url: Option<&str>,
    stored: Option<&Verdict>,
) -> Result<Option<Content>, ApiError> {
    let mut digest = [0u8; 32];
    if hex::decode_to_slice(sha, &mut digest).is_err() {
        return Ok(None);
    }
    if let Some(key) = url.and_then(|u| CacheKey::parse(u).ok()) {
        let mut variants = Vec::new();
        for kv in store.objects.scan_prefix(object_key(key.as_str(), "")) {
            let (_, raw) = kv?;
            if let Ok(meta) = ObjectMeta::decode(&raw) {
                variants.push(meta);
            }
        }
        // The variant stored under this very digest first (an unencoded body).
        variants.sort_by_key(|m| m.body_sha256 != digest);
        for meta in variants {
            if let Ok(body) = bodies::read(&store.bodies, &meta.body_sha256)? {
                let url = Some(meta.url.clone());
                return Ok(Some(content_from_response(body, &meta.headers, url)));
            }
        }
    }
    let (declared_type, charset) = stored
        .map(|v| declared(&v.reading).unwrap_or_else(|| (v.media_type.clone(), None)))
        .unwrap_or_default();
    Ok(bodies::read(&store.bodies, &digest)?
        .ok()
        .map(|body| Content {
            bytes: body,
            declared_type,
            charset,
            ..Content::default()
        }))
}

#[cfg(test)]
mod tests {
    use sled::transaction::ConflictableTransactionError;

    use super::*;

    #[tokio::test]
    async fn a_rescan_that_panics_ends_failed_not_running() {
        let rescans = Arc::new(Rescans::default());
        rescans.update(|p| p.state = "running");
        let r = Arc::clone(&rescans);
        let panicked = tokio::spawn(async move {
            let _unfinished = Unfinished::new(r);
            panic!("a bug in a classifier");
        })
        .await;
        assert!(panicked.unwrap_err().is_panic());
        let p = rescans.progress();
        assert_eq!(p.state, "failed");
        assert!(!p.running() && p.finished_at.is_some() && p.error.is_some());
        // One that ended by itself keeps what it said.
        Unfinished::new(Arc::clone(&rescans)).end(|p| p.state = "done");
        assert_eq!(rescans.progress().state, "done");
    }

    /// Regression: the guard marked whatever rescan was running when it dropped. A job
    /// that had said "done" but not yet returned (logging, dropping its lists) and a new
    /// `POST /rescan` in between left the new rescan "failed" while it ran, so a third
    /// could start beside it.
    #[test]
    fn a_finished_rescans_guard_leaves_the_next_rescan_alone() {
        let rescans = Arc::new(Rescans::default());
        rescans.update(|p| p.state = "running");
        let mut first = Unfinished::new(Arc::clone(&rescans));
        // The first job's last update; it has not returned yet when the second starts.
        first.end(|p| p.state = "done");
        let second = Unfinished::new(Arc::clone(&rescans));
        rescans.update(|p| p.state = "selecting");
        drop(first);
        assert_eq!(rescans.progress().state, "selecting");
        assert!(rescans.progress().error.is_none());
        drop(second);
        assert_eq!(
            rescans.progress().state,
            "failed",
            "an unended rescan fails"
        );
    }

    /// Regression: the progress named the ruleset in force when the rescan began its scans,
    /// while each body is scanned with the one in force at its turn: after a reload or a
    /// hash-list edit during a rescan, `GET /rescan` named a ruleset that none of the later
    /// (or, once done, the last) bodies had been scanned with.
    #[test]
    fn progress_names_the_ruleset_the_latest_body_was_scanned_with() {
        let mut p = Progress {
            state: "running",
            ruleset: "before".into(),
            total: 4,
            ..Progress::default()
        };
        p.record(Outcome::Same, Some("before".into()));
        assert_eq!(p.ruleset, "before");
        // A reload between two bodies: the next one is scanned with the new ruleset.
        p.record(Outcome::Changed, Some("after".into()));
        assert_eq!(p.ruleset, "after");
        // A body no longer stored is not scanned, so it says nothing about the ruleset.
        p.record(Outcome::Skipped, None);
        p.record(Outcome::Failed, None);
        assert_eq!(p.ruleset, "after");
        assert_eq!((p.done, p.changed, p.skipped, p.errors), (4, 1, 1, 1));
    }

    /// A body found only under its digest (no URL holds it any more) is read as its verdict
    /// says it was, not as untyped bytes: spam stored as `application/x-foo` was judged clean
    /// as an opaque type, and reading it untyped (sniffed as text) would flip it to spam.
    #[test]
    fn a_body_without_a_url_is_read_as_its_verdict_says() {
        let store = Store::temporary().unwrap();
        let body = b"You have won the lottery";
        let digest = crate::cache::meta::sha256(body);
        store
            .bodies
            .transaction(|t| {
                bodies::add_ref(t, &digest, body)?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .unwrap();
        let sha = hex::encode(digest);
        let verdict = |reading: &str, media: &str| Verdict {
            reading: reading.into(),
            ..Verdict::unscanned(&sha, media, "limit", "r")
        };
        let read = |v: Option<Verdict>| {
            let c = load(&store, &sha, None, v.as_ref()).unwrap().unwrap();
            assert_eq!(&c.bytes[..], body);
            (c.declared_type, c.charset)
        };
        let typed = |m: &str, c: Option<&str>| (m.to_string(), c.map(String::from));
        assert_eq!(
            read(Some(verdict("application/x-foo", "application/x-foo"))),
            typed("application/x-foo", None)
        );
        assert_eq!(
            read(Some(verdict("text/html; charset=koi8-r", "text/html"))),
            typed("text/html", Some("koi8-r"))
        );
        assert_eq!(read(Some(verdict("-", "text/plain"))), typed("", None));
        // Header fields are only a digest, and old verdicts have no reading: the resolved type.
        assert_eq!(
            read(Some(verdict(
                "text/plain; fields=0123456789abcdef",
                "text/plain"
            ))),
            typed("text/plain", None)
        );
        assert_eq!(
            read(Some(verdict("", "application/x-foo"))),
            typed("application/x-foo", None)
        );
        assert_eq!(read(None), typed("", None));
    }
}

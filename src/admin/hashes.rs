//! Runtime hash entries: `POST /hashes`, `DELETE /hashes/{kind}/{hash}`, `GET /hashes`.
//!
//! Entries live in the sled `hashes` tree (`kind|hash` → entry JSON, hash in lowercase hex)
//! and in the running classifiers (the digest lists and the PDQ index, updated in place). The
//! ruleset version is recomputed after each edit, so memoised verdicts are rescanned on their
//! next use; on top of that an add retro-matches at once (`retro`): stored verdicts of bodies
//! and images that match a new entry become `listed` before the answer is sent.
//! [`apply_stored`] replays the tree into freshly loaded classifiers (start-up, reload).

use std::collections::HashMap;
use std::sync::PoisonError;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::reply::{self, query_param, ApiError};
use super::{blocking, Admin};
use crate::body::Body;
use crate::scan::pdq::{PdqHash, RUNTIME_LIST};
use crate::scan::pipeline::{rfc3339, Handles};
use crate::store::Store;

/// One runtime hash entry, as posted and as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HashEntry {
    /// `pdq` or `sha256`.
    pub kind: String,
    /// 64 hex digits (stored lowercase).
    pub hash: String,
    /// The finding's rule name (default: the list name).
    #[serde(default)]
    pub label: String,
    /// The list it belongs to (default `runtime`).
    #[serde(default)]
    pub list: String,
    /// When it was added (set by the server).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub added_at: String,
}

impl HashEntry {
    /// Checks kind and hash and normalises the hash to lowercase and the list to its default.
    fn validate(mut self) -> Result<HashEntry, String> {
        self.hash = normalise(&self.kind, &self.hash)?;
        if self.list.is_empty() {
            self.list = RUNTIME_LIST.to_string();
        }
        if self.list.contains(['\n', '\0']) || self.label.contains(['\n', '\0']) {
            return Err("label and list must be single-line".into());
        }
        Ok(self)
    }

    fn key(&self) -> String {
        format!("{}|{}", self.kind, self.hash)
    }
}

/// The canonical lowercase hash of `kind`, or why it is invalid.
fn normalise(kind: &str, hash: &str) -> Result<String, String> {
    match kind {
        "pdq" => PdqHash::from_hex(hash)
            .map(|h| h.to_hex())
            .map_err(|e| format!("not a PDQ hash (64 hex digits): {e}")),
        "sha256" if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(hash.to_ascii_lowercase())
        }
        "sha256" => Err(format!("not a SHA-256 hash (64 hex digits): {hash:?}")),
        other => Err(format!("kind must be \"pdq\" or \"sha256\", not {other:?}")),
    }
}

/// Puts one entry into the running classifiers.
fn apply(handles: &Handles, e: &HashEntry) {
    match e.kind.as_str() {
        "pdq" => {
            if let (Some(pdq), Ok(h)) = (&handles.pdq, PdqHash::from_hex(&e.hash)) {
                pdq.add_to_list(h, &e.label, &e.list);
            }
        }
        _ => {
            if let Some(d) = &handles.digest {
                let _ = d.add(&e.hash, &e.label, &e.list);
            }
        }
    }
}

/// Takes one entry [`apply`] put in back out of the running classifiers (entries of the same
/// hash under other labels or lists stay; an identical file-listed one comes back on reload).
fn unapply(handles: &Handles, e: &HashEntry) {
    match e.kind.as_str() {
        "pdq" => {
            if let (Some(pdq), Ok(h)) = (&handles.pdq, PdqHash::from_hex(&e.hash)) {
                pdq.remove_from_list(h, &e.label, &e.list);
            }
        }
        _ => {
            if let Some(d) = &handles.digest {
                let _ = d.remove_entry(&e.hash, &e.label, &e.list);
            }
        }
    }
}

/// Replays every stored entry into `handles` (freshly loaded classifiers); returns how many.
pub fn apply_stored(handles: &Handles, store: &Store) -> usize {
    let mut n = 0;
    for kv in store.hashes.iter() {
        match kv {
            Ok((_, v)) => match serde_json::from_slice::<HashEntry>(&v) {
                Ok(e) => {
                    apply(handles, &e);
                    n += 1;
                }
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable stored hash entry"),
            },
            Err(e) => {
                tracing::warn!(error = %e, "reading stored hash entries failed");
                break;
            }
        }
    }
    n
}

/// `POST /hashes`: one entry or an array; all-or-nothing.
pub async fn add(admin: &Admin, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body: Value =
        reply::read_json(req, reply::MAX_HASHES_BODY, admin.proxy.cfg.header_timeout).await?;
    let (raw, single) = match body {
        Value::Array(items) => (items, false),
        one => (vec![one], true),
    };
    let added_at = rfc3339(std::time::SystemTime::now());
    let mut entries = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        let fail = |m: String| {
            let e = ApiError::bad_request(m);
            if single {
                e
            } else {
                e.at(i)
            }
        };
        let mut e: HashEntry = serde_json::from_value(v).map_err(|e| fail(e.to_string()))?;
        e.added_at = added_at.clone();
        entries.push(e.validate().map_err(fail)?);
    }
    let proxy = admin.proxy.clone();
    let n = entries.len();
    let (ruleset, retro_matched) = blocking(move || {
        let (store, pipeline) = (&proxy.store, &proxy.pipeline);
        let (before, now, effective, replaced) = {
            let _edits = proxy
                .list_edits
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let before = pipeline.ruleset();
            // The tree keeps one entry per kind and hash: the last of the request. An entry
            // it replaces (another label or list) leaves the running classifiers too, or they
            // kept matching under the old name until a reload, unlike after a restart.
            let last: HashMap<String, usize> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.key(), i))
                .collect();
            let mut replaced = Vec::new();
            for (key, &i) in &last {
                let Some(raw) = store.hashes.get(key.as_bytes())? else {
                    continue;
                };
                if let Ok(old) = serde_json::from_slice::<HashEntry>(&raw) {
                    let new = &entries[i];
                    if (&old.label, &old.list) != (&new.label, &new.list) {
                        replaced.push(old);
                    }
                }
            }
            let mut batch = sled::Batch::default();
            for e in &entries {
                let json = serde_json::to_vec(e).map_err(|e| ApiError::internal(e.to_string()))?;
                batch.insert(e.key().as_bytes(), json);
            }
            store.hashes.apply_batch(batch)?;
            // Acknowledged entries must survive kill -9 (sled otherwise writes every 500 ms).
            store.db.flush()?;
            let handles = pipeline.handles();
            for old in &replaced {
                unapply(&handles, old);
            }
            // The entries now in force: the last of each kind and hash.
            let effective: Vec<HashEntry> = entries
                .iter()
                .enumerate()
                .filter(|(i, e)| last.get(&e.key()) == Some(i))
                .map(|(_, e)| e.clone())
                .collect();
            for e in &effective {
                apply(&handles, e);
            }
            pipeline.refresh_ruleset();
            (before, pipeline.ruleset(), effective, replaced)
        };
        // Outside the edit lock: a later edit changes the ruleset again, which only makes
        // the verdicts written here be rescanned on their next hit.
        let matched = super::retro::run(&proxy, &effective, &replaced, &before, &now)?;
        Ok((now, matched))
    })
    .await?;
    tracing::info!(entries = n, retro_matched, "admin added hash entries");
    Ok(reply::json(
        StatusCode::OK,
        &json!({ "added": n, "ruleset": ruleset, "retro_matched": retro_matched }),
    ))
}

/// `DELETE /hashes/{kind}/{hash}`: removes a runtime entry. The hash also leaves the running
/// classifiers entirely (file-listed entries for it come back on the next reload).
pub async fn delete(admin: &Admin, path: &str) -> Result<Response<Body>, ApiError> {
    let mut parts = path.trim_start_matches('/').split('/').skip(1);
    let (kind, hash) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let hash = normalise(kind, hash).map_err(ApiError::bad_request)?;
    let key = format!("{kind}|{hash}");
    let proxy = admin.proxy.clone();
    let kind = kind.to_string();
    blocking(move || {
        let (store, pipeline) = (&proxy.store, &proxy.pipeline);
        let _edits = proxy
            .list_edits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if store.hashes.remove(key.as_bytes())?.is_none() {
            return Err(ApiError::not_found("no runtime entry for that hash"));
        }
        // An acknowledged removal must survive kill -9 like an addition: an entry that
        // came back at the next start would block again what an operator cleared.
        store.db.flush()?;
        let handles = pipeline.handles();
        match kind.as_str() {
            "pdq" => {
                if let (Some(p), Ok(h)) = (&handles.pdq, PdqHash::from_hex(&hash)) {
                    p.remove(&h);
                }
            }
            _ => {
                if let Some(d) = &handles.digest {
                    let _ = d.remove(&hash);
                }
            }
        }
        pipeline.refresh_ruleset();
        Ok(())
    })
    .await?;
    Ok(reply::json(StatusCode::OK, &json!({ "removed": 1 })))
}

/// `GET /hashes?kind=&list=&limit=&after=`: runtime entries in key order, paged.
pub async fn list(admin: &Admin, q: Option<&str>) -> Result<Response<Body>, ApiError> {
    let kind = query_param(q, "kind");
    if let Some(k) = kind.as_deref() {
        if k != "pdq" && k != "sha256" {
            return Err(ApiError::bad_request(format!(
                "kind must be \"pdq\" or \"sha256\", not {k:?}"
            )));
        }
    }
    let list = query_param(q, "list");
    let limit = reply::page_limit(q)?;
    let after = query_param(q, "after");
    if let (Some(k), Some(a)) = (kind.as_deref(), after.as_deref()) {
        // A cursor is the last key of a page; one from a page of the other kind would
        // silently give an empty page.
        if !a.starts_with(&format!("{k}|")) {
            return Err(ApiError::bad_request(format!(
                "after {a:?} is not a cursor of a kind={k} page"
            )));
        }
    }
    let store = admin.proxy.store.clone();
    let page = blocking(move || {
        let prefix = kind.map(|k| format!("{k}|")).unwrap_or_default();
        let mut start = prefix.clone().into_bytes();
        if let Some(a) = after {
            start = a.into_bytes();
            start.push(0);
        }
        let (mut items, mut next, mut more) = (Vec::new(), None, false);
        for kv in store.hashes.range(start..) {
            let (k, v) = kv?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let Ok(e) = serde_json::from_slice::<HashEntry>(&v) else {
                continue;
            };
            if list.as_deref().is_some_and(|l| l != e.list) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            next = Some(e.key());
            items.push(e);
        }
        Ok(json!({ "items": items, "next": if more { next } else { None } }))
    })
    .await?;
    Ok(reply::json(StatusCode::OK, &page))
}

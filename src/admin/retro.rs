//! Retro-match: when `POST /hashes` adds entries, the stored verdicts of bodies and images
//! that match them become `listed` at once, so yesterday's cached image is blocked on its next
//! hit without being scanned again, and `GET /verdicts` says `listed` right away.
//!
//! - A `sha256` entry is one point look-up in `verdicts` (keyed by decoded SHA-256).
//! - `pdq` entries are compared with the PDQ hashes recorded when images were scanned (the
//!   `pdq_of` tree): one pass over the stored hashes, each compared with the new entries only
//!   (Hamming distance, linearly for a few entries, through a [`PdqIndex`] of the new entries
//!   for a bulk add). No image is decoded or hashed again. Images below
//!   `scan.pdq_min_quality` never match, as in the classifier.
//!
//! The updated verdict keeps its findings, gains the new ones in front, and is stamped with
//! the ruleset now in force when the old verdict came from the ruleset just before the edit
//! (then it is exactly what a rescan would give, so the next hit uses it without scanning);
//! a verdict from an older ruleset keeps its ruleset and is rescanned on its next hit anyway.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::proxy::Proxy;
use crate::scan::digest;
use crate::scan::pdq::{self, PdqHash, PdqIndex};
use crate::scan::pipeline::memo::decode_pdq;
use crate::scan::pipeline::rfc3339;
use crate::scan::{Class, Finding};

use super::hashes::HashEntry;
use super::reply::ApiError;

/// Below this many new PDQ entries each stored hash is compared with each entry directly;
/// from here on the entries go into an index first.
const LINEAR_MAX: usize = 64;

/// A new PDQ entry: its hash and the finding it produces.
struct PdqNew {
    hash: PdqHash,
    rule: String,
}

/// Whether `f` is a finding the classifiers gave for entry `e`.
fn finding_of(e: &HashEntry, f: &Finding) -> bool {
    match e.kind.as_str() {
        "sha256" => *f == digest::finding(&e.label, &e.list),
        _ => pdq::is_finding_for(f, crate::scan::list_rule(&e.label, &e.list), &e.hash),
    }
}

/// Updates the verdicts of stored bodies and images matching `entries` (already in force);
/// `before` and `now` are the ruleset versions around the edit. `replaced` are the stored
/// entries the new ones took the place of (same kind and hash, another label or list, no
/// longer in force): their findings leave the verdicts updated here. Returns how many
/// verdicts changed. Blocking: runs sled look-ups and a pass over `pdq_of`.
pub fn run(
    proxy: &Proxy,
    entries: &[HashEntry],
    replaced: &[HashEntry],
    before: &str,
    now: &str,
) -> Result<usize, ApiError> {
    let mut found: HashMap<String, Vec<Finding>> = HashMap::new();
    let mut pdq_new = Vec::new();
    for e in entries {
        match e.kind.as_str() {
            "sha256" => {
                // Most new hashes name bodies never seen here: one look-up, nothing else.
                if proxy.store.verdicts.contains_key(e.hash.as_bytes())? {
                    let finding = digest::finding(&e.label, &e.list);
                    found.entry(e.hash.clone()).or_default().push(finding);
                }
            }
            _ => {
                if let Ok(hash) = PdqHash::from_hex(&e.hash) {
                    let rule = crate::scan::list_rule(&e.label, &e.list).to_string();
                    pdq_new.push(PdqNew { hash, rule });
                }
            }
        }
    }
    let images_stored = proxy.store.pdq_of.first()?.is_some();
    if images_stored && !pdq_new.is_empty() && proxy.pipeline.handles().pdq.is_some() {
        match_images(proxy, &pdq_new, &mut found)?;
    }
    let scanned_at = rfc3339(SystemTime::now());
    let mut changed = 0;
    for (sha, findings) in found {
        let Some(mut v) = proxy.pipeline.stored(&sha) else {
            continue; // never scanned here: the list applies on its first fetch
        };
        // A replaced entry matched the same bodies (same kind and hash): its findings are
        // among these verdicts', and a rescan would no longer give them.
        let had = v.findings.len();
        v.findings
            .retain(|f| !replaced.iter().any(|old| finding_of(old, f)));
        let dropped = v.findings.len() != had;
        let fresh: Vec<Finding> = findings
            .into_iter()
            .filter(|f| !v.findings.contains(f))
            .collect();
        if fresh.is_empty() && !dropped && v.class == Class::Listed {
            continue;
        }
        v.findings.splice(0..0, fresh);
        v.class = Class::Listed;
        v.reason = None;
        v.scanned_at = scanned_at.clone();
        if v.ruleset == before {
            v.ruleset = now.to_string();
        }
        proxy.pipeline.put_verdict(&v);
        changed += 1;
    }
    if changed > 0 {
        tracing::info!(changed, "retro-match listed stored verdicts");
    }
    Ok(changed)
}

/// Adds a `pdq` finding for every stored image hash within `scan.pdq_distance` of a new entry.
fn match_images(
    proxy: &Proxy,
    new: &[PdqNew],
    found: &mut HashMap<String, Vec<Finding>>,
) -> Result<(), ApiError> {
    let (max_distance, min_quality) = (proxy.scan_cfg.pdq_distance, proxy.scan_cfg.pdq_min_quality);
    let index = (new.len() > LINEAR_MAX).then(|| {
        let mut index = PdqIndex::new();
        for (i, n) in new.iter().enumerate() {
            index.insert(&n.hash, i as u64);
        }
        index
    });
    for kv in proxy.store.pdq_of.iter() {
        let (sha, raw) = kv?;
        let Some(image) = decode_pdq(&raw) else {
            continue;
        };
        if image.quality < min_quality {
            continue;
        }
        let hits: Vec<(usize, u32)> = match &index {
            Some(index) => index
                .query(&image, max_distance)
                .into_iter()
                .map(|(id, d)| (id as usize, d))
                .collect(),
            None => new
                .iter()
                .enumerate()
                .map(|(i, n)| (i, n.hash.distance(&image)))
                .filter(|(_, d)| *d <= max_distance)
                .collect(),
        };
        if hits.is_empty() {
            continue;
        }
        let sha = String::from_utf8_lossy(&sha).into_owned();
        let list = found.entry(sha).or_default();
        for (i, distance) in hits {
            let Some(n) = new.get(i) else { continue };
            list.push(pdq::finding(n.rule.clone(), distance, &n.hash, &image));
        }
    }
    Ok(())
}

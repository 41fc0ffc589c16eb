//! Start-up: rebuild the eviction index from sled and sweep bodies (mark and sweep).
//!
//! Every meta is read once: undecodable metas, Vary index records without variants and metas whose body manifest is missing are
//! deleted, body reference counts are recomputed from the metas (so a count can never drift
//! across crashes), bodies no meta names are deleted, and the objects are fed to the disk
//! policy oldest first; if the store is over `max_size` (e.g. the bound was lowered), the
//! policy's victims are deleted at once.

use super::bodies::{self, Manifest};
use super::meta::ObjectMeta;
use super::store::{Cache, Error, RefCounts};

struct Record {
    key: String,
    size: u64,
    stored_at: std::time::SystemTime,
}

/// Rebuilds `cache`'s disk index and repairs reference counts.
pub(super) fn rebuild(cache: &Cache) -> Result<(), Error> {
    let (objects, bodies_tree) = cache.trees();
    let mut records = Vec::new();
    let mut refs = RefCounts::default();
    let mut bad: Vec<sled::IVec> = Vec::new();
    let mut shas: Vec<(sled::IVec, [u8; 32])> = Vec::new();
    for item in objects.iter() {
        let (k, v) = item?;
        if !k.contains(&0) {
            continue; // a URL's Vary index
        }
        match (String::from_utf8(k.to_vec()), ObjectMeta::decode(&v)) {
            (Ok(key), Ok(meta)) => {
                *refs.entry(meta.body_sha256).or_default() += 1;
                shas.push((k.clone(), meta.body_sha256));
                records.push(Record {
                    key,
                    size: meta.accounted_size(),
                    stored_at: meta.stored_at,
                });
            }
            _ => bad.push(k),
        }
    }
    // Sweep: fix counts, delete unreferenced bodies.
    let mut present = std::collections::HashSet::new();
    for item in bodies_tree.scan_prefix(b"m") {
        let (k, v) = item?;
        let Ok(sha) = <[u8; 32]>::try_from(&k[1..]) else {
            continue;
        };
        let Some(m) = Manifest::decode(&v) else {
            continue;
        };
        let actual = refs.get(&sha).copied().unwrap_or(0);
        if actual == 0 {
            bodies_tree
                .transaction(|b| bodies::delete(b, &sha, m.chunks).map_err(Into::into))
                .map_err(|e: sled::transaction::TransactionError<()>| match e {
                    sled::transaction::TransactionError::Storage(e) => Error::Sled(e),
                    sled::transaction::TransactionError::Abort(()) => Error::Join("aborted".into()),
                })?;
        } else {
            present.insert(sha);
            if m.refs != actual {
                let fixed = Manifest { refs: actual, ..m };
                bodies_tree.insert(&k, &fixed.encode()[..])?;
            }
        }
    }
    // Metas without a body (should not exist after an atomic put; repaired here regardless).
    let mut bodyless = std::collections::HashSet::new();
    for (k, sha) in shas {
        if !present.contains(&sha) {
            bodyless.insert(k.to_vec());
            bad.push(k);
        }
    }
    records.retain(|r| !bodyless.contains(r.key.as_bytes()));
    for k in &bad {
        objects.remove(k)?;
    }
    // Vary index records (`url`) whose variants are all gone.
    let primaries: std::collections::HashSet<&str> = records
        .iter()
        .filter_map(|r| r.key.split_once('\0').map(|(p, _)| p))
        .collect();
    let mut stale_index = Vec::new();
    for k in objects.iter().keys() {
        let k = k?;
        if !k.contains(&0) && !std::str::from_utf8(&k).is_ok_and(|u| primaries.contains(u)) {
            stale_index.push(k);
        }
    }
    for k in stale_index {
        objects.remove(k)?;
    }
    records.sort_by_key(|r| r.stored_at);
    let mut disk = cache.disk();
    let mut victims = Vec::new();
    for r in records {
        if let Some((url, _)) = r.key.split_once('\0') {
            cache.count_variant(url, 1);
        }
        victims.extend(disk.insert(r.key, r.size));
    }
    cache.drop_objects(&victims)?;
    Ok(())
}

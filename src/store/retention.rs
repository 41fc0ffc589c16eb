//! Retention of the verdict history (`store.verdict_retention`, R): the `urls` tree gains a
//! record per distinct URL fetched and `verdicts` (with its `verdicts_by_class` index and
//! `pdq_of`) one per distinct body scanned, outside `store.max_size`, which bounds cached
//! objects only. A crawler fetching millions of pages a day would grow them without end.
//!
//! The sweep ([`sweep`], at start and then every [`SWEEP_EVERY`]) removes
//! - URL records fetched more than R ago, and
//! - verdicts scanned more than 2R ago, with their index entries and images' PDQ hashes.
//!
//! The memo reuses a verdict only while its scan is at most R old
//! ([`crate::scan::pipeline::memo::Memo::reusing_for`]): an older one counts as a miss and the
//! body is scanned again. So a URL record (at most R old) always names a verdict at most 2R
//! old, which the sweep has not removed, and `GET /verdicts?url=` answers for every URL
//! recorded within R. A swept verdict costs one scan when its body comes back; nothing
//! depends on it for correctness (a cached object's own copy obeys the same age limit).
//!
//! Removals are compare-and-swap against the value read, so a record rewritten while the
//! sweep runs (a new fetch of the URL, a new scan of the body) is kept.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::Store;
use crate::scan::pipeline::index;
use crate::scan::{Class, Verdict};

/// How often the sweep runs after the one at start.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Records looked at between two checks of `stop` (shutdown must not wait for a long sweep).
const STOP_CHECK_EVERY: usize = 1024;

/// What one sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub urls: u64,
    pub verdicts: u64,
}

/// The part of a `urls` record the sweep reads.
#[derive(Deserialize)]
struct UrlRecord<'a> {
    #[serde(borrow)]
    fetched_at: &'a str,
}

/// Removes the URL records older than `retention` and the verdicts older than twice that, as
/// of `now`; stops early (with what it removed so far) once `stop` says so.
pub fn sweep(
    store: &Store,
    retention: Duration,
    now: SystemTime,
    stop: &dyn Fn() -> bool,
) -> Result<Swept, sled::Error> {
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let r = retention.as_secs();
    Ok(Swept {
        urls: sweep_urls(store, now.saturating_sub(r), stop)?,
        verdicts: sweep_verdicts(store, now.saturating_sub(r.saturating_mul(2)), stop)?,
    })
}

/// One pass over `urls`: every record fetched before `cutoff` goes. A record that does not
/// parse is left alone (its age is unknown).
fn sweep_urls(store: &Store, cutoff: u64, stop: &dyn Fn() -> bool) -> Result<u64, sled::Error> {
    let mut removed = 0;
    for (n, kv) in store.urls.iter().enumerate() {
        if n % STOP_CHECK_EVERY == 0 && stop() {
            break;
        }
        let (url, rec) = kv?;
        let fetched = serde_json::from_slice::<UrlRecord<'_>>(&rec)
            .ok()
            .and_then(|r| index::parse_rfc3339(r.fetched_at));
        if fetched.is_some_and(|t| t < cutoff)
            && store
                .urls
                .compare_and_swap(&url, Some(&rec), None::<&[u8]>)?
                .is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Per class, the index from its oldest end (keys sort newest first) up to `cutoff`: each
/// entry's verdict goes if the entry is still its current one, with its PDQ hash; the entry
/// goes either way (a stale one names a verdict since replaced, which has its own entry).
fn sweep_verdicts(store: &Store, cutoff: u64, stop: &dyn Fn() -> bool) -> Result<u64, sled::Error> {
    let mut removed = 0;
    for class in Class::ALL {
        let prefix = index::class_prefix(class);
        for (n, kv) in store
            .verdicts_by_class
            .scan_prefix(&prefix)
            .rev()
            .enumerate()
        {
            if n % STOP_CHECK_EVERY == 0 && stop() {
                return Ok(removed);
            }
            let (key, _) = kv?;
            let rest = &key[prefix.len()..];
            let Some(scanned) = index::key_secs(rest) else {
                continue;
            };
            if scanned >= cutoff {
                break;
            }
            let sha = rest.get(16..).unwrap_or_default();
            if let Some(stored) = store.verdicts.get(sha)? {
                let current = serde_json::from_slice::<Verdict>(&stored)
                    .ok()
                    .and_then(|v| index::key(&v));
                if current.as_deref() == Some(&key[..])
                    && store
                        .verdicts
                        .compare_and_swap(sha, Some(&stored), None::<&[u8]>)?
                        .is_ok()
                {
                    store.pdq_of.remove(sha)?;
                    removed += 1;
                }
            }
            store.verdicts_by_class.remove(&key)?;
        }
    }
    Ok(removed)
}

/// Sweeps at start and every [`SWEEP_EVERY`] until `shutdown` turns true, each sweep on the
/// blocking pool (it walks whole trees).
pub async fn run(
    store: Store,
    retention: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (s, flag) = (store.clone(), shutdown.clone());
        let swept = tokio::task::spawn_blocking(move || {
            sweep(&s, retention, SystemTime::now(), &|| *flag.borrow())
        })
        .await;
        match swept {
            Ok(Ok(Swept {
                urls: 0,
                verdicts: 0,
            })) => {}
            Ok(Ok(s)) => tracing::info!(
                urls = s.urls,
                verdicts = s.verdicts,
                "verdict history past store.verdict_retention removed"
            ),
            Ok(Err(e)) => tracing::warn!(error = %e, "verdict retention sweep failed"),
            Err(e) => tracing::warn!(error = %e, "verdict retention sweep did not finish"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::pipeline::memo::Memo;
    use crate::scan::pipeline::rfc3339;

    const DAY: u64 = 86_400;

    fn at(now: SystemTime, days_ago: f64) -> String {
        rfc3339(now - Duration::from_secs_f64(days_ago * DAY as f64))
    }

    fn verdict(sha: &str, class: Class, scanned_at: String) -> Verdict {
        Verdict {
            sha256: sha.into(),
            media_type: "text/plain".into(),
            class,
            score: 0.0,
            findings: Vec::new(),
            ruleset: "r".into(),
            scanned_at,
            reason: None,
            reading: String::new(),
            derived: Default::default(),
        }
    }

    fn url_record(fetched_at: &str) -> Vec<u8> {
        serde_json::json!({"sha256": "a", "fetched_at": fetched_at})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn urls_go_after_the_retention_and_verdicts_after_twice_it() {
        let store = Store::temporary().unwrap();
        let now = SystemTime::now();
        let memo = Memo::new(store.verdicts.clone())
            .with_index(store.verdicts_by_class.clone())
            .with_pdq(store.pdq_of.clone());
        let hash = crate::scan::pdq::PdqHash::default();
        // (sha, class, days since the scan, kept)
        let verdicts = [
            ("v-old-spam", Class::Spam, 2.5, false),
            ("v-old-clean", Class::Clean, 9.0, false),
            ("v-between", Class::Clean, 1.5, true),
            ("v-young", Class::Listed, 0.1, true),
        ];
        for (sha, class, days, _) in verdicts {
            memo.put(&verdict(sha, class, at(now, days)));
            memo.put_pdq(sha, &hash);
        }
        // (url, record, kept)
        let urls = [
            ("u-old", url_record(&at(now, 1.2)), false),
            ("u-young", url_record(&at(now, 0.9)), true),
            ("u-unreadable", b"{not json".to_vec(), true),
        ];
        for (url, rec, _) in &urls {
            store.urls.insert(url, rec.clone()).unwrap();
        }

        let swept = sweep(&store, Duration::from_secs(DAY), now, &|| false).unwrap();
        assert_eq!(
            swept,
            Swept {
                urls: 1,
                verdicts: 2
            }
        );
        for (sha, _, _, kept) in verdicts {
            assert_eq!(store.verdicts.get(sha).unwrap().is_some(), kept, "{sha}");
            assert_eq!(
                store.pdq_of.get(sha).unwrap().is_some(),
                kept,
                "{sha}'s PDQ"
            );
        }
        assert_eq!(store.verdicts_by_class.len(), 2, "the index follows");
        for (url, _, kept) in &urls {
            assert_eq!(store.urls.get(url).unwrap().is_some(), *kept, "{url}");
        }
        // Nothing further is due.
        let again = sweep(&store, Duration::from_secs(DAY), now, &|| false).unwrap();
        assert_eq!(again, Swept::default());
    }

    #[test]
    fn a_stale_index_entry_goes_without_its_replaced_verdicts_successor() {
        let store = Store::temporary().unwrap();
        let now = SystemTime::now();
        let memo = Memo::new(store.verdicts.clone()).with_index(store.verdicts_by_class.clone());
        let old = verdict("s", Class::Spam, at(now, 5.0));
        memo.put(&verdict("s", Class::Spam, at(now, 0.5)));
        // An index entry left behind by a failed reindex, naming the old scan.
        let stale = index::key(&old).unwrap();
        store.verdicts_by_class.insert(&stale, &[]).unwrap();

        let swept = sweep(&store, Duration::from_secs(DAY), now, &|| false).unwrap();
        assert_eq!(swept.verdicts, 0, "the body's current verdict is young");
        assert!(store.verdicts.get("s").unwrap().is_some());
        assert!(store.verdicts_by_class.get(&stale).unwrap().is_none());
        assert_eq!(store.verdicts_by_class.len(), 1);
    }

    #[test]
    fn a_stopped_sweep_removes_nothing_more() {
        let store = Store::temporary().unwrap();
        let now = SystemTime::now();
        store.urls.insert("u", url_record(&at(now, 3.0))).unwrap();
        let swept = sweep(&store, Duration::from_secs(DAY), now, &|| true).unwrap();
        assert_eq!(swept, Swept::default());
        assert!(store.urls.get("u").unwrap().is_some());
    }
}

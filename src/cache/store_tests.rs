//! Object store tests on temporary sled stores.

use std::future::Future;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::bodies::{chunk_key, manifest_key, Manifest};
use super::key::CacheKey;
use super::meta::ObjectMeta;
use super::store::{Cache, CacheConfig, Error, Found, PutOutcome, Tier};
use crate::store::Store;

const MB: u64 = 1 << 20;

fn cache(store: &Store, max_size: u64, memory: u64) -> Cache {
    Cache::open(store, CacheConfig { max_size, memory }).unwrap()
}

fn meta(url: &str, resp: &[(&str, &str)], req: &HeaderMap, body: &[u8]) -> ObjectMeta {
    let mut h = HeaderMap::new();
    for (n, v) in resp {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let now = SystemTime::now();
    ObjectMeta::from_response(&key(url), StatusCode::OK, &h, req, now, now, body)
}

fn key(url: &str) -> CacheKey {
    CacheKey::parse(url).unwrap()
}

fn hit(c: &Cache, url: &str, req: &HeaderMap) -> Option<(ObjectMeta, Bytes, Tier)> {
    match c.get_blocking(&key(url), req).unwrap() {
        Found::Hit(h) => Some(((*h.meta).clone(), h.body, h.tier)),
        _ => None,
    }
}

fn manifests(s: &Store) -> Vec<Manifest> {
    s.bodies
        .scan_prefix(b"m")
        .map(|kv| Manifest::decode(&kv.unwrap().1).unwrap())
        .collect()
}

#[test]
fn round_trip_through_sled_and_memory() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, MB);
    let req = HeaderMap::new();
    let m = meta(
        "http://a.example/x",
        &[("content-length", "5"), ("etag", "\"1\"")],
        &req,
        b"hello",
    );
    assert_eq!(
        c.put_blocking(m.clone(), Bytes::from_static(b"hello"))
            .unwrap(),
        PutOutcome::Stored
    );
    let (got, body, tier) = hit(&c, "http://A.example:80/x", &req).unwrap();
    assert_eq!(
        (got, &body[..], tier),
        (m.clone(), &b"hello"[..], Tier::Memory)
    );
    // A cache without a memory tier reads (and verifies) from sled.
    let cold = cache(&s, 10 * MB, 0);
    let (got, body, tier) = hit(&cold, "http://a.example/x", &req).unwrap();
    assert_eq!((got, &body[..], tier), (m, &b"hello"[..], Tier::Disk));
    assert!(matches!(
        cold.get_blocking(&key("http://a.example/other"), &req)
            .unwrap(),
        Found::Miss
    ));
}

#[test]
fn identical_bodies_are_stored_once_and_reclaimed_with_the_last_reference() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, 0);
    let req = HeaderMap::new();
    let body = Bytes::from(vec![7u8; 5000]);
    for u in ["http://a/1", "http://b/2"] {
        c.put_blocking(meta(u, &[], &req, &body), body.clone())
            .unwrap();
    }
    assert_eq!(
        manifests(&s),
        vec![Manifest {
            len: 5000,
            chunks: 1,
            refs: 2
        }]
    );
    assert_eq!(c.remove_blocking(&key("http://a/1")).unwrap(), 1);
    assert_eq!(manifests(&s)[0].refs, 1);
    assert_eq!(hit(&c, "http://b/2", &req).unwrap().1, body);
    c.remove_blocking(&key("http://b/2")).unwrap();
    assert!(manifests(&s).is_empty());
    assert_eq!(s.bodies.len(), 0, "chunks reclaimed too");
}

#[test]
fn a_3_mib_body_is_chunked_and_reassembled() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 100 * MB, 0);
    let req = HeaderMap::new();
    let body: Bytes = (0..3 * MB as usize)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let m = meta("http://a/big", &[], &req, &body);
    c.put_blocking(m.clone(), body.clone()).unwrap();
    assert_eq!(manifests(&s)[0].chunks, 3);
    for i in 0..3 {
        let chunk = s.bodies.get(chunk_key(&m.body_sha256, i)).unwrap().unwrap();
        assert_eq!(chunk.len() as u64, MB);
    }
    assert_eq!(hit(&c, "http://a/big", &req).unwrap().1, body);
}

#[test]
fn a_corrupted_body_is_never_served_and_is_dropped() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, 0);
    let req = HeaderMap::new();
    let m = meta("http://a/x", &[], &req, b"precious bytes");
    c.put_blocking(m.clone(), Bytes::from_static(b"precious bytes"))
        .unwrap();
    let ck = chunk_key(&m.body_sha256, 0);
    let mut raw = s.bodies.get(ck).unwrap().unwrap().to_vec();
    raw[3] ^= 0x20;
    s.bodies.insert(ck, raw).unwrap();
    assert!(hit(&c, "http://a/x", &req).is_none());
    assert!(
        s.bodies
            .get(manifest_key(&m.body_sha256))
            .unwrap()
            .is_none(),
        "body deleted"
    );
    assert_eq!(
        s.objects.scan_prefix(b"http://a/x\0").count(),
        0,
        "meta deleted"
    );
}

#[test]
fn eviction_keeps_sled_within_the_bound_and_reclaims_bodies() {
    let s = Store::temporary().unwrap();
    let max = 200_000;
    let c = cache(&s, max, 0);
    let req = HeaderMap::new();
    for i in 0..100u32 {
        let body = Bytes::from(vec![i as u8; 10_000]);
        c.put_blocking(meta(&format!("http://a/{i}"), &[], &req, &body), body)
            .unwrap();
        assert!(c.stats().disk_bytes <= max);
    }
    let stats = c.stats();
    let in_sled = s
        .objects
        .iter()
        .keys()
        .filter(|k| k.as_ref().unwrap().contains(&0))
        .count();
    assert_eq!(stats.objects, in_sled, "policy and sled agree");
    assert!(in_sled < 20 && in_sled > 5, "{in_sled}");
    assert_eq!(manifests(&s).len(), in_sled, "evicted bodies reclaimed");
    let body_bytes: u64 = manifests(&s).iter().map(|m| m.len).sum();
    assert!(body_bytes <= max);
    let too_big = Bytes::from(vec![0u8; 300_000]);
    let out = c
        .put_blocking(meta("http://a/huge", &[], &req, &too_big), too_big)
        .unwrap();
    assert_eq!(out, PutOutcome::TooLarge);
}

#[test]
fn variants_are_selected_by_vary_and_purge_removes_them_all() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, MB);
    let mut gz = HeaderMap::new();
    gz.insert("accept-encoding", "gzip".parse().unwrap());
    let mut br = HeaderMap::new();
    br.insert("accept-encoding", "br".parse().unwrap());
    let vary = [("vary", "Accept-Encoding")];
    c.put_blocking(
        meta("http://a/v", &vary, &gz, b"GZ"),
        Bytes::from_static(b"GZ"),
    )
    .unwrap();
    c.put_blocking(
        meta("http://a/v", &vary, &br, b"BR"),
        Bytes::from_static(b"BR"),
    )
    .unwrap();
    assert_eq!(hit(&c, "http://a/v", &gz).unwrap().1, "GZ");
    assert_eq!(hit(&c, "http://a/v", &br).unwrap().1, "BR");
    let cold = cache(&s, 10 * MB, 0);
    assert_eq!(hit(&cold, "http://a/v", &br).unwrap().1, "BR");
    assert!(matches!(
        cold.get_blocking(&key("http://a/v"), &HeaderMap::new())
            .unwrap(),
        Found::VaryMiss
    ));
    assert_eq!(c.remove_blocking(&key("http://a/v")).unwrap(), 2);
    assert!(matches!(
        c.get_blocking(&key("http://a/v"), &gz).unwrap(),
        Found::Miss
    ));
    assert_eq!(s.objects.len(), 0);
    assert_eq!(s.bodies.len(), 0);
}

#[test]
fn truncated_or_mismatched_bodies_are_refused() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, MB);
    let req = HeaderMap::new();
    let m = meta("http://a/t", &[("content-length", "10")], &req, b"short");
    assert!(matches!(
        c.put_blocking(m, Bytes::from_static(b"short")),
        Err(Error::Truncated)
    ));
    let m = meta("http://a/t", &[], &req, b"one");
    assert!(matches!(
        c.put_blocking(m, Bytes::from_static(b"two")),
        Err(Error::BodyMismatch)
    ));
    assert_eq!(s.objects.len() + s.bodies.len(), 0);
}

#[test]
fn update_meta_replaces_headers_in_both_tiers() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, MB);
    let req = HeaderMap::new();
    let m = meta(
        "http://a/u",
        &[("etag", "\"1\""), ("x-v", "old")],
        &req,
        b"b",
    );
    c.put_blocking(m.clone(), Bytes::from_static(b"b")).unwrap();
    let mut newer = m.clone();
    newer.headers.insert("x-v", "new".parse().unwrap());
    assert!(c.update_meta_blocking(newer).unwrap());
    assert_eq!(hit(&c, "http://a/u", &req).unwrap().0.headers["x-v"], "new");
    assert_eq!(
        hit(&cache(&s, 10 * MB, 0), "http://a/u", &req)
            .unwrap()
            .0
            .headers["x-v"],
        "new"
    );
    let mut other = m;
    other.body_sha256 = [9; 32];
    assert!(
        !c.update_meta_blocking(other).unwrap(),
        "other body: not applied"
    );
}

#[test]
fn a_304_that_grows_the_meta_is_charged_on_disk_and_evicts_to_the_bound() {
    // The disk policy kept each object's size from its put: 304s that added fields grew
    // the metas in sled without the policy knowing, so `store.max_size` no longer held.
    let s = Store::temporary().unwrap();
    let max = 200_000;
    let c = cache(&s, max, 0);
    let req = HeaderMap::new();
    let mut metas = Vec::new();
    for i in 0..10u32 {
        let m = meta(&format!("http://a/{i}"), &[("etag", "\"1\"")], &req, b"b");
        c.put_blocking(m.clone(), Bytes::from_static(b"b")).unwrap();
        metas.push(m);
    }
    let before = c.stats().disk_bytes;
    let mut grown = metas[0].clone();
    grown
        .headers
        .insert("x-pad", "p".repeat(30_000).parse().unwrap());
    assert!(c.update_meta_blocking(grown.clone()).unwrap());
    assert_eq!(
        c.stats().disk_bytes,
        before - metas[0].accounted_size() + grown.accounted_size(),
        "the new size is charged"
    );
    for m in &metas {
        let mut g = m.clone();
        g.headers
            .insert("x-pad", "p".repeat(30_000).parse().unwrap());
        c.update_meta_blocking(g).unwrap();
        assert!(c.stats().disk_bytes <= max, "{}", c.stats().disk_bytes);
    }
    let in_sled = s
        .objects
        .iter()
        .keys()
        .filter(|k| k.as_ref().unwrap().contains(&0))
        .count();
    assert_eq!(c.stats().objects, in_sled, "policy and sled agree");
}

#[test]
fn reopening_serves_old_objects_and_sweeps_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let req = HeaderMap::new();
    let m = meta("http://a/keep", &[], &req, b"kept");
    {
        let s = Store::open(dir.path()).unwrap();
        let c = cache(&s, 10 * MB, MB);
        c.put_blocking(m.clone(), Bytes::from_static(b"kept"))
            .unwrap();
        // Damage as a crash or a foreign writer might: an orphan body, a meta without body,
        // and a wrong reference count.
        s.bodies
            .insert(
                manifest_key(&[1; 32]),
                &Manifest {
                    len: 1,
                    chunks: 1,
                    refs: 3,
                }
                .encode()[..],
            )
            .unwrap();
        s.bodies.insert(chunk_key(&[1; 32], 0), &b"x"[..]).unwrap();
        let mut ghost = meta("http://a/ghost", &[], &req, b"ghost");
        ghost.body_sha256 = [2; 32];
        s.objects
            .insert(b"http://a/ghost\0", ghost.encode())
            .unwrap();
        let mk = manifest_key(&m.body_sha256);
        s.bodies
            .insert(
                mk,
                &Manifest {
                    len: 4,
                    chunks: 1,
                    refs: 5,
                }
                .encode()[..],
            )
            .unwrap();
        s.db.flush().unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    let c = cache(&s, 10 * MB, MB);
    assert_eq!(c.stats().objects, 1);
    assert_eq!(
        manifests(&s),
        vec![Manifest {
            len: 4,
            chunks: 1,
            refs: 1
        }]
    );
    assert!(s.objects.get(b"http://a/ghost\0").unwrap().is_none());
    let (got, body, tier) = hit(&c, "http://a/keep", &req).unwrap();
    assert_eq!((got, &body[..], tier), (m, &b"kept"[..], Tier::Disk));
}

#[tokio::test]
async fn async_wrappers_work_from_the_runtime() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, 0);
    let req = HeaderMap::new();
    let m = meta("http://a/y", &[], &req, b"y");
    // The meta (it hashes the body) is built on a store thread, not on the reactor.
    let build = move |_: &[u8]| {
        assert!(
            tokio::runtime::Handle::try_current().is_err(),
            "on a reactor"
        );
        (m, None)
    };
    c.put_built(build, Bytes::from_static(b"y")).await.unwrap();
    assert!(matches!(
        c.get(&key("http://a/y"), &req).await.unwrap(),
        Found::Hit(_)
    ));
    assert_eq!(c.remove(&key("http://a/y")).await.unwrap(), 1);
    assert!(matches!(
        c.get(&key("http://a/y"), &req).await.unwrap(),
        Found::Miss
    ));
}

#[tokio::test]
async fn an_invalidation_runs_to_the_end_when_its_caller_leaves() {
    // Removed one awaited job at a time, an invalidation whose client hung up during the
    // first removal never submitted the others.
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, 0);
    let req = HeaderMap::new();
    let urls = ["http://a/x", "http://a/y", "http://a/z"];
    for u in urls {
        c.put_blocking(meta(u, &[], &req, b"x"), Bytes::from_static(b"x"))
            .unwrap();
    }
    let keys: Vec<CacheKey> = urls.iter().map(|u| key(u)).collect();
    // Polled once (the job is submitted), then dropped, as hyper drops a handler's future.
    let mut job = Box::pin(c.invalidate(keys));
    let once = std::future::poll_fn(|cx| std::task::Poll::Ready(job.as_mut().poll(cx))).await;
    drop(job);
    assert!(
        c.idle(std::time::Duration::from_secs(10)).await,
        "the job ends"
    );
    assert_eq!(
        c.stats().objects,
        0,
        "every key removed (first poll: {once:?})"
    );
}

#[tokio::test]
async fn a_prefix_purge_walks_the_store_in_batches_and_removes_every_url() {
    // The purge listed every URL under the prefix in memory before removing any: on a large
    // store, `{"prefix": "http://"}` held all of them at once.
    let s = Store::temporary().unwrap();
    let c = cache(&s, 100 * MB, 0);
    let req = HeaderMap::new();
    let n = super::store::PURGE_BATCH + 50;
    for i in 0..n {
        // `/i` prefixes `/i0`…: the cursor must not skip or repeat such URLs.
        let m = meta(&format!("http://a/{i}"), &[], &req, b"x");
        c.put_blocking(m, Bytes::from_static(b"x")).unwrap();
    }
    let keep = meta("http://b/0", &[], &req, b"x");
    c.put_blocking(keep, Bytes::from_static(b"x")).unwrap();
    let first = c.urls_under("http://a/", None, 10).unwrap();
    assert_eq!(first.len(), 10, "one batch");
    let mut all = first.clone();
    let mut after = first.last().cloned();
    loop {
        let next = c.urls_under("http://a/", after.as_deref(), 10).unwrap();
        let Some(last) = next.last().cloned() else {
            break;
        };
        all.extend(next);
        after = Some(last);
    }
    let mut want: Vec<String> = (0..n).map(|i| format!("http://a/{i}")).collect();
    want.sort();
    assert_eq!(all, want, "every URL once, in key order");
    assert_eq!(c.remove_prefix("http://a/").await.unwrap(), n);
    assert_eq!(
        c.stats().objects,
        1,
        "only the other origin's object is left"
    );
    assert!(hit(&c, "http://b/0", &req).is_some());
}

#[test]
fn variants_stored_per_url_are_bounded_oldest_first() {
    // `Vary: Cookie` with many clients stored a variant per client for one URL without
    // bound; a single POST to the URL (invalidation) then removed them all in one write job,
    // every put waiting behind it.
    let s = Store::temporary().unwrap();
    let c = cache(&s, 100 * MB, MB);
    let cookie = |i: usize| {
        let mut req = HeaderMap::new();
        req.insert("cookie", format!("id={i}").parse().unwrap());
        req
    };
    let n = super::memory::MAX_VARIANTS * 3;
    for i in 0..n {
        let m = meta("http://a/v", &[("vary", "cookie")], &cookie(i), b"v");
        c.put_blocking(m, Bytes::from_static(b"v")).unwrap();
        let stored = s.objects.scan_prefix(b"http://a/v\0").count();
        assert!(stored <= super::memory::MAX_VARIANTS, "{stored} after {i}");
    }
    assert!(
        hit(&c, "http://a/v", &cookie(n - 1)).is_some(),
        "the newest"
    );
    assert!(
        hit(&c, "http://a/v", &cookie(0)).is_none(),
        "the oldest went"
    );
    assert_eq!(c.stats().objects, super::memory::MAX_VARIANTS);
    assert_eq!(manifests(&s)[0].refs, super::memory::MAX_VARIANTS as u64);
}

#[test]
fn a_missing_chunk_is_a_miss_not_a_short_body() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 100 * MB, 0);
    let req = HeaderMap::new();
    let body = Bytes::from(vec![5u8; 2 * MB as usize + 10]);
    let m = meta("http://a/m", &[], &req, &body);
    c.put_blocking(m.clone(), body).unwrap();
    s.bodies.remove(chunk_key(&m.body_sha256, 1)).unwrap();
    assert!(hit(&c, "http://a/m", &req).is_none());
    assert_eq!(s.objects.len(), 0, "meta and Vary index gone");
    assert_eq!(c.stats().objects, 0, "policy forgot it too");
}

#[test]
fn evicted_urls_leave_no_vary_index_behind() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 100_000, 0);
    let req = HeaderMap::new();
    for i in 0..50u32 {
        let body = Bytes::from(vec![i as u8; 10_000]);
        c.put_blocking(meta(&format!("http://a/{i}"), &[], &req, &body), body)
            .unwrap();
    }
    let (mut metas, mut index) = (0, 0);
    for k in s.objects.iter().keys() {
        if k.unwrap().contains(&0) {
            metas += 1;
        } else {
            index += 1;
        }
    }
    assert_eq!(index, metas, "one index record per stored URL");
}

#[test]
fn concurrent_writers_and_readers_keep_policy_and_sled_in_step() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 300_000, 50_000);
    std::thread::scope(|scope| {
        for t in 0..4u32 {
            let c = c.clone();
            scope.spawn(move || {
                let req = HeaderMap::new();
                for i in 0..60u32 {
                    let url = format!("http://a/{}", (i * 7 + t) % 40);
                    if i % 3 == 0 {
                        c.remove_blocking(&key(&url)).unwrap();
                    } else if i % 2 == 0 {
                        let body = Bytes::from(vec![(i % 4) as u8; 9_000]);
                        c.put_blocking(meta(&url, &[], &req, &body), body).unwrap();
                    } else if let Found::Hit(h) = c.get_blocking(&key(&url), &req).unwrap() {
                        assert_eq!(h.body.len(), 9_000);
                    }
                }
            });
        }
    });
    let in_sled = s
        .objects
        .iter()
        .keys()
        .filter(|k| k.as_ref().unwrap().contains(&0))
        .count();
    assert_eq!(c.stats().objects, in_sled);
    assert!(c.stats().disk_bytes <= 300_000);
    let refs: u64 = manifests(&s).iter().map(|m| m.refs).sum();
    assert_eq!(
        refs as usize, in_sled,
        "every meta holds exactly one body reference"
    );
}

#[test]
fn a_disk_read_that_loses_a_race_with_a_purge_does_not_bring_the_object_back() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, MB);
    let req = HeaderMap::new();
    let url = "http://a.example/raced";
    let m = meta(url, &[("content-length", "5")], &req, b"hello");
    c.put_blocking(m.clone(), Bytes::from_static(b"hello"))
        .unwrap();
    // What a read thread read just before the purge committed...
    let okey = super::memory::object_key(url, "");
    let raw = s.objects.get(okey.as_bytes()).unwrap().unwrap();
    c.remove_blocking(&key(url)).unwrap();
    // ...is not held once it finishes: the purge would be undone in memory.
    c.hold_if_current(
        &okey,
        &raw,
        &std::sync::Arc::new(m),
        &Bytes::from_static(b"hello"),
    )
    .unwrap();
    assert!(c.get_memory(&key(url), &req).is_none());
    assert!(matches!(
        c.get_blocking(&key(url), &req).unwrap(),
        Found::Miss
    ));
}

/// Regression: a purge's or invalidation's removal time past the present (the wall clock
/// went back since: NTP stepping a fast clock) refused every later put of the URL until the
/// clock caught up, so the URL went to the origin on every request, for as long as sluice
/// ran after a boot with a clock far ahead.
#[test]
fn a_removal_stamped_by_a_clock_that_went_back_does_not_refuse_later_stores() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, MB);
    let url = "http://a.example/r";
    let later = |ms| {
        let mut m = meta(url, &[("content-length", "2")], &HeaderMap::new(), b"ok");
        m.request_time = SystemTime::now() + std::time::Duration::from_millis(ms);
        m
    };
    // Removed "an hour from now": the clock has since been set back an hour.
    c.note_removal_at(
        url,
        SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    // A request sent before the clock was found back may predate the removal: refused.
    let body = Bytes::from_static(b"ok");
    assert_eq!(
        c.put_blocking(later(0), body.clone()).unwrap(),
        PutOutcome::Outdated
    );
    // One sent afterwards (here 50 ms later) is after the removal: stored.
    assert_eq!(c.put_blocking(later(50), body).unwrap(), PutOutcome::Stored);
}

/// Regression: a sled read that found its body gone because a put replaced the object
/// meanwhile (the old body released with its last reference) took that for damage and
/// dropped the object, deleting the response the put had just stored: a URL refreshed while
/// it was being read went back to the origin on its next request.
#[test]
fn a_disk_read_that_loses_a_race_with_a_replacement_keeps_the_new_object() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, 0);
    let req = HeaderMap::new();
    let url = "http://a.example/replaced";
    let old = meta(url, &[("content-length", "3")], &req, b"old");
    c.put_blocking(old.clone(), Bytes::from_static(b"old"))
        .unwrap();
    // What a read thread read just before the put committed...
    let okey = super::memory::object_key(url, "");
    let raw = s.objects.get(okey.as_bytes()).unwrap().unwrap();
    c.put_blocking(
        meta(url, &[("content-length", "3")], &req, b"new"),
        Bytes::from_static(b"new"),
    )
    .unwrap();
    // ...found the old body released: the object it read is gone, the new one stays.
    c.forget(okey, &raw, Some(&old.body_sha256)).unwrap();
    assert_eq!(hit(&c, url, &req).expect("the new object").1, "new");
}

/// Regression: a prefix purge noted no removal time for the URLs it covers, only for the
/// ones it found stored, so a miss in flight under the prefix (its request sent before the
/// purge, its body still arriving) stored the response the purge was meant to drop, and it
/// was served as fresh afterwards. A purge of one URL refused that put already.
#[tokio::test]
async fn a_prefix_purge_refuses_puts_of_responses_requested_before_it() {
    let s = Store::temporary().unwrap();
    let c = cache(&s, 10 * MB, MB);
    let req = HeaderMap::new();
    let body = Bytes::from_static(b"old");
    let in_flight = |url: &str| meta(url, &[("content-length", "3")], &req, b"old");
    let (under, other) = (
        in_flight("http://a.example/p/x"),
        in_flight("http://b.example/"),
    );
    assert_eq!(c.remove_prefix("http://a.example/p/").await.unwrap(), 0);
    assert_eq!(
        c.put_blocking(under, body.clone()).unwrap(),
        PutOutcome::Outdated,
        "requested before the purge, under its prefix"
    );
    assert!(hit(&c, "http://a.example/p/x", &req).is_none());
    assert_eq!(
        c.put_blocking(other, body.clone()).unwrap(),
        PutOutcome::Stored,
        "another prefix is not refused"
    );
    let mut later = meta(
        "http://a.example/p/x",
        &[("content-length", "3")],
        &req,
        b"old",
    );
    later.request_time = SystemTime::now() + std::time::Duration::from_millis(50);
    assert_eq!(
        c.put_blocking(later, body).unwrap(),
        PutOutcome::Stored,
        "requested after the purge"
    );
}

/// Regression: an object within `store.max_size` but over the policy's main space (the
/// bound less its 1% window) was written, evicted every colder object it was compared with
/// (all of them, once it had been fetched a few times), then was evicted itself.
#[test]
fn an_object_the_policy_cannot_hold_is_refused_and_evicts_nothing() {
    let s = Store::temporary().unwrap();
    let max = 200_000;
    let c = cache(&s, max, 0);
    let req = HeaderMap::new();
    for i in 0..5 {
        let body = Bytes::from(vec![i as u8; 10_000]);
        let m = meta(&format!("http://a/{i}"), &[], &req, &body);
        assert_eq!(c.put_blocking(m, body).unwrap(), PutOutcome::Stored);
    }
    let big = Bytes::from(vec![9u8; 198_500]);
    for _ in 0..5 {
        let m = meta("http://a/big", &[], &req, &big);
        assert!(m.accounted_size() <= max);
        assert_eq!(
            c.put_blocking(m, big.clone()).unwrap(),
            PutOutcome::TooLarge
        );
    }
    assert_eq!(c.stats().objects, 5, "the small objects stay");
    assert!((0..5).all(|i| hit(&c, &format!("http://a/{i}"), &req).is_some()));
    assert_eq!(manifests(&s).len(), 5, "the large body was never written");
}

//! The request flows of `mod.rs` end to end, without sockets: miss and store, fresh hit,
//! revalidation with a 304, HEAD, Range, invalidation and purge.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::policy::{self, Decision, RequestInfo};
use super::serve;
use super::status::{CacheStatus, Fwd};
use super::store::{Cache, CacheConfig, Found};
use super::{invalidate, validate, CacheKey, ObjectMeta};
use crate::store::Store;

fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (n, v) in pairs {
        m.append(*n, HeaderValue::from_str(v).unwrap());
    }
    m
}

fn lookup(c: &Cache, key: &CacheKey, req: &HeaderMap) -> Option<super::Hit> {
    match c.get_blocking(key, req).unwrap() {
        Found::Hit(hit) => Some(hit),
        Found::Miss | Found::VaryMiss => None,
    }
}

#[test]
fn miss_store_hit_revalidate_head_range_invalidate_purge() {
    let store = Store::temporary().unwrap();
    let cache = Cache::open(
        &store,
        CacheConfig {
            max_size: 1 << 30,
            memory: 1 << 20,
        },
    )
    .unwrap();
    let key = CacheKey::parse("http://origin.test/logo.png").unwrap();
    let get = Method::GET;
    let req = HeaderMap::new();
    let info = RequestInfo {
        method: &get,
        headers: &req,
    };
    let t0 = SystemTime::now();

    // Miss: fetch, check storability and completeness, store.
    assert!(lookup(&cache, &key, &req).is_none());
    let body = Bytes::from_static(b"\x89PNG....");
    let resp = h(&[
        ("date", &httpdate::fmt_http_date(t0)),
        ("cache-control", "max-age=60"),
        ("etag", "\"v1\""),
        ("content-length", "8"),
        ("content-type", "image/png"),
    ]);
    assert_eq!(policy::storable(&info, 200, &resp), Ok(()));
    assert!(policy::body_complete(&resp, body.len() as u64));
    let meta = ObjectMeta::from_response(&key, StatusCode::OK, &resp, &req, t0, t0, &body);
    cache.put_blocking(meta, body.clone()).unwrap();

    // Fresh hit 10 s later.
    let hit = lookup(&cache, &key, &req).unwrap();
    let now = t0 + Duration::from_secs(10);
    let Decision::Fresh { age } = policy::decide(&info, &hit.meta, now) else {
        panic!("fresh")
    };
    let cs = CacheStatus {
        ttl: Some(policy::ttl(&hit.facts, now)),
        ..CacheStatus::hit()
    };
    let out = serve::from_cache(&get, &req, &hit.meta, &hit.body, age, &cs);
    assert_eq!((out.status, &out.body[..]), (StatusCode::OK, &body[..]));
    assert_eq!(out.headers["age"], "10");
    assert_eq!(out.headers[serve::CACHE_STATUS], "sluice; hit; ttl=50");

    // HEAD from the stored GET; Range from the stored object.
    let out = serve::from_cache(&Method::HEAD, &req, &hit.meta, &hit.body, age, &cs);
    assert_eq!((out.status, out.body.len()), (StatusCode::OK, 0));
    let ranged = h(&[("range", "bytes=0-3")]);
    let out = serve::from_cache(&get, &ranged, &hit.meta, &hit.body, age, &cs);
    assert_eq!(
        (out.status, &out.body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"\x89PNG"[..])
    );

    // 100 s later it is stale: revalidate, the origin answers 304, headers merge.
    let later = t0 + Duration::from_secs(100);
    let Decision::Revalidate { conditional, fwd } = policy::decide(&info, &hit.meta, later) else {
        panic!("stale")
    };
    assert_eq!(
        (conditional["if-none-match"].to_str().unwrap(), fwd),
        ("\"v1\"", Fwd::Stale)
    );
    let not_modified = h(&[
        ("date", &httpdate::fmt_http_date(later)),
        ("cache-control", "max-age=120"),
        ("etag", "\"v1\""),
    ]);
    let merged = validate::merge_304(&hit.meta, &not_modified, later, later).unwrap();
    assert!(cache.update_meta_blocking(merged).unwrap());
    let hit = lookup(&cache, &key, &req).unwrap();
    assert!(matches!(
        policy::decide(&info, &hit.meta, later + Duration::from_secs(5)),
        Decision::Fresh { age: 5 }
    ));
    assert_eq!(hit.body, body, "the body survives revalidation");

    // A POST to the URL invalidates it; purge removes everything.
    let gone = invalidate::invalidations(&Method::POST, 200, &key, &HeaderMap::new());
    for k in gone {
        cache.remove_blocking(&k).unwrap();
    }
    assert!(lookup(&cache, &key, &req).is_none());
    assert_eq!(cache.remove_blocking(&key).unwrap(), 0);
}

//! RFC 9111 shared cache: policy, keys, object store, collapsing.
//!
//! | module | what |
//! |---|---|
//! | [`policy`] | pure RFC 9111: [`policy::storable`], [`policy::decide`], [`policy::can_serve_stale_on_error`], Age |
//! | [`directives`] | tolerant Cache-Control parsing |
//! | [`freshness`] | freshness lifetime (§4.2.1–2) and current age (§4.2.3) |
//! | [`validate`] | conditional requests, 304 merge (§4.3.4), client conditionals |
//! | [`invalidate`] | unsafe-method invalidation (§4.4) |
//! | [`key`], [`vary`] | [`CacheKey`] (normalised URL) and the Vary secondary key |
//! | [`meta`] | [`ObjectMeta`], the stored response minus its body |
//! | [`store`] | [`Cache`]: sled + memory tier, content-addressed bodies, eviction |
//! | [`memory`], [`evict`], [`bodies`] | memory tier, W-TinyLFU, body chunks and refcounts |
//! | [`collapse`] | [`Collapser`]: one upstream fetch per key |
//! | [`range`], [`serve`] | Range/206/416, and the client response built from a stored object |
//! | [`status`] | the `Cache-Status` header (RFC 9211) |
//!
//! # How the proxy uses it
//!
//! Once at start: `let cache = Cache::open(&store, CacheConfig::from_config(&cfg.store))?;` and
//! a `Collapser::<()>::new()` (both shared). Per request, with `now = SystemTime::now()`:
//!
//! 1. **Key.** `CacheKey::from_uri(&uri)`; an error (not http/https) bypasses the cache.
//! 2. **Unsafe methods** (not GET/HEAD/OPTIONS/TRACE): forward; then for every key in
//!    `invalidate::invalidations(&method, status, &key, &resp_headers)` call
//!    `cache.remove(&k).await`. Nothing is stored.
//! 3. **Lookup** (GET and HEAD, same key): `cache.get(&key, &req_headers).await?` (memory tier
//!    inline, sled on the store threads; bodies are SHA-256-verified on every sled read).
//!    - `Found::Hit(hit)` → `policy::decide(&RequestInfo { method, headers }, &hit.meta, now)`:
//!      - `Fresh { age }` / `StaleAllowed { age }` → `serve::from_cache(&method, &req_headers,
//!        &hit.meta, &hit.body, age, &CacheStatus { ttl: Some(policy::ttl(&hit.facts, now)),
//!        ..CacheStatus::hit() })`. This sets Age and Cache-Status, answers the client's own
//!        If-None-Match / If-Modified-Since with 304, Range with 206 / multipart / 416
//!        (`Content-Range: bytes */len`), and HEAD without a body.
//!      - `StaleWhileRevalidate { age }` → serve as above, then revalidate in the background
//!        once: `if let Role::Leader(l) = collapser.acquire(&key)` run step 5 and `l.finish(true)`;
//!        a `Follower` means a revalidation is already running, so do nothing.
//!      - `Revalidate { conditional, fwd }` → step 5; `fwd` (`Fwd::Stale`, or `Fwd::Request`
//!        when the client's no-cache / max-age / min-fresh forced it) goes into Cache-Status.
//!      - `GatewayTimeout` → 504 (`only-if-cached`), nothing sent upstream.
//!    - `Found::Miss` / `Found::VaryMiss` → if `policy::only_if_cached(&req_headers)` answer
//!      504; else step 4 with `Fwd::UriMiss` / `Fwd::VaryMiss`.
//! 4. **Miss + store.** `match collapser.acquire(&key)`: a `Follower` does
//!    `f.wait(timeout).await`; on `Done(())` it repeats step 3 (the object is in the store,
//!    or was not storable and it fetches itself), on `Abandoned` / `TimedOut` it fetches
//!    itself. The `Leader` records `request_time`, fetches (HEAD is forwarded as HEAD and not
//!    stored; a Range miss is forwarded as is and the 206 is not stored, as Traffic Server
//!    does by default), records `response_time` when the head arrives, and once the whole body
//!    is in: if `policy::storable(&info, status, &resp_headers).is_ok()` and
//!    `policy::body_complete(&resp_headers, body.len())` and the body was not cut short, then
//!    `cache.put_built(build, body.clone(), verdict).await`, where `build` is
//!    `|body| ObjectMeta::from_response(&key, status, &resp_headers, &req_headers,
//!    request_time, response_time, body)`, run on a store thread (it hashes the body); the
//!    put refuses a truncated body. Then `leader.finish(())` (dropping the
//!    leader on error releases followers). Cache-Status: `CacheStatus { stored,
//!    ..CacheStatus::forward(Fwd::UriMiss) }`, `detail` = `NotStorable::as_str()` if not.
//! 5. **Revalidation.** Send the request with the client's preconditions and Range removed
//!    and `conditional` added, `validate::set_cache_validators` (empty: an unconditional
//!    fetch). Strip the response's hop-by-hop fields. Then:
//!    - **304** → `validate::merge_304(&hit.meta, &resp_headers, request_time,
//!      response_time)`: `Ok(merged)` → `validate::refresh(&req_headers, &merged)`:
//!      `Update(m)` → `cache.update_meta(m).await`, `Remove(_)` → `cache.remove(&key)`,
//!      `Keep` → nothing; serve `merged` with `hit.body` via `serve::from_cache` (at the
//!      merge's age: ~0 unless the 304 came with an `Age`), Cache-Status `CacheStatus { fwd: Some(fwd), fwd_status: Some(304), .. }`, i.e.
//!      `sluice; fwd=stale; fwd-status=304`. `Err(Mismatch)` → fetch again unconditionally.
//!    - **200 or other full response** → as a miss: store it (replaces that variant),
//!      Cache-Status `fwd=stale; fwd-status=200; stored`; if it is not storable, drop the
//!      outdated object with `cache.remove(&key)`.
//!    - **5xx, or upstream unreachable** → if `policy::can_serve_stale_on_error(&info,
//!      &hit.facts, now, UpstreamError::..)` serve the stale object (Cache-Status
//!      `fwd=stale; fwd-status=503; detail=stale-if-error`), else pass the error on; the
//!      stored object stays either way (a 5xx says nothing about it, §4.3.3).
//!    - **HEAD** that needs revalidation may be forwarded as a HEAD: a 200 goes through
//!      `validate::merge_head` (RFC 9111 §4.3.5); `Ok(m)` → `validate::refresh` as for a 304,
//!      `Err(Mismatch)` → `cache.remove(&key)` (the stored GET is outdated).
//! 6. **Purge** (`POST /purge {"url"}`): `cache.remove(&CacheKey::parse(url)?).await` → number
//!    of variants removed (all Vary variants of the URL).
//!
//! Headers handed to the cache are end-to-end only: the proxy strips hop-by-hop fields before
//! `from_response`, and `serve::from_cache` replaces any stored `Age`.

#![warn(missing_docs)]

pub mod bodies;
pub mod collapse;
pub mod directives;
pub mod evict;
pub mod freshness;
pub mod invalidate;
pub mod key;
pub mod memory;
pub mod meta;
pub mod policy;
pub mod range;
mod recover;
pub mod serve;
mod slab;
pub mod status;
pub mod store;
pub mod validate;
pub mod vary;

pub use collapse::{Collapser, Follower, Leader, Role, WaitOutcome};
pub use key::CacheKey;
pub use meta::ObjectMeta;
pub use policy::{Decision, RequestInfo};
pub use status::{CacheStatus, Fwd};
pub use store::{Cache, CacheConfig, Found, Hit};

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod store_tests;

//! The response phase for bodies from upstream: read (enforce) or tee (observe), scan,
//! store when storable and complete, and apply the verdict's action.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};

use super::conn::AccessLog;
use super::error::ProxyError;
use super::respond;
use super::Proxy;
use crate::body::{self, Body, Collected};
use crate::cache::collapse::Leader;
use crate::cache::directives::CacheControl;
use crate::cache::key::CacheKey;
use crate::cache::meta::ObjectMeta;
use crate::cache::policy::{self, RequestInfo};
use crate::cache::serve::CACHE_STATUS;
use crate::cache::status::CacheStatus;
use crate::cache::store::Cache;
use crate::config::ScanMode;
use crate::scan::{Class, Content, Verdict};
use crate::upstream;

/// What the cache phase knows about the exchange whose response is being handled.
pub struct Exchange<'a> {
    pub method: &'a Method,
    pub req_headers: &'a HeaderMap,
    pub url: &'a str,
    /// Where to store the response, when the request was a cacheable lookup.
    pub key: Option<&'a CacheKey>,
    pub request_time: SystemTime,
    pub response_time: SystemTime,
}

/// A response whose body has no bytes to scan.
pub fn bodiless(method: &Method, status: StatusCode) -> bool {
    method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// The requests collapsed onto this fetch (`cached::miss`), told whether its response was
/// stored as soon as that is known: at the head when it cannot be, else once the store is
/// done (in observe mode, after the body has streamed and its copy been scanned). Dropped
/// untold (the leading client left), it lets one of them fetch anew.
#[derive(Default)]
pub struct Followers(Option<Leader<bool>>);

impl Followers {
    /// The followers of `leader`, if this fetch leads.
    pub fn new(leader: Option<Leader<bool>>) -> Self {
        Followers(leader)
    }

    /// Tells the followers whether the response was stored; later calls do nothing.
    pub fn tell(&mut self, stored: bool) {
        if let Some(leader) = self.0.take() {
            leader.finish(stored);
        }
    }
}

/// Handles an upstream response: scans, stores and tags it. `followers` are told as soon as
/// it is known whether the response was stored.
pub async fn respond(
    proxy: &Proxy,
    resp: Response<Body>,
    x: &Exchange<'_>,
    mut status_hdr: CacheStatus,
    log: &mut AccessLog,
    mut followers: Followers,
) -> Result<Response<Body>, ProxyError> {
    // `resp` comes from `handle::downstream_response`, which drops a forged verdict header.
    let (mut parts, body) = resp.into_parts();
    let info = RequestInfo {
        method: x.method,
        headers: x.req_headers,
    };
    // Storability (for this request and for anyone) and no-store all read the same two
    // Cache-Control fields: parse them once.
    let status = parts.status.as_u16();
    let qcc = CacheControl::parse(x.req_headers);
    let rcc = CacheControl::parse(&parts.headers);
    let no_store = policy::no_store_with(&qcc, status, &rcc);
    let storable = x.key.is_some()
        && match policy::storable_with(&info, &qcc, status, &parts.headers, &rcc) {
            Ok(()) => true,
            Err(why) => {
                status_hdr.detail = Some(why.as_str());
                false
            }
        };
    if !storable {
        followers.tell(false);
    }
    if let (Some(key), &Method::GET) = (x.key, x.method) {
        note_storability(proxy, key, parts.status, &parts.headers, &rcc);
    }
    // A storable 204 is stored with its (empty) body like any other response (RFC 9110
    // §15.3.5: cacheable by default); other bodiless answers have nothing to keep.
    let stored_empty = storable && parts.status == StatusCode::NO_CONTENT;
    if bodiless(x.method, parts.status) && !stored_empty {
        if storable {
            followers.tell(false);
        }
        set_cache_status(&mut parts.headers, &status_hdr, log);
        return Ok(Response::from_parts(parts, body));
    }
    let max = proxy.scan_cfg.max_body.as_usize();
    if proxy.scan_cfg.mode == ScanMode::Observe {
        return Ok(observe(
            proxy, parts, body, x, storable, no_store, status_hdr, log, followers,
        ));
    }
    // A body whose Content-Length already exceeds max_body cannot be scanned: decide from
    // the head (stream at once, or refuse under `unscanned = "block"`) instead of buffering
    // max_body bytes first.
    let collected = if declared_length(&parts.headers).is_some_and(|n| n > max as u64) {
        Ok(Collected::TooLarge {
            head: Vec::new(),
            rest: body,
        })
    } else {
        body::collect_limited(body, max).await
    };
    match collected {
        Err(e) => {
            // Enforce mode has sent nothing yet, so a failed body is an honest 502/504.
            followers.tell(false);
            Err(ProxyError::Upstream(upstream::body_error(x.url, &*e)))
        }
        Ok(Collected::TooLarge { head, rest }) => {
            followers.tell(false);
            let verdict = Verdict::unscanned(
                "",
                &media_type(&parts.headers),
                "too_large",
                &proxy.pipeline.ruleset(),
            );
            status_hdr.detail.get_or_insert("too-large");
            set_cache_status(&mut parts.headers, &status_hdr, log);
            Ok(finish(
                proxy,
                parts,
                body::chain(head, rest),
                &verdict,
                x.url,
                log,
            ))
        }
        Ok(Collected::Complete(bytes)) => {
            let pipeline = &proxy.pipeline;
            // Repeated bytes are answered from the memo before a scan input is built.
            let verdict = match pipeline.memo_for_body(&bytes, &parts.headers) {
                Ok(v) => v,
                // Boxed, as is the store below: a memo hit or an unstorable response, the
                // common case, then moves a future without their state.
                Err(known_sha) => Arc::new(
                    Box::pin(
                        pipeline.scan_unmemoised(content(&bytes, &parts.headers, x.url), known_sha),
                    )
                    .await,
                ),
            };
            record_url(&proxy.store, x.url, &verdict, no_store);
            let stored = if storable {
                Box::pin(store(proxy, x, &parts, bytes.clone(), &verdict)).await
            } else {
                false
            };
            followers.tell(stored);
            status_hdr.stored = stored;
            set_cache_status(&mut parts.headers, &status_hdr, log);
            Ok(finish(
                proxy,
                parts,
                body::full(bytes),
                &verdict,
                x.url,
                log,
            ))
        }
    }
}

/// Observe mode: the client gets the bytes at once; a copy is scanned (and stored) when the
/// body has ended complete, and only then are `followers` told.
#[allow(clippy::too_many_arguments)]
fn observe(
    proxy: &Proxy,
    mut parts: http::response::Parts,
    body: Body,
    x: &Exchange<'_>,
    storable: bool,
    no_store: bool,
    status_hdr: CacheStatus,
    log: &mut AccessLog,
    mut followers: Followers,
) -> Response<Body> {
    let max = proxy.scan_cfg.max_body.as_usize();
    if declared_length(&parts.headers).is_some_and(|n| n > max as u64) {
        // Announced over max_body: no copy will be kept, so nothing will be stored.
        followers.tell(false);
    }
    let (tee, copy) = body::tee(body, max);
    let pipeline = proxy.pipeline.clone();
    let headers = parts.headers.clone();
    let url = x.url.to_string();
    let cache = proxy.cache.clone();
    let store = proxy.store.clone();
    let observing = proxy.observing.clone();
    // Everything the meta needs, captured now; the meta is built once the body is complete.
    let prepared = x.key.filter(|_| storable).map(|k| {
        (
            k.clone(),
            parts.status,
            x.req_headers.clone(),
            x.request_time,
            x.response_time,
        )
    });
    tokio::spawn(async move {
        let bytes = match copy.await {
            Ok(Some(bytes)) => bytes,
            // Over max_body, or the body failed: nothing will be stored.
            Ok(None) => {
                followers.tell(false);
                return;
            }
            // The client left before the end: `followers` dropped untold lets one of them
            // fetch anew.
            Err(_) => return,
        };
        // No client waits for this scan and store, so nothing else bounds the bodies held
        // for them once their responses are done: past the pipeline's capacity (what a full
        // scan queue refuses in enforce mode) a body is neither scanned nor stored.
        let Ok(_slot) = observing.try_acquire_owned() else {
            pipeline.count_rejected();
            tracing::debug!(
                url,
                "scan capacity taken: observed body not scanned or stored"
            );
            followers.tell(false);
            return;
        };
        let verdict = Arc::new(pipeline.scan(content(&bytes, &headers, &url)).await);
        record_url(&store, &url, &verdict, no_store);
        let mut stored = false;
        if let Some((key, status, req_headers, request_time, response_time)) = prepared {
            let object = Object {
                key,
                status,
                headers,
                req_headers,
                request_time,
                response_time,
            };
            stored = put_complete(&cache, object, bytes, &url, &verdict).await;
        }
        followers.tell(stored);
    });
    set_cache_status(&mut parts.headers, &status_hdr, log);
    log.verdict = "observe";
    Response::from_parts(parts, body::boxed(tee))
}

/// Marks `key` for collapsing bypass when the origin's own headers make this response
/// unstorable for any request (no-store, private, Vary: *, a non-error page without freshness
/// or validator), and clears the mark when it is storable. Partial, 304 and 5xx answers leave
/// the mark as it is: they say nothing lasting about the URL.
fn note_storability(
    proxy: &Proxy,
    key: &CacheKey,
    status: StatusCode,
    headers: &HeaderMap,
    rcc: &CacheControl,
) {
    use crate::cache::policy::NotStorable as N;
    let plain = HeaderMap::new();
    let anyone = RequestInfo {
        method: &Method::GET,
        headers: &plain,
    };
    let none = CacheControl::default();
    match policy::storable_with(&anyone, &none, status.as_u16(), headers, rcc) {
        Ok(()) => proxy.collapser.clear_uncacheable(key),
        Err(N::NoStore | N::Private | N::VaryStar) => proxy.collapser.mark_uncacheable(key),
        Err(N::Useless | N::NoExplicitFreshness) if !status.is_server_error() => {
            proxy.collapser.mark_uncacheable(key)
        }
        Err(_) => {}
    }
}

/// Writes a complete, storable response (body before meta, inside the store).
async fn store(
    proxy: &Proxy,
    x: &Exchange<'_>,
    parts: &http::response::Parts,
    bytes: Bytes,
    verdict: &Arc<Verdict>,
) -> bool {
    let Some(key) = x.key else { return false };
    let object = Object {
        key: key.clone(),
        status: parts.status,
        headers: parts.headers.clone(),
        req_headers: x.req_headers.clone(),
        request_time: x.request_time,
        response_time: x.response_time,
    };
    put_complete(&proxy.cache, object, bytes, x.url, verdict).await
}

/// What a stored object's meta is built from (owned: the meta is built on a store thread).
struct Object {
    key: CacheKey,
    status: StatusCode,
    headers: HeaderMap,
    req_headers: HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
}

/// Writes a response whose body is complete (per its framing) to the cache, keeping its
/// `verdict` with it; `true` if stored. A store failure is logged and the response is served
/// uncached.
async fn put_complete(
    cache: &Cache,
    o: Object,
    bytes: Bytes,
    url: &str,
    verdict: &Arc<Verdict>,
) -> bool {
    if !policy::body_complete(&o.headers, bytes.len() as u64) {
        return false;
    }
    let verdict = Arc::clone(verdict);
    let build = move |body: &[u8]| {
        let meta = ObjectMeta::from_response(
            &o.key,
            o.status,
            &o.headers,
            &o.req_headers,
            o.request_time,
            o.response_time,
            body,
        );
        // The verdict was scanned from these response fields; the memory tier may keep it
        // only with an object stored with exactly them (the meta gains a `Date` when the
        // origin sent none, and loses fields `no-cache`/`private` name). Else the first hit
        // asks the memo.
        let scanned = (meta.headers == o.headers).then_some(verdict);
        (meta, scanned)
    };
    match cache.put_built(build, bytes).await {
        Ok(crate::cache::store::PutOutcome::Stored) => true,
        Ok(_) => false,
        Err(e) => {
            tracing::warn!(error = %e, url, "cache store failed; serving without caching");
            false
        }
    }
}

/// Applies the verdict's action and tags the response.
pub fn finish(
    proxy: &Proxy,
    mut parts: http::response::Parts,
    body: Body,
    verdict: &Verdict,
    url: &str,
    log: &mut AccessLog,
) -> Response<Body> {
    let action = respond::action_in(verdict.class, &proxy.scan_cfg.action, proxy.scan_cfg.mode);
    log.verdict = verdict.class.as_str();
    if action == crate::config::Action::Block {
        tracing::info!(url, class = %verdict.class, rules = ?respond::rule_names(verdict), "blocked");
        let mut resp = respond::blocked(verdict, url);
        // The 403 replaces the object, not the cache's account of where it came from.
        if let Some(cs) = parts.headers.remove(CACHE_STATUS) {
            resp.headers_mut().insert(CACHE_STATUS, cs);
        }
        return resp;
    }
    respond::tag(&mut parts.headers, verdict, action);
    Response::from_parts(parts, body)
}

/// Adds `Cache-Status` and notes the result for the access log.
pub fn set_cache_status(headers: &mut HeaderMap, status: &CacheStatus, log: &mut AccessLog) {
    log_cache_result(status, log);
    if let Some(v) = status.to_header() {
        headers.insert(CACHE_STATUS, v);
    }
}

/// Notes the cache result for the access log.
pub fn log_cache_result(status: &CacheStatus, log: &mut AccessLog) {
    log.cache_result = crate::admin::metrics::CacheResult::of(status);
    // A stale object served on an origin error went forward (no `hit` in Cache-Status), but
    // what the client got came from the cache.
    let from_cache = status.hit || log.cache_result == crate::admin::metrics::CacheResult::Stale;
    log.cache = if from_cache {
        "hit"
    } else if status.stored {
        "miss-stored"
    } else {
        "miss"
    };
}

/// The scan input for a body with its response headers.
pub fn content(bytes: &Bytes, headers: &HeaderMap, url: &str) -> Content {
    crate::scan::pipeline::content_from_response(bytes.clone(), headers, Some(url.to_string()))
}

/// The `Content-Length` of a response head, when present and valid.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn media_type(headers: &HeaderMap) -> String {
    let ctype = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    crate::scan::pipeline::content::parse_content_type(ctype).0
}

/// Records URL → latest verdict SHA-256 and time in the `urls` tree (admin look-up by URL),
/// when [`keeps_url`] says so.
pub fn record_url(store: &crate::store::Store, url: &str, verdict: &Verdict, no_store: bool) {
    if verdict.sha256.is_empty() || !keeps_url(no_store, verdict.class) {
        return;
    }
    let value = serde_json::json!({
        "sha256": verdict.sha256,
        "fetched_at": crate::scan::pipeline::verdict::rfc3339(SystemTime::now()),
    });
    if let Err(e) = store
        .urls
        .insert(url.as_bytes(), value.to_string().as_bytes())
    {
        tracing::warn!(error = %e, "recording the URL's verdict failed");
    }
}

/// Whether the `urls` tree keeps an exchange. `no-store` forbids keeping any part of the
/// exchange, its URL included (RFC 9111 §5.2), so a clean `no-store` exchange leaves nothing
/// behind; one sluice acted on (any other class) is kept, as its access-log line is, so
/// `/verdicts?url=` can say why it was blocked or tagged. (The verdict itself is memoised by
/// body SHA-256, which names the content, not the request.)
pub fn keeps_url(no_store: bool, class: Class) -> bool {
    !no_store || class != Class::Clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_acted_on_no_store_exchanges_keep_their_url() {
        for (no_store, class, kept) in [
            (false, Class::Clean, true),
            (false, Class::Unscanned, true),
            (true, Class::Clean, false),
            (true, Class::Unscanned, true),
            (true, Class::Suspect, true),
            (true, Class::Spam, true),
            (true, Class::Listed, true),
        ] {
            assert_eq!(keeps_url(no_store, class), kept, "{no_store} {class:?}");
        }
    }
}

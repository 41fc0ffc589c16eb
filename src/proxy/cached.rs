//! The cache phase for GET and HEAD: look up, serve fresh hits, revalidate stale objects,
//! collapse concurrent misses into one upstream fetch.

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, Method, Request, Response, StatusCode, Version};

use super::conn::AccessLog;
use super::error::ProxyError;
use super::fetch::{self, Exchange, Followers};
use super::headers::ViaName;
use super::target::Target;
use super::Proxy;
use crate::body::{self, Body};
use crate::cache::collapse::{Role, WaitOutcome};
use crate::cache::freshness::Facts;
use crate::cache::key::CacheKey;
use crate::cache::policy::{self, Decision, RequestInfo, UpstreamError};
use crate::cache::status::{CacheStatus, Fwd};
use crate::cache::store::{Found, Hit};
use crate::cache::validate::Refresh;
use crate::cache::{serve, validate};

/// The request head kept for the cache phase (GET/HEAD bodies are not forwarded): the
/// client's fields minus the hop-by-hop ones, `Host` from the target, as the cache reads and
/// stores them.
/// [`Head::request`] adds this hop's fields when a request goes upstream.
#[derive(Clone)]
pub struct Head {
    pub method: Method,
    pub uri: http::Uri,
    /// The version the client spoke, for `Via`.
    pub version: Version,
    pub headers: HeaderMap,
    /// The client request's extensions: hyper's record of the field names' case, so the
    /// origin sees them as the client wrote them.
    pub extensions: http::Extensions,
}

impl Head {
    /// The request to send upstream, naming this hop `via`.
    fn request(&self, via: &ViaName) -> Request<Body> {
        let mut r = Request::new(body::empty());
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        let headers = r.headers_mut();
        *headers = self.headers.clone();
        super::handle::add_upstream_fields(headers, via, self.version);
        *r.extensions_mut() = self.extensions.clone();
        r
    }

    /// The request that revalidates a stored object: the client's, carrying the cache's own
    /// validators and none of the client's preconditions or Range (RFC 9111 §4.3.1).
    fn revalidation_request(&self, via: &ViaName, conditional: &HeaderMap) -> Request<Body> {
        let mut r = self.request(via);
        validate::set_cache_validators(r.headers_mut(), conditional);
        r
    }
}

/// GET/HEAD through the cache.
pub async fn serve(
    proxy: &Arc<Proxy>,
    head: Head,
    target: &Target,
    key: CacheKey,
    log: &mut AccessLog,
) -> Result<Response<Body>, ProxyError> {
    let info = RequestInfo {
        method: &head.method,
        headers: &head.headers,
    };
    let found = match proxy.cache.get(&key, &head.headers).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "cache lookup failed; treating as a miss");
            Found::Miss
        }
    };
    let fwd = match found {
        Found::Hit(hit) => {
            return match policy::decide_with(&info, &hit.meta, &hit.facts, SystemTime::now()) {
                Decision::Fresh { age } | Decision::StaleAllowed { age } => {
                    Ok(serve_hit(proxy, &head, hit, age, CacheStatus::hit(), log).await)
                }
                Decision::StaleWhileRevalidate { age } => {
                    background_revalidate(proxy, &head, &hit, target, key);
                    Ok(serve_hit(proxy, &head, hit, age, CacheStatus::hit(), log).await)
                }
                Decision::Revalidate { conditional, fwd } => {
                    Box::pin(revalidate(
                        proxy,
                        &head,
                        hit,
                        conditional,
                        fwd,
                        target,
                        &key,
                        log,
                        Followers::default(),
                    ))
                    .await
                }
                Decision::GatewayTimeout => Err(ProxyError::OnlyIfCached),
            };
        }
        Found::VaryMiss => Fwd::VaryMiss,
        Found::Miss => Fwd::UriMiss,
    };
    if policy::only_if_cached(&head.headers) {
        return Err(ProxyError::OnlyIfCached);
    }
    // Boxed: a hit's future must not carry the upstream exchange's state (see `forward`).
    Box::pin(miss(proxy, &head, target, &key, fwd, log)).await
}

/// A miss: one request per key goes upstream; the others wait for it, then look again.
async fn miss(
    proxy: &Arc<Proxy>,
    head: &Head,
    target: &Target,
    key: &CacheKey,
    fwd: Fwd,
    log: &mut AccessLog,
) -> Result<Response<Body>, ProxyError> {
    // A key known not to be storable is not collapsed: waiting for another client's fetch
    // would only serialise. A follower whose leader stored nothing fresh (the origin failed
    // too) fetches itself; one whose leader gave up (its client left) asks again, so one of the
    // waiters leads the next fetch instead of all going upstream at once. The whole wait is
    // bounded by what the leader's own fetch may take: a response timeout for the head,
    // then a body timeout for the body it reads whole (to scan it) before storing. In observe
    // mode the leader streams that body to its client and stores the scanned copy after; its
    // followers wait for that store as they do in enforce mode.
    let mut leader = None;
    if !proxy.collapser.is_uncacheable(key) {
        let cfg = &proxy.upstream_cfg;
        let deadline = tokio::time::Instant::now() + cfg.response_timeout + cfg.body_timeout;
        loop {
            match proxy.collapser.acquire(key) {
                Role::Leader(l) => leader = Some(l),
                Role::Follower(follower) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match follower.wait(left).await {
                        WaitOutcome::Done(true) => {
                            if let Some(resp) = collapsed_hit(proxy, head, key, log).await {
                                return Ok(resp);
                            }
                        }
                        WaitOutcome::Abandoned if !left.is_zero() => continue,
                        _ => {}
                    }
                }
            }
            break;
        }
    }
    let st = CacheStatus::forward(fwd);
    let followers = Followers::new(leader);
    fetch_and_respond(proxy, head, target, Some(key), st, log, followers).await
}

/// What a follower serves once its leader stored the object: the stored object, when it is
/// there and fresh for this request.
async fn collapsed_hit(
    proxy: &Arc<Proxy>,
    head: &Head,
    key: &CacheKey,
    log: &mut AccessLog,
) -> Option<Response<Body>> {
    let Ok(Found::Hit(hit)) = proxy.cache.get(key, &head.headers).await else {
        return None;
    };
    let info = RequestInfo {
        method: &head.method,
        headers: &head.headers,
    };
    let Decision::Fresh { age } =
        policy::decide_with(&info, &hit.meta, &hit.facts, SystemTime::now())
    else {
        return None;
    };
    let mut st = CacheStatus::hit();
    st.collapsed = true;
    Some(serve_hit(proxy, head, hit, age, st, log).await)
}

/// Sends `head` upstream and runs the response phase.
#[allow(clippy::too_many_arguments)]
async fn fetch_and_respond(
    proxy: &Proxy,
    head: &Head,
    target: &Target,
    key: Option<&CacheKey>,
    status: CacheStatus,
    log: &mut AccessLog,
    mut followers: Followers,
) -> Result<Response<Body>, ProxyError> {
    let request_time = SystemTime::now();
    let mut upstream_req = head.request(&proxy.upstream.via);
    if head.method == Method::GET {
        super::headers::whole_body_only(upstream_req.headers_mut());
    }
    let fetched = match proxy.upstream.send(upstream_req, target).await {
        Ok(f) => f,
        Err(e) => {
            followers.tell(false);
            return Err(e.into());
        }
    };
    log.upstream_ms = Some(fetched.elapsed.as_millis());
    let resp = super::handle::downstream_response(fetched.response);
    // The URL formatted by the request phase, lent out of the log (as in `serve_hit`).
    let url = std::mem::take(&mut log.url);
    let x = Exchange {
        method: &head.method,
        req_headers: &head.headers,
        url: &url,
        key,
        request_time,
        response_time: SystemTime::now(),
    };
    let resp = fetch::respond(proxy, resp, &x, status, log, followers).await;
    log.url = url;
    resp
}

/// Serves a stored object that upstream just confirmed (`fwd_status`: its 304, or a HEAD's
/// 200) with its freshened head `merged`, which is stored first. Its body's verdict carries
/// over while the merge keeps what the verdict depends on.
#[allow(clippy::too_many_arguments)]
async fn serve_refreshed(
    proxy: &Arc<Proxy>,
    head: &Head,
    hit: Hit,
    merged: crate::cache::meta::ObjectMeta,
    key: &CacheKey,
    fwd: Fwd,
    fwd_status: u16,
    log: &mut AccessLog,
) -> Response<Body> {
    let merged = Arc::new(merged);
    apply_refresh(proxy, key, validate::refresh(&head.headers, &merged)).await;
    let mut st = CacheStatus::forward(fwd);
    st.fwd_status = Some(fwd_status);
    let verdict = hit
        .verdict
        .filter(|_| crate::cache::memory::verdict_carries_over(&hit.meta, &merged));
    let hit = Hit {
        facts: Arc::new(Facts::of(&merged)),
        meta: merged,
        body: hit.body,
        tier: hit.tier,
        verdict,
    };
    // Validated just now, but a cache upstream may have validated it earlier: the merge's
    // Age (and Date) count, as for every later hit (RFC 9111 §4.2.3).
    let age = hit.facts.age(SystemTime::now());
    serve_hit(proxy, head, hit, age, st, log).await
}

/// A stale (or no-cache) object: ask upstream whether it is still good. `followers` (those
/// of a background revalidation) are told once the outcome is stored, as on a miss: an
/// answer the origin sends whole is stored only after its body (in observe mode, once its
/// streamed copy is scanned), and the key stays taken until then.
#[allow(clippy::too_many_arguments)]
async fn revalidate(
    proxy: &Arc<Proxy>,
    head: &Head,
    hit: Hit,
    conditional: HeaderMap,
    fwd: Fwd,
    target: &Target,
    key: &CacheKey,
    log: &mut AccessLog,
    mut followers: Followers,
) -> Result<Response<Body>, ProxyError> {
    let request_time = SystemTime::now();
    let info = RequestInfo {
        method: &head.method,
        headers: &head.headers,
    };
    let sent = proxy
        .upstream
        .send(
            head.revalidation_request(&proxy.upstream.via, &conditional),
            target,
        )
        .await;
    let fetched = match sent {
        Ok(f) => f,
        Err(e) => {
            // A parent's refusal of the tunnel is an answer, judged like one relayed for an
            // `http://` URL: a 403 never brings back the stale object, a 5xx only under
            // `stale-if-error`.
            let failure = e
                .received_status()
                .map_or(UpstreamError::Unreachable, UpstreamError::Status);
            if policy::can_serve_stale_on_error(&info, &hit.facts, SystemTime::now(), failure) {
                let age = stale_age(&hit);
                let st = CacheStatus::stale_on_error(fwd, e.received_status());
                tracing::warn!(error = %e, url = %target, "origin unreachable; serving stale");
                return Ok(serve_hit(proxy, head, hit, age, st, log).await);
            }
            return Err(e.into());
        }
    };
    log.upstream_ms = Some(fetched.elapsed.as_millis());
    let response_time = SystemTime::now();
    let upstream_status = fetched.response.status();
    // Hop-by-hop fields go before any merge: they described the upstream connection, and a
    // stored copy would be sent with every later hit (RFC 9110 §7.6.1, RFC 9111 §3.2).
    // Also drops a forged verdict header, which must not be merged either.
    let resp = super::handle::downstream_response(fetched.response);
    if upstream_status == StatusCode::NOT_MODIFIED {
        // RFC 9111 §4.3.4: the 304 freshens the stored headers; the client gets the object.
        let merged = validate::merge_304(&hit.meta, resp.headers(), request_time, response_time)
            .ok()
            .filter(|m| fits_head(proxy, m));
        if let Some(merged) = merged {
            freshen_variants(
                proxy,
                head,
                key,
                &hit.meta,
                resp.headers(),
                request_time,
                response_time,
            )
            .await;
            let resp = serve_refreshed(proxy, head, hit, merged, key, fwd, 304, log).await;
            followers.tell(true);
            return Ok(resp);
        }
        // The 304 selected a different representation, or its fields would grow the stored
        // head past what an origin may send in one: fetch unconditionally.
        return fetch_and_respond(
            proxy,
            head,
            target,
            Some(key),
            CacheStatus::forward(fwd),
            log,
            followers,
        )
        .await;
    }
    if upstream_status.is_server_error()
        && policy::can_serve_stale_on_error(
            &info,
            &hit.facts,
            SystemTime::now(),
            UpstreamError::Status(upstream_status.as_u16()),
        )
    {
        let st = CacheStatus::stale_on_error(fwd, Some(upstream_status.as_u16()));
        return Ok(serve_hit(proxy, head, hit.clone(), stale_age(&hit), st, log).await);
    }
    if head.method == Method::HEAD && upstream_status == StatusCode::OK {
        // RFC 9111 §4.3.5: a HEAD's 200 updates the stored GET response it matches and
        // outdates one it does not; a HEAD is never stored, so it must not simply remove it.
        match validate::merge_head(&hit.meta, resp.headers(), request_time, response_time) {
            Ok(merged) if fits_head(proxy, &merged) => {
                // The stored GET response is confirmed: the HEAD is answered from it, as a
                // fresh one is, so its body's verdict applies (a blocked object is a 403, not
                // the origin's 200 with its length).
                let resp = serve_refreshed(proxy, head, hit, merged, key, fwd, 200, log).await;
                followers.tell(true);
                return Ok(resp);
            }
            // A different validator or length: the stored GET response is outdated (and one
            // grown past the head limit is fetched afresh by the next GET).
            _ => remove_stored(proxy, key).await,
        }
    } else if head.method != Method::HEAD
        && !upstream_status.is_server_error()
        && policy::storable(&info, upstream_status.as_u16(), resp.headers()).is_err()
    {
        // The origin's new answer may not be stored: the old object must not be served again.
        // A 5xx is no new answer (RFC 9111 §4.3.3: as if the origin had not responded): the
        // stale object stays for the next validation, and for an origin that goes down.
        // A HEAD's answer other than 200 says nothing about the stored GET response (RFC 9111
        // §4.3.5: only a 200 updates or outdates it): a 405 or 404 to HEAD leaves it stored.
        remove_stored(proxy, key).await;
    }
    let url = std::mem::take(&mut log.url);
    let x = Exchange {
        method: &head.method,
        req_headers: &head.headers,
        url: &url,
        key: Some(key),
        request_time,
        response_time,
    };
    let mut st = CacheStatus::forward(fwd);
    st.fwd_status = Some(upstream_status.as_u16());
    let resp = fetch::respond(proxy, resp, &x, st, log, followers).await;
    log.url = url;
    resp
}

/// RFC 9111 §4.3.4: a 304 with a strong ETag freshens every stored response with that ETag,
/// not only the variant `validated` that was looked up: other variants of the URL (`Vary`)
/// holding the same representation become fresh too, instead of each going to the origin
/// again. Each is merged and judged as the validated one is; one that no longer matches, or
/// may not be updated, is left as it was (a `Remove` of the validated one removes them all).
#[allow(clippy::too_many_arguments)]
async fn freshen_variants(
    proxy: &Proxy,
    head: &Head,
    key: &CacheKey,
    validated: &crate::cache::meta::ObjectMeta,
    resp_304: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) {
    if validated.vary.is_empty() || !validate::also_selects(resp_304, &validated.headers) {
        return;
    }
    let variants = match proxy.cache.variants(key).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "listing variants after a 304 failed");
            return;
        }
    };
    for other in variants {
        if other.secondary == validated.secondary
            || !validate::also_selects(resp_304, &other.headers)
        {
            continue;
        }
        let Ok(merged) = validate::merge_304(&other, resp_304, request_time, response_time) else {
            continue;
        };
        if !fits_head(proxy, &merged) {
            continue;
        }
        if let Refresh::Update(meta) = validate::refresh(&head.headers, &merged) {
            if let Err(e) = proxy.cache.update_meta(*meta).await {
                tracing::warn!(error = %e, "cache update of a variant after a 304 failed");
            }
        }
    }
}

/// Whether a merged meta's fields stay within `upstream.max_header_size`. RFC 9111 §3.2 has a
/// 304 add its fields to the stored ones, so an origin answering each revalidation with new
/// ones would otherwise grow one stored head (sent with every hit) without bound.
fn fits_head(proxy: &Proxy, merged: &crate::cache::meta::ObjectMeta) -> bool {
    let size: usize = merged
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    size <= proxy.upstream_cfg.max_header_size.as_usize()
}

/// Stores, keeps or removes the stored object as a revalidation's merged answer says.
async fn apply_refresh(proxy: &Proxy, key: &CacheKey, refresh: Refresh) {
    match refresh {
        Refresh::Update(meta) => {
            if let Err(e) = proxy.cache.update_meta(*meta).await {
                tracing::warn!(error = %e, "cache update after revalidation failed");
            }
        }
        Refresh::Keep => {}
        Refresh::Remove(_) => remove_stored(proxy, key).await,
    }
}

/// Removes an outdated or no longer storable object (every variant of the URL).
async fn remove_stored(proxy: &Proxy, key: &CacheKey) {
    if let Err(e) = proxy.cache.remove(key).await {
        tracing::warn!(error = %e, "cache removal failed");
    }
}

fn stale_age(hit: &Hit) -> u64 {
    hit.facts.age(SystemTime::now())
}

/// stale-while-revalidate: one background revalidation per key at a time. The key stays
/// taken until the refreshed object is stored (see [`revalidate`]), not merely until its
/// body was read: in observe mode the store comes after, and a request in between found the
/// stale object again and started a second revalidation.
fn background_revalidate(
    proxy: &Arc<Proxy>,
    head: &Head,
    hit: &Hit,
    target: &Target,
    key: CacheKey,
) {
    let Role::Leader(leader) = proxy.collapser.acquire(&key) else {
        return; // someone is already fetching it
    };
    let proxy = proxy.clone();
    let head = head.clone();
    let hit = hit.clone();
    let target = target.clone();
    tokio::spawn(async move {
        let conditional = validate::conditional_headers(&hit.meta.headers);
        // Not logged, but the phases below read the URL from the log as on a client's request.
        let mut log = AccessLog {
            url: target.url(),
            ..AccessLog::default()
        };
        let r = revalidate(
            &proxy,
            &head,
            hit,
            conditional,
            Fwd::Stale,
            &target,
            &key,
            &mut log,
            Followers::new(Some(leader)),
        )
        .await;
        if let Ok(resp) = r {
            // Read so a fresh 200 is scanned/stored and the upstream connection is reused,
            // without keeping the bytes. A body over `scan.max_body` is neither scanned nor
            // stored: it is dropped there, not read (let alone held) to its end.
            let mut body = resp.into_body();
            let mut left = proxy.scan_cfg.max_body.as_usize();
            while let Some(Ok(frame)) = http_body_util::BodyExt::frame(&mut body).await {
                let n = frame.data_ref().map_or(0, bytes::Bytes::len);
                if n > left {
                    break;
                }
                left -= n;
            }
        }
    });
}

/// Builds the response for a usable stored object: verdict first (a blocked object is
/// blocked whatever the request), then `cache::serve` for conditionals, Range and HEAD.
async fn serve_hit(
    proxy: &Proxy,
    head: &Head,
    hit: Hit,
    age: u64,
    mut status: CacheStatus,
    log: &mut AccessLog,
) -> Response<Body> {
    // The target, formatted once by the request phase; lent out of the log (no copy per
    // hit) and put back before returning.
    let url = std::mem::take(&mut log.url);
    // A held object normally keeps its body's verdict: no hashing, no memo lookup. Otherwise
    // (just read from disk, or a changed ruleset) the memo or the pool answers by the stored
    // body digest, and the object keeps that answer.
    let verdict = match hit.verdict.filter(|v| proxy.pipeline.still_stands(v)) {
        Some(v) => v,
        None => {
            let content = fetch::content(&hit.body, &hit.meta.headers, &url);
            let v = Box::pin(
                proxy
                    .pipeline
                    .verdict_for_known(&hit.meta.body_sha256, content),
            )
            .await;
            proxy.cache.keep_verdict(&hit.meta, &v);
            v
        }
    };
    if status.hit {
        status.ttl = Some(policy::ttl(&hit.facts, SystemTime::now()));
    }
    // cache::serve writes the Cache-Status header itself; only the access log needs noting.
    fetch::log_cache_result(&status, log);
    let served = serve::from_cache(
        &head.method,
        &head.headers,
        &hit.meta,
        &hit.body,
        age,
        &status,
    );
    let mut resp = Response::new(body::full(served.body));
    *resp.status_mut() = served.status;
    *resp.headers_mut() = served.headers;
    let (parts, body) = resp.into_parts();
    let resp = fetch::finish(proxy, parts, body, &verdict, &url, log);
    log.url = url;
    resp
}

//! RFC 9111 policy for a shared cache: may this response be stored, and may this stored
//! response be reused for this request? Pure functions over headers and times; no I/O.

use std::sync::LazyLock;
use std::time::SystemTime;

use http::header::{AUTHORIZATION, CONTENT_LENGTH};
use http::{HeaderMap, Method};

use super::directives::CacheControl;
use super::freshness::{has_explicit_freshness, heuristically_cacheable, Facts};
use super::meta::ObjectMeta;
use super::status::Fwd;
use super::validate::conditional_headers;
use super::vary;

/// What the proxy knows about the client's request when consulting the cache.
#[derive(Clone, Debug)]
pub struct RequestInfo<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request header fields (hop-by-hop already stripped).
    pub headers: &'a HeaderMap,
}

/// Why a response is not stored (also usable as Cache-Status `detail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStorable {
    /// Only GET responses are stored (HEAD is answered from a stored GET).
    Method,
    /// 1xx, 304, or a status the cache does not understand.
    Status,
    /// 206 and other partial content is never stored as a complete object.
    Partial,
    /// `no-store` in the request or response.
    NoStore,
    /// `private` (unqualified) in the response.
    Private,
    /// The request had Authorization and the response did not allow sharing it.
    Authorization,
    /// `Vary: *`.
    VaryStar,
    /// Status needs explicit freshness (e.g. 302, 307) and none was given.
    NoExplicitFreshness,
    /// Neither freshness nor a validator: storing could never produce a hit.
    Useless,
    /// `must-understand` with a status the cache does not understand.
    MustUnderstand,
    /// The body is shorter or longer than Content-Length.
    Truncated,
}

impl NotStorable {
    /// A short token for logs and Cache-Status `detail`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::Partial => "partial",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::VaryStar => "vary-star",
            NotStorable::NoExplicitFreshness => "no-explicit-freshness",
            NotStorable::Useless => "no-freshness-or-validator",
            NotStorable::MustUnderstand => "must-understand",
            NotStorable::Truncated => "truncated",
        }
    }
}

/// Status codes whose semantics the cache understands (RFC 9111 §3, `must-understand`).
fn understood(status: u16) -> bool {
    heuristically_cacheable(status) || matches!(status, 302 | 303 | 307)
}

/// RFC 9111 §3: may a shared cache store this response to this request?
pub fn storable(req: &RequestInfo<'_>, status: u16, resp: &HeaderMap) -> Result<(), NotStorable> {
    let qcc = CacheControl::parse(req.headers);
    storable_with(req, &qcc, status, resp, &CacheControl::parse(resp))
}

/// [`storable`] over the request's and the response's Cache-Control (`qcc`, `rcc`), parsed
/// once by a caller that asks more than one question of the same exchange.
pub fn storable_with(
    req: &RequestInfo<'_>,
    qcc: &CacheControl,
    status: u16,
    resp: &HeaderMap,
    rcc: &CacheControl,
) -> Result<(), NotStorable> {
    if req.method != Method::GET {
        return Err(NotStorable::Method);
    }
    if status == 206 {
        return Err(NotStorable::Partial);
    }
    if !(200..600).contains(&status) || status == 304 {
        return Err(NotStorable::Status);
    }
    // §5.2.2.3: must-understand with a status the cache does not understand: do not store.
    if rcc.must_understand && !understood(status) {
        return Err(NotStorable::MustUnderstand);
    }
    if no_store_with(qcc, status, rcc) {
        return Err(NotStorable::NoStore);
    }
    if rcc.private {
        return Err(NotStorable::Private);
    }
    // §3.5: a shared cache stores responses to authorized requests only when allowed.
    if req.headers.contains_key(AUTHORIZATION)
        && !(rcc.public || rcc.s_maxage.is_some() || rcc.must_revalidate)
    {
        return Err(NotStorable::Authorization);
    }
    if vary::is_star(&vary::spec(resp)) {
        return Err(NotStorable::VaryStar);
    }
    let explicit = has_explicit_freshness(rcc, resp);
    if !explicit && !rcc.public && !heuristically_cacheable(status) {
        return Err(NotStorable::NoExplicitFreshness);
    }
    let validator =
        resp.contains_key(http::header::ETAG) || resp.contains_key(http::header::LAST_MODIFIED);
    if !explicit && !validator {
        // Heuristic freshness needs Last-Modified; with nothing at all the entry is dead weight.
        return Err(NotStorable::Useless);
    }
    Ok(())
}

/// RFC 9111 §5.2.1.5, §5.2.2.5: `no-store` applies to this exchange (in the request, or in
/// the response unless `must-understand` with an understood status overrides it, §5.2.2.3).
/// No part of such an exchange may be kept in non-volatile storage.
pub fn no_store(req: &HeaderMap, status: u16, resp: &HeaderMap) -> bool {
    no_store_with(
        &CacheControl::parse(req),
        status,
        &CacheControl::parse(resp),
    )
}

/// [`no_store`] over the request's and the response's parsed Cache-Control.
pub fn no_store_with(qcc: &CacheControl, status: u16, rcc: &CacheControl) -> bool {
    (rcc.no_store && !(rcc.must_understand && understood(status))) || qcc.no_store
}

/// Whether a received body is complete: its length equals Content-Length when one was sent.
/// The proxy must also treat a close-delimited body cut by an error as incomplete.
pub fn body_complete(resp: &HeaderMap, body_len: u64) -> bool {
    match resp.get(CONTENT_LENGTH) {
        None => true,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n == body_len),
    }
}

/// Fields specific to the proxy a cache forwards through, which it must not store (RFC 9111
/// §3.1): a parent's answer to this hop's credentials is for this hop, not for later clients.
const PROXY_FIELDS: [&str; 3] = [
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
];

/// Header fields a shared cache must not store or send without revalidation: the fields named
/// by qualified `private="..."` and `no-cache="..."` (RFC 9111 §5.2.2.4, §5.2.2.7), and the
/// proxy-specific ones present (§3.1). The proxy removes them before storing.
pub fn fields_not_stored(resp: &HeaderMap) -> Vec<String> {
    let cc = CacheControl::parse(resp);
    let mut f = cc.private_fields;
    f.extend(cc.no_cache_fields);
    let proxy = PROXY_FIELDS.iter().filter(|n| resp.contains_key(**n));
    f.extend(proxy.map(|n| n.to_string()));
    f
}

/// How a stored response may be used for a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Fresh: serve it with `Age: age`.
    Fresh {
        /// Current age in seconds.
        age: u64,
    },
    /// Stale, but the client allowed it (`max-stale`): serve with `Age: age`.
    StaleAllowed {
        /// Current age in seconds.
        age: u64,
    },
    /// Stale within `stale-while-revalidate`: serve now, revalidate once in the background.
    StaleWhileRevalidate {
        /// Current age in seconds.
        age: u64,
    },
    /// Must be validated upstream first: send the request with these conditional headers
    /// added (empty when the stored response has no validator: an unconditional fetch).
    Revalidate {
        /// `If-None-Match` / `If-Modified-Since` to add to the upstream request.
        conditional: HeaderMap,
        /// For Cache-Status: `Fwd::Request` when the client's directives forced it
        /// (no-cache, max-age, min-fresh), `Fwd::Stale` otherwise.
        fwd: Fwd,
    },
    /// `only-if-cached` and the stored response cannot be used without the origin: 504.
    GatewayTimeout,
}

/// RFC 9111 §4: may `stored` be reused for `req` at `now`? Vary was already matched by the store.
pub fn decide(req: &RequestInfo<'_>, stored: &ObjectMeta, now: SystemTime) -> Decision {
    decide_with(req, stored, &Facts::of(stored), now)
}

/// [`decide`] with the stored response's [`Facts`] already derived (a cache hit has them).
pub fn decide_with(
    req: &RequestInfo<'_>,
    stored: &ObjectMeta,
    facts: &Facts,
    now: SystemTime,
) -> Decision {
    let qcc = CacheControl::parse_request(req.headers);
    let rcc = &facts.cc;
    let age = facts.age(now);
    let lifetime = facts.lifetime.secs;
    let revalidate = |fwd: Fwd| {
        if qcc.only_if_cached {
            Decision::GatewayTimeout
        } else {
            Decision::Revalidate {
                conditional: conditional_headers(&stored.headers),
                fwd,
            }
        }
    };
    // §5.2.1.4: request no-cache (or Pragma: no-cache): the client asks for validation.
    if qcc.no_cache {
        return revalidate(Fwd::Request);
    }
    // §5.2.2.4: response no-cache: stored, but validated on every reuse.
    if rcc.no_cache {
        return revalidate(Fwd::Stale);
    }
    // §5.2.1.1: request max-age: the client will not accept an older response.
    // max-age=0 forces validation even at age 0 (ages are whole seconds).
    if qcc.max_age.is_some_and(|m| m == 0 || age > m) {
        return revalidate(Fwd::Request);
    }
    // §4.2: fresh while lifetime > age; §5.2.1.3 min-fresh: and for no less than this long.
    if lifetime > age && lifetime - age >= qcc.min_fresh.unwrap_or(0) {
        return Decision::Fresh { age };
    }
    let staleness = age.saturating_sub(lifetime);
    // §5.2.2.2, §5.2.2.8, §5.2.2.10: must-revalidate, proxy-revalidate and s-maxage forbid
    // serving stale in a shared cache, whatever the client allows.
    if rcc.must_revalidate || rcc.proxy_revalidate || rcc.s_maxage.is_some() {
        return revalidate(if lifetime > age {
            Fwd::Request
        } else {
            Fwd::Stale
        });
    }
    if lifetime > age {
        // Still fresh, but not for as long as min-fresh demands.
        return revalidate(Fwd::Request);
    }
    // §5.2.1.2: max-stale.
    match qcc.max_stale {
        Some(None) => return Decision::StaleAllowed { age },
        Some(Some(m)) if staleness <= m => return Decision::StaleAllowed { age },
        _ => {}
    }
    // RFC 5861 §3: stale-while-revalidate.
    if rcc.stale_while_revalidate.is_some_and(|w| staleness <= w) && !qcc.only_if_cached {
        return Decision::StaleWhileRevalidate { age };
    }
    revalidate(Fwd::Stale)
}

/// What went wrong upstream when the proxy considers serving stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamError {
    /// The origin could not be reached (connect failure, DNS, timeout before a response).
    Unreachable,
    /// The origin answered with this 5xx status.
    Status(u16),
}

/// Longest staleness served while the origin is unreachable without an explicit
/// `stale-if-error` (RFC 9111 §4.2.4 "disconnected"; Traffic Server's `max_stale_age` is a week).
pub const DISCONNECTED_MAX_STALE: u64 = 86_400;

/// RFC 5861 §4 / RFC 9111 §4.2.4: may the stale `stored` response be served because upstream
/// failed? `stale-if-error` (request or response) bounds it; a 5xx is covered only by it; an
/// unreachable origin also allows up to [`DISCONNECTED_MAX_STALE`].
pub fn can_serve_stale_on_error(
    req: &RequestInfo<'_>,
    stored: &Facts,
    now: SystemTime,
    error: UpstreamError,
) -> bool {
    if let UpstreamError::Status(s) = error {
        if !(500..600).contains(&s) {
            return false;
        }
    }
    let qcc = CacheControl::parse_request(req.headers);
    let rcc = &stored.cc;
    if rcc.must_revalidate || rcc.proxy_revalidate || rcc.s_maxage.is_some() || rcc.no_cache {
        return false;
    }
    // A client that asked for validation gets stale content only if it also said it may.
    if qcc.no_cache && qcc.stale_if_error.is_none() {
        return false;
    }
    let staleness = stored.age(now).saturating_sub(stored.lifetime.secs);
    let window = match (qcc.stale_if_error, rcc.stale_if_error) {
        (Some(q), _) => Some(q),
        (None, r) => r,
    };
    match (window, error) {
        (Some(w), _) => staleness <= w,
        (None, UpstreamError::Unreachable) => staleness <= DISCONNECTED_MAX_STALE,
        (None, UpstreamError::Status(_)) => false,
    }
}

/// Whether `only-if-cached` was requested: on a miss the proxy answers 504 without upstream.
pub fn only_if_cached(req: &HeaderMap) -> bool {
    CacheControl::parse(req).only_if_cached
}

/// The `Age` header value to send with a response served from cache. Ages under
/// `SMALL_AGES` seconds, nearly every hit's, are formatted once per process: a hit then
/// clones a static value instead of formatting and allocating one.
pub fn age_header(age: u64) -> http::HeaderValue {
    const SMALL_AGES: usize = 1024;
    static SMALL: LazyLock<Vec<http::HeaderValue>> = LazyLock::new(|| {
        let mut digits = String::new();
        let mut ends = Vec::with_capacity(SMALL_AGES);
        for age in 0..SMALL_AGES {
            digits.push_str(itoa::Buffer::new().format(age));
            ends.push(digits.len());
        }
        // Leaked once, so that every value can be a static.
        let digits: &'static str = Box::leak(digits.into_boxed_str());
        let mut start = 0;
        ends.into_iter()
            .map(|end| {
                let v = http::HeaderValue::from_static(&digits[start..end]);
                start = end;
                v
            })
            .collect()
    });
    let age = age.min(super::directives::DELTA_MAX);
    match usize::try_from(age).ok().and_then(|a| SMALL.get(a)) {
        Some(v) => v.clone(),
        None => http::HeaderValue::from(age),
    }
}

/// Remaining freshness in seconds (negative when stale), for Cache-Status `ttl`.
pub fn ttl(facts: &Facts, now: SystemTime) -> i64 {
    facts.lifetime.secs as i64 - facts.age(now) as i64
}

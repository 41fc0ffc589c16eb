//! Validation: conditional requests to the origin (RFC 9111 §4.3.1), merging a 304 into the
//! stored response (§3.2, §4.3.4), and answering the client's own conditionals from cache.

use std::time::SystemTime;

use http::header::{
    HeaderName, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE, TRANSFER_ENCODING,
};
use http::{HeaderMap, Method};

use super::meta::ObjectMeta;
use super::policy::{self, NotStorable, RequestInfo};

/// `If-None-Match` from the stored ETag and `If-Modified-Since` from the stored Last-Modified.
pub fn conditional_headers(stored: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(etag) = stored.get(ETAG) {
        h.insert(IF_NONE_MATCH, etag.clone());
    }
    if let Some(lm) = stored.get(LAST_MODIFIED) {
        h.insert(IF_MODIFIED_SINCE, lm.clone());
    }
    h
}

/// The client's preconditions and range (RFC 9110 §13.1, §14.2): none of them belongs in a
/// request the cache sends to validate its own stored response.
const CLIENT_CONDITIONALS: [HeaderName; 6] = [
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_MATCH,
    IF_UNMODIFIED_SINCE,
    IF_RANGE,
    RANGE,
];

/// RFC 9111 §4.3.1: a revalidation request carries the cache's validators (`conditional`, from
/// [`conditional_headers`]; empty for an unconditional fetch), never the client's. A client's
/// `If-None-Match` would let the origin's 304 "validate" a stored response it never described,
/// and a forwarded Range would bring back a fragment in place of the stored object.
pub fn set_cache_validators(req: &mut HeaderMap, conditional: &HeaderMap) {
    for name in &CLIENT_CONDITIONALS {
        req.remove(name);
    }
    for (name, value) in conditional {
        req.insert(name, value.clone());
    }
}

/// A 304 that does not describe the stored response (its ETag does not select it, §4.3.4).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the 304 does not match the stored response")]
pub struct Mismatch;

/// Fields a 304 never overwrites: the stored body's framing (RFC 9111 §3.2).
const KEEP: [HeaderName; 3] = [CONTENT_LENGTH, CONTENT_RANGE, TRANSFER_ENCODING];

/// RFC 9111 §4.3.4: freshen a stored response with a 304. Every field in the 304 replaces the
/// stored field of that name, except Content-Length and the other framing fields; the timing is
/// reset to this exchange so age restarts. A 304 whose ETag does not select the stored response
/// ([`selects`]), that carries an ETag the stored response lacks, or that has no ETag and
/// another Last-Modified, selects nothing: the proxy must then fetch unconditionally.
/// `resp_304` must hold end-to-end fields only.
pub fn merge_304(
    stored: &ObjectMeta,
    resp_304: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Result<ObjectMeta, Mismatch> {
    if let Some(new) = resp_304.get(ETAG) {
        let old = stored.headers.get(ETAG).ok_or(Mismatch)?;
        if !selects(new.as_bytes(), old.as_bytes()) {
            return Err(Mismatch);
        }
    } else if let (Some(new), Some(old)) = (
        resp_304.get(LAST_MODIFIED),
        stored.headers.get(LAST_MODIFIED),
    ) {
        // Without an ETag the 304's Last-Modified is its validator: another date (a file
        // restored with an older one answers an If-Modified-Since with 304) describes
        // another representation.
        let date = |v: &http::HeaderValue| {
            v.to_str()
                .ok()
                .and_then(|t| httpdate::parse_http_date(t.trim()).ok())
        };
        let same = match (date(new), date(old)) {
            (Some(a), Some(b)) => a == b,
            _ => new.as_bytes().trim_ascii() == old.as_bytes().trim_ascii(),
        };
        if !same {
            return Err(Mismatch);
        }
    }
    let mut merged = stored.clone();
    let names: Vec<&HeaderName> = resp_304.keys().filter(|n| !KEEP.contains(n)).collect();
    for name in names {
        merged.headers.remove(name);
        for v in resp_304.get_all(name) {
            merged.headers.append(name.clone(), v.clone());
        }
    }
    // RFC 9110 §6.6.1: a Date-less response gets its receipt time as Date; keeping the old
    // Date would inflate the apparent age.
    if !resp_304.contains_key(http::header::DATE) {
        if let Ok(v) = http::HeaderValue::from_str(&httpdate::fmt_http_date(response_time)) {
            merged.headers.insert(http::header::DATE, v);
        }
    }
    // The stored Age described the old exchange; a 304 without Age was produced now, so
    // keeping the old one would re-age (or keep stale forever) the freshened object.
    if !resp_304.contains_key(http::header::AGE) {
        merged.headers.remove(http::header::AGE);
    }
    merged.request_time = request_time;
    merged.response_time = response_time;
    Ok(merged)
}

/// RFC 9111 §4.3.4: does a 304's ETag select the stored response with ETag `stored`? A strong
/// validator selects the stored response with the same strong validator (a stored weak tag
/// never matches it); a weak one selects the stored response it matches weakly.
pub fn selects(new: &[u8], stored: &[u8]) -> bool {
    let new = new.trim_ascii();
    if new.starts_with(b"W/") {
        weak_eq(new, stored)
    } else {
        strong_eq(new, stored)
    }
}

/// RFC 9111 §4.3.4: does a 304 also select another stored variant of the URL (one other than
/// the response it validated), with `stored` its header fields? Only a strong validator
/// identifies a representation across variants: "all the stored responses with the same
/// strong validator are identified for update". A weak ETag or a Last-Modified selects only
/// the most recent match (the one that was validated), and no validator only a lone response.
pub fn also_selects(resp_304: &HeaderMap, stored: &HeaderMap) -> bool {
    match (resp_304.get(ETAG), stored.get(ETAG)) {
        (Some(new), Some(old)) => strong_eq(new.as_bytes(), old.as_bytes()),
        _ => false,
    }
}

/// What a merged revalidation answer ([`merge_304`], [`merge_head`]) does to the stored object.
#[derive(Debug, PartialEq)]
pub enum Refresh {
    /// Store this meta: the merged response minus the fields a shared cache never keeps.
    Update(Box<ObjectMeta>),
    /// This request forbids storing (its own `no-store`, or `Authorization` without a
    /// directive allowing it): leave the stored object as it was.
    Keep,
    /// The merged response may no longer be stored (it became `private`, `no-store`, ...): the
    /// stored object must go, or it would keep being served.
    Remove(NotStorable),
}

/// RFC 9111 §3.1, §3.2: a 304 or HEAD's fields become the stored response's, so the merged
/// response is judged again as if it had just arrived: not storable at all (§5.2.2.5
/// no-store, §5.2.2.7 private) → [`Refresh::Remove`]; storable → [`Refresh::Update`] without
/// the fields named by `private="..."` / `no-cache="..."`, as a 200 would be stored. The
/// client that revalidated still gets the whole merged response.
pub fn refresh(req_headers: &HeaderMap, merged: &ObjectMeta) -> Refresh {
    // The stored object answers GETs (HEAD is answered from it): judge it as one.
    let get = |headers| RequestInfo {
        method: &Method::GET,
        headers,
    };
    let none = HeaderMap::new();
    if let Err(why) = policy::storable(&get(&none), merged.status, &merged.headers) {
        return Refresh::Remove(why);
    }
    // §5.2.1.5: a request's no-store does not apply to what is already stored.
    if policy::storable(&get(req_headers), merged.status, &merged.headers).is_err() {
        return Refresh::Keep;
    }
    let mut kept = merged.clone();
    for name in policy::fields_not_stored(&merged.headers) {
        kept.headers.remove(name.as_str());
    }
    Refresh::Update(Box::new(kept))
}

/// RFC 9111 §4.3.5: freshen a stored GET response with the headers of a HEAD response to the
/// same URL. Like a 304 merge, but a differing ETag, Last-Modified or Content-Length means the
/// stored response is outdated: `Err(Mismatch)`, and the proxy should drop it.
pub fn merge_head(
    stored: &ObjectMeta,
    head: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Result<ObjectMeta, Mismatch> {
    for name in [LAST_MODIFIED, CONTENT_LENGTH] {
        if let (Some(new), Some(old)) = (head.get(&name), stored.headers.get(&name)) {
            if new.as_bytes().trim_ascii() != old.as_bytes().trim_ascii() {
                return Err(Mismatch);
            }
        }
    }
    merge_304(stored, head, request_time, response_time)
}

/// Weak comparison of two entity tags (RFC 9110 §8.8.3.2): opaque tags equal, `W/` ignored.
pub fn weak_eq(a: &[u8], b: &[u8]) -> bool {
    strip_weak(a.trim_ascii()) == strip_weak(b.trim_ascii())
}

/// Strong comparison of two entity tags (RFC 9110 §8.8.3.2): both strong and identical.
pub fn strong_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (a.trim_ascii(), b.trim_ascii());
    !a.starts_with(b"W/") && a == b
}

fn strip_weak(t: &[u8]) -> &[u8] {
    t.strip_prefix(b"W/").unwrap_or(t)
}

/// RFC 9110 §13.1.1–§13.1.3 for a GET/HEAD answered from cache: true when the client's
/// `If-None-Match` is `*` or matches the stored ETag (weakly), or, without If-None-Match,
/// when the stored Last-Modified (its Date when it has none, RFC 9111 §4.3.2) is not newer
/// than `If-Modified-Since`. The proxy then sends 304.
pub fn not_modified(req: &HeaderMap, stored: &HeaderMap) -> bool {
    if let Some(inm) = req.get(IF_NONE_MATCH) {
        let etag = stored.get(ETAG);
        let list = String::from_utf8_lossy(inm.as_bytes()).into_owned();
        // `*` matches any current representation, one without an ETag too (§13.1.2).
        return list.split(',').any(|t| {
            let t = t.trim();
            t == "*" || etag.is_some_and(|e| weak_eq(t.as_bytes(), e.as_bytes()))
        });
    }
    // Most requests carry no conditional: no date is parsed for them.
    let date = |v: &http::HeaderValue| {
        v.to_str()
            .ok()
            .and_then(|t| httpdate::parse_http_date(t.trim()).ok())
    };
    let Some(since) = req.get(IF_MODIFIED_SINCE).and_then(date) else {
        return false;
    };
    // Every stored response has a Date: the cache records one when the origin sent none.
    stored
        .get(LAST_MODIFIED)
        .or_else(|| stored.get(http::header::DATE))
        .and_then(date)
        .is_some_and(|lm| lm <= since)
}

/// Header fields to send with a 304 to the client (RFC 9110 §15.4.5).
pub fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    for name in [
        ETAG,
        http::header::CACHE_CONTROL,
        http::header::CONTENT_LOCATION,
        http::header::DATE,
        http::header::EXPIRES,
        http::header::VARY,
        LAST_MODIFIED,
    ] {
        for v in stored.get_all(&name) {
            h.append(name.clone(), v.clone());
        }
    }
    h
}

//! Building the client response for a stored object: Age, Cache-Status, the client's own
//! conditionals (304), Range (206 / multipart / 416) and HEAD (no body).

use bytes::Bytes;
use http::header::{
    HeaderValue, AGE, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE, TRANSFER_ENCODING,
};
use http::{HeaderMap, HeaderName, Method, StatusCode};

use super::meta::ObjectMeta;
use super::range::{self, RangeOutcome};
use super::status::CacheStatus;
use super::validate;

/// A response ready to send: the proxy adds Via and its own fields, then writes it.
#[derive(Clone, Debug)]
pub struct Served {
    /// Status to send.
    pub status: StatusCode,
    /// Header fields (stored fields plus Age, Cache-Status, framing).
    pub headers: HeaderMap,
    /// Body (empty for HEAD, 304 and 416; a zero-copy slice for a single range).
    pub body: Bytes,
}

/// Fields that digest a message's content: wrong for a part cut from the stored body.
const CONTENT_DIGESTS: [&str; 2] = ["content-digest", "content-md5"];

/// The field name of RFC 9211's Cache-Status.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Answers `method` (GET or HEAD) with `req` headers from a stored object of current `age`.
pub fn from_cache(
    method: &Method,
    req: &HeaderMap,
    meta: &ObjectMeta,
    body: &Bytes,
    age: u64,
    cache_status: &CacheStatus,
) -> Served {
    let mut headers = meta.headers.clone();
    headers.remove(TRANSFER_ENCODING);
    headers.insert(AGE, super::policy::age_header(age));
    if let Some(v) = cache_status.to_header() {
        headers.append(CACHE_STATUS, v);
    }
    let head = method == Method::HEAD;
    let status = meta.status_code();
    // RFC 9110 §13.2.2: evaluate the client's preconditions against the stored response.
    if status == StatusCode::OK && validate::not_modified(req, &meta.headers) {
        let mut h = validate::not_modified_headers(&meta.headers);
        for name in [AGE] {
            if let Some(v) = headers.get(&name) {
                h.insert(name.clone(), v.clone());
            }
        }
        for v in headers.get_all(&CACHE_STATUS) {
            h.append(CACHE_STATUS, v.clone());
        }
        return Served {
            status: StatusCode::NOT_MODIFIED,
            headers: h,
            body: Bytes::new(),
        };
    }
    let len = body.len() as u64;
    let outcome = if head || !req.contains_key(RANGE) {
        RangeOutcome::Full
    } else {
        range::for_request(req, &meta.headers, meta.status, len)
    };
    if outcome != RangeOutcome::Full {
        // These digest the message content (RFC 9530 §2, RFC 1864), which is now a part of
        // the stored body (or nothing): the stored values would fail every check. Repr-Digest,
        // over the whole representation, stays.
        for name in CONTENT_DIGESTS {
            headers.remove(name);
        }
    }
    let (status, body) = match outcome {
        RangeOutcome::Full => (status, body.clone()),
        RangeOutcome::Partial(r) => {
            set(&mut headers, CONTENT_RANGE, &range::content_range(&r, len));
            (StatusCode::PARTIAL_CONTENT, range::slice(body, &r))
        }
        RangeOutcome::Multi(rs) => {
            let ct = meta.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let boundary = format!("sluice-{}", hex::encode(&meta.body_sha256[..8]));
            let (ct, multi) = range::multipart(body, &rs, ct, &boundary);
            set(&mut headers, CONTENT_TYPE, &ct);
            (StatusCode::PARTIAL_CONTENT, multi)
        }
        RangeOutcome::Unsatisfiable => {
            set(&mut headers, CONTENT_RANGE, &range::unsatisfied_range(len));
            (StatusCode::RANGE_NOT_SATISFIABLE, Bytes::new())
        }
    };
    if status == StatusCode::NO_CONTENT {
        // RFC 9110 §8.6: a 204 never carries Content-Length.
        headers.remove(CONTENT_LENGTH);
    } else {
        set_length(&mut headers, body.len());
    }
    let body = if head { Bytes::new() } else { body };
    Served {
        status,
        headers,
        body,
    }
}

/// Sets Content-Length to `len`, keeping the stored field when it already says so (the
/// usual case: no new value to format and allocate on every hit).
fn set_length(h: &mut HeaderMap, len: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(len);
    let mut stored = h.get_all(CONTENT_LENGTH).iter();
    if let (Some(v), None) = (stored.next(), stored.next()) {
        if v.as_bytes() == digits.as_bytes() {
            return;
        }
    }
    h.insert(CONTENT_LENGTH, HeaderValue::from(len as u64));
}

fn set(h: &mut HeaderMap, name: http::header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::meta::tests::sample;

    fn serve(method: Method, req: &[(&str, &str)]) -> Served {
        let body = Bytes::from_static(b"0123456789");
        let meta = sample(
            "http://a/x",
            &[
                ("etag", "\"v1\""),
                ("content-type", "text/plain"),
                ("age", "99"),
            ],
            &body,
        );
        let mut h = HeaderMap::new();
        for (n, v) in req {
            h.insert(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        from_cache(&method, &h, &meta, &body, 7, &CacheStatus::hit())
    }

    #[test]
    fn a_plain_hit_carries_age_and_cache_status() {
        let s = serve(Method::GET, &[]);
        assert_eq!(s.status, 200);
        assert_eq!(s.headers[AGE], "7", "computed age replaces the stored Age");
        assert_eq!(s.headers[CACHE_STATUS], "sluice; hit");
        assert_eq!(s.headers[CONTENT_LENGTH], "10");
        assert_eq!(s.body, "0123456789");
    }

    #[test]
    fn content_length_is_the_body_length_whatever_was_stored() {
        let body = Bytes::from_static(b"0123456789");
        for stored in [&[][..], &["10"], &["9"], &["10", "10"], &["010"]] {
            let fields: Vec<_> = stored.iter().map(|v| ("content-length", *v)).collect();
            let meta = sample("http://a/x", &fields, &body);
            let (req, st) = (HeaderMap::new(), CacheStatus::hit());
            let s = from_cache(&Method::GET, &req, &meta, &body, 1, &st);
            let lengths: Vec<_> = s.headers.get_all(CONTENT_LENGTH).iter().collect();
            assert_eq!(lengths, ["10"], "stored {stored:?}");
        }
    }

    #[test]
    fn a_stored_204_is_served_without_content_length() {
        let mut meta = sample("http://a/x", &[("cache-control", "max-age=60")], b"");
        meta.status = 204;
        for method in [Method::GET, Method::HEAD] {
            let (req, body, st) = (HeaderMap::new(), Bytes::new(), CacheStatus::hit());
            let s = from_cache(&method, &req, &meta, &body, 1, &st);
            assert_eq!(s.status, StatusCode::NO_CONTENT);
            assert!(!s.headers.contains_key(CONTENT_LENGTH), "{method}");
        }
    }

    #[test]
    fn head_gets_the_get_headers_without_a_body() {
        let s = serve(Method::HEAD, &[("range", "bytes=0-1")]);
        assert_eq!((s.status, s.body.len()), (StatusCode::OK, 0));
        assert_eq!(s.headers[CONTENT_LENGTH], "10");
    }

    #[test]
    fn client_conditionals_get_304() {
        let s = serve(Method::GET, &[("if-none-match", "\"v1\"")]);
        assert_eq!(s.status, 304);
        assert!(s.body.is_empty() && s.headers.contains_key("etag"));
        assert!(!s.headers.contains_key(CONTENT_TYPE));
        assert_eq!(s.headers[AGE], "7");
    }

    #[test]
    fn a_part_never_carries_the_whole_body_s_content_digest() {
        // RFC 9530 §2 (and RFC 1864's Content-MD5): the digest of the message content, which
        // for a 206 is the part and for a 416 is empty; Repr-Digest covers the representation.
        let body = Bytes::from_static(b"0123456789");
        let fields = [
            ("content-digest", "sha-256=:whole:"),
            ("content-md5", "d2hvbGU="),
            ("repr-digest", "sha-256=:whole:"),
        ];
        let meta = sample("http://a/x", &fields, &body);
        let st = CacheStatus::hit();
        for (range, status) in [
            ("bytes=2-4", 206),
            ("bytes=0-0,8-9", 206),
            ("bytes=50-", 416),
        ] {
            let mut req = HeaderMap::new();
            req.insert(RANGE, range.parse().unwrap());
            let s = from_cache(&Method::GET, &req, &meta, &body, 1, &st);
            assert_eq!(s.status, status, "{range}");
            assert!(!s.headers.contains_key("content-digest"), "{range}");
            assert!(!s.headers.contains_key("content-md5"), "{range}");
            assert_eq!(s.headers["repr-digest"], "sha-256=:whole:", "{range}");
        }
        let whole = from_cache(&Method::GET, &HeaderMap::new(), &meta, &body, 1, &st);
        assert_eq!(
            whole.headers["content-digest"], "sha-256=:whole:",
            "a 200 keeps it"
        );
    }

    #[test]
    fn ranges_get_206_multipart_or_416() {
        let s = serve(Method::GET, &[("range", "bytes=2-4")]);
        assert_eq!(
            (s.status, &s.body[..]),
            (StatusCode::PARTIAL_CONTENT, &b"234"[..])
        );
        assert_eq!(s.headers[CONTENT_RANGE], "bytes 2-4/10");
        assert_eq!(s.headers[CONTENT_LENGTH], "3");
        let s = serve(Method::GET, &[("range", "bytes=0-0,8-9")]);
        assert_eq!(s.status, 206);
        assert!(s.headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("multipart/byteranges"));
        let s = serve(Method::GET, &[("range", "bytes=50-")]);
        assert_eq!(s.status, 416);
        assert_eq!(s.headers[CONTENT_RANGE], "bytes */10");
        let s = serve(
            Method::GET,
            &[("range", "bytes=2-4"), ("if-range", "\"other\"")],
        );
        assert_eq!(s.status, 200, "If-Range mismatch: whole body");
    }
}

//! Range requests served from a stored complete object (RFC 9110 §14): parsing `Range`,
//! `If-Range`, and formatting `Content-Range` and multipart/byteranges bodies.

use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{DATE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use http::HeaderMap;

/// More ranges than this in one request are ignored (answered with the full body), a guard
/// against many-small-ranges amplification.
pub const MAX_RANGES: usize = 16;

/// What to send for a request's Range header against a body of known length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No (usable) Range: 200 with the whole body.
    Full,
    /// One range: 206 with `Content-Range: bytes start-(end-1)/len`.
    Partial(Range<u64>),
    /// Several ranges: 206 multipart/byteranges (sorted, overlapping ranges coalesced).
    Multi(Vec<Range<u64>>),
    /// No range overlaps the body: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Evaluates a `Range` field value against a body of `len` bytes.
pub fn ranges(range_header: Option<&str>, len: u64) -> RangeOutcome {
    let Some(value) = range_header else {
        return RangeOutcome::Full;
    };
    let Some((unit, set)) = value.split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full; // unknown unit: ignore the header
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() || specs.len() > MAX_RANGES {
        return RangeOutcome::Full;
    }
    let mut out: Vec<Range<u64>> = Vec::new();
    for spec in specs {
        let Some((first, last)) = spec.split_once('-') else {
            return RangeOutcome::Full;
        };
        let (first, last) = (first.trim(), last.trim());
        let r = if first.is_empty() {
            // suffix-range: the last N bytes
            let Some(n) = num(last) else {
                return RangeOutcome::Full;
            };
            if n == 0 {
                continue; // unsatisfiable on its own
            }
            if len == 0 {
                // RFC 9110 §14.1.1: on an empty representation a non-zero suffix is the one
                // satisfiable range, and it asks for all of it (no 206 can describe it).
                return RangeOutcome::Full;
            }
            len.saturating_sub(n)..len
        } else {
            let Some(start) = num(first) else {
                return RangeOutcome::Full;
            };
            let end = if last.is_empty() {
                len
            } else {
                let Some(l) = num(last) else {
                    return RangeOutcome::Full;
                };
                if l < start {
                    return RangeOutcome::Full; // invalid range-spec: ignore the header
                }
                l.saturating_add(1).min(len)
            };
            if start >= len {
                continue;
            }
            start..end
        };
        if r.start < r.end {
            out.push(r);
        }
    }
    if out.is_empty() {
        return RangeOutcome::Unsatisfiable;
    }
    out.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(out.len());
    for r in out {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    match merged.len() {
        1 if merged[0] == (0..len) => RangeOutcome::Full,
        1 => RangeOutcome::Partial(merged.remove(0)),
        _ => RangeOutcome::Multi(merged),
    }
}

fn num(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The request's Range applies only if `If-Range` (when present) still matches the stored
/// response: a strong ETag equal to the stored one, or a date equal to Last-Modified when
/// that is a strong validator (RFC 9110 §13.1.5, §8.8.2.2: the stored Date is at least one
/// second after it; else the body may have changed twice within that second).
pub fn if_range_matches(req: &HeaderMap, stored: &HeaderMap) -> bool {
    let Some(v) = req.get(IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let v = v.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        let etag = stored
            .get(ETAG)
            .and_then(|e| e.to_str().ok())
            .map(str::trim);
        return !v.starts_with("W/") && etag.is_some_and(|e| e == v && !e.starts_with("W/"));
    }
    let Some(lm) = stored
        .get(LAST_MODIFIED)
        .and_then(|l| l.to_str().ok())
        .map(str::trim)
        .filter(|l| *l == v)
    else {
        return false;
    };
    let date = stored
        .get(DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok());
    match (httpdate::parse_http_date(lm).ok(), date) {
        (Some(lm), Some(date)) => date
            .duration_since(lm)
            .is_ok_and(|d| d >= Duration::from_secs(1)),
        _ => false,
    }
}

/// Convenience: evaluates Range and If-Range from request headers for a stored 200 response.
pub fn for_request(req: &HeaderMap, stored: &HeaderMap, status: u16, len: u64) -> RangeOutcome {
    if status != 200 || !if_range_matches(req, stored) {
        return RangeOutcome::Full;
    }
    ranges(req.get(RANGE).and_then(|v| v.to_str().ok()), len)
}

/// `Content-Range` for a 206: `bytes start-last/len`.
pub fn content_range(r: &Range<u64>, len: u64) -> String {
    format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), len)
}

/// `Content-Range` for a 416: `bytes */len`.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// Slices `body` (zero-copy) for one range; ranges come from [`ranges`] so they are in bounds.
pub fn slice(body: &Bytes, r: &Range<u64>) -> Bytes {
    let end = (r.end as usize).min(body.len());
    let start = (r.start as usize).min(end);
    body.slice(start..end)
}

/// A multipart/byteranges body and its Content-Type (RFC 9110 §14.6).
pub fn multipart(
    body: &Bytes,
    ranges: &[Range<u64>],
    content_type: Option<&str>,
    boundary: &str,
) -> (String, Bytes) {
    let len = body.len() as u64;
    let mut out = BytesMut::new();
    for r in ranges {
        out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        if let Some(ct) = content_type {
            out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        out.extend_from_slice(
            format!("Content-Range: {}\r\n\r\n", content_range(r, len)).as_bytes(),
        );
        out.extend_from_slice(&slice(body, r));
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/byteranges; boundary={boundary}"),
        out.freeze(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeOutcome::*;

    #[test]
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)]
    fn range_table() {
        let rows: Vec<(Option<&str>, u64, RangeOutcome, &str)> = vec![
            (None, 100, Full, "no header"),
            (Some("bytes=0-9"), 100, Partial(0..10), "first ten"),
            (Some("bytes=90-"), 100, Partial(90..100), "open-ended"),
            (Some("bytes=-10"), 100, Partial(90..100), "suffix"),
            (Some("bytes=-1000"), 100, Full, "suffix longer than body: whole"),
            (Some("bytes=0-"), 100, Full, "whole body as a range: 200"),
            (Some("bytes=50-1000"), 100, Partial(50..100), "last clamped"),
            (Some("bytes=100-"), 100, Unsatisfiable, "start at len"),
            (Some("bytes=200-300"), 100, Unsatisfiable, "beyond end"),
            (Some("bytes=-0"), 100, Unsatisfiable, "zero suffix"),
            (Some("bytes=0-0"), 0, Unsatisfiable, "empty body"),
            (Some("bytes=-10"), 0, Full, "RFC 9110 §14.1.1: a non-zero suffix is satisfiable on an empty body: all of it"),
            (Some("bytes=5-,-1"), 0, Full, "one satisfiable suffix among unsatisfiable ranges"),
            (Some("bytes=9-5"), 100, Full, "last < first: ignored"),
            (Some("bytes=a-b"), 100, Full, "garbage: ignored"),
            (Some("items=0-5"), 100, Full, "unknown unit"),
            (Some("BYTES=0-4"), 100, Partial(0..5), "unit case-insensitive"),
            (Some("bytes= 0-4 "), 100, Partial(0..5), "whitespace"),
            (Some("bytes=0-4,10-14"), 100, Multi(vec![0..5, 10..15]), "two ranges"),
            (Some("bytes=10-14,0-4"), 100, Multi(vec![0..5, 10..15]), "sorted"),
            (Some("bytes=0-10,5-20"), 100, Partial(0..21), "overlap coalesced"),
            (Some("bytes=0-4,200-300"), 100, Partial(0..5), "unsatisfiable part dropped"),
            (Some("bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,16-16"), 100, Full, "too many ranges"),
        ];
        for (h, len, expect, what) in rows {
            assert_eq!(ranges(h, len), expect, "{what}");
        }
    }

    #[test]
    fn content_range_formatting() {
        assert_eq!(content_range(&(0..10), 100), "bytes 0-9/100");
        assert_eq!(unsatisfied_range(100), "bytes */100");
        assert_eq!(slice(&Bytes::from_static(b"0123456789"), &(2..5)), "234");
    }

    #[test]
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)]
    fn if_range_table() {
        let mut stored = HeaderMap::new();
        stored.insert(ETAG, "\"v1\"".parse().unwrap());
        stored.insert(LAST_MODIFIED, "Tue, 15 Nov 1994 08:12:31 GMT".parse().unwrap());
        // A Date a second or more after Last-Modified makes it a strong validator (§8.8.2.2).
        stored.insert(DATE, "Tue, 15 Nov 1994 08:12:32 GMT".parse().unwrap());
        for (if_range, ok) in [
            (None, true),
            (Some("\"v1\""), true),
            (Some("\"v2\""), false),
            (Some("W/\"v1\""), false),
            (Some("Tue, 15 Nov 1994 08:12:31 GMT"), true),
            (Some("Wed, 16 Nov 1994 08:12:31 GMT"), false),
        ] {
            let mut req = HeaderMap::new();
            req.insert(RANGE, "bytes=0-1".parse().unwrap());
            if let Some(v) = if_range {
                req.insert(IF_RANGE, v.parse().unwrap());
            }
            let out = for_request(&req, &stored, 200, 10);
            assert_eq!(out == Partial(0..2), ok, "{if_range:?}");
        }
        // RFC 9110 §13.1.5 step 2: a date is no strong validator when the stored Date is less
        // than a second after Last-Modified (the body may have changed twice within that
        // second), nor without a Date: the condition is false and the whole body is sent.
        let mut req = HeaderMap::new();
        req.insert(RANGE, "bytes=0-1".parse().unwrap());
        req.insert(IF_RANGE, "Tue, 15 Nov 1994 08:12:31 GMT".parse().unwrap());
        for date in [Some("Tue, 15 Nov 1994 08:12:31 GMT"), Some("garbage"), None] {
            let mut weak = stored.clone();
            weak.remove(DATE);
            if let Some(d) = date {
                weak.insert(DATE, d.parse().unwrap());
            }
            assert_eq!(for_request(&req, &weak, 200, 10), Full, "Date {date:?}");
        }
    }

    #[test]
    fn multipart_body_names_each_part() {
        let body = Bytes::from_static(b"abcdefghij");
        let (ct, out) = multipart(&body, &[0..2, 5..7], Some("text/plain"), "B");
        assert_eq!(ct, "multipart/byteranges; boundary=B");
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            text.contains("Content-Range: bytes 0-1/10\r\n\r\nab\r\n--B"),
            "{text}"
        );
        assert!(
            text.contains("Content-Range: bytes 5-6/10\r\n\r\nfg\r\n--B--"),
            "{text}"
        );
    }
}

//! Cache-Control parsing (RFC 9111 §5.2), tolerant of what real servers send.
//!
//! Directive names are case-insensitive, values may be tokens or quoted strings, the field may be
//! split over several lines, and when a directive repeats the most restrictive value wins (the
//! smallest `max-age`, the largest `min-fresh`, ...). An argument that does not parse as
//! delta-seconds makes the freshness directive count as 0 (stale), never as "forever".

use std::borrow::Cow;

use http::header::{HeaderMap, CACHE_CONTROL, PRAGMA};

/// RFC 9111 §1.2.2: delta-seconds larger than this are treated as this value.
pub const DELTA_MAX: u64 = 2_147_483_648;

/// The directives of one message's Cache-Control field(s), request or response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// Unqualified `no-cache` (or request `Pragma: no-cache` without Cache-Control).
    pub no_cache: bool,
    /// Field names of a qualified `no-cache="a, b"` (response only).
    pub no_cache_fields: Vec<String>,
    /// Unqualified `private`.
    pub private: bool,
    /// Field names of a qualified `private="a, b"` (response only).
    pub private_fields: Vec<String>,
    /// `public`.
    pub public: bool,
    /// `max-age=N`.
    pub max_age: Option<u64>,
    /// `s-maxage=N` (response).
    pub s_maxage: Option<u64>,
    /// `must-revalidate` (response).
    pub must_revalidate: bool,
    /// `proxy-revalidate` (response).
    pub proxy_revalidate: bool,
    /// `must-understand` (response).
    pub must_understand: bool,
    /// `immutable` (response, RFC 8246).
    pub immutable: bool,
    /// `stale-while-revalidate=N` (response, RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N` (request or response, RFC 5861).
    pub stale_if_error: Option<u64>,
    /// `max-stale` (request): `Some(None)` accepts any staleness, `Some(Some(n))` up to n seconds.
    pub max_stale: Option<Option<u64>>,
    /// `min-fresh=N` (request).
    pub min_fresh: Option<u64>,
    /// `only-if-cached` (request).
    pub only_if_cached: bool,
    /// `no-transform`.
    pub no_transform: bool,
}

impl CacheControl {
    /// Parses every Cache-Control line in `headers`.
    pub fn parse(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in headers.get_all(CACHE_CONTROL) {
            // Non-UTF-8 bytes cannot be part of a directive we understand; drop them.
            let text = String::from_utf8_lossy(value.as_bytes());
            each_directive(&text, |name, arg| cc.apply(name, arg));
        }
        cc
    }

    /// Parses a request's directives; `Pragma: no-cache` counts as `no-cache` when the request
    /// has no Cache-Control field (RFC 9111 §5.4, as Traffic Server and Squid do).
    pub fn parse_request(headers: &HeaderMap) -> CacheControl {
        let mut cc = Self::parse(headers);
        if !headers.contains_key(CACHE_CONTROL) {
            let pragma_no_cache = headers.get_all(PRAGMA).iter().any(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("no-cache"))
            });
            cc.no_cache |= pragma_no_cache;
        }
        cc
    }

    fn apply(&mut self, name: &str, arg: Option<&str>) {
        match name {
            "no-store" => self.no_store = true,
            "no-cache" => match arg.map(field_list) {
                Some(fields) if !fields.is_empty() => self.no_cache_fields.extend(fields),
                _ => self.no_cache = true,
            },
            "private" => match arg.map(field_list) {
                Some(fields) if !fields.is_empty() => self.private_fields.extend(fields),
                _ => self.private = true,
            },
            "public" => self.public = true,
            "max-age" => self.max_age = min_opt(self.max_age, delta(arg)),
            "s-maxage" => self.s_maxage = min_opt(self.s_maxage, delta(arg)),
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "must-understand" => self.must_understand = true,
            "immutable" => self.immutable = true,
            "no-transform" => self.no_transform = true,
            "only-if-cached" => self.only_if_cached = true,
            "stale-while-revalidate" => {
                self.stale_while_revalidate = min_opt(self.stale_while_revalidate, delta(arg))
            }
            "stale-if-error" => self.stale_if_error = min_opt(self.stale_if_error, delta(arg)),
            "min-fresh" => {
                // Most restrictive: the largest demand for remaining freshness.
                let v = delta(arg);
                self.min_fresh = self.min_fresh.max(Some(v));
            }
            "max-stale" => {
                let v = arg.map(|a| parse_delta(a).unwrap_or(0));
                self.max_stale = match (self.max_stale, v) {
                    (None, v) => Some(v),
                    (Some(None), v) => Some(v),
                    (Some(Some(a)), Some(b)) => Some(Some(a.min(b))),
                    (Some(Some(a)), None) => Some(Some(a)),
                };
            }
            _ => {} // RFC 9111 §5.2.3: unknown directives are ignored.
        }
    }
}

/// Calls `f` with each directive of a Cache-Control value: its lowercase name and its
/// unquoted, trimmed argument. Borrows from `text` unless a name has capitals or a quoted
/// argument has escapes (the delimiters are ASCII, so byte positions are char boundaries).
fn each_directive(text: &str, mut f: impl FnMut(&str, Option<&str>)) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b',' || b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let name = text[start..i].trim();
        let mut arg: Option<Cow<'_, str>> = None;
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            if i < b.len() && b[i] == b'"' {
                let (value, end) = quoted(text, i + 1);
                arg = Some(value);
                // Anything after the closing quote up to the next comma is skipped.
                i = end;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
            } else {
                let vstart = i;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
                arg = Some(Cow::Borrowed(&text[vstart..i]));
            }
        }
        if !name.is_empty() {
            let name = if name.bytes().any(|c| c.is_ascii_uppercase()) {
                Cow::Owned(name.to_ascii_lowercase())
            } else {
                Cow::Borrowed(name)
            };
            f(&name, arg.as_deref().map(str::trim));
        }
    }
}

/// The quoted-string starting at `start` (just after its opening quote), unescaped, and the
/// position after its closing quote (or the end of `text` when it is unterminated).
fn quoted(text: &str, start: usize) -> (Cow<'_, str>, usize) {
    let b = text.as_bytes();
    let mut i = start;
    while i < b.len() && b[i] != b'"' && b[i] != b'\\' {
        i += 1;
    }
    if i >= b.len() || b[i] == b'"' {
        return (Cow::Borrowed(&text[start..i]), (i + 1).min(b.len()));
    }
    let mut value = text[start..i].to_string();
    let mut chars = text[i..].char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return (Cow::Owned(value), i + at + 1),
            '\\' => value.extend(chars.next().map(|(_, n)| n)),
            c => value.push(c),
        }
    }
    (Cow::Owned(value), b.len())
}

fn field_list(arg: &str) -> Vec<String> {
    arg.split(',')
        .map(|f| f.trim().to_ascii_lowercase())
        .filter(|f| !f.is_empty())
        .collect()
}

/// Parses delta-seconds: digits only, capped at [`DELTA_MAX`].
pub fn parse_delta(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Long digit strings overflow u64; they are "very large", i.e. DELTA_MAX.
    Some(t.parse::<u64>().map_or(DELTA_MAX, |v| v.min(DELTA_MAX)))
}

/// A directive argument as delta-seconds; missing or invalid counts as 0 (most restrictive).
fn delta(arg: Option<&str>) -> u64 {
    arg.and_then(parse_delta).unwrap_or(0)
}

fn min_opt(a: Option<u64>, b: u64) -> Option<u64> {
    Some(a.map_or(b, |a| a.min(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cc(lines: &[&str]) -> CacheControl {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(CACHE_CONTROL, HeaderValue::from_str(l).unwrap());
        }
        CacheControl::parse(&h)
    }

    #[test]
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)]
    fn directive_table() {
        type Check = fn(&CacheControl) -> bool;
        let rows: &[(&[&str], Check, &str)] = &[
            (&["max-age=60"], |c| c.max_age == Some(60), "plain"),
            (&["MAX-AGE=60"], |c| c.max_age == Some(60), "case-insensitive name"),
            (&["max-age=\"60\""], |c| c.max_age == Some(60), "quoted value"),
            (&["max-age = 60"], |c| c.max_age.is_some(), "spaces tolerated"),
            (&["max-age=60, max-age=10"], |c| c.max_age == Some(10), "duplicate: smallest"),
            (&["max-age=10", "max-age=60"], |c| c.max_age == Some(10), "split lines"),
            (&["max-age=abc"], |c| c.max_age == Some(0), "invalid: stale"),
            (&["max-age=-5"], |c| c.max_age == Some(0), "negative: stale"),
            (&["max-age"], |c| c.max_age == Some(0), "missing value: stale"),
            (&["max-age=99999999999999999999999"], |c| c.max_age == Some(DELTA_MAX), "overflow"),
            (&["s-maxage=5"], |c| c.s_maxage == Some(5), "s-maxage"),
            (&["no-store"], |c| c.no_store, "no-store"),
            (&["No-Cache"], |c| c.no_cache, "no-cache"),
            (&["no-cache=\"Set-Cookie, X-A\""], |c| {
                !c.no_cache && c.no_cache_fields == ["set-cookie", "x-a"]
            }, "qualified no-cache"),
            (&["private"], |c| c.private, "private"),
            (&["private=\"x-user\""], |c| !c.private && c.private_fields == ["x-user"], "qualified private"),
            (&["public, max-age=1"], |c| c.public && c.max_age == Some(1), "two directives"),
            (&["must-revalidate"], |c| c.must_revalidate, "must-revalidate"),
            (&["proxy-revalidate"], |c| c.proxy_revalidate, "proxy-revalidate"),
            (&["stale-while-revalidate=30"], |c| c.stale_while_revalidate == Some(30), "swr"),
            (&["stale-if-error=30"], |c| c.stale_if_error == Some(30), "sie"),
            (&["max-stale"], |c| c.max_stale == Some(None), "max-stale any"),
            (&["max-stale=5, max-stale"], |c| c.max_stale == Some(Some(5)), "max-stale bounded wins"),
            (&["max-stale=5, max-stale=3"], |c| c.max_stale == Some(Some(3)), "max-stale smallest"),
            (&["min-fresh=5, min-fresh=9"], |c| c.min_fresh == Some(9), "min-fresh largest"),
            (&["only-if-cached"], |c| c.only_if_cached, "only-if-cached"),
            (&["foo=\"a,b\", max-age=3"], |c| c.max_age == Some(3), "comma inside quotes"),
            (&[",, ,max-age=3,"], |c| c.max_age == Some(3), "empty elements"),
            (&["private=\"x-a\\\"b\", max-age=4"], |c| c.private_fields == ["x-a\"b"] && c.max_age == Some(4), "escaped quote"),
            (&["no-cache=\"X-A\" junk, max-age=2"], |c| c.no_cache_fields == ["x-a"] && c.max_age == Some(2), "junk after the quote"),
            (&["private=\"x-a"], |c| c.private_fields == ["x-a"], "unterminated quote"),
            (&["max-age=\"7\\"], |c| c.max_age == Some(7), "escape at the end"),
            (&[" \t Max-Age \t= 9 , NO-STORE"], |c| c.max_age == Some(9) && c.no_store, "whitespace and capitals"),
            (&["unknown-ext=1"], |c| *c == CacheControl::default(), "unknown ignored"),
        ];
        for (lines, check, what) in rows {
            let parsed = cc(lines);
            assert!(check(&parsed), "{what}: {lines:?} parsed as {parsed:?}");
        }
    }

    #[test]
    fn pragma_no_cache_only_without_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        assert!(CacheControl::parse_request(&h).no_cache);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!CacheControl::parse_request(&h).no_cache);
    }
}

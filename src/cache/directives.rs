//! Cache-Control parsing (RFC 9111 §5.2), tolerant of what real servers send.
//!
//! Directive names are case-insensitive, values may be tokens or quoted strings, the field may be
//! split over several lines, and when a directive repeats the most restrictive value wins (the
//! smallest `max-age`, the largest `min-fresh`, ...). An argument that does not parse as
//! delta-seconds makes the freshness directive count as 0 (stale), never as "forever".

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
            for (name, arg) in split_directives(&text) {
                cc.apply(&name, arg.as_deref());
            }
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

/// Splits a Cache-Control value into lowercase names and unquoted arguments.
fn split_directives(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c.to_ascii_lowercase());
            chars.next();
        }
        let mut arg = None;
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        c => value.push(c),
                    }
                }
                // Skip anything after the closing quote up to the next comma.
                while chars.peek().is_some_and(|c| *c != ',') {
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
            arg = Some(value.trim().to_string());
        }
        let name = name.trim().to_string();
        if !name.is_empty() {
            out.push((name, arg));
        }
    }
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

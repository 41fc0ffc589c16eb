//! Cache keys: the primary key is the normalised absolute URL (RFC 9111 §2), method-independent
//! so HEAD is answered from a stored GET; the secondary key comes from Vary (see `vary`).

use std::fmt;

/// A key could not be made from a request target.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not an absolute http(s) URL.
    #[error("not an absolute http or https URL: {0}")]
    NotAbsolute(String),
}

/// The primary cache key: scheme and host lowercased, default port removed, fragment dropped;
/// the path and query are kept byte for byte, as the origin is asked for them (dot segments
/// are not resolved: `/a/%2e%2e/b` is not `/b` to every origin, and must not be served as it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// Normalises an absolute URL.
    pub fn parse(url: &str) -> Result<CacheKey, KeyError> {
        if is_normal(url) {
            return Ok(CacheKey(url.to_string()));
        }
        Self::parse_slow(url)
    }

    /// Normalises the scheme and authority through the WHATWG URL parser (what [`is_normal`]
    /// vouches for); the path and query are the input's own (see [`raw_path_and_query`]).
    fn parse_slow(url: &str) -> Result<CacheKey, KeyError> {
        let u = url::Url::parse(url).map_err(|_| KeyError::NotAbsolute(url.to_string()))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(KeyError::NotAbsolute(url.to_string()));
        }
        // `url` already lowercases scheme and host and drops the scheme's default port.
        let mut s = u[..url::Position::BeforePath].to_string();
        match raw_path_and_query(url) {
            Some(p) if p.starts_with('/') => s.push_str(p),
            Some(p) => {
                s.push('/');
                s.push_str(p);
            }
            // Raw characters no request target has (a purge URL as typed): the parser's
            // percent-encoded form, as a client would have sent it.
            None => s.push_str(&u[url::Position::BeforePath..url::Position::AfterQuery]),
        }
        // NUL separates primary and secondary keys in sled; neither form contains it.
        Ok(CacheKey(s))
    }

    /// The key of a request target in absolute form (what a forward proxy receives).
    pub fn from_uri(uri: &http::Uri) -> Result<CacheKey, KeyError> {
        Self::parse(&uri.to_string())
    }

    /// The normalised URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The scheme, host and port part, for same-origin checks.
    pub fn origin(&self) -> Option<String> {
        url::Url::parse(&self.0)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    }
}

/// Whether `url` is already exactly what the URL parser would make of it, so parsing (about
/// 3 % of a request's CPU, IDNA included) can be skipped. Conservative: a lowercase `http` or
/// `https` scheme; a host of lowercase ASCII letter/digit/hyphen labels (no `xn--` label, no
/// empty one) whose last label does not start with a digit, or a canonical dotted quad; a
/// port, if any, without leading zeros and not the scheme's default; then a path of printable
/// ASCII the parser leaves alone, with no dot segment (`.` `..`, or any `%2e`); then
/// an optional query of the same; and no fragment. Anything else takes the parser.
fn is_normal(url: &str) -> bool {
    let (rest, default_port) = if let Some(r) = url.strip_prefix("http://") {
        (r, "80")
    } else if let Some(r) = url.strip_prefix("https://") {
        (r, "443")
    } else {
        return false;
    };
    let rest = rest.as_bytes();
    let Some(slash) = rest.iter().position(|&b| b == b'/') else {
        return false;
    };
    let (authority, path_query) = rest.split_at(slash);
    let (host, port) = match authority.iter().position(|&b| b == b':') {
        Some(colon) => (&authority[..colon], Some(&authority[colon + 1..])),
        None => (authority, None),
    };
    if let Some(p) = port {
        let canonical = !p.starts_with(b"0") && port_number(p).is_some();
        if !canonical || p == default_port.as_bytes() {
            return false;
        }
    }
    normal_host(host) && path_and_query_kept(path_query)
}

/// The path and query of an absolute URL as written, fragment dropped (possibly empty):
/// what the proxy sends the origin. `None` when anything there is not printable ASCII or is
/// a `\\`, which the URL parser would rewrite.
fn raw_path_and_query(url: &str) -> Option<&str> {
    let after_scheme = &url[url.find("://")? + 3..];
    let start = after_scheme
        .find(['/', '?', '#', '\\'])
        .unwrap_or(after_scheme.len());
    let tail = &after_scheme[start..];
    let raw = &tail[..tail.find('#').unwrap_or(tail.len())];
    raw.bytes()
        .all(|b| b.is_ascii_graphic() && b != b'\\')
        .then_some(raw)
}

/// A URL or `Host` port: one or more ASCII digits (no sign, which `u16::from_str` would
/// take), within `u16`. Leading zeros are the caller's call (a canonical form has none).
pub fn port_number(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u16, |port, &d| {
        let digit = d.checked_sub(b'0').filter(|&d| d <= 9)?;
        port.checked_mul(10)?.checked_add(u16::from(digit))
    })
}

/// One pass over `/path?query`: bytes the parser keeps, no `.`/`..` segment and no `%2e` in
/// the path.
fn path_and_query_kept(bytes: &[u8]) -> bool {
    let dots = |seg: &[u8]| seg == b"." || seg == b"..";
    let mut segment = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'/' | b'?' if dots(&bytes[segment..i]) => return false,
            b'/' => segment = i + 1,
            b'?' => {
                return bytes[i + 1..]
                    .iter()
                    .all(|&q| KEPT_IN_QUERY[usize::from(q)])
            }
            b'%' if bytes.get(i + 1) == Some(&b'2')
                && bytes.get(i + 2).is_some_and(|c| c | 0x20 == b'e') =>
            {
                return false
            }
            _ if !KEPT_IN_PATH[usize::from(b)] => return false,
            _ => {}
        }
    }
    !dots(&bytes[segment..])
}

/// Bytes the URL parser copies unchanged into a path (`?` ends it), and into a query.
const KEPT_IN_PATH: [bool; 256] = kept_except(b'?');
const KEPT_IN_QUERY: [bool; 256] = kept_except(b'\'');

/// Printable ASCII minus what the parser encodes or reinterprets somewhere (conservative).
const fn kept_except(extra: u8) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        t[b] = true;
        b += 1;
    }
    let never = b"\"#<>`{}^|[]\\";
    let mut i = 0;
    while i < never.len() {
        t[never[i] as usize] = false;
        i += 1;
    }
    t[extra as usize] = false;
    t
}

/// The host forms the parser serialises as they are, checked in one pass over the labels:
/// lowercase letter/digit/hyphen labels, none empty or `xn--`, the last not starting with a
/// digit (the parser reads such a host as an IPv4 number) unless the host is a canonical
/// dotted quad (four decimal octets 0–255 without leading zeros).
fn normal_host(host: &[u8]) -> bool {
    let mut labels = 0;
    let mut octets = true;
    let mut last_is_numeric = false;
    for label in host.split(|&b| b == b'.') {
        let ldh = label
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if label.is_empty() || !ldh || label.starts_with(b"xn--") {
            return false;
        }
        labels += 1;
        octets &= octet(label);
        last_is_numeric = label[0].is_ascii_digit();
    }
    !last_is_numeric || (octets && labels == 4)
}

/// A decimal octet as the parser writes it: 0–255, no leading zero.
fn octet(label: &[u8]) -> bool {
    label.len() <= 3
        && (label == b"0" || label[0] != b'0')
        && port_number(label).is_some_and(|n| n <= 255)
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_numbers_are_plain_digits_within_u16() {
        let cases: &[(&str, Option<u16>)] = &[
            ("80", Some(80)),
            ("0", Some(0)),
            ("00080", Some(80)),
            ("65535", Some(65535)),
            ("65536", None),
            ("99999999999999999999", None),
            ("", None),
            ("+80", None),
            ("-1", None),
            ("8a", None),
            ("8 ", None),
            ("\u{665}", None),
        ];
        for &(digits, want) in cases {
            assert_eq!(port_number(digits.as_bytes()), want, "{digits:?}");
        }
    }

    #[test]
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)]
    fn normalisation_table() {
        for (input, expect) in [
            ("http://Example.COM/a", "http://example.com/a"),
            ("HTTP://example.com/a", "http://example.com/a"),
            ("http://example.com:80/a", "http://example.com/a"),
            ("https://example.com:443/a", "https://example.com/a"),
            ("http://example.com:8080/a", "http://example.com:8080/a"),
            ("http://example.com", "http://example.com/"),
            ("http://example.com/a#frag", "http://example.com/a"),
            ("http://example.com/a/../b", "http://example.com/a/../b"),
            ("http://example.com/a/%2e%2E/b", "http://example.com/a/%2e%2E/b"),
            ("HTTP://Example.com:80/./b?q=it's#f", "http://example.com/./b?q=it's"),
            ("http://example.com?q", "http://example.com/?q"),
            ("http://example.com/caf\u{e9}", "http://example.com/caf%C3%A9"),
            ("http://example.com/a?B=1&a=2", "http://example.com/a?B=1&a=2"),
            ("http://example.com/A", "http://example.com/A"),
        ] {
            assert_eq!(CacheKey::parse(input).unwrap().as_str(), expect, "{input}");
        }
    }

    #[test]
    fn common_urls_skip_the_parser_and_get_the_same_key() {
        for url in [
            "http://example.com/",
            "http://example.com/a/b.html?x=1&y=%20z",
            "https://cdn-1.example.co.uk:8443/img/p.jpg",
            "http://127.0.0.1:18080/obj-1k",
            "http://10.0.0.255/",
            "http://example.com/~user/a;b,c:d@e!$&()*+=",
            "http://a.example/search?q=a/b?c&d=%2F",
        ] {
            assert!(is_normal(url), "{url}");
            assert_eq!(CacheKey::parse_slow(url).unwrap().as_str(), url);
        }
        for url in [
            "http://Example.com/",
            "http://example.com",
            "http://example.com:80/",
            "https://example.com:443/",
            "http://example.com:080/",
            "http://example.com/a/../b",
            "http://example.com/a/%2e%2E/b",
            "http://example.com/a#f",
            "http://example.com/a b",
            "http://example.com/a\\b",
            "http://xn--nxasmq6b.example/",
            "http://1.2.3/",
            "http://0x7f.0.0.1/",
            "http://127.000.0.1/",
            "http://example.123/",
            "http://user@example.com/",
            "http://example.com./",
            "http://[::1]/",
            "http://example.com/?it's",
        ] {
            assert!(!is_normal(url), "{url}");
        }
    }

    use proptest::prelude::*;

    /// Mostly ordinary URL parts, with the tricky ones mixed in.
    fn label() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "[a-z][a-z0-9-]{0,5}",
            2 => "[0-9]{1,3}",
            1 => "xn--[a-z]{2}|[A-Z][a-z]?|0x1f|",
        ]
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => "[a-zA-Z0-9._~!$&'()*+,;=:@%-]{0,6}",
            2 => "\\.|\\.\\.|%2e|%2E%2e|\\.%2e|%41",
            1 => "[a-z]{0,2}[ \"<>`{}^|\\[\\]\\\\#?\\t][a-z]{0,2}",
        ]
    }

    fn url() -> impl Strategy<Value = String> {
        let scheme = prop_oneof![4 => Just("http"), 4 => Just("https"), 1 => Just("HTTP")];
        let host = (
            proptest::collection::vec(label(), 1..5),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(labels, dot)| labels.join(".") + if dot { "." } else { "" });
        let port = prop_oneof![
            6 => Just(String::new()),
            3 => "[1-9][0-9]{0,4}".prop_map(|p| format!(":{p}")),
            1 => ":(80|443|0[0-9]{1,2}|)",
        ];
        let path = proptest::collection::vec(segment(), 0..5)
            .prop_map(|s| s.iter().map(|seg| format!("/{seg}")).collect::<String>());
        let query = prop_oneof![
            3 => Just(String::new()),
            3 => "\\?[a-zA-Z0-9._~!$&()*+,;=:@/?%-]{0,10}",
            1 => "\\?[a-z]{0,3}['\"^`{}|<> ][a-z]{0,3}",
        ];
        let fragment = prop_oneof![9 => Just(String::new()), 1 => "#[a-z]{0,3}"];
        (scheme, host, port, path, query, fragment)
            .prop_map(|(s, h, p, pa, q, f)| format!("{s}://{h}{p}{pa}{q}{f}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// Whenever the fast path vouches for a URL, the parser agrees byte for byte.
        #[test]
        fn the_fast_path_agrees_with_the_parser(url in url()) {
            if is_normal(&url) {
                let slow = CacheKey::parse_slow(&url);
                prop_assert_eq!(slow.as_ref().map(CacheKey::as_str), Ok(url.as_str()));
            }
        }
    }

    #[test]
    fn relative_and_foreign_schemes_are_rejected() {
        for bad in ["/a", "ftp://example.com/", "example.com/a", "mailto:a@b"] {
            assert!(CacheKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origin_is_scheme_host_port() {
        let k = CacheKey::parse("http://a.example:8080/x?y").unwrap();
        assert_eq!(k.origin().unwrap(), "http://a.example:8080");
    }
}

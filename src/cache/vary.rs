//! Vary (RFC 9111 §4.1): a stored response names request fields; a later request matches only
//! when its normalised values for those fields equal the ones stored (the secondary key).

use std::borrow::Cow;

use http::header::VARY;
use http::HeaderMap;

/// The field names a response varies on: lowercase, sorted, deduplicated. `*` is kept as `*`.
pub fn spec(resp: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = resp
        .get_all(VARY)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether the spec contains `*` (never matches; such responses are not stored).
pub fn is_star(spec: &[String]) -> bool {
    spec.iter().any(|n| n == "*")
}

/// The secondary key for `spec` from a request's headers: one `name:value` line per field,
/// values of repeated lines joined with `,`, whitespace trimmed and collapsed, spaces around
/// commas removed. An absent field is written as `name` with no colon, so it differs from an
/// empty value.
pub fn secondary_key(spec: &[String], req: &HeaderMap) -> String {
    let mut out = String::new();
    for name in spec {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(name);
        let values: Vec<String> = req
            .get_all(name.as_str())
            .iter()
            .map(|v| normalise(&text(v.as_bytes())))
            .collect();
        if !values.is_empty() {
            out.push(':');
            out.push_str(&values.join(","));
        }
    }
    out
}

/// A field value as key text: UTF-8 as it is; a byte that is not (obs-text, e.g. Latin-1)
/// as U+0001 and two hex digits. No field value holds U+0001 (`HeaderValue` refuses control
/// bytes but HTAB), so distinct values never share a key; a lossy conversion made every such
/// byte U+FFFD, and so one variant for values that differ.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() * 3);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push('\u{1}');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    Cow::Owned(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn normalise(value: &str) -> String {
    value
        .split(',')
        .map(|part| part.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn spec_is_lowercase_sorted_deduplicated() {
        let h = headers(&[
            ("vary", "Accept-Encoding, User-Agent"),
            ("vary", "accept-encoding"),
        ]);
        assert_eq!(spec(&h), ["accept-encoding", "user-agent"]);
        assert!(is_star(&spec(&headers(&[("vary", "Accept, *")]))));
        assert!(spec(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn values_that_are_not_utf8_never_share_a_key() {
        let s = vec!["cookie".to_string()];
        let key = |v: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert("cookie", HeaderValue::from_bytes(v).unwrap());
            secondary_key(&s, &h)
        };
        // RFC 9111 §4.1: a stored variant is reused only for the same values: two users whose
        // cookies differ in bytes that are not UTF-8 (Latin-1 text) must not share one.
        assert_ne!(key(b"who=\xe9"), key(b"who=\xe8"), "Latin-1 bytes");
        assert_ne!(
            key(b"who=\xe9"),
            key("who=\u{fffd}".as_bytes()),
            "not U+FFFD"
        );
        assert_eq!(key(b"who=\xe9"), key(b"who=\xe9"), "the same bytes match");
        assert_eq!(
            key("who=é".as_bytes()),
            "cookie:who=é",
            "UTF-8 keys as before"
        );
    }

    #[test]
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)]
    fn secondary_key_matching_table() {
        let s = vec!["accept-encoding".to_string(), "accept-language".to_string()];
        // (request A, request B, same variant?)
        let rows: &[(&[(&str, &str)], &[(&str, &str)], bool)] = &[
            (&[("accept-encoding", "gzip")], &[("Accept-Encoding", "gzip")], true),
            (&[("accept-encoding", "gzip")], &[("accept-encoding", "br")], false),
            (&[("accept-encoding", " gzip,  deflate ")], &[("accept-encoding", "gzip,deflate")], true),
            (&[("accept-encoding", "gzip"), ("accept-encoding", "br")], &[("accept-encoding", "gzip, br")], true),
            (&[], &[], true),
            (&[], &[("accept-encoding", "")], false),
            (&[("accept-language", "en")], &[("accept-language", "en"), ("x-other", "1")], true),
            (&[("accept-language", "en")], &[("accept-language", "de")], false),
            (&[("accept-encoding", "gzip, br")], &[("accept-encoding", "br, gzip")], false),
        ];
        for (a, b, same) in rows {
            let ka = secondary_key(&s, &headers(a));
            let kb = secondary_key(&s, &headers(b));
            assert_eq!(ka == kb, *same, "{a:?} vs {b:?}: {ka:?} / {kb:?}");
        }
    }
}

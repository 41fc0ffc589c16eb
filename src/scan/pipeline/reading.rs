//! A body's reading: what decides its verdict besides the decoded bytes. That is the declared
//! media type and charset (a type that is neither text nor sniffable is not read as text; the
//! charset picks the decoding) and the values of the response header fields the classifiers
//! read (`header` rules). A memoised verdict is reused only for the same body *and* reading,
//! so bytes first served as `application/x-foo` are judged again when served as `text/plain`.
//!
//! A reading reads as what it records: the declared media type (`-` when none; one more `-`
//! in front of a declared type that starts with one), then `; charset=` and the charset when
//! one is declared, then `; fields=` and 16 hex digits of SHA-256 over the fields' names and
//! values when a classifier reads any: `text/html; charset=utf-8`. It is stable across
//! restarts (it is stored with the verdict) and computed the same way from a [`Content`] and
//! from the response's header map, so the proxy can ask the memo before it builds a scan
//! input; [`declared`] reads the type and charset back.

use std::fmt::Write;

use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::content::declared_type;
use crate::scan::{Content, HeaderUse};

/// The reading of `content` for classifiers that read `fields`.
pub fn of_content(fields: &HeaderUse, content: &Content) -> String {
    let all = content
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let digest = match fields {
        HeaderUse::Fields(names) if names.is_empty() => None,
        HeaderUse::All => Some(digest(all)),
        HeaderUse::Fields(names) => Some(digest(
            names
                .iter()
                .flat_map(|n| all.clone().filter(move |(k, _)| k == n)),
        )),
    };
    format(&content.declared_type, content.charset.as_deref(), digest)
}

/// [`of_content`] for the content [`content_from_response`](super::content_from_response)
/// would build from these response headers, without building it.
pub fn of_headers(fields: &HeaderUse, headers: &HeaderMap) -> String {
    let (media, charset) = declared_type(headers);
    // Values as the content holds them: converted lossily when not UTF-8.
    let lossy = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let digest = match fields {
        HeaderUse::Fields(names) if names.is_empty() => None,
        HeaderUse::All => {
            let all: Vec<_> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), lossy(v)))
                .collect();
            Some(digest(all.iter().map(|(k, v)| (*k, v.as_str()))))
        }
        HeaderUse::Fields(names) => {
            let read: Vec<_> = names
                .iter()
                .flat_map(|n| {
                    headers
                        .get_all(n.as_str())
                        .iter()
                        .map(|v| (n.as_str(), lossy(v)))
                })
                .collect();
            Some(digest(read.iter().map(|(k, v)| (*k, v.as_str()))))
        }
    };
    format(&media, charset.as_deref(), digest)
}

/// The declared media type (empty for none) and charset a reading records, when that is all
/// it records: `None` for a reading with header fields (their values are only a digest) and
/// for a verdict stored before readings existed (an empty one).
pub fn declared(reading: &str) -> Option<(String, Option<String>)> {
    let mut parts = reading.split("; ");
    let media = match parts.next()? {
        "" => return None,
        "-" => "",
        m => m.strip_prefix('-').unwrap_or(m),
    };
    let charset = match parts.next() {
        None => None,
        Some(p) => Some(p.strip_prefix("charset=")?.to_string()),
    };
    parts.next().is_none().then(|| (media.to_string(), charset))
}

fn format(media: &str, charset: Option<&str>, fields: Option<String>) -> String {
    // `-` marks no type; a declared type that starts with `-` (`Content-Type: -`, read as a
    // type, not sniffed) gets one more, so no declared type reads as none.
    let mut out = match media {
        "" => "-".to_string(),
        m if m.starts_with('-') => format!("-{m}"),
        m => m.to_string(),
    };
    if let Some(c) = charset {
        let _ = write!(out, "; charset={}", c.to_ascii_lowercase());
    }
    if let Some(d) = fields {
        let _ = write!(out, "; fields={d}");
    }
    out
}

/// 16 hex digits of SHA-256 over the fields, each part length-prefixed so that no two lists
/// of fields hash alike.
fn digest<'a>(fields: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut h = Sha256::new();
    for (name, value) in fields {
        for part in [name, value] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::HeaderValue;

    use super::*;
    use crate::scan::pipeline::content_from_response;

    fn headers(fields: &[(&'static str, &'static [u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in fields {
            h.append(*k, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn reading(uses: &HeaderUse, fields: &[(&'static str, &'static [u8])]) -> String {
        let h = headers(fields);
        let from_map = of_headers(uses, &h);
        let content = content_from_response(Bytes::new(), &h, None);
        assert_eq!(
            from_map,
            of_content(uses, &content),
            "the header map and the content it makes read alike: {fields:?}"
        );
        from_map
    }

    #[test]
    fn readings_differ_exactly_when_the_inputs_a_verdict_depends_on_do() {
        let none = HeaderUse::default();
        let server = HeaderUse::Fields(vec!["server".into()]);
        let text = reading(&none, &[("content-type", b"text/plain")]);
        assert_eq!(text, "text/plain");
        assert_eq!(reading(&none, &[]), "-");
        assert_eq!(
            reading(&none, &[("content-type", b"text/html; Charset=UTF-8")]),
            "text/html; charset=utf-8"
        );
        assert!(reading(&server, &[]).starts_with("-; fields="));
        // Spelling that parses alike reads alike.
        assert_eq!(text, reading(&none, &[("content-type", b"Text/Plain")]));
        for (what, other) in [
            (
                "another type",
                reading(&none, &[("content-type", b"application/x-foo")]),
            ),
            ("no type", reading(&none, &[])),
            (
                "a charset",
                reading(&none, &[("content-type", b"text/plain; charset=koi8-r")]),
            ),
        ] {
            assert_ne!(text, other, "{what}");
        }
        assert_eq!(
            reading(&none, &[("content-type", b"text/plain; charset=UTF-8")]),
            reading(&none, &[("content-type", b"text/plain;charset=\"utf-8\"")]),
        );
        // A field no classifier reads changes nothing; one a rule reads does.
        let a = [("content-type", &b"text/plain"[..]), ("server", b"a")];
        let b = [("content-type", &b"text/plain"[..]), ("server", b"b")];
        assert_eq!(reading(&none, &a), reading(&none, &b));
        assert_ne!(reading(&server, &a), reading(&server, &b));
        assert_ne!(reading(&HeaderUse::All, &a), reading(&HeaderUse::All, &b));
        // Two values are not their concatenation.
        assert_ne!(
            reading(&server, &[("server", b"a"), ("server", b"b")]),
            reading(&server, &[("server", b"ab")]),
        );
        // A declared type spelt like the mark for none is still a declared type.
        assert_ne!(
            reading(&none, &[("content-type", b"-")]),
            reading(&none, &[])
        );
        assert_ne!(
            reading(&none, &[("content-type", b"--")]),
            reading(&none, &[("content-type", b"-")])
        );
        // Not UTF-8: read as the content holds it (lossily converted).
        reading(&HeaderUse::All, &[("server", b"caf\xe9")]);
    }

    #[test]
    fn the_declared_type_and_charset_read_back() {
        let none = HeaderUse::default();
        for fields in [
            &[][..],
            &[("content-type", &b"text/html; charset=UTF-8"[..])],
            &[("content-type", b"-")],
            &[("content-type", b"--x")],
            &[("content-type", b"application/x-foo")],
        ] {
            let h = headers(fields);
            let content = content_from_response(Bytes::new(), &h, None);
            let (media, charset) = declared(&of_content(&none, &content)).unwrap();
            assert_eq!(media, content.declared_type, "{fields:?}");
            assert_eq!(
                charset,
                content.charset.map(|c| c.to_ascii_lowercase()),
                "{fields:?}"
            );
        }
        let server = HeaderUse::Fields(vec!["server".into()]);
        let h = headers(&[("content-type", b"text/plain"), ("server", b"x")]);
        assert_eq!(declared(&of_headers(&server, &h)), None, "only a digest");
        assert_eq!(declared(""), None, "stored before readings");
    }
}

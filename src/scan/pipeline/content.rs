//! Building a [`Content`] from an HTTP response's parts, so the proxy does not parse
//! `Content-Type` and `Content-Encoding` itself.

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::HeaderMap;

use crate::scan::Content;

/// A `Content` for a response body as received (still Content-Encoded): media type and
/// charset from `Content-Type`, every `Content-Encoding` field joined in order, and all
/// header fields (lowercase names; values that are not UTF-8 are converted lossily).
pub fn content_from_response(bytes: Bytes, headers: &HeaderMap, url: Option<String>) -> Content {
    let (declared_type, charset) = declared_type(headers);
    let content_encoding = content_encoding(headers);
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Content {
        bytes,
        declared_type,
        charset,
        content_encoding,
        url,
        headers,
    }
}

/// The media type and charset the response's `Content-Type` declares (empty and `None`
/// without one), as [`parse_content_type`] gives them.
pub fn declared_type(headers: &HeaderMap) -> (String, Option<String>) {
    headers
        .get(CONTENT_TYPE)
        .map(|v| parse_content_type(&String::from_utf8_lossy(v.as_bytes())))
        .unwrap_or_default()
}

/// The response's `Content-Encoding` values as one list (`gzip, br`), empty when none.
pub fn content_encoding(headers: &HeaderMap) -> String {
    let mut codings = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .filter(|v| !v.is_empty());
    let Some(first) = codings.next() else {
        return String::new();
    };
    codings.fold(first, |all, c| all + ", " + &c)
}

/// `text/html; charset="UTF-8"` → (`text/html`, `Some("UTF-8")`).
pub fn parse_content_type(value: &str) -> (String, Option<String>) {
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let charset = parts.find_map(|p| {
        let (name, val) = p.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        let val = val.trim().trim_matches('"').trim();
        (!val.is_empty()).then(|| val.to_string())
    });
    (media, charset)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn content_type_parameters() {
        for (value, media, charset) in [
            ("text/html; charset=\"UTF-8\"", "text/html", Some("UTF-8")),
            (
                "Text/Plain;Charset=shift_jis",
                "text/plain",
                Some("shift_jis"),
            ),
            ("application/json", "application/json", None),
            ("text/html; boundary=x; charset=", "text/html", None),
            ("", "", None),
        ] {
            let (m, c) = parse_content_type(value);
            assert_eq!((m.as_str(), c.as_deref()), (media, charset), "{value}");
        }
    }

    #[test]
    fn response_parts_become_content() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=iso-8859-1"),
        );
        h.append(CONTENT_ENCODING, HeaderValue::from_static("deflate"));
        h.append(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.insert("x-mailer", HeaderValue::from_static("SpamBlaster 3000"));
        let c = content_from_response(
            Bytes::from_static(b"x"),
            &h,
            Some("http://a.example/".into()),
        );
        assert_eq!(c.declared_type, "text/html");
        assert_eq!(c.charset.as_deref(), Some("iso-8859-1"));
        assert_eq!(c.content_encoding, "deflate, gzip");
        assert!(c
            .headers
            .contains(&("x-mailer".to_string(), "SpamBlaster 3000".to_string())));
        assert_eq!(c.url.as_deref(), Some("http://a.example/"));
    }
}

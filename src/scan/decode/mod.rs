//! Bounded decoding of a response body into a [`Document`] for the classifiers.
//!
//! The steps, each in its own module: undo `Content-Encoding` with size and ratio limits
//! (`encoding`), sniff the media type from magic bytes and reconcile it with the declared one
//! (`sniff`), convert the charset to UTF-8 (`charset`), and render HTML to visible text while
//! collecting URIs (`html`). Every step is bounded by [`DecodeLimits`], so a hostile body costs
//! at most `max_body` bytes of output and linear time.

use crate::config::ScanConfig;
use crate::scan::{sha256_hex, Content, Document, ScanError};

pub mod charset;
pub mod encoding;
pub mod html;
pub mod mime;
pub mod sniff;

pub use encoding::decode_content_encoding;
pub use sniff::{reconcile, sniff};

/// The limits every decode step honours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest decoded body, in bytes; more is [`ScanError::Limit`].
    pub max_body: usize,
    /// Largest decoded/encoded size ratio of one Content-Encoding step (0 = no ratio limit).
    pub max_decode_ratio: u64,
    /// Output below this many bytes never trips the ratio limit (tiny bodies compress well).
    pub ratio_floor: usize,
    /// Most URIs kept per document.
    pub max_uris: usize,
}

impl DecodeLimits {
    /// The limits configured in `[scan]`.
    pub fn from_config(cfg: &ScanConfig) -> DecodeLimits {
        DecodeLimits {
            max_body: cfg.max_body.as_usize(),
            max_decode_ratio: cfg.max_decode_ratio,
            ..DecodeLimits::default()
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_body: 8 << 20,
            max_decode_ratio: 1000,
            ratio_floor: 1 << 20,
            max_uris: 1000,
        }
    }
}

/// Decodes `content` into a [`Document`]: Content-Encoding undone, media type sniffed,
/// text converted to UTF-8 and (for HTML) rendered to visible text, URIs extracted.
///
/// `body_sha256` is the lowercase hex SHA-256 of `content.bytes` when the caller already has
/// it: a body that no coding changes is not hashed a second time (on a large page that is
/// tens of microseconds).
///
/// Errors: an unknown or corrupt Content-Encoding is [`ScanError::Undecodable`]; a decoded
/// body over `max_body` or over the ratio limit is [`ScanError::Limit`].
pub fn decode(
    content: &Content,
    limits: &DecodeLimits,
    body_sha256: Option<&str>,
) -> Result<Document, ScanError> {
    let body = decode_content_encoding(&content.bytes, &content.content_encoding, limits)?;
    if body.len() > limits.max_body {
        return Err(ScanError::Limit(format!(
            "body of {} bytes is larger than scan.max_body ({} bytes)",
            body.len(),
            limits.max_body
        )));
    }
    let media_type = reconcile(&content.declared_type, sniff(&body));
    let mut doc = Document {
        sha256: match body_sha256 {
            // The very bytes given (no coding applied): their digest is the one passed in.
            Some(hex)
                if body.as_ptr() == content.bytes.as_ptr() && body.len() == content.bytes.len() =>
            {
                hex.to_string()
            }
            _ => sha256_hex(&body),
        },
        media_type,
        headers: content.headers.clone(),
        url: content.url.clone(),
        ..Document::default()
    };
    if doc_is_text(&doc.media_type) {
        let is_html = is_html(&doc.media_type);
        let enc = charset::detect(&body, content.charset.as_deref(), is_html);
        doc.raw_text = charset::to_utf8(&body, enc);
        // Neither the request URL nor relative links resolved against it: a verdict depends
        // on the body and its reading alone (`pipeline::reading`), so the memo is exact.
        let mut uris = html::UriSet::new(limits.max_uris, None);
        if doc.media_type == "message/rfc822" {
            let mail = mime::render(&body, &mut uris);
            doc.headers.extend(mail.headers);
            doc.text = mail.text;
            doc.raw_text = mail.raw_text;
        } else if is_html {
            doc.text = html::to_text(&doc.raw_text, &mut uris);
        } else {
            doc.text = doc.raw_text.clone();
        }
        html::extract_text_uris(&doc.text, &mut uris);
        doc.uris = uris.into_vec();
    }
    doc.body = body;
    Ok(doc)
}

/// True for the media types whose text the classifiers read (mirrors [`Document::is_text`]).
fn doc_is_text(m: &str) -> bool {
    m.starts_with("text/")
        || m.ends_with("+xml")
        || matches!(
            m,
            "application/xhtml+xml" | "application/json" | "application/xml" | "message/rfc822"
        )
}

/// True for media types rendered as HTML.
fn is_html(media_type: &str) -> bool {
    matches!(media_type, "text/html" | "application/xhtml+xml")
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn content(bytes: Vec<u8>, declared: &str, encoding: &str) -> Content {
        Content {
            bytes: bytes.into(),
            declared_type: declared.to_string(),
            content_encoding: encoding.to_string(),
            url: Some("http://spam.example/offer".to_string()),
            ..Content::default()
        }
    }

    #[test]
    fn gzipped_latin1_html_becomes_a_text_document() {
        let html = b"<html><head><meta charset=iso-8859-1><script>x()</script></head>\
                     <body><p>Gagn\xe9!</p><a href=\"/claim\">claim</a></body></html>";
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(html).unwrap();
        let c = content(e.finish().unwrap(), "", "gzip");
        let doc = decode(&c, &DecodeLimits::default(), None).unwrap();
        assert_eq!(&doc.body[..], &html[..]);
        assert_eq!(doc.sha256, sha256_hex(html));
        assert_eq!(doc.media_type, "text/html");
        assert_eq!(doc.text, "Gagn\u{e9}!\nclaim");
        assert!(doc.raw_text.contains("<script>x()</script>"));
        // Relative links stay relative: the verdict must not depend on the URL.
        assert_eq!(doc.uris, ["/claim"]);
        assert_eq!(doc.url.as_deref(), Some("http://spam.example/offer"));
    }

    #[test]
    fn a_given_digest_is_used_only_for_bytes_no_coding_changed() {
        // The digest is taken on trust: a marker shows whether it was used or recomputed.
        let given = "given-digest";
        let plain = content(b"<p>hello</p>".to_vec(), "text/html", "identity");
        let doc = decode(&plain, &DecodeLimits::default(), Some(given)).unwrap();
        assert_eq!(doc.sha256, given);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"<p>hello</p>").unwrap();
        let gz = content(e.finish().unwrap(), "text/html", "gzip");
        let doc = decode(&gz, &DecodeLimits::default(), Some(given)).unwrap();
        assert_eq!(doc.sha256, sha256_hex(b"<p>hello</p>"));
    }

    #[test]
    fn plain_text_keeps_raw_text_and_images_get_no_text() {
        let doc = decode(
            &content(b"call www.x.example now".to_vec(), "text/plain", ""),
            &DecodeLimits::default(),
            None,
        )
        .unwrap();
        assert_eq!(doc.text, doc.raw_text);
        assert!(doc.uris.contains(&"www.x.example".to_string()));
        assert!(doc.uris.contains(&"http://www.x.example".to_string()));

        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR http://not.a.link/".to_vec();
        let doc = decode(
            &content(png, "text/html", ""),
            &DecodeLimits::default(),
            None,
        )
        .unwrap();
        assert_eq!(doc.media_type, "image/png");
        assert!(doc.is_image());
        assert!(doc.text.is_empty() && doc.raw_text.is_empty());
        assert!(doc.uris.is_empty());
    }

    #[test]
    fn a_mail_is_sniffed_and_rendered_with_its_headers() {
        let mail = b"Return-Path: <x@spam.example>\nSubject: Claim your prize\n\
                     Content-Type: text/html\n\n<p>Visit <a href=\"http://prize.example/\">us</a></p>\n";
        let doc = decode(
            &content(mail.to_vec(), "", ""),
            &DecodeLimits::default(),
            None,
        )
        .unwrap();
        assert_eq!(doc.media_type, "message/rfc822");
        assert_eq!(doc.text, "Claim your prize\nVisit us");
        assert!(doc
            .headers
            .contains(&("subject".to_string(), "Claim your prize".to_string())));
        assert!(doc.uris.contains(&"http://prize.example/".to_string()));
    }

    #[test]
    fn identity_body_over_max_body_is_a_limit() {
        let limits = DecodeLimits {
            max_body: 10,
            ..DecodeLimits::default()
        };
        let err = decode(&content(vec![b'a'; 11], "text/plain", ""), &limits, None).unwrap_err();
        assert_eq!(err.reason(), "limit");
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever the bytes, coding and declared type: no panic, and a decoded body stays
        /// within max_body.
        #[test]
        fn decode_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            prefix in prop::sample::select(vec![
                &b""[..], b"\x1f\x8b\x08\x00\x00\x00\x00\x00", b"\x78\x9c", b"<!doctype html>",
                b"<meta charset=shift_jis><script>", b"\xff\xfe", b"\x89PNG\r\n\x1a\n",
                b"Subject: x\nContent-Type: multipart/mixed; boundary=a\n\n--a\nContent-Transfer-Encoding: base64\n\n",
            ]),
            coding in prop::sample::select(vec!["", "gzip", "deflate", "br", "gzip, br", "x"]),
            declared in prop::sample::select(vec!["", "text/html", "text/plain", "image/png"]),
            charset in prop::option::of(prop::sample::select(vec!["utf-8", "shift_jis", "utf-16le", "bogus"])),
        ) {
            let content = Content {
                bytes: [prefix, &bytes[..]].concat().into(),
                declared_type: declared.to_string(),
                charset: charset.map(str::to_string),
                content_encoding: coding.to_string(),
                url: Some("http://fuzz.example/a/b".to_string()),
                headers: Vec::new(),
            };
            let limits = DecodeLimits { max_body: 4096, ..DecodeLimits::default() };
            if let Ok(doc) = decode(&content, &limits, None) {
                prop_assert!(doc.body.len() <= 4096);
                prop_assert_eq!(doc.sha256, sha256_hex(&doc.body));
                prop_assert!(doc.uris.len() <= limits.max_uris);
            }
        }
    }
}

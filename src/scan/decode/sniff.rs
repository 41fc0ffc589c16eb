//! Media-type sniffing from magic bytes, after the WHATWG MIME Sniffing Standard (simplified),
//! and reconciling the sniffed type with the declared `Content-Type`.

/// How many leading bytes the sniffer looks at.
const SNIFF_LEN: usize = 1024;

/// The media type the bytes look like. Always returns something: `text/plain` for text and
/// `application/octet-stream` for anything binary without a known signature.
pub fn sniff(bytes: &[u8]) -> &'static str {
    let head = &bytes[..bytes.len().min(SNIFF_LEN)];
    if let Some(t) = magic(head) {
        return t;
    }
    let text = strip_bom_and_space(head);
    if let Some(t) = markup(text) {
        return t;
    }
    if looks_binary(head) {
        return "application/octet-stream";
    }
    if looks_like_mail(text) {
        return "message/rfc822";
    }
    if matches!(text.first(), Some(b'{') | Some(b'[')) && looks_json(text) {
        return "application/json";
    }
    "text/plain"
}

/// Binary formats recognised by their leading signature.
fn magic(b: &[u8]) -> Option<&'static str> {
    const TABLE: &[(&[u8], &str)] = &[
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"\x1f\x8b\x08", "application/gzip"),
        (b"PK\x03\x04", "application/zip"),
    ];
    for (sig, t) in TABLE {
        if b.starts_with(sig) {
            return Some(t);
        }
    }
    if b.len() >= 12 && b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return Some("image/webp");
    }
    // "BM" alone is too weak: also require the four reserved header bytes to be zero.
    if b.len() >= 26 && b.starts_with(b"BM") && b.get(6..10) == Some(&[0, 0, 0, 0]) {
        return Some("image/bmp");
    }
    None
}

/// HTML and XML by their opening markup.
fn markup(text: &[u8]) -> Option<&'static str> {
    // WHATWG: these tags at the start (after whitespace) mean HTML.
    const HTML_START: &[&[u8]] = &[
        b"<!doctype html",
        b"<html",
        b"<head",
        b"<script",
        b"<iframe",
        b"<h1",
        b"<div",
        b"<font",
        b"<table",
        b"<a",
        b"<style",
        b"<title",
        b"<b",
        b"<body",
        b"<br",
        b"<p",
        b"<!--",
    ];
    for tag in HTML_START {
        if starts_with_tag(text, tag) {
            return Some("text/html");
        }
    }
    if starts_with_ci(text, b"<?xml") {
        // XHTML, and HTML behind an XML declaration, render as HTML.
        if contains_ci(text, b"<html") {
            return Some("application/xhtml+xml");
        }
        return Some("application/xml");
    }
    // A leading comment or stray text before the document element: look a little further.
    for tag in [&b"<!doctype html"[..], b"<html", b"<head", b"<body"] {
        if contains_ci(text, tag) {
            return Some("text/html");
        }
    }
    None
}

/// `tag` at the start, followed by a tag-terminating byte (space or `>`), case-insensitively.
fn starts_with_tag(text: &[u8], tag: &[u8]) -> bool {
    if !starts_with_ci(text, tag) {
        return false;
    }
    if tag == b"<!--" {
        return true;
    }
    matches!(
        text.get(tag.len()),
        Some(b' ' | b'>' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/')
    )
}

fn starts_with_ci(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `needle` anywhere in `text`, case-insensitively. Needles here start with `<`, which has
/// no case, so only the positions of that byte are compared (memchr finds them fast).
fn contains_ci(text: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    debug_assert!(!first.is_ascii_alphabetic());
    memchr::memchr_iter(first, text).any(|i| starts_with_ci(&text[i..], needle))
}

fn strip_bom_and_space(b: &[u8]) -> &[u8] {
    let b = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    &b[start..]
}

/// WHATWG "binary data byte": control bytes that never appear in text. UTF-16 text (with its
/// BOM) is text even though it is full of NULs.
fn looks_binary(b: &[u8]) -> bool {
    if b.starts_with(b"\xfe\xff") || b.starts_with(b"\xff\xfe") {
        return false;
    }
    b.iter()
        .any(|&c| matches!(c, 0x00..=0x08 | 0x0b | 0x0e..=0x1a | 0x1c..=0x1f))
}

/// A cheap structural check: a JSON document opens with `{"` or `[` followed by a value.
fn looks_json(text: &[u8]) -> bool {
    let rest: Vec<u8> = text
        .iter()
        .skip(1)
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .take(1)
        .collect();
    match (text.first(), rest.first()) {
        (Some(b'{'), Some(b'"' | b'}')) => true,
        (Some(b'['), Some(c)) => {
            matches!(
                c,
                b'{' | b'[' | b'"' | b']' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
            )
        }
        _ => false,
    }
}

/// An mbox `From ` line or a well-known mail header field on the first line.
fn looks_like_mail(text: &[u8]) -> bool {
    const FIELDS: &[&[u8]] = &[
        b"return-path:",
        b"received:",
        b"delivered-to:",
        b"envelope-to:",
        b"x-original-to:",
        b"message-id:",
        b"mime-version:",
        b"from:",
        b"to:",
        b"subject:",
        b"date:",
        b"reply-to:",
    ];
    text.starts_with(b"From ") || FIELDS.iter().any(|f| starts_with_ci(text, f))
}

/// True for types identified by a signature, where the sniffed type beats any declaration.
fn is_signature_type(t: &str) -> bool {
    t.starts_with("image/")
        || matches!(
            t,
            "application/pdf" | "application/gzip" | "application/zip"
        )
}

/// Declared types that say nothing about the content.
fn is_generic(t: &str) -> bool {
    matches!(
        t,
        "" | "application/octet-stream" | "application/unknown" | "unknown/unknown" | "*/*"
    )
}

/// The media type the pipeline uses: the sniffed one for images and other signature formats
/// (and whenever the declaration is generic or claims a binary format the bytes do not have);
/// otherwise the declared one, so `text/*`, `application/javascript` and the like stay as sent.
pub fn reconcile(declared: &str, sniffed: &str) -> String {
    let declared = declared.trim().to_ascii_lowercase();
    if is_generic(&declared) || is_signature_type(sniffed) || is_signature_type(&declared) {
        return sniffed.to_string();
    }
    declared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_table() {
        let mut bmp = b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00".to_vec();
        bmp.resize(40, 0);
        let cases: &[(&[u8], &str)] = &[
            (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png"),
            (b"GIF89a\x01\x00", "image/gif"),
            (b"GIF87a\x01\x00", "image/gif"),
            (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
            (&bmp, "image/bmp"),
            (b"BM is a fine name for a band", "text/plain"),
            (b"%PDF-1.7\n", "application/pdf"),
            (b"\x1f\x8b\x08\x00\x00\x00", "application/gzip"),
            (b"PK\x03\x04\x14\x00", "application/zip"),
            (b"<!DOCTYPE html><p>x", "text/html"),
            (b"\xef\xbb\xbf  \n<HTML lang=en>", "text/html"),
            (b"<head><title>t</title>", "text/html"),
            (b"<body>", "text/html"),
            (b"<!-- generated -->\n<div>hi</div>", "text/html"),
            (b"hello <html> later", "text/html"),
            (b"<?xml version=\"1.0\"?><rss/>", "application/xml"),
            (
                b"<?xml version=\"1.0\"?>\n<html xmlns=\"x\">",
                "application/xhtml+xml",
            ),
            (b"{\"a\": 1}", "application/json"),
            (b"  [1, 2, 3]", "application/json"),
            (b"[section]\nkey=1", "text/plain"),
            (b"Dear friend,\r\nplain text.", "text/plain"),
            (b"\xfe\xff\x00h\x00i", "text/plain"),
            (b"\x00\x01\x02\x03binary", "application/octet-stream"),
            (b"", "text/plain"),
            (b"<b>bold</b>", "text/html"),
            (b"<bogus>", "text/plain"),
            (b"Return-Path: <a@b.example>\nReceived: x", "message/rfc822"),
            (
                b"From someone@example Mon Jan  1 00:00:00 2026\n",
                "message/rfc822",
            ),
            (b"Subject: hi\n\nbody", "message/rfc822"),
            (b"Note: remember the milk", "text/plain"),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), *want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn reconcile_table() {
        for (declared, sniffed, want) in [
            ("text/html", "text/html", "text/html"),
            ("text/html", "image/png", "image/png"),
            ("image/jpeg", "image/png", "image/png"),
            ("image/png", "text/html", "text/html"),
            ("application/pdf", "text/plain", "text/plain"),
            ("", "text/html", "text/html"),
            ("application/octet-stream", "image/gif", "image/gif"),
            ("application/octet-stream", "text/plain", "text/plain"),
            ("text/plain", "text/html", "text/plain"),
            ("text/plain", "application/octet-stream", "text/plain"),
            (
                "application/javascript",
                "text/plain",
                "application/javascript",
            ),
            ("Text/HTML", "text/plain", "text/html"),
        ] {
            assert_eq!(reconcile(declared, sniffed), want, "{declared} / {sniffed}");
        }
    }
}

//! Charset detection and conversion to UTF-8 (encoding_rs, WHATWG encoding labels).
//!
//! Precedence, as browsers do it: a byte-order mark, then the `Content-Type` charset, then
//! (HTML only) a `<meta charset>` / `http-equiv` declaration or an XML declaration in the first
//! 1 KB, then UTF-8 when the bytes are valid UTF-8, else windows-1252.

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};

/// How far into the body `<meta charset>` is looked for (the WHATWG prescan uses 1024).
const PRESCAN_LEN: usize = 1024;

/// The encoding to read `body` with.
pub fn detect(body: &[u8], declared: Option<&str>, html: bool) -> &'static Encoding {
    if let Some((enc, _)) = Encoding::for_bom(body) {
        return enc;
    }
    if let Some(enc) = declared.and_then(|l| Encoding::for_label(l.trim().as_bytes())) {
        return enc;
    }
    let head = &body[..body.len().min(PRESCAN_LEN)];
    let in_document = if html {
        meta_charset(head)
    } else {
        xml_encoding(head)
    };
    // A document cannot declare itself UTF-16 in ASCII; WHATWG maps that to UTF-8.
    if let Some(enc) = in_document.and_then(|l| Encoding::for_label(l.as_bytes())) {
        if enc == UTF_16LE || enc == UTF_16BE {
            return UTF_8;
        }
        return enc;
    }
    if std::str::from_utf8(body).is_ok() {
        UTF_8
    } else {
        WINDOWS_1252
    }
}

/// Converts `body` to UTF-8 with `enc`; a BOM is removed and invalid sequences become U+FFFD.
pub fn to_utf8(body: &[u8], enc: &'static Encoding) -> String {
    let (enc, rest) = match Encoding::for_bom(body) {
        Some((bom_enc, len)) => (bom_enc, body.get(len..).unwrap_or_default()),
        None => (enc, body),
    };
    enc.decode_without_bom_handling(rest).0.into_owned()
}

/// The charset named by a `<meta charset=...>` or `<meta http-equiv=content-type
/// content="...; charset=...">` tag in `head` (a byte-level prescan, before any decoding).
fn meta_charset(head: &[u8]) -> Option<String> {
    let lower = head.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = find(&lower[from..], b"<meta") {
        let start = from + pos + 5;
        let end = find(&lower[start..], b">").map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(label) = value_after(tag, b"charset") {
            return Some(label);
        }
        from = end;
    }
    None
}

/// The `encoding="..."` of an XML declaration at the start of `head`.
fn xml_encoding(head: &[u8]) -> Option<String> {
    let lower = head.to_ascii_lowercase();
    if !lower.starts_with(b"<?xml") {
        return None;
    }
    let end = find(&lower, b"?>")?;
    value_after(&lower[..end], b"encoding")
}

/// The token after `name`, skipping `=`, quotes and spaces: `charset="utf-8"` → `utf-8`.
fn value_after(tag: &[u8], name: &[u8]) -> Option<String> {
    let pos = find(tag, name)?;
    let rest = &tag[pos + name.len()..];
    let rest = trim_start(rest);
    let rest = trim_start(rest.strip_prefix(b"=")?);
    let rest = rest
        .iter()
        .position(|c| !matches!(c, b'"' | b'\''))
        .map_or(&[][..], |s| &rest[s..]);
    let label: Vec<u8> = rest
        .iter()
        .copied()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
        .collect();
    if label.is_empty() {
        return None;
    }
    String::from_utf8(label).ok()
}

fn trim_start(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    &b[s..]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(body: &[u8], declared: Option<&str>, html: bool) -> (String, &'static str) {
        let enc = detect(body, declared, html);
        (to_utf8(body, enc), enc.name())
    }

    #[test]
    fn charset_table() {
        // "日本語" in Shift_JIS.
        let sjis = b"\x93\xfa\x96\x7b\x8c\xea";
        let mut meta_sjis = b"<html><head><meta charset=\"shift_jis\"></head><body>".to_vec();
        meta_sjis.extend_from_slice(sjis);
        let mut equiv =
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1251\">"
                .to_vec();
        equiv.extend_from_slice(b"\xcf\xf0\xe8\xe2\xe5\xf2"); // "Привет"
        type Case<'a> = (Vec<u8>, Option<&'a str>, bool, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (b"plain ascii".to_vec(), None, false, "plain ascii", "UTF-8"),
            (
                "caf\u{e9}".as_bytes().to_vec(),
                None,
                false,
                "caf\u{e9}",
                "UTF-8",
            ),
            (
                b"caf\xe9 cr\xe8me".to_vec(),
                None,
                false,
                "caf\u{e9} cr\u{e8}me",
                "windows-1252",
            ),
            (
                b"\x93smart\x94".to_vec(),
                None,
                false,
                "\u{201c}smart\u{201d}",
                "windows-1252",
            ),
            (
                sjis.to_vec(),
                Some("Shift_JIS"),
                false,
                "日本語",
                "Shift_JIS",
            ),
            (sjis.to_vec(), Some(" sjis "), false, "日本語", "Shift_JIS"),
            (meta_sjis, None, true, "日本語", "Shift_JIS"),
            (equiv, None, true, "Привет", "windows-1251"),
            (
                b"\xef\xbb\xbfBOM wins".to_vec(),
                Some("iso-8859-1"),
                false,
                "BOM wins",
                "UTF-8",
            ),
            (
                b"\xff\xfeh\x00i\x00".to_vec(),
                None,
                false,
                "hi",
                "UTF-16LE",
            ),
            (
                b"<meta charset=utf-16><p>x".to_vec(),
                None,
                true,
                "<meta charset=utf-16><p>x",
                "UTF-8",
            ),
            (
                b"<?xml version='1.0' encoding='ISO-8859-1'?><a>\xe9</a>".to_vec(),
                None,
                false,
                "<?xml version='1.0' encoding='ISO-8859-1'?><a>\u{e9}</a>",
                "windows-1252",
            ),
            (
                b"bad label".to_vec(),
                Some("no-such-charset"),
                false,
                "bad label",
                "UTF-8",
            ),
        ];
        for (body, declared, html, want_text, want_enc) in cases {
            let (text, enc) = convert(&body, declared, html);
            assert!(text.ends_with(want_text), "{want_enc}: got {text:?}");
            assert_eq!(enc, want_enc, "{text:?}");
        }
    }

    #[test]
    fn meta_outside_the_prescan_window_is_ignored() {
        let mut body = vec![b' '; 2000];
        body.extend_from_slice(b"<meta charset=shift_jis>");
        assert_eq!(detect(&body, None, true), UTF_8);
    }
}

//! Internet mail (`message/rfc822`, `.eml`): headers, MIME parts, transfer encodings.
//!
//! SpamAssassin's `body` rules see the decoded, rendered text of a mail, its `header` rules
//! the mail's header fields. This module unfolds and decodes the header (RFC 5322, RFC 2047
//! encoded words), walks `multipart/*` parts (RFC 2046) up to a depth and part limit, undoes
//! `base64`/`quoted-printable`, converts each text part's charset and renders HTML parts.

use base64::Engine;

use super::charset;
use super::html::{self, UriSet};

/// Deepest multipart nesting followed.
const MAX_DEPTH: usize = 8;
/// Most parts visited per message.
const MAX_PARTS: usize = 256;

/// A mail rendered for the classifiers.
#[derive(Debug, Default)]
pub struct Mail {
    /// Header fields, lowercase name and decoded value, in order.
    pub headers: Vec<(String, String)>,
    /// Subject line, then the visible text of every text part.
    pub text: String,
    /// The decoded (not rendered) text parts, markup kept.
    pub raw_text: String,
}

/// Renders a mail, adding URIs from its text and HTML parts to `uris`.
pub fn render(body: &[u8], uris: &mut UriSet) -> Mail {
    let (head, rest) = split_head(body);
    let headers = parse_headers(head);
    let mut mail = Mail::default();
    if let Some((_, subject)) = headers.iter().find(|(n, _)| n == "subject") {
        mail.text.push_str(subject);
        mail.text.push('\n');
    }
    let mut walker = Walker {
        mail: &mut mail,
        uris,
        parts: 0,
    };
    walker.part(&headers, rest, 0);
    mail.headers = headers;
    let trimmed = mail.text.trim_end().len();
    mail.text.truncate(trimmed);
    mail
}

struct Walker<'a> {
    mail: &'a mut Mail,
    uris: &'a mut UriSet,
    parts: usize,
}

impl Walker<'_> {
    fn part(&mut self, headers: &[(String, String)], body: &[u8], depth: usize) {
        self.parts += 1;
        if self.parts > MAX_PARTS || depth > MAX_DEPTH {
            return;
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let ctype = get("content-type").unwrap_or("text/plain");
        let media = ctype
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let cte = get("content-transfer-encoding")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if media.starts_with("multipart/") {
            if let Some(boundary) = param(ctype, "boundary") {
                for sub in split_multipart(body, &boundary) {
                    let (h, b) = split_head(sub);
                    self.part(&parse_headers(h), b, depth + 1);
                }
            }
            return;
        }
        if media == "message/rfc822" {
            let (h, b) = split_head(body);
            self.part(&parse_headers(h), b, depth + 1);
            return;
        }
        let is_html = media == "text/html";
        if !(media == "text/plain" || is_html || media.is_empty()) {
            return; // attachments and images: not text
        }
        let decoded = match cte.as_str() {
            "base64" => decode_base64(body),
            "quoted-printable" => decode_qp(body),
            _ => body.to_vec(),
        };
        let declared = param(ctype, "charset");
        let enc = charset::detect(&decoded, declared.as_deref(), is_html);
        let text = charset::to_utf8(&decoded, enc);
        let rendered = if is_html {
            html::to_text(&text, self.uris)
        } else {
            text.clone()
        };
        self.mail.raw_text.push_str(&text);
        self.mail.raw_text.push('\n');
        self.mail.text.push_str(rendered.trim_end());
        self.mail.text.push('\n');
    }
}

/// Splits at the first empty line: (header block, body).
fn split_head(msg: &[u8]) -> (&[u8], &[u8]) {
    let mut line_start = 0;
    while line_start < msg.len() {
        let end = msg[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(msg.len(), |p| line_start + p);
        let line = &msg[line_start..end];
        if line.is_empty() || line == b"\r" {
            return (&msg[..line_start], msg.get(end + 1..).unwrap_or_default());
        }
        line_start = end + 1;
    }
    (msg, &[])
}

/// Unfolds and parses header fields; values have RFC 2047 encoded words decoded.
pub fn parse_headers(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(' ') {
                fields.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
        }
    }
    for (_, v) in &mut fields {
        if v.contains("=?") {
            *v = decode_encoded_words(v);
        }
    }
    fields
}

/// A parameter of a structured header value: `boundary="abc"` → `abc`.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let v = v.trim().trim_matches('"');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// The parts between `--boundary` delimiter lines, up to the closing `--boundary--`.
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos <= body.len() {
        let end = body[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |p| pos + p);
        let line = body[pos..end]
            .strip_suffix(b"\r")
            .unwrap_or(&body[pos..end]);
        // RFC 2046 §5.1.1: `--boundary`, `--` for the last one, then only white space (a
        // line that goes on, such as a nested part's `--boundary0`, is not a delimiter).
        let after = line.strip_prefix(delim.as_bytes()).map(|a| {
            let closing = a.starts_with(b"--");
            let pad = if closing { &a[2..] } else { a };
            (closing, pad.iter().all(|c| matches!(c, b' ' | b'\t')))
        });
        if let Some((closing, true)) = after {
            if let Some(s) = start {
                parts.push(&body[s..pos.saturating_sub(1).max(s)]);
            }
            if closing || parts.len() >= MAX_PARTS {
                return parts;
            }
            start = Some((end + 1).min(body.len()));
        }
        pos = end + 1;
    }
    if let Some(s) = start {
        parts.push(&body[s..]);
    }
    parts
}

/// Lenient base64: whitespace and junk outside the alphabet are skipped.
fn decode_base64(body: &[u8]) -> Vec<u8> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    let mut clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
        .collect();
    if clean.len() % 4 == 1 {
        clean.pop(); // a lone trailing sextet carries no whole byte
    }
    LENIENT.decode(&clean).unwrap_or_default()
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` escapes and `=` soft line breaks.
fn decode_qp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'=' => {
                let rest = &body[i + 1..];
                if rest.starts_with(b"\r\n") {
                    i += 3;
                } else if rest.starts_with(b"\n") {
                    i += 2;
                } else if let Some(byte) = rest.get(..2).and_then(hex_byte) {
                    out.push(byte);
                    i += 3;
                } else {
                    out.push(b'=');
                    i += 1;
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(two).ok()?;
    u8::from_str_radix(s, 16).ok()
}

/// RFC 2047: `=?charset?B?...?=` and `=?charset?Q?...?=` words in a header value.
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let decoded = rest[start + 2..].split_once('?').and_then(|(cs, r)| {
            let (kind, r) = r.split_once('?')?;
            // The encoded text has no `?` (RFC 2047 §2), so the word ends at the next one,
            // which must be followed by `=`: looking past it for a `?=` made a value of many
            // `=?x` (no `?=` anywhere) quadratic, ~50 s for a 300 KB header line.
            let (payload, after) = r.split_once('?')?;
            let after = after.strip_prefix('=')?;
            let bytes = match kind {
                "B" | "b" => decode_base64(payload.as_bytes()),
                "Q" | "q" => decode_qp(payload.replace('_', " ").as_bytes()),
                _ => return None,
            };
            let enc = encoding_rs::Encoding::for_label(cs.as_bytes())?;
            Some((charset::to_utf8(&bytes, enc), after))
        });
        match decoded {
            Some((text, after)) => {
                let between = &rest[..start];
                // White space between two adjacent encoded words is dropped.
                if !(after_word && between.trim().is_empty()) {
                    out.push_str(between);
                }
                out.push_str(&text);
                rest = after;
                after_word = true;
            }
            None => {
                out.push_str(&rest[..start + 2]);
                rest = &rest[start + 2..];
                after_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_str(msg: &str) -> (Mail, Vec<String>) {
        let mut uris = UriSet::new(100, None);
        let mail = render(msg.as_bytes(), &mut uris);
        (mail, uris.into_vec())
    }

    #[test]
    fn a_plain_mail_has_subject_and_body_text_and_its_headers() {
        let (m, _) = render_str(
            "From: a@example.org\r\nSubject: Lunch\r\n  on Friday\r\nX-Spam: no\r\n\r\nSee you at noon.\r\n",
        );
        assert_eq!(m.text, "Lunch on Friday\nSee you at noon.");
        assert!(m.headers.contains(&("x-spam".into(), "no".into())));
        assert_eq!(m.headers[1], ("subject".into(), "Lunch on Friday".into()));
    }

    #[test]
    fn multipart_base64_and_quoted_printable_parts_are_decoded() {
        let html_b64 = base64::engine::general_purpose::STANDARD
            .encode("<p>Cheap <b>pills</b></p><a href=\"http://meds.example/\">buy</a>");
        let msg = format!(
            "Subject: =?UTF-8?B?WW91IGhhdmUgd29u?= =?ISO-8859-1?Q?_a_pr=E9mio?=\n\
             Content-Type: multipart/alternative; boundary=\"XYZ\"\n\n\
             preamble\n--XYZ\nContent-Type: text/plain; charset=iso-8859-1\n\
             Content-Transfer-Encoding: quoted-printable\n\nCaf=E9 is op=\nen\n\
             --XYZ\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n\
             {}\n{}\n--XYZ\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n\
             iVBORw0KGgo=\n--XYZ--\nepilogue\n",
            &html_b64[..20],
            &html_b64[20..]
        );
        let (m, uris) = render_str(&msg);
        assert_eq!(
            m.text,
            "You have won a pr\u{e9}mio\nCaf\u{e9} is open\nCheap pills\nbuy"
        );
        assert!(m.raw_text.contains("<b>pills</b>"));
        assert_eq!(uris, ["http://meds.example/"]);
    }

    /// RFC 2046 §5.1.1: a delimiter line is `--boundary` and then only `--` or white space,
    /// so a part whose own boundary extends the outer one (`b1`, `b10`) is not cut at its
    /// inner delimiters.
    #[test]
    fn a_boundary_that_extends_another_is_not_its_delimiter() {
        let msg = "Subject: s\n\
                   Content-Type: multipart/mixed; boundary=b1\n\n\
                   --b1\n\
                   Content-Type: multipart/alternative; boundary=b10\n\n\
                   --b10\n\
                   Content-Type: text/plain\n\n\
                   first part\n\
                   --b10\n\
                   Content-Type: text/html\n\n\
                   <p>second <b>part</b></p>\n\
                   --b10--\n\
                   --b1 \n\
                   Content-Type: text/plain\n\n\
                   third part\n\
                   --b1x is not a delimiter either\n\
                   Prize: claim now\n\
                   --b1--\n";
        let (m, _) = render_str(msg);
        assert_eq!(
            m.text,
            "s\nfirst part\nsecond part\nthird part\n--b1x is not a delimiter either\nPrize: claim now"
        );
    }

    /// A header value of many unfinished encoded words: each one used to be looked for a
    /// `?=` to the end of the value, so the value cost time quadratic in its length.
    #[test]
    fn unfinished_encoded_words_take_linear_time() {
        let mut msg = String::from("Subject: ");
        msg.push_str(&"=?x".repeat(100_000));
        msg.push_str(" =?UTF-8?Q?caf=C3=A9?=\n\nbody\n");
        let start = std::time::Instant::now();
        let (m, _) = render_str(&msg);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert!(m.text.starts_with("=?x=?x"), "{}", &m.text[..20]);
        assert!(
            m.text.ends_with(" caf\u{e9}\nbody"),
            "{}",
            &m.text[m.text.len() - 20..]
        );
    }

    #[test]
    fn nesting_and_part_counts_are_bounded() {
        let mut msg = String::new();
        for i in 0..50 {
            msg.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
            ));
        }
        msg.push_str("Content-Type: text/plain\n\ndeep text\n");
        let (m, _) = render_str(&msg);
        assert!(!m.text.contains("deep text"), "beyond MAX_DEPTH");
    }
}

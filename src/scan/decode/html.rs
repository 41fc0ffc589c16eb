//! HTML to visible text, and URI extraction from markup and plain text.
//!
//! Uses html5ever's spec-compliant tokenizer as a streaming sink (no DOM is built, so memory
//! stays linear in the text): character tokens become text, `script`/`style`/`template`
//! content is skipped, block elements become line breaks, and `href`/`src`/`action` (and
//! similar) attributes are collected as URIs.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::OnceLock;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, CharacterTokens, EndTag, NullCharacterToken, StartTag, Tag, TagToken, Token,
    TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::TokenizerResult;

/// Longest URI kept; longer ones are dropped (they are not links a person follows).
const MAX_URI_LEN: usize = 4096;

/// A deduplicated, capped, ordered set of URIs.
pub struct UriSet {
    seen: HashSet<String>,
    list: Vec<String>,
    cap: usize,
    base: Option<url::Url>,
}

impl UriSet {
    /// An empty set keeping at most `cap` URIs; relative references resolve against `base`.
    pub fn new(cap: usize, base: Option<&str>) -> UriSet {
        UriSet {
            seen: HashSet::new(),
            list: Vec::new(),
            cap,
            base: base.and_then(|b| url::Url::parse(b).ok()),
        }
    }

    /// Adds one URI (trimmed, resolved when relative and a base is known). A schemeless
    /// `www.` link is added as written and as `http://…`, SpamAssassin's canonical form, so
    /// `uri` rules anchored at `^https?://` see it.
    pub fn push(&mut self, raw: &str) {
        if self.list.len() >= self.cap {
            return;
        }
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') || raw.len() > MAX_URI_LEN {
            return;
        }
        let uri = match &self.base {
            Some(base) if !has_scheme(raw) => base
                .join(raw)
                .map(String::from)
                .unwrap_or_else(|_| raw.to_string()),
            _ => raw.to_string(),
        };
        self.insert(uri);
        if is_www(raw) {
            self.insert(format!("http://{raw}"));
        }
    }

    fn insert(&mut self, uri: String) {
        if self.list.len() < self.cap && self.seen.insert(uri.clone()) {
            self.list.push(uri);
        }
    }

    /// The URIs in the order they were first seen.
    pub fn into_vec(self) -> Vec<String> {
        self.list
    }
}

/// A link that starts with `www.` (any case).
fn is_www(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("www."))
}

/// `scheme:` per RFC 3986 (letters, then letters/digits/`+-.`, then a colon), or `www.`.
fn has_scheme(s: &str) -> bool {
    if is_www(s) {
        return true;
    }
    match s.find(':') {
        Some(i) if i > 0 => {
            let scheme = &s[..i];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        _ => false,
    }
}

/// Adds `http(s)://…` and `www.…` URIs found in plain text.
pub fn extract_text_uris(text: &str, uris: &mut UriSet) {
    static RE: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r#"(?i)(?-u:\b)(?:https?://|www\.)[^\s<>"'`{}|\\^\x00-\x1f]+"#).ok()
    });
    let Some(re) = re else { return };
    for m in re.find_iter(text) {
        let uri = m
            .as_str()
            .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}', '\'', '*']);
        uris.push(uri);
    }
}

/// Renders HTML `source` to visible text, adding URIs from link attributes to `uris`.
pub fn to_text(source: &str, uris: &mut UriSet) -> String {
    let sink = TextSink {
        state: RefCell::new(SinkState {
            out: String::with_capacity(source.len() / 2),
            skipping: None,
            pending_space: false,
            uris: std::mem::replace(uris, UriSet::new(0, None)),
        }),
    };
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(&split_long_tags(source)));
    // The sink never returns Script, so feed runs to the end; loop defensively anyway.
    while let TokenizerResult::Script(()) = tokenizer.feed(&input) {}
    tokenizer.end();
    let state = tokenizer.sink.state.into_inner();
    *uris = state.uris;
    let mut out = state.out;
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    out
}

/// Most attributes one tag is handed to html5ever with. Its tokenizer compares each new
/// attribute name with every earlier one of the tag (the duplicate check), so one tag of n
/// attributes costs n²/2 comparisons: 40,000 took 1.8 s, and an 8 MiB body of one tag would
/// hold a scan worker for most of an hour. Longer tags are split ([`split_long_tags`]).
const MAX_TAG_ATTRS: usize = 256;

/// `source` with every tag of more than [`MAX_TAG_ATTRS`] attributes split into tags of the
/// same name (`<a a1 … a256 /><a a257 …>`), which keeps their URIs and renders the same text
/// (every part but the last self-closes, so a hidden element's raw text starts where it did).
/// To find tags where the tokenizer finds them, this follows its states as [`TextSink`]
/// drives them: comments (spec states), doctypes and bogus comments, and the raw text of the
/// elements the sink hides (script's escapes included); otherwise text in a comment or a
/// script that looks like an unclosed quoted attribute could hide a real tag from it.
fn split_long_tags(source: &str) -> Cow<'_, str> {
    let b = source.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'<', &b[i..]) {
        let lt = i + off;
        let (end_tag, name_at) = match b.get(lt + 1) {
            Some(b'/') => (true, lt + 2),
            _ => (false, lt + 1),
        };
        match (b.get(lt + 1), b.get(name_at)) {
            (Some(b'!'), _) => {
                i = if b[lt + 2..].starts_with(b"--") {
                    skip_comment(b, lt + 4)
                } else {
                    skip_past_gt(b, lt + 2)
                };
                continue;
            }
            (Some(b'?'), _) => {
                i = skip_past_gt(b, lt + 2);
                continue;
            }
            (_, Some(c)) if c.is_ascii_alphabetic() => {}
            (Some(b'/'), Some(_)) => {
                // `</>` is dropped, `</` and anything else is a bogus comment.
                i = skip_past_gt(b, lt + 2);
                continue;
            }
            _ => {
                i = lt + 1;
                continue;
            }
        }
        let name_end = b[name_at..]
            .iter()
            .position(|&c| is_tag_space(c) || c == b'/' || c == b'>')
            .map_or(b.len(), |p| name_at + p);
        let mut split = |at: usize, out: &mut String| {
            out.push_str(&source[copied..at]);
            out.push_str(" /><");
            out.push_str(&source[lt + 1..name_end]);
            out.push(' ');
            copied = at;
        };
        let (after, self_closing) = scan_attributes(b, name_end, |at| split(at, &mut out));
        if after > b.len() {
            break;
        }
        i = after;
        if end_tag || self_closing {
            continue;
        }
        let name = &b[name_at..name_end];
        i = match HIDDEN
            .iter()
            .find(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        {
            Some(&"script") => skip_script(b, i),
            Some(hidden) => skip_raw_text(b, i, hidden),
            None => i,
        };
    }
    if copied == 0 {
        return Cow::Borrowed(source);
    }
    out.push_str(&source[copied..]);
    Cow::Owned(out)
}

/// The elements whose content [`is_hidden_content`] makes raw text.
const HIDDEN: [&str; 7] = [
    "script", "style", "xmp", "iframe", "noembed", "noframes", "template",
];

/// White space between attributes (the tokenizer turns CR into LF first).
fn is_tag_space(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// Just past the next `>` at or after `from` (the end of a doctype or bogus comment).
fn skip_past_gt(b: &[u8], from: usize) -> usize {
    memchr::memchr(b'>', b.get(from..).unwrap_or_default()).map_or(b.len(), |p| from + p + 1)
}

/// Follows a tag's attributes from `from` (just after its name) to just past its `>`
/// (`b.len() + 1` when the input ends inside it), calling `split` at the start of every
/// attribute name after each [`MAX_TAG_ATTRS`]th. Also says whether the tag self-closes.
fn scan_attributes(b: &[u8], from: usize, mut split: impl FnMut(usize)) -> (usize, bool) {
    let mut j = from;
    let mut attrs = 0;
    let mut slash = false;
    loop {
        // Before (or after) an attribute name: white space and `/` are skipped.
        while let Some(&c) = b.get(j) {
            if c == b'/' {
                slash = true;
            } else if is_tag_space(c) {
                slash = false;
            } else {
                break;
            }
            j += 1;
        }
        match b.get(j) {
            None => return (b.len() + 1, false),
            Some(b'>') => return (j + 1, slash && b[j - 1] == b'/'),
            Some(_) => {}
        }
        slash = false;
        if attrs == MAX_TAG_ATTRS {
            split(j);
            attrs = 0;
        }
        attrs += 1;
        // The name: its first character may be `=`.
        j += 1;
        while b
            .get(j)
            .is_some_and(|&c| !is_tag_space(c) && !matches!(c, b'/' | b'>' | b'='))
        {
            j += 1;
        }
        let mut k = j;
        while b.get(k).copied().is_some_and(is_tag_space) {
            k += 1;
        }
        if b.get(k) != Some(&b'=') {
            j = k;
            continue;
        }
        j = k + 1;
        while b.get(j).copied().is_some_and(is_tag_space) {
            j += 1;
        }
        match b.get(j) {
            Some(&q @ (b'"' | b'\'')) => match memchr::memchr(q, &b[j + 1..]) {
                Some(p) => j += p + 2,
                None => return (b.len() + 1, false),
            },
            Some(b'>') | None => {}
            Some(_) => {
                while b.get(j).is_some_and(|&c| !is_tag_space(c) && c != b'>') {
                    j += 1;
                }
            }
        }
    }
}

/// Just past the comment whose text starts at `from` (after `<!--`), as the tokenizer's
/// comment states end it (`-->`, `--!>`, `<!-->`, a nested `<!--` followed by `>`, …).
fn skip_comment(b: &[u8], from: usize) -> usize {
    #[derive(Clone, Copy)]
    enum S {
        Start,
        StartDash,
        Text,
        Lt,
        LtBang,
        LtBangDash,
        EndDash,
        End,
        EndBang,
    }
    let mut s = S::Start;
    let mut j = from;
    while let Some(&c) = b.get(j) {
        s = match (s, c) {
            (S::Start | S::StartDash | S::End | S::EndBang, b'>') => return j + 1,
            (S::Start, b'-') => S::StartDash,
            (S::StartDash | S::EndDash, b'-') => S::End,
            (S::Text | S::Lt, b'<') => S::Lt,
            (S::Text, b'-') => S::EndDash,
            (S::Lt, b'!') => S::LtBang,
            (S::LtBang, b'-') => S::LtBangDash,
            (S::LtBangDash, b'-') => {
                // `<!--` inside a comment: what follows is read in the comment end state.
                s = S::End;
                j += 1;
                continue;
            }
            (S::LtBangDash, _) => {
                s = S::EndDash;
                continue; // reconsumed
            }
            (S::End, b'!') => S::EndBang,
            (S::End, b'-') => S::End,
            (S::EndBang, b'-') => S::EndDash,
            (S::Lt | S::LtBang | S::End, _) => {
                s = S::Text;
                continue; // reconsumed
            }
            _ => S::Text,
        };
        j += 1;
    }
    b.len()
}

/// `name` (ASCII, lowercase) at `at`, any case, followed by white space, `/` or `>`.
fn names_at(b: &[u8], at: usize, name: &str) -> bool {
    let end = at + name.len();
    b.get(at..end)
        .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
        && b.get(end)
            .is_some_and(|&c| is_tag_space(c) || c == b'/' || c == b'>')
}

/// The `<` of the end tag `</name` that ends raw text starting at `from` (or the input's end).
fn skip_raw_text(b: &[u8], from: usize, name: &str) -> usize {
    let mut j = from;
    while let Some(p) = memchr::memchr(b'<', b.get(j..).unwrap_or_default()) {
        let lt = j + p;
        if b.get(lt + 1) == Some(&b'/') && names_at(b, lt + 2, name) {
            return lt;
        }
        j = lt + 1;
    }
    b.len()
}

/// The `<` of the `</script` that ends script data starting at `from`, following the
/// tokenizer's escaped (`<!--`) and double-escaped (`<!--<script>`) states.
fn skip_script(b: &[u8], from: usize) -> usize {
    // 0: script data, 1: escaped, 2: double escaped.
    let (mut mode, mut dashes) = (0u8, 0usize);
    let mut j = from;
    while let Some(&c) = b.get(j) {
        match c {
            b'-' => dashes += 1,
            b'>' if mode > 0 && dashes >= 2 => {
                mode = 0;
                dashes = 0;
            }
            b'<' => {
                dashes = 0;
                let end = b.get(j + 1) == Some(&b'/');
                let at = j + 1 + usize::from(end);
                if end && mode < 2 && names_at(b, at, "script") {
                    return j;
                }
                if mode == 0 && b[j + 1..].starts_with(b"!--") {
                    mode = 1;
                    dashes = 2;
                    j += 4;
                    continue;
                }
                if mode > 0 && names_at(b, at, "script") {
                    // `<script` enters the double-escaped state, `</script` leaves it.
                    mode = if end { 1 } else { 2 };
                    j = at + "script".len() + 1;
                    continue;
                }
            }
            _ => dashes = 0,
        }
        j += 1;
    }
    b.len()
}

/// Elements whose content is not visible text.
fn is_hidden_content(name: &str) -> Option<RawKind> {
    match name {
        "script" => Some(RawKind::ScriptData),
        "style" | "xmp" | "iframe" | "noembed" | "noframes" => Some(RawKind::Rawtext),
        "template" => Some(RawKind::Rawtext),
        _ => None,
    }
}

/// Elements that start or end a line of text.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "br"
            | "dd"
            | "details"
            | "dialog"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "header"
            | "hr"
            | "li"
            | "main"
            | "nav"
            | "ol"
            | "p"
            | "pre"
            | "section"
            | "summary"
            | "table"
            | "tr"
            | "ul"
            | "title"
            | "caption"
            | "option"
            | "body"
            | "head"
            | "html"
    )
}

/// Attributes that hold a URI.
fn is_uri_attr(name: &str) -> bool {
    matches!(
        name,
        "href" | "src" | "action" | "formaction" | "background" | "poster" | "cite" | "data"
    )
}

struct SinkState {
    out: String,
    /// The element whose raw content is being skipped (`script`, `style`, ...).
    skipping: Option<String>,
    pending_space: bool,
    uris: UriSet,
}

impl SinkState {
    /// Appends text with HTML whitespace collapsing (runs of white space become one space).
    fn text(&mut self, s: &str) {
        if s.starts_with(char::is_whitespace) {
            self.pending_space = true;
        }
        // ASCII text (the common case) splits several times faster.
        if s.is_ascii() {
            self.words(s.split_ascii_whitespace());
        } else {
            self.words(s.split_whitespace());
        }
        if s.ends_with(char::is_whitespace) {
            self.pending_space = true;
        }
    }

    fn words<'a>(&mut self, words: impl Iterator<Item = &'a str>) {
        for (i, word) in words.enumerate() {
            if i > 0 {
                self.pending_space = true;
            }
            if self.pending_space && !self.out.is_empty() && !self.out.ends_with('\n') {
                self.out.push(' ');
            }
            self.pending_space = false;
            self.out.push_str(word);
        }
    }

    fn line_break(&mut self) {
        self.pending_space = false;
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    fn tag(&mut self, tag: &Tag) -> TokenSinkResult<()> {
        let name: &str = &tag.name;
        if let Some(skipping) = &self.skipping {
            if tag.kind == EndTag && skipping == name {
                self.skipping = None;
            }
            return TokenSinkResult::Continue;
        }
        if is_block(name) {
            self.line_break();
        } else if matches!(name, "td" | "th" | "img") {
            self.pending_space = true;
        }
        if tag.kind != StartTag {
            return TokenSinkResult::Continue;
        }
        for attr in &tag.attrs {
            let attr_name: &str = &attr.name.local;
            if is_uri_attr(attr_name) {
                self.uris.push(&attr.value);
            } else if attr_name == "srcset" {
                for candidate in attr.value.split(',') {
                    if let Some(u) = candidate.split_whitespace().next() {
                        self.uris.push(u);
                    }
                }
            }
        }
        if name == "meta" {
            self.meta_refresh(tag);
        }
        match is_hidden_content(name) {
            Some(kind) if !tag.self_closing => {
                self.skipping = Some(name.to_string());
                TokenSinkResult::RawData(kind)
            }
            _ => TokenSinkResult::Continue,
        }
    }

    /// `<meta http-equiv="refresh" content="0; url=...">` is a redirect: keep its target.
    fn meta_refresh(&mut self, tag: &Tag) {
        let attr = |n: &str| {
            tag.attrs
                .iter()
                .find(|a| &*a.name.local == n)
                .map(|a| a.value.to_string())
        };
        let is_refresh = attr("http-equiv").is_some_and(|v| v.eq_ignore_ascii_case("refresh"));
        if let (true, Some(content)) = (is_refresh, attr("content")) {
            let lower = content.to_ascii_lowercase();
            if let Some(i) = lower.find("url=") {
                let target = content[i + 4..]
                    .trim_matches(|c: char| c == '\'' || c == '"' || c.is_whitespace());
                self.uris.push(target);
            }
        }
    }
}

struct TextSink {
    state: RefCell<SinkState>,
}

impl TokenSink for TextSink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut st = self.state.borrow_mut();
        match token {
            TagToken(tag) => st.tag(&tag),
            CharacterTokens(t) if st.skipping.is_none() => {
                st.text(&t);
                TokenSinkResult::Continue
            }
            NullCharacterToken | CharacterTokens(_) | Token::CommentToken(_) => {
                TokenSinkResult::Continue
            }
            _ => TokenSinkResult::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(html: &str) -> (String, Vec<String>) {
        let mut uris = UriSet::new(100, None);
        let text = to_text(html, &mut uris);
        extract_text_uris(&text, &mut uris);
        (text, uris.into_vec())
    }

    #[test]
    fn html_to_text_drops_script_style_and_comments() {
        let (text, _) = render(
            "<html><head><title>Win  big</title><style>p{color:red}</style>\
             <script>var x = '<p>not text</p>';</script></head>\
             <body><!-- hidden comment --><p>Hello&nbsp;&amp; welcome</p>\
             <div>line <b>two</b></div>text<br>after break<template><p>tpl</p></template>\
             <ul><li>one</li><li>two</li></ul></body></html>",
        );
        assert_eq!(
            text,
            "Win big\nHello & welcome\nline two\ntext\nafter break\none\ntwo"
        );
        for gone in ["color", "not text", "hidden comment", "tpl", "var x"] {
            assert!(!text.contains(gone), "{gone} leaked into {text:?}");
        }
    }

    #[test]
    fn uris_come_from_attributes_and_text() {
        let (_, uris) = render(
            "<a href='http://a.example/x'>a</a><img src=\"//cdn.example/i.png\">\
             <form action=\"https://login.example/post\"></form>\
             <a href=\"http://a.example/x\">dup</a><a href=\"#top\">top</a>\
             <meta http-equiv=Refresh content=\"0; URL='http://go.example/r'\">\
             <p>visit www.spam.example/buy, or https://b.example/path?q=1.</p>\
             <script>location='http://in-script.example/'</script>",
        );
        assert_eq!(
            uris,
            [
                "http://a.example/x",
                "//cdn.example/i.png",
                "https://login.example/post",
                "http://go.example/r",
                "www.spam.example/buy",
                "http://www.spam.example/buy",
                "https://b.example/path?q=1",
            ]
        );
    }

    #[test]
    fn relative_uris_resolve_against_the_request_url() {
        let mut uris = UriSet::new(10, Some("http://site.example/dir/page.html"));
        to_text(
            "<a href=\"../x\">x</a><a href=\"mailto:a@b.example\">m</a>",
            &mut uris,
        );
        assert_eq!(
            uris.into_vec(),
            ["http://site.example/x", "mailto:a@b.example"]
        );
    }

    #[test]
    fn uri_count_is_capped() {
        let html: String = (0..50)
            .map(|i| format!("<a href=\"http://h{i}.example/\">x</a>"))
            .collect();
        let mut uris = UriSet::new(7, None);
        to_text(&html, &mut uris);
        assert_eq!(uris.into_vec().len(), 7);
    }

    #[test]
    fn plain_text_uris_strip_trailing_punctuation() {
        let mut uris = UriSet::new(10, None);
        extract_text_uris(
            "See (http://x.example/a). Also HTTPS://Y.example!",
            &mut uris,
        );
        assert_eq!(uris.into_vec(), ["http://x.example/a", "HTTPS://Y.example"]);
    }

    /// One tag of many distinct attributes: html5ever's duplicate-attribute check made it
    /// quadratic (100,000 attributes took ~11 s). Split, it takes linear time, and the URI in
    /// its last attribute and the text after it are kept; a hidden element stays hidden.
    #[test]
    fn a_tag_of_many_attributes_takes_linear_time() {
        let attrs: String = (0..100_000).map(|i| format!("a{i} ")).collect();
        let html = format!("<p {attrs}href=\"http://last.example/\">after</p>");
        let start = std::time::Instant::now();
        let (text, uris) = render(&html);
        let took = start.elapsed();
        assert!(took < std::time::Duration::from_secs(1), "{took:?}");
        assert_eq!(text, "after");
        assert_eq!(uris, ["http://last.example/"]);
        let (text, _) = render(&format!("<script {attrs}>secret()</script>shown"));
        assert_eq!(text, "shown");
    }

    /// The splitter finds tags where the tokenizer does: not inside comments, raw text or
    /// quoted values, whatever they hold; and leaves ordinary markup alone (no copy).
    #[test]
    fn long_tags_are_found_where_the_tokenizer_finds_tags() {
        let attrs: String = (0..600).map(|i| format!("a{i} ")).collect();
        for prefix in [
            "",
            "<!-- <x y=\" -->",
            "<!--<!-->",
            "<!-- a <!-- b --!>",
            "<script>if (a<b && c) x(\"<x y='\")</script>",
            "<script><!--<script>x</script>--></script>",
            "<SCRIPT>x</script >",
            "<style>a[y=\"</style>",
            "<!doctype html public \"<x y='\">",
            "<? x=\" ?>",
            "</ x=\" >",
            "<a title='>' z=\"<a\" w=v>",
            "<br/>",
            "<script/>",
        ] {
            let html = format!("{prefix}<i {attrs}>");
            let split = split_long_tags(&html);
            assert_eq!(split.matches(" /><i ").count(), 2, "{prefix}");
            assert!(split.starts_with(prefix), "{prefix}");
        }
        for hidden in ["<script>x(\"<i \");", "<!-- <i ", "<style><!--</style x>"] {
            let html = format!("{hidden}{attrs}>");
            assert!(
                matches!(split_long_tags(&html), Cow::Borrowed(_)),
                "{hidden}"
            );
        }
        assert!(matches!(
            split_long_tags("<p a b=c d='e'>x</p><!-- y -->"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn unclosed_script_hides_the_rest_without_panicking() {
        let (text, _) = render("<p>before</p><script>never closed <p>x</p>");
        assert_eq!(text, "before");
    }
}

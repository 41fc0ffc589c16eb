//! HTML to visible text, and URI extraction from markup and plain text.
//!
//! Uses html5ever's spec-compliant tokenizer as a streaming sink (no DOM is built, so memory
//! stays linear in the text): character tokens become text, `script`/`style`/`template`
//! content is skipped, block elements become line breaks, and `href`/`src`/`action` (and
//! similar) attributes are collected as URIs.

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
    input.push_back(StrTendril::from_slice(source));
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

    #[test]
    fn unclosed_script_hides_the_rest_without_panicking() {
        let (text, _) = render("<p>before</p><script>never closed <p>x</p>");
        assert_eq!(text, "before");
    }
}

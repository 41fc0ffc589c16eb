//! Rule-file lines into [`Item`]s: `body`, `rawbody`, `uri`, `header`, `meta`, `score`,
//! `describe`. Unknown directives are warnings; `if`/`ifplugin` blocks are skipped (with a
//! warning) because sluice has no SpamAssassin plugins; `eval:` tests never fire.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::pattern::{split_regex, Pattern};
use crate::config::MAX_SCORE;
use crate::scan::LoadError;

/// Where an item was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub file: PathBuf,
    pub line: usize,
}

impl Pos {
    /// A [`LoadError`] at this position.
    pub fn err(&self, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self.file.clone(),
            line: self.line,
            message: message.into(),
        }
    }
}

/// Which part of a document a test looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TestKind {
    /// Visible text (`Document::text`).
    Body,
    /// The whole decoded body with markup (`Document::raw_text`).
    Rawbody,
    /// Each URI (`Document::uris`).
    Uri,
    /// Header field values (`Document::headers`).
    Header,
}

/// Which header values a `header` test reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HeaderTarget {
    /// One field name, lowercase.
    Name(String),
    /// `ALL`: every field as `name: value` lines.
    All,
    /// `ToCc`: the `to` and `cc` fields.
    ToCc,
}

/// What a test matches.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TestSpec {
    /// A regex over the kind's text.
    Regex(Pattern),
    /// `header NAME Field =~ /re/` (or `!~`), with an optional `[if-unset: value]`.
    Header {
        target: HeaderTarget,
        negate: bool,
        pattern: Pattern,
        if_unset: Option<String>,
    },
    /// `header NAME exists:Field`.
    Exists(HeaderTarget),
    /// `eval:` tests need SpamAssassin plugins: defined (for metas and scores) but never fire.
    Never,
}

/// One parsed directive.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Item {
    Test {
        name: String,
        kind: TestKind,
        spec: TestSpec,
        at: Pos,
    },
    Meta {
        name: String,
        expr: String,
        at: Pos,
    },
    Score {
        name: String,
        score: f64,
        at: Pos,
    },
    Describe {
        name: String,
        text: String,
        at: Pos,
    },
}

/// Everything parsed from a set of files.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub items: Vec<Item>,
    pub errors: Vec<LoadError>,
    pub warnings: Vec<LoadError>,
    /// Rules whose definition had an error: later references to them are not errors too.
    pub failed: HashSet<String>,
}

/// Removes a comment: SpamAssassin treats any `#` not preceded by `\` as one.
fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'#' => return &line[..i],
            _ => i += 1,
        }
    }
    line
}

/// Splits off the first whitespace-separated word.
fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn header_target(field: &str) -> HeaderTarget {
    match field {
        "ALL" => HeaderTarget::All,
        "ToCc" => HeaderTarget::ToCc,
        f => HeaderTarget::Name(f.to_ascii_lowercase()),
    }
}

impl Parsed {
    /// Parses one file's bytes; lines that are not UTF-8 are errors.
    pub fn file(&mut self, path: &Path, bytes: &[u8]) {
        let mut skip_depth = 0usize;
        // The outermost `if` being skipped: an unclosed block is reported at its line.
        let mut opened_at = 0usize;
        for (n, raw) in crate::scan::file_lines(bytes).enumerate() {
            let at = Pos {
                file: path.to_path_buf(),
                line: n + 1,
            };
            let Ok(line) = std::str::from_utf8(raw) else {
                self.errors.push(at.err("line is not valid UTF-8"));
                continue;
            };
            let line = strip_comment(line).trim();
            if line.is_empty() {
                continue;
            }
            let (directive, rest) = word(line);
            if skip_depth > 0 {
                match directive {
                    "if" | "ifplugin" => skip_depth += 1,
                    "endif" => skip_depth -= 1,
                    _ => {}
                }
                continue;
            }
            match directive {
                "if" | "ifplugin" => {
                    skip_depth = 1;
                    opened_at = n + 1;
                    self.warnings.push(at.err(format!(
                        "'{directive} {rest}' block skipped (SpamAssassin plugins and conditionals are not supported)"
                    )));
                }
                "endif" | "else" => self
                    .errors
                    .push(at.err(format!("'{directive}' without 'if'"))),
                _ => self.directive(directive, rest, at),
            }
        }
        if skip_depth > 0 {
            self.errors.push(
                Pos {
                    file: path.to_path_buf(),
                    line: opened_at,
                }
                .err("'if' block is not closed by 'endif'"),
            );
        }
    }

    fn directive(&mut self, directive: &str, rest: &str, at: Pos) {
        let kind = match directive {
            "body" => Some(TestKind::Body),
            "rawbody" => Some(TestKind::Rawbody),
            "uri" => Some(TestKind::Uri),
            "header" => Some(TestKind::Header),
            "meta" | "score" | "describe" => None,
            other => {
                self.warnings
                    .push(at.err(format!("unknown directive '{other}' ignored")));
                return;
            }
        };
        let (name, arg) = word(rest);
        if name.is_empty() {
            self.errors
                .push(at.err(format!("'{directive}' needs a rule name")));
            return;
        }
        if !valid_name(name) {
            self.errors.push(at.err(format!(
                "bad rule name '{name}' (letters, digits and '_' only)"
            )));
            return;
        }
        let name = name.to_string();
        let result = match (directive, kind) {
            (_, Some(kind)) => test_spec(kind, arg).map(|spec| Item::Test {
                name,
                kind,
                spec,
                at: at.clone(),
            }),
            ("meta", _) if arg.is_empty() => Err("meta needs an expression".to_string()),
            ("meta", _) => Ok(Item::Meta {
                name,
                expr: arg.to_string(),
                at: at.clone(),
            }),
            ("score", _) => parse_score(arg).map(|score| Item::Score {
                name,
                score,
                at: at.clone(),
            }),
            _ => Ok(Item::Describe {
                name,
                text: arg.to_string(),
                at: at.clone(),
            }),
        };
        match result {
            Ok(item) => self.items.push(item),
            Err(message) => {
                if kind.is_some() || directive == "meta" {
                    self.failed.insert(rest_name(rest));
                }
                self.errors.push(at.err(message));
            }
        }
    }
}

fn rest_name(rest: &str) -> String {
    word(rest).0.to_string()
}

fn test_spec(kind: TestKind, arg: &str) -> Result<TestSpec, String> {
    if arg.starts_with("eval:") {
        return Ok(TestSpec::Never);
    }
    if arg.is_empty() {
        return Err("missing regex".into());
    }
    if kind != TestKind::Header {
        let (pattern, rest) = split_regex(arg)?;
        if !rest.is_empty() {
            return Err(format!("unexpected text after the regex: {rest}"));
        }
        return Ok(TestSpec::Regex(pattern));
    }
    if let Some(field) = arg.strip_prefix("exists:") {
        let field = field.trim();
        if field.is_empty() || field.contains(char::is_whitespace) {
            return Err("exists: needs one header name".into());
        }
        return Ok(TestSpec::Exists(header_target(field)));
    }
    let (field, rest) = word(arg);
    // `Field:raw`, `:addr`, `:name` modifiers: the value is matched as given.
    let field = field.split(':').next().unwrap_or(field);
    let (op, rest) = word(rest);
    let negate = match op {
        "=~" => false,
        "!~" => true,
        _ => {
            return Err(format!(
                "header rule needs '=~' or '!~' after the header name, found '{op}'"
            ))
        }
    };
    let (pattern, rest) = split_regex(rest)?;
    let if_unset = match rest {
        "" => None,
        r => match r
            .strip_prefix("[if-unset:")
            .and_then(|r| r.strip_suffix(']'))
        {
            Some(v) => Some(v.trim().to_string()),
            None => return Err(format!("unexpected text after the regex: {r}")),
        },
    };
    Ok(TestSpec::Header {
        target: header_target(field),
        negate,
        pattern,
        if_unset,
    })
}

/// `score NAME n` or SpamAssassin's four-score form `score NAME n0 n1 n2 n3` (the first is
/// the no-Bayes, no-network score, which is sluice's situation).
fn parse_score(arg: &str) -> Result<f64, String> {
    let parts: Vec<&str> = arg.split_whitespace().collect();
    if parts.len() != 1 && parts.len() != 4 {
        return Err("score needs one number (or SpamAssassin's four)".into());
    }
    let mut first = None;
    for p in parts {
        let n: f64 = p.parse().map_err(|_| format!("bad score '{p}'"))?;
        if !n.is_finite() {
            return Err(format!("bad score '{p}'"));
        }
        // The bound of the config's thresholds: finite scores summed must stay finite, or the
        // verdict's score is infinite, which JSON cannot store.
        if n.abs() > MAX_SCORE {
            return Err(format!(
                "score '{p}' is out of range (at most {MAX_SCORE} either way)"
            ));
        }
        first.get_or_insert(n);
    }
    first.ok_or_else(|| "score needs a number".to_string())
}

//! Regex literals of rule files (`/re/flags`, `m{re}flags`) and how they compile.
//!
//! A pattern the `regex` crate accepts goes into its kind's `RegexSet` (linear time). One it
//! rejects for syntax (look-around, backreferences) but `fancy-regex` accepts is "slow": it runs
//! through fancy-regex's backtracking VM with a backtrack limit, on bounded chunks of text.

/// Backtracking steps allowed per fancy-regex search (one chunk of text).
pub(crate) const BACKTRACK_LIMIT: usize = 100_000;
/// Compiled-size cap of one pattern (hostile rule files stay bounded).
pub(crate) const PATTERN_SIZE_LIMIT: usize = 4 << 20;
/// Compiled-size cap of one kind's whole `RegexSet`.
pub(crate) const SET_SIZE_LIMIT: usize = 64 << 20;
/// Lazy-DFA cache of one `RegexSet`; big enough that a ~100-pattern set does not thrash.
pub(crate) const SET_DFA_LIMIT: usize = 16 << 20;

/// A regex as written in a rule file: the text between the delimiters and the flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// The regex source, delimiter escapes removed.
    pub source: String,
    /// Flags from `imsx`, in the order written.
    pub flags: String,
}

/// How a pattern will run.
#[derive(Debug)]
pub(crate) enum Compiled {
    /// Accepted by the `regex` crate: this text goes into the kind's `RegexSet`.
    Fast(String),
    /// Needs backtracking: runs through fancy-regex with [`BACKTRACK_LIMIT`].
    Slow(Box<fancy_regex::Regex>),
}

/// Splits `/re/flags rest` (or `m<d>re<d>flags rest`) into the pattern and what follows.
pub(crate) fn split_regex(s: &str) -> Result<(Pattern, &str), String> {
    let s = s.trim_start();
    let mut chars = s.char_indices();
    let (open, body_start) = match chars.next() {
        Some((_, '/')) => ('/', 1),
        Some((_, 'm')) => match chars.next() {
            Some((i, c)) if !c.is_alphanumeric() && !c.is_whitespace() && c != '_' => {
                (c, i + c.len_utf8())
            }
            _ => return Err("expected a regex like /pattern/flags".into()),
        },
        _ => return Err("expected a regex like /pattern/flags".into()),
    };
    let close = match open {
        '{' => '}',
        '(' => ')',
        '[' => ']',
        '<' => '>',
        c => c,
    };
    let rest = &s[body_start..];
    let mut source = String::with_capacity(rest.len());
    let mut depth = 0usize;
    let mut end = None;
    let mut it = rest.char_indices();
    while let Some((i, c)) = it.next() {
        if c == '\\' {
            match it.next() {
                // An escaped delimiter that means nothing special to a regex loses its backslash.
                Some((_, d)) if (d == open || d == close) && !is_regex_meta(d) => source.push(d),
                Some((_, d)) => {
                    source.push('\\');
                    source.push(d);
                }
                None => source.push('\\'),
            }
        } else if c == close && depth == 0 {
            end = Some(i + c.len_utf8());
            break;
        } else {
            if open != close {
                if c == open {
                    depth += 1;
                } else if c == close {
                    depth -= 1;
                }
            }
            source.push(c);
        }
    }
    let Some(end) = end else {
        return Err(format!("regex is not terminated by '{close}'"));
    };
    let after = &rest[end..];
    let flag_len = after
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(after.len());
    let flags = &after[..flag_len];
    if let Some(bad) = flags.chars().find(|c| !"imsx".contains(*c)) {
        return Err(format!(
            "unknown regex flag '{bad}' (supported: i, m, s, x)"
        ));
    }
    let tail = &after[flag_len..];
    if !tail.is_empty() && !tail.starts_with(char::is_whitespace) {
        return Err(format!("unexpected text after the regex: {}", tail.trim()));
    }
    Ok((
        Pattern {
            source,
            flags: flags.to_string(),
        },
        tail.trim(),
    ))
}

fn is_regex_meta(c: char) -> bool {
    regex_syntax_meta(c) || c == '#' || c == ' '
}

fn regex_syntax_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' | '-'
    )
}

impl Pattern {
    /// The regex text with its flags as an inline prefix; `multi_line` forces `m` (body rules
    /// match line by line, as SpamAssassin's do).
    pub fn with_flags(&self, multi_line: bool) -> String {
        let mut flags: String = self.flags.chars().filter(|c| *c != 'm').collect();
        if multi_line || self.flags.contains('m') {
            flags.push('m');
        }
        if flags.is_empty() {
            self.source.clone()
        } else {
            format!("(?{flags}){}", self.source)
        }
    }

    /// Compiles: `regex` first (ASCII semantics like Perl on bytes, Unicode when the
    /// pattern needs it), fancy-regex when only backtracking can express it.
    pub fn compile(&self, multi_line: bool) -> Result<Compiled, String> {
        let text = self.with_flags(multi_line);
        let first = match fast_regex(&text) {
            Ok(()) => return Ok(Compiled::Fast(text)),
            Err(e) => e,
        };
        if let regex::Error::CompiledTooBig(limit) = first {
            return Err(format!(
                "regex is too large (compiled size over {limit} bytes)"
            ));
        }
        // Non-ASCII classes need Unicode mode, and so do Unicode classes written in ASCII
        // (`\p{Lu}`), which are no reason to backtrack; `(?u)` as a prefix keeps `x`-mode
        // comments safe.
        let unicode = format!("(?u){text}");
        if fast_regex(&unicode).is_ok() {
            return Ok(Compiled::Fast(unicode));
        }
        match fancy_regex::RegexBuilder::new(&text)
            .backtrack_limit(BACKTRACK_LIMIT)
            .delegate_size_limit(PATTERN_SIZE_LIMIT)
            .delegate_dfa_size_limit(PATTERN_SIZE_LIMIT)
            .build()
        {
            Ok(re) => Ok(Compiled::Slow(Box::new(re))),
            Err(fancy) => Err(format!(
                "invalid regex /{}/: {}",
                self.source,
                condense(&first, &fancy)
            )),
        }
    }
}

fn fast_regex(text: &str) -> Result<(), regex::Error> {
    regex::bytes::RegexBuilder::new(text)
        .unicode(false)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map(|_| ())
}

/// One line out of the regex crate's multi-line error (or fancy-regex's when the pattern
/// uses backtracking syntax, whose own error is the relevant one).
fn condense(re: &regex::Error, fancy: &fancy_regex::Error) -> String {
    let re_msg = re.to_string();
    let last = re_msg
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(re_msg.trim());
    if last.contains("look-around") || last.contains("backreference") {
        fancy.to_string()
    } else {
        last.to_string()
    }
}

/// Largest chunk a slow pattern sees at once: lines longer than this are split.
pub(crate) const CHUNK: usize = 2048;

/// Splits text into lines, and long lines into chunks of at most [`CHUNK`] bytes (at a space
/// when there is one in the second half), so backtracking work per search stays bounded.
pub(crate) fn chunks(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').flat_map(|line| {
        let mut rest = line;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            if rest.len() <= CHUNK {
                let out = rest;
                rest = "";
                return Some(out);
            }
            let mut cut = CHUNK;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if let Some(space) = rest[CHUNK / 2..cut].rfind(' ') {
                cut = CHUNK / 2 + space + 1;
            }
            let (head, tail) = rest.split_at(cut);
            rest = tail;
            Some(head)
        })
    })
}

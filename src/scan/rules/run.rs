//! Running a [`RuleSet`] over a [`Document`]: one `RegexSet` pass per kind, slow patterns
//! chunk by chunk under their backtracking limit, then metas in dependency order.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use super::parse::HeaderTarget;
use super::pattern::chunks;
use super::{meta, HeaderGroup, RuleSet, TextGroup};
use crate::scan::Document;

impl RuleSet {
    /// Which rules hit (indexed like `rules()`), metas included.
    pub(crate) fn hits(&self, doc: &Document) -> Vec<bool> {
        let mut hits = vec![false; self.rules.len()];
        let mut matched = Vec::new();
        self.group(&self.body, &lf_lines(&doc.text), &mut matched);
        self.group(&self.rawbody, &lf_lines(&doc.raw_text), &mut matched);
        for uri in &doc.uris {
            self.group(&self.uri, uri, &mut matched);
        }
        for g in &self.headers {
            self.header_group(g, &doc.headers, &mut matched);
        }
        for r in matched {
            if let Some(h) = hits.get_mut(r) {
                *h = true;
            }
        }
        let mut stack = Vec::new();
        for (rule, steps) in &self.metas {
            let v = meta::eval(
                steps,
                |i| if hits.get(i) == Some(&true) { 1.0 } else { 0.0 },
                &mut stack,
            );
            if let Some(h) = hits.get_mut(*rule) {
                *h = v != 0.0;
            }
        }
        hits
    }

    /// Adds to `out` the rules of `g` whose pattern matches `text`.
    fn group(&self, g: &TextGroup, text: &str, out: &mut Vec<usize>) {
        if let Some(set) = &g.set {
            out.extend(
                set.matches(text.as_bytes())
                    .iter()
                    .filter_map(|k| g.fast.get(k)),
            );
        }
        for (rule, re) in &g.slow {
            if !out.contains(rule) && self.slow_match(*rule, re, text) {
                out.push(*rule);
            }
        }
    }

    /// A slow pattern over bounded chunks; hitting the backtracking limit counts as no match.
    fn slow_match(&self, rule: usize, re: &fancy_regex::Regex, text: &str) -> bool {
        for chunk in chunks(text) {
            match re.is_match(chunk) {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => {
                    self.limit_hits.fetch_add(1, Ordering::Relaxed);
                    let name = self.rules.get(rule).map(|r| r.name.as_str()).unwrap_or("?");
                    tracing::warn!(rule = name, error = %e, "slow rule gave up; treated as not matching");
                    return false;
                }
            }
        }
        false
    }

    /// Header tests for one field: `=~` hits when any value matches, `!~` when none does; a
    /// missing field fires neither unless the test has `[if-unset: value]` (SpamAssassin).
    fn header_group(&self, g: &HeaderGroup, headers: &[(String, String)], out: &mut Vec<usize>) {
        let values: Vec<String> = match &g.target {
            HeaderTarget::Name(n) => headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
                .collect(),
            HeaderTarget::ToCc => headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("to") || k.eq_ignore_ascii_case("cc"))
                .map(|(_, v)| v.clone())
                .collect(),
            HeaderTarget::All if headers.is_empty() => Vec::new(),
            HeaderTarget::All => vec![headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()],
        };
        if !values.is_empty() {
            out.extend(g.exists.iter().copied());
        }
        let mut matched = Vec::new();
        for v in &values {
            self.group(&g.group, v, &mut matched);
        }
        for t in &g.tests {
            let hit = if values.is_empty() {
                match &t.if_unset {
                    Some(v) => {
                        let mut m = Vec::new();
                        self.group(&g.group, v, &mut m);
                        m.contains(&t.rule) != t.negate
                    }
                    None => false,
                }
            } else {
                matched.contains(&t.rule) != t.negate
            };
            if hit {
                out.push(t.rule);
            }
        }
    }
}

/// `text` with CRLF line ends as LF. Plain text and mail keep the sender's line ends, and a
/// multi-line `$` matches only before `\n`: `/^free money$/` missed every line of a CRLF body.
fn lf_lines(text: &str) -> Cow<'_, str> {
    if memchr::memmem::find(text.as_bytes(), b"\r\n").is_some() {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

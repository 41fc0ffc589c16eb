//! SpamAssassin-style rules from `scan.rules/*.cf`.
//!
//! - `parse`: rule-file lines into items (`body`, `rawbody`, `uri`, `header`, `meta`, `score`,
//!   `describe`); unknown directives are warnings.
//! - `pattern`: `/re/flags` literals; fast (`regex`) vs slow (`fancy-regex`) compilation.
//! - `meta`: meta expressions parsed to postfix and evaluated like SpamAssassin (Perl).
//! - `compile`: items into a [`RuleSet`]: one `RegexSet` per kind, metas in dependency order.
//! - `run`: the [`Classifier`] implementation.
//!
//! Matching follows SpamAssassin: `body`/`rawbody` patterns match line by line (`^`/`$` at
//! line ends); patterns have ASCII semantics like Perl on bytes (`(?u)` opts in to Unicode);
//! `uri` patterns run on each URI; `header` `=~` fires when any value of the field matches,
//! `!~` when none does, and neither fires for a missing field unless `[if-unset: value]`
//! supplies one. Rules without `score` score 1.0; `__` sub-rules score 0 and are not reported.
//!
//! Slow rules that hit the backtracking limit on a body count as "did not match" (and are
//! counted in [`RuleSet::limit_hits`]) rather than failing the whole scan: a hostile page must
//! not be able to turn itself `unscanned` by tripping one rule while the others still score it.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use crate::config::ScanConfig;
use crate::scan::{
    sha256_hex, Classifier, Document, Finding, HeaderUse, LoadError, Loaded, ScanError,
};

mod compile;
mod meta;
mod parse;
mod pattern;
mod run;
#[cfg(test)]
mod tests;

use meta::Step;
pub use parse::TestKind;
use parse::{HeaderTarget, Parsed};

/// What kind of rule a [`RuleInfo`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// `body`: visible text.
    Body,
    /// `rawbody`: decoded body with markup.
    Rawbody,
    /// `uri`: each extracted URI.
    Uri,
    /// `header`: header field values.
    Header,
    /// `meta`: an expression over other rules.
    Meta,
}

impl RuleKind {
    /// The directive name (`body`, `rawbody`, `uri`, `header`, `meta`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Body => "body",
            RuleKind::Rawbody => "rawbody",
            RuleKind::Uri => "uri",
            RuleKind::Header => "header",
            RuleKind::Meta => "meta",
        }
    }
}

impl From<TestKind> for RuleKind {
    fn from(k: TestKind) -> Self {
        match k {
            TestKind::Body => RuleKind::Body,
            TestKind::Rawbody => RuleKind::Rawbody,
            TestKind::Uri => RuleKind::Uri,
            TestKind::Header => RuleKind::Header,
        }
    }
}

/// One loaded rule, as `rules check` and the admin API show it.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleInfo {
    pub name: String,
    pub kind: RuleKind,
    /// The effective score (1.0 by default, 0 for `__` sub-rules).
    pub score: f64,
    /// The `describe` text (empty when none).
    pub describe: String,
    /// Where the rule is defined.
    pub file: PathBuf,
    pub line: usize,
    /// True when the pattern needs backtracking (fancy-regex with a limit).
    pub slow: bool,
}

/// Patterns of one kind (or one header): a `RegexSet` and the slow patterns.
#[derive(Default)]
pub(crate) struct TextGroup {
    set: Option<regex::bytes::RegexSet>,
    /// Rule index of each pattern in `set`.
    fast: Vec<usize>,
    slow: Vec<(usize, fancy_regex::Regex)>,
}

/// One `header` test's own settings; its pattern lives in the group.
#[derive(Clone, Debug)]
pub(crate) struct HeaderTest {
    rule: usize,
    negate: bool,
    if_unset: Option<String>,
}

/// The header tests reading one field (or `ALL`, `ToCc`).
pub(crate) struct HeaderGroup {
    target: HeaderTarget,
    group: TextGroup,
    /// Regex tests, in the order their patterns were added (fast and slow interleaved).
    tests: Vec<HeaderTest>,
    /// `exists:` tests.
    exists: Vec<usize>,
}

/// A compiled rule set.
#[derive(Default)]
pub struct RuleSet {
    rules: Vec<RuleInfo>,
    body: TextGroup,
    rawbody: TextGroup,
    uri: TextGroup,
    headers: Vec<HeaderGroup>,
    /// Meta rules in dependency order.
    metas: Vec<(usize, Vec<Step<usize>>)>,
    fingerprint: String,
    limit_hits: AtomicU64,
}

/// The full outcome of loading a rule directory: the set (when there were no errors), the
/// errors and the warnings. `rules check` prints all three.
pub struct LoadReport {
    pub rules: Option<RuleSet>,
    pub errors: Vec<LoadError>,
    pub warnings: Vec<LoadError>,
}

impl RuleSet {
    /// Loads from the configured directory; a missing directory loads an empty set (and a
    /// warning).
    pub fn load(cfg: &ScanConfig) -> Loaded<RuleSet> {
        Self::load_dir(&cfg.rules)
    }

    /// Loads `dir/*.cf` in file-name order; a missing directory loads an empty set (and a
    /// warning).
    pub fn load_dir(dir: &Path) -> Loaded<RuleSet> {
        Self::load_report(dir).into_loaded()
    }

    /// Like [`RuleSet::load_dir`] but keeps warnings when there are errors. A missing
    /// directory loads no rules, with a warning (a mistyped `scan.rules` must not go unseen).
    pub fn load_report(dir: &Path) -> LoadReport {
        if !dir.exists() {
            let mut empty = Self::from_files(&[]);
            empty.warnings.push(LoadError {
                file: dir.to_path_buf(),
                line: 0,
                message: "no rules directory; no rules loaded".into(),
            });
            return empty;
        }
        let whole = |message: String| LoadReport {
            rules: None,
            errors: vec![LoadError {
                file: dir.to_path_buf(),
                line: 0,
                message,
            }],
            warnings: Vec::new(),
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return whole(format!("cannot read rules directory: {e}")),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cf") && p.is_file())
            .collect();
        paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            match std::fs::read(&p) {
                Ok(bytes) => files.push((p, bytes)),
                Err(e) => {
                    return LoadReport {
                        rules: None,
                        errors: vec![LoadError {
                            file: p,
                            line: 0,
                            message: format!("cannot read: {e}"),
                        }],
                        warnings: Vec::new(),
                    }
                }
            }
        }
        Self::from_files(&files)
    }

    /// Parses and compiles the given files (name, contents) in the order given.
    pub fn from_files(files: &[(PathBuf, Vec<u8>)]) -> LoadReport {
        let mut parsed = Parsed::default();
        let mut material = Vec::new();
        for (path, bytes) in files {
            parsed.file(path, bytes);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            material.extend_from_slice(name.as_bytes());
            material.push(0);
            material.extend_from_slice(bytes);
            material.push(0);
        }
        let mut fingerprint = sha256_hex(&material);
        fingerprint.truncate(16);
        let (rules, mut errors, mut warnings) = compile::build(parsed, fingerprint);
        // In reading order (files as loaded, then lines): compile errors (a bad regex, a meta
        // naming no rule) are found after every parse error and would come last otherwise.
        let order = |e: &LoadError| {
            let file = files.iter().position(|(p, _)| *p == e.file);
            (file.unwrap_or(usize::MAX), e.line)
        };
        errors.sort_by_key(order);
        warnings.sort_by_key(order);
        LoadReport {
            rules,
            errors,
            warnings,
        }
    }

    /// Every loaded rule, in definition order.
    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }

    /// Rules that run on the backtracking (fancy-regex) path.
    pub fn slow_rules(&self) -> impl Iterator<Item = &RuleInfo> {
        self.rules.iter().filter(|r| r.slow)
    }

    /// Number of rules (including `__` sub-rules and metas).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no rule is loaded.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many times a slow rule hit its backtracking limit (and was treated as not matching).
    pub fn limit_hits(&self) -> u64 {
        self.limit_hits.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl LoadReport {
    /// The [`Loaded`] form the pipeline uses: warnings with the set, or the errors.
    pub fn into_loaded(self) -> Loaded<RuleSet> {
        match self.rules {
            Some(set) if self.errors.is_empty() => Ok((set, self.warnings)),
            _ => Err(self.errors),
        }
    }
}

impl Classifier for RuleSet {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn classify(&self, doc: &Document) -> Result<Vec<Finding>, ScanError> {
        let hits = self.hits(doc);
        Ok(self
            .rules
            .iter()
            .zip(&hits)
            .filter(|(r, hit)| **hit && r.score != 0.0 && !r.name.starts_with("__"))
            .map(|(r, _)| Finding {
                classifier: "rules".into(),
                rule: r.name.clone(),
                score: r.score,
                detail: if r.describe.is_empty() {
                    format!("{} rule matched", r.kind.as_str())
                } else {
                    r.describe.clone()
                },
            })
            .collect())
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// The fields `header` rules name (`to` and `cc` for `ToCc`), or all for `ALL`.
    fn header_use(&self) -> HeaderUse {
        self.headers
            .iter()
            .map(|g| match &g.target {
                HeaderTarget::Name(n) => HeaderUse::Fields(vec![n.clone()]),
                HeaderTarget::ToCc => HeaderUse::Fields(vec!["cc".into(), "to".into()]),
                HeaderTarget::All => HeaderUse::All,
            })
            .fold(HeaderUse::default(), HeaderUse::union)
    }
}

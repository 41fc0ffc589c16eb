//! Parsed items into a [`RuleSet`]: names resolved, scores applied, patterns compiled into
//! one `RegexSet` per kind (plus fancy-regex for slow ones), metas ordered.

use std::collections::{HashMap, HashSet};

use super::meta::{self, Step};
use super::parse::{HeaderTarget, Item, Parsed, Pos, TestKind, TestSpec};
use super::pattern::{Compiled, Pattern, SET_DFA_LIMIT, SET_SIZE_LIMIT};
use super::{HeaderGroup, HeaderTest, RuleInfo, RuleKind, RuleSet, TextGroup};
use crate::scan::LoadError;

/// Patterns of one group before the `RegexSet` is built.
#[derive(Default)]
struct GroupBuilder {
    patterns: Vec<String>,
    fast: Vec<usize>,
    slow: Vec<(usize, fancy_regex::Regex)>,
    last: Option<Pos>,
}

impl GroupBuilder {
    /// Compiles one pattern for rule `rule`; returns whether it took the slow path.
    fn add(
        &mut self,
        rule: usize,
        p: &Pattern,
        multi_line: bool,
        at: &Pos,
    ) -> Result<bool, LoadError> {
        self.last = Some(at.clone());
        match p.compile(multi_line).map_err(|m| at.err(m))? {
            Compiled::Fast(text) => {
                self.patterns.push(text);
                self.fast.push(rule);
                Ok(false)
            }
            Compiled::Slow(re) => {
                self.slow.push((rule, *re));
                Ok(true)
            }
        }
    }

    fn build(self, what: &str) -> Result<TextGroup, LoadError> {
        let set = if self.patterns.is_empty() {
            None
        } else {
            let built = regex::bytes::RegexSetBuilder::new(&self.patterns)
                .unicode(false)
                .size_limit(SET_SIZE_LIMIT)
                .dfa_size_limit(SET_DFA_LIMIT)
                .build();
            match built {
                Ok(set) => Some(set),
                Err(e) => {
                    let at = self.last.unwrap_or(Pos {
                        file: Default::default(),
                        line: 0,
                    });
                    let mut err = at.err(format!("the {what} rules together do not compile: {e}"));
                    err.line = 0;
                    return Err(err);
                }
            }
        };
        Ok(TextGroup {
            set,
            fast: self.fast,
            slow: self.slow,
        })
    }
}

enum Def {
    Test(TestKind, TestSpec),
    Meta(String),
}

/// Builds the rule set, or returns the errors; warnings are returned either way.
pub(crate) fn build(
    parsed: Parsed,
    fingerprint: String,
) -> (Option<RuleSet>, Vec<LoadError>, Vec<LoadError>) {
    let Parsed {
        items,
        mut errors,
        mut warnings,
        failed,
    } = parsed;
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut rules: Vec<RuleInfo> = Vec::new();
    let mut defs: Vec<Def> = Vec::new();
    let mut scores: Vec<Option<f64>> = Vec::new();

    for item in &items {
        let (name, kind, def, at) = match item {
            Item::Test {
                name,
                kind,
                spec,
                at,
            } => (
                name,
                RuleKind::from(*kind),
                Def::Test(*kind, spec.clone()),
                at,
            ),
            Item::Meta { name, expr, at } => (name, RuleKind::Meta, Def::Meta(expr.clone()), at),
            _ => continue,
        };
        if let Some(&prev) = index.get(name) {
            let p = &rules[prev];
            errors.push(at.err(format!(
                "rule {name} is already defined at {}:{}",
                p.file.display(),
                p.line
            )));
            continue;
        }
        if matches!(def, Def::Test(_, TestSpec::Never)) {
            warnings.push(at.err(format!("eval: tests are not supported; {name} never fires")));
        }
        index.insert(name.clone(), rules.len());
        rules.push(RuleInfo {
            name: name.clone(),
            kind,
            score: 0.0,
            describe: String::new(),
            file: at.file.clone(),
            line: at.line,
            slow: false,
        });
        defs.push(def);
        scores.push(None);
    }

    for item in &items {
        match item {
            Item::Score { name, score, at } => match index.get(name) {
                None if failed.contains(name) => {}
                None => errors.push(at.err(format!("score for undefined rule {name}"))),
                Some(_) if name.starts_with("__") => warnings.push(at.err(format!(
                    "score for sub-rule {name} ignored (__ rules score 0)"
                ))),
                Some(&i) => scores[i] = Some(*score),
            },
            Item::Describe { name, text, at } => match index.get(name) {
                None if failed.contains(name) => {}
                None => {
                    warnings.push(at.err(format!("describe for undefined rule {name} ignored")))
                }
                Some(&i) => rules[i].describe = text.clone(),
            },
            _ => {}
        }
    }
    for (rule, score) in rules.iter_mut().zip(&scores) {
        // SpamAssassin's default: 1.0 for a rule without a score, 0 for a `__` sub-rule.
        rule.score = if rule.name.starts_with("__") {
            0.0
        } else {
            score.unwrap_or(1.0)
        };
    }

    let mut body = GroupBuilder::default();
    let mut rawbody = GroupBuilder::default();
    let mut uri = GroupBuilder::default();
    let mut headers: Vec<(HeaderTarget, GroupBuilder, Vec<HeaderTest>, Vec<usize>)> = Vec::new();
    let mut metas: Vec<(usize, Vec<Step<String>>)> = Vec::new();

    for (i, def) in defs.iter().enumerate() {
        let at = Pos {
            file: rules[i].file.clone(),
            line: rules[i].line,
        };
        let slow = match def {
            Def::Test(kind, TestSpec::Regex(p)) => {
                let group = match kind {
                    TestKind::Body => &mut body,
                    TestKind::Rawbody => &mut rawbody,
                    _ => &mut uri,
                };
                // Body rules match line by line as in SpamAssassin: `^`/`$` at line ends.
                group.add(
                    i,
                    p,
                    matches!(kind, TestKind::Body | TestKind::Rawbody),
                    &at,
                )
            }
            Def::Test(
                _,
                TestSpec::Header {
                    target,
                    negate,
                    pattern,
                    if_unset,
                },
            ) => {
                let g = header_group(&mut headers, target);
                let test = HeaderTest {
                    rule: i,
                    negate: *negate,
                    if_unset: if_unset.clone(),
                };
                let r = g.1.add(i, pattern, false, &at);
                g.2.push(test);
                r
            }
            Def::Test(_, TestSpec::Exists(target)) => {
                header_group(&mut headers, target).3.push(i);
                Ok(false)
            }
            Def::Test(_, TestSpec::Never) => Ok(false),
            Def::Meta(expr) => {
                match meta::parse(expr) {
                    Ok(steps) => metas.push((i, steps)),
                    Err(m) => errors.push(at.err(m)),
                }
                Ok(false)
            }
        };
        match slow {
            Ok(s) => rules[i].slow = s,
            Err(e) => errors.push(e),
        }
    }

    let metas = order_metas(&rules, &index, &failed, metas, &mut errors);
    if !errors.is_empty() {
        return (None, errors, warnings);
    }
    let mut header_groups = Vec::new();
    let mut built = |g: GroupBuilder, what: &str| match g.build(what) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            TextGroup::default()
        }
    };
    let body = built(body, "body");
    let rawbody = built(rawbody, "rawbody");
    let uri = built(uri, "uri");
    for (target, g, tests, exists) in headers {
        let group = built(g, "header");
        header_groups.push(HeaderGroup {
            target,
            group,
            tests,
            exists,
        });
    }
    if !errors.is_empty() {
        return (None, errors, warnings);
    }
    let set = RuleSet {
        rules,
        body,
        rawbody,
        uri,
        headers: header_groups,
        metas,
        fingerprint,
        limit_hits: Default::default(),
    };
    (Some(set), errors, warnings)
}

type HeaderEntry = (HeaderTarget, GroupBuilder, Vec<HeaderTest>, Vec<usize>);

fn header_group<'a>(
    groups: &'a mut Vec<HeaderEntry>,
    target: &HeaderTarget,
) -> &'a mut HeaderEntry {
    let pos = match groups.iter().position(|g| &g.0 == target) {
        Some(p) => p,
        None => {
            groups.push((
                target.clone(),
                GroupBuilder::default(),
                Vec::new(),
                Vec::new(),
            ));
            groups.len() - 1
        }
    };
    &mut groups[pos]
}

/// Resolves meta names and orders metas so each comes after the metas it uses (Kahn's
/// algorithm: iterative, so a long chain cannot overflow the stack); cycles are errors.
fn order_metas(
    rules: &[RuleInfo],
    index: &HashMap<String, usize>,
    failed: &HashSet<String>,
    metas: Vec<(usize, Vec<Step<String>>)>,
    errors: &mut Vec<LoadError>,
) -> Vec<(usize, Vec<Step<usize>>)> {
    let at = |i: usize| Pos {
        file: rules[i].file.clone(),
        line: rules[i].line,
    };
    let mut resolved: Vec<(usize, Vec<Step<usize>>)> = Vec::new();
    for (i, steps) in metas {
        let mut ok = true;
        let steps = steps
            .into_iter()
            .map(|s| match s {
                Step::Rule(name) => match index.get(&name) {
                    Some(&r) => Step::Rule(r),
                    None => {
                        if !failed.contains(&name) {
                            errors.push(at(i).err(format!(
                                "meta {} references unknown rule {name}",
                                rules[i].name
                            )));
                        }
                        ok = false;
                        Step::Num(0.0)
                    }
                },
                Step::Num(n) => Step::Num(n),
                Step::Not => Step::Not,
                Step::Neg => Step::Neg,
                Step::Bin(op) => Step::Bin(op),
            })
            .collect();
        if ok {
            resolved.push((i, steps));
        }
    }
    let slot: HashMap<usize, usize> = resolved
        .iter()
        .enumerate()
        .map(|(k, (i, _))| (*i, k))
        .collect();
    let mut pending = vec![0usize; resolved.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); resolved.len()];
    for (k, (_, steps)) in resolved.iter().enumerate() {
        for s in steps {
            if let Step::Rule(r) = s {
                if let Some(&dep) = slot.get(r) {
                    pending[k] += 1;
                    users[dep].push(k);
                }
            }
        }
    }
    let mut ready: Vec<usize> = (0..resolved.len()).filter(|k| pending[*k] == 0).collect();
    let mut order = Vec::with_capacity(resolved.len());
    while let Some(k) = ready.pop() {
        order.push(k);
        for &u in &users[k] {
            pending[u] -= 1;
            if pending[u] == 0 {
                ready.push(u);
            }
        }
    }
    for (k, (i, _)) in resolved.iter().enumerate() {
        if pending[k] > 0 {
            errors.push(at(*i).err(format!(
                "meta {} is part of a dependency cycle",
                rules[*i].name
            )));
        }
    }
    let mut slots: Vec<Option<(usize, Vec<Step<usize>>)>> =
        resolved.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|k| slots.get_mut(k).and_then(Option::take))
        .collect()
}

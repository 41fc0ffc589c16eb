//! The response filter: what the verdict's class means for the client (block, tag, log).
//!
//! Pure: takes a verdict and the `[scan.action]` table, returns the decision; the blocked
//! response is built here too so its shape is one function.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use crate::body::{self, Body};
use crate::config::{Action, ActionConfig, ScanMode};
use crate::scan::{Class, Verdict};

/// The header that carries a verdict on every scanned response.
pub const VERDICT_HEADER: http::HeaderName = http::HeaderName::from_static("x-sluice-verdict");

/// The action for a class. Observe mode never blocks: it is for watching what enforce would
/// do, so a cache hit behaves like the first fetch (delivered, tagged).
pub fn action_in(class: Class, actions: &ActionConfig, mode: ScanMode) -> Action {
    match action_for(class, actions) {
        Action::Block if mode == ScanMode::Observe => Action::Tag,
        a => a,
    }
}

/// The configured action for a class.
pub fn action_for(class: Class, actions: &ActionConfig) -> Action {
    match class {
        Class::Clean => actions.clean,
        Class::Unscanned => actions.unscanned,
        Class::Suspect => actions.suspect,
        Class::Spam => actions.spam,
        Class::Listed => actions.listed,
    }
}

/// Adds `X-Sluice-Verdict` unless the action is `log` (which only logs).
pub fn tag(headers: &mut HeaderMap, verdict: &Verdict, action: Action) {
    if action == Action::Log {
        return;
    }
    if let Some(v) = verdict.header() {
        headers.insert(VERDICT_HEADER, v);
    }
}

/// The names of the rules (or list labels) behind a verdict, deduplicated, in order.
pub fn rule_names(verdict: &Verdict) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for f in &verdict.findings {
        if f.classifier != "pipeline" && !names.contains(&f.rule.as_str()) {
            names.push(&f.rule);
        }
    }
    names
}

/// `403` with a short text body naming the class and the rules, plus the verdict header.
pub fn blocked(verdict: &Verdict, url: &str) -> Response<Body> {
    let rules = rule_names(verdict);
    let why = if rules.is_empty() {
        String::new()
    } else {
        format!(" (rules: {})", rules.join(", "))
    };
    let text = format!(
        "Blocked by sluice: {url} was classified {}{why}, score {}.\n",
        verdict.class,
        crate::scan::pipeline::format_score(verdict.score)
    );
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    tag(h, verdict, Action::Block);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Finding;

    fn verdict(class: Class, rules: &[&str]) -> Verdict {
        Verdict {
            sha256: "ab".repeat(32),
            media_type: "text/html".into(),
            class,
            score: 7.25,
            findings: rules
                .iter()
                .map(|r| Finding {
                    classifier: "rules".into(),
                    rule: r.to_string(),
                    score: 1.0,
                    detail: String::new(),
                })
                .collect(),
            ruleset: "r1".into(),
            scanned_at: "2026-11-25T00:00:00Z".into(),
            reason: None,
            reading: String::new(),
            derived: Default::default(),
        }
    }

    #[test]
    fn default_actions_table() {
        let a = ActionConfig::default();
        for (class, expect) in [
            (Class::Clean, Action::Tag),
            (Class::Suspect, Action::Tag),
            (Class::Spam, Action::Block),
            (Class::Listed, Action::Block),
            (Class::Unscanned, Action::Tag),
        ] {
            assert_eq!(action_for(class, &a), expect, "{class}");
        }
    }

    #[test]
    fn observe_mode_never_blocks() {
        let a = ActionConfig::default();
        assert_eq!(action_in(Class::Spam, &a, ScanMode::Enforce), Action::Block);
        assert_eq!(action_in(Class::Spam, &a, ScanMode::Observe), Action::Tag);
        assert_eq!(action_in(Class::Clean, &a, ScanMode::Observe), Action::Tag);
    }

    #[test]
    fn blocked_response_names_class_and_rules() {
        let v = verdict(Class::Spam, &["PHARMA", "LOTTERY", "PHARMA"]);
        let resp = blocked(&v, "http://x.example/");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let hv = resp.headers()[VERDICT_HEADER].to_str().unwrap().to_string();
        assert!(hv.starts_with("spam; score="), "{hv}");
        assert_eq!(rule_names(&v), ["PHARMA", "LOTTERY"]);
    }

    #[test]
    fn the_blocked_page_and_the_header_give_the_same_score() {
        // 0.125 is where two roundings disagree (half away from zero vs. to even).
        for score in [7.25, 0.125, -0.005, 12.0] {
            let mut v = verdict(Class::Spam, &["PHARMA"]);
            v.score = score;
            let resp = blocked(&v, "http://x.example/");
            let hv = resp.headers()[VERDICT_HEADER].to_str().unwrap().to_string();
            let in_header = hv
                .split("score=")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap();
            let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
                resp.into_body(),
            ))
            .unwrap()
            .unwrap()
            .to_bytes();
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert!(
                text.ends_with(&format!(", score {in_header}.\n")),
                "{score}: {text} / {hv}"
            );
        }
    }

    #[test]
    fn log_action_adds_no_header() {
        let mut h = HeaderMap::new();
        tag(&mut h, &verdict(Class::Clean, &[]), Action::Log);
        assert!(h.is_empty());
        tag(&mut h, &verdict(Class::Clean, &[]), Action::Tag);
        assert!(h.contains_key(VERDICT_HEADER));
    }
}

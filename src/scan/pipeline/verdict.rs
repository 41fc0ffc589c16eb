//! Turning findings into a [`Verdict`]: the class decision, unscanned verdicts, the
//! `X-Sluice-Verdict` header value and RFC 3339 timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::scan::{Class, Finding, ScanError, Verdict};

/// The thresholds of the class decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Score at or above which a body is `spam`.
    pub spam: f64,
    /// Score at or above which a body is `suspect`.
    pub suspect: f64,
}

/// Classifiers whose findings mean the body is on a hash list.
const LIST_CLASSIFIERS: &[&str] = &["digest", "pdq"];

/// Most rule names listed in the header (the header stays short; findings have them all).
const MAX_HEADER_RULES: usize = 32;

/// What each classifier said about one document: findings, or the error that stopped it.
pub struct Outcome {
    /// The classifier's `name()`.
    pub classifier: &'static str,
    /// Its findings, or why it could not give an opinion.
    pub result: Result<Vec<Finding>, ScanError>,
}

/// The class decision. A hash-list finding makes the body `listed` (even when another
/// classifier failed: the listing is certain); otherwise any classifier error makes it
/// `unscanned` with the error's reason (findings of the classifiers that succeeded are kept);
/// otherwise the summed score is compared with the thresholds.
pub fn decide(
    sha256: String,
    media_type: String,
    outcomes: Vec<Outcome>,
    thresholds: Thresholds,
    ruleset: &str,
) -> Verdict {
    let mut findings = Vec::new();
    let mut listed = false;
    let mut failure: Option<(&'static str, ScanError)> = None;
    for o in outcomes {
        match o.result {
            Ok(fs) => {
                listed |= !fs.is_empty() && LIST_CLASSIFIERS.contains(&o.classifier);
                findings.extend(fs);
            }
            Err(e) => {
                if failure.is_none() {
                    failure = Some((o.classifier, e));
                }
            }
        }
    }
    // fold from +0.0: an empty f64 `sum()` is -0.0, which would print as "-0".
    let score = findings
        .iter()
        .map(|f| f.score)
        .filter(|s| s.is_finite())
        .fold(0.0, |a, b| a + b);
    let mut reason = None;
    let class = if listed {
        Class::Listed
    } else if let Some((name, err)) = failure {
        let r = err.reason();
        findings.push(pipeline_finding(r, format!("{name}: {err}")));
        reason = Some(r.to_string());
        Class::Unscanned
    } else if score >= thresholds.spam {
        Class::Spam
    } else if score >= thresholds.suspect {
        Class::Suspect
    } else {
        Class::Clean
    };
    Verdict {
        sha256,
        media_type,
        class,
        score,
        findings,
        ruleset: ruleset.to_string(),
        scanned_at: rfc3339(SystemTime::now()),
        reason,
        reading: String::new(),
        derived: Default::default(),
    }
}

/// The finding that records why a body went unscanned.
pub fn pipeline_finding(reason: &str, detail: String) -> Finding {
    Finding {
        classifier: "pipeline".to_string(),
        rule: reason.to_string(),
        score: 0.0,
        detail,
    }
}

/// A short explanation for each `reason` token.
fn reason_detail(reason: &str) -> &'static str {
    match reason {
        "too_large" => "body is larger than scan.max_body",
        "limit" => "a scan limit was hit (size, ratio, dimensions or a full worker pool)",
        "undecodable" => "body could not be decoded",
        "timeout" => "scan did not finish within scan.timeout",
        _ => "scan failed",
    }
}

impl Verdict {
    /// Whether the verdict is a property of the bytes, worth keeping (memo, cached object):
    /// an unscanned verdict's causes (time, load, limits) are not.
    pub fn is_lasting(&self) -> bool {
        self.class != Class::Unscanned && !self.sha256.is_empty()
    }

    /// An `unscanned` verdict with `reason` (`too_large`, `limit`, `undecodable`, `timeout`,
    /// `error`) for a body that was not classified, e.g. a streamed body over `max_body`.
    pub fn unscanned(sha256: &str, media_type: &str, reason: &str, ruleset: &str) -> Verdict {
        Verdict::unscanned_with(
            sha256,
            media_type,
            reason,
            reason_detail(reason).to_string(),
            ruleset,
        )
    }

    /// Like [`Verdict::unscanned`] with a specific explanation in the pipeline finding.
    pub fn unscanned_with(
        sha256: &str,
        media_type: &str,
        reason: &str,
        detail: String,
        ruleset: &str,
    ) -> Verdict {
        Verdict {
            sha256: sha256.to_string(),
            media_type: media_type.to_string(),
            class: Class::Unscanned,
            score: 0.0,
            findings: vec![pipeline_finding(reason, detail)],
            ruleset: ruleset.to_string(),
            scanned_at: rfc3339(SystemTime::now()),
            reason: Some(reason.to_string()),
            reading: String::new(),
            derived: Default::default(),
        }
    }

    /// [`header_value`](Self::header_value) as a header value, formatted and checked on the
    /// first call and shared by every later one (a memoised verdict serves every hit on its
    /// body). `None` only if the value is not a valid field value, which the formatting rules
    /// out.
    pub fn header(&self) -> Option<http::HeaderValue> {
        self.derived
            .header
            .get_or_init(|| http::HeaderValue::try_from(self.header_value()).ok())
            .clone()
    }

    /// `scanned_at` in seconds since the epoch, parsed on the first call (every cache hit
    /// asks, for the memo's age limit); `None` when it is not RFC 3339.
    pub fn scanned_secs(&self) -> Option<u64> {
        *self
            .derived
            .scanned_secs
            .get_or_init(|| super::index::parse_rfc3339(&self.scanned_at))
    }

    /// The `X-Sluice-Verdict` value:
    /// `<class>; score=<n>; sha256=<hex>[; rules=<A,B>][; reason=<r>]`.
    ///
    /// `sha256` is left out only when it is unknown (a scan refused or timed out before the
    /// body was hashed). Rule names are reduced to header-safe characters.
    pub fn header_value(&self) -> String {
        let mut v = String::with_capacity(96 + 32 * self.findings.len().min(MAX_HEADER_RULES));
        v.push_str(self.class.as_str());
        v.push_str("; score=");
        v.push_str(&format_score(self.score));
        if !self.sha256.is_empty() {
            v.push_str("; sha256=");
            v.push_str(&self.sha256);
        }
        let mut rules: Vec<String> = Vec::new();
        for f in self.findings.iter().filter(|f| f.classifier != "pipeline") {
            let name = header_token(&f.rule);
            if !name.is_empty() && !rules.contains(&name) && rules.len() < MAX_HEADER_RULES {
                v.push_str(if rules.is_empty() { "; rules=" } else { "," });
                v.push_str(&name);
                rules.push(name);
            }
        }
        if let Some(r) = &self.reason {
            v.push_str("; reason=");
            v.push_str(&header_token(r));
        }
        v
    }
}

/// A score as people write it: `5`, `2.5`, `-0.75` (two decimals at most).
pub fn format_score(score: f64) -> String {
    if !score.is_finite() {
        return "0".to_string();
    }
    if score == score.trunc() && score.abs() < 1e15 {
        // Whole numbers (most scores, 0 above all) print as integers without float formatting.
        return format!("{}", score as i64);
    }
    let mut s = format!("{score:.2}");
    let kept = s.trim_end_matches('0').trim_end_matches('.').len();
    s.truncate(kept);
    if s == "-0" {
        s = "0".to_string();
    }
    s
}

/// Keeps characters that are safe in a header parameter; others become `_`.
fn header_token(s: &str) -> String {
    s.chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `2026-11-25T16:46:20Z` for a point in time (UTC, second precision).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn finding(classifier: &str, rule: &str, score: f64) -> Finding {
        Finding {
            classifier: classifier.into(),
            rule: rule.into(),
            score,
            detail: String::new(),
        }
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_625_180, "2026-11-25T16:46:20Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn scores_format_briefly() {
        for (s, want) in [
            (5.0, "5"),
            (2.5, "2.5"),
            (-0.75, "-0.75"),
            (1.234, "1.23"),
            (0.0, "0"),
            (-0.001, "0"),
            (f64::NAN, "0"),
            (-0.0, "0"),
            (-3.0, "-3"),
            (0.125, "0.12"),
            (1e20, "100000000000000000000"),
        ] {
            assert_eq!(format_score(s), want, "{s}");
        }
    }

    #[test]
    fn the_header_is_formatted_once_and_a_clone_formats_its_own() {
        let v = Verdict::unscanned("ab12", "text/html", "too_large", "rs1");
        let first = v.header().unwrap();
        assert_eq!(first, v.header_value().as_str());
        assert_eq!(
            v.header().unwrap().as_bytes().as_ptr(),
            first.as_bytes().as_ptr(),
            "shared, not formatted again"
        );
        // A clone is what gets edited (retro-match): it must not inherit the old value.
        let mut edited = v.clone();
        assert_eq!(edited, v, "the cache is not part of a verdict's equality");
        edited.class = Class::Listed;
        assert!(edited.header().unwrap().as_bytes().starts_with(b"listed; "));
        assert!(v.header().unwrap().as_bytes().starts_with(b"unscanned; "));
        let json = serde_json::to_string(&v).unwrap();
        assert!(!json.contains("header"), "{json}");
    }

    #[test]
    fn header_value_names_class_score_sha_rules_and_reason() {
        let mut v = Verdict::unscanned("ab12", "text/html", "too_large", "rs1");
        assert_eq!(
            v.header_value(),
            "unscanned; score=0; sha256=ab12; reason=too_large"
        );
        v.class = Class::Spam;
        v.reason = None;
        v.score = 7.5;
        v.findings = vec![
            finding("rules", "LOTTERY_WIN", 4.0),
            finding("rules", "PHARMA", 3.0),
            finding("model", "LOTTERY_WIN", 0.5),
            finding("digest", "bad list; x=1", 0.0),
        ];
        assert_eq!(
            v.header_value(),
            "spam; score=7.5; sha256=ab12; rules=LOTTERY_WIN,PHARMA,bad_list__x_1"
        );
        v.sha256.clear();
        assert!(!v.header_value().contains("sha256"));
    }
}

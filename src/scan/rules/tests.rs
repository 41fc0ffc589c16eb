//! Rule parser, compiler and classifier tests: every directive, every error.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;

fn load(src: &str) -> LoadReport {
    RuleSet::from_files(&[(PathBuf::from("t.cf"), src.as_bytes().to_vec())])
}

fn set(src: &str) -> RuleSet {
    let r = load(src);
    assert!(r.errors.is_empty(), "unexpected errors: {:?}", r.errors);
    r.rules.expect("rules")
}

fn errors(src: &str) -> Vec<String> {
    let r = load(src);
    assert!(r.rules.is_none(), "expected errors for {src:?}");
    r.errors.iter().map(|e| e.to_string()).collect()
}

fn doc(text: &str) -> Document {
    Document {
        text: text.into(),
        raw_text: format!("<p>{text}</p>"),
        ..Default::default()
    }
}

/// Names of reported findings, in rule order.
fn fired(rules: &RuleSet, d: &Document) -> Vec<String> {
    rules
        .classify(d)
        .expect("classify")
        .into_iter()
        .map(|f| f.rule)
        .collect()
}

#[test]
fn body_rule_with_flags_score_and_describe() {
    let r = set("body CHEAP /cheap\\s+pills/i\nscore CHEAP 2.5\ndescribe CHEAP Sells pills\n");
    let f = r.classify(&doc("Buy CHEAP   Pills now")).expect("classify");
    assert_eq!(
        f,
        vec![Finding {
            classifier: "rules".into(),
            rule: "CHEAP".into(),
            score: 2.5,
            detail: "Sells pills".into()
        }]
    );
    assert!(fired(&r, &doc("cheap flights")).is_empty());
}

#[test]
fn finding_detail_defaults_to_the_rule_kind() {
    let r = set("uri U /evil/\n");
    let mut d = doc("x");
    d.uris = vec!["http://evil.example/".into()];
    assert_eq!(
        r.classify(&d).expect("classify")[0].detail,
        "uri rule matched"
    );
}

#[test]
fn score_may_precede_the_definition_and_later_score_wins() {
    let r = set("score A 3\nbody A /x/\nscore A 4\n");
    assert_eq!(r.rules()[0].score, 4.0);
}

#[test]
fn default_scores_follow_spamassassin() {
    let r = set("body A /a/\nbody __B /b/\nmeta M __B\n");
    let scores: Vec<f64> = r.rules().iter().map(|r| r.score).collect();
    assert_eq!(scores, vec![1.0, 0.0, 1.0]);
    // The sub-rule is not reported, but the meta using it is.
    assert_eq!(fired(&r, &doc("a b")), vec!["A", "M"]);
}

#[test]
fn zero_score_rules_are_not_reported_but_feed_metas() {
    let r = set("body A /a/\nscore A 0\nmeta M A\n");
    assert_eq!(fired(&r, &doc("a")), vec!["M"]);
}

#[test]
fn negative_scores_are_reported() {
    let r = set("body HAM /unsubscribe/\nscore HAM -1.5\n");
    let f = r.classify(&doc("to unsubscribe click")).expect("classify");
    assert_eq!(f[0].score, -1.5);
}

#[test]
fn four_score_form_uses_the_first() {
    let r = set("body A /a/\nscore A 2.0 2.1 2.2 2.3\n");
    assert_eq!(r.rules()[0].score, 2.0);
}

#[test]
fn rawbody_sees_markup_and_body_does_not() {
    let r = set("rawbody RAW /<p>/\nbody BODY /<p>/\n");
    assert_eq!(fired(&r, &doc("hello")), vec!["RAW"]);
}

#[test]
fn body_rules_anchor_per_line() {
    let r = set("body START /^free money$/i\n");
    assert_eq!(fired(&r, &doc("hello\nFREE MONEY\nbye")), vec!["START"]);
    assert!(fired(&r, &doc("get free money now")).is_empty());
}

#[test]
fn body_rules_anchor_at_crlf_line_ends() {
    let r = set("body START /^free money$/i\nrawbody RAW /^claim now$/\nbody SLOW /^(?!x)cash$/\n");
    let mut d = doc("hello\r\nFREE MONEY\r\ncash\r\nbye");
    d.raw_text = "Subject: x\r\nclaim now\r\n".into();
    assert_eq!(fired(&r, &d), vec!["START", "RAW", "SLOW"]);
}

#[test]
fn flags_s_and_x() {
    let r = set("body S /a.b/s\nbody NOS /c.d/\nbody X /e \\s+ f/x\n");
    let d = doc("a\nb c\nd e   f");
    assert_eq!(fired(&r, &d), vec!["S", "X"]);
}

#[test]
fn alternative_delimiters() {
    let r = set("body A m{a/b}\nbody B m!c\\!d!i\nbody C /e\\/f/\n");
    assert_eq!(fired(&r, &doc("a/b C!D e/f")), vec!["A", "B", "C"]);
}

#[test]
fn hash_starts_a_comment_unless_escaped() {
    let r = set("# comment\n\nbody A /a\\#1/ # trailing\n   # indented comment\n");
    assert_eq!(fired(&r, &doc("a#1")), vec!["A"]);
}

#[test]
fn uri_rules_match_each_uri() {
    let r = set("uri IP_HOST m{^https?://\\d+\\.\\d+\\.\\d+\\.\\d+}\nuri SHORT /bit\\.ly/\n");
    let mut d = doc("x");
    d.uris = vec!["http://example.com/".into(), "http://10.0.0.1/login".into()];
    assert_eq!(fired(&r, &d), vec!["IP_HOST"]);
}

#[test]
fn shipped_uri_rules_see_schemeless_www_links() {
    let content = crate::scan::Content {
        bytes: bytes::Bytes::from_static(
            b"<p>Cheap meds at www.pharma-deals.top or <a href=\"WWW.bit.ly/x\">here</a></p>",
        ),
        declared_type: "text/html".into(),
        ..Default::default()
    };
    let d = crate::scan::decode::decode(&content, &Default::default(), None).expect("decodes");
    let found = fired(&shipped(), &d);
    for rule in ["URI_ABUSED_TLD", "URI_SHORTENER"] {
        assert!(found.iter().any(|f| f == rule), "{rule} not in {found:?}");
    }
}

#[test]
fn uri_anchors_do_not_span_uris() {
    let r = set("uri AT m{^https?://[^/]*@}\n");
    let mut d = doc("x");
    d.uris = vec!["http://a.example".into(), "mailto:x@y.example".into()];
    assert!(fired(&r, &d).is_empty());
}

#[test]
fn header_rules_match_any_value_case_insensitively() {
    let r = set(
        "header SRV Server =~ /nginx/i\nheader NOT_HTML Content-Type !~ /html/\nheader MISS X-None !~ /x/\n",
    );
    let mut d = doc("x");
    d.headers = vec![
        ("server".into(), "NGINX/1.2".into()),
        ("content-type".into(), "text/plain".into()),
    ];
    assert_eq!(fired(&r, &d), vec!["SRV", "NOT_HTML"]);
    d.headers[1].1 = "text/html".into();
    assert_eq!(fired(&r, &d), vec!["SRV"]);
}

#[test]
fn header_use_names_what_header_rules_read() {
    let fields = |src: &str| set(src).header_use();
    assert_eq!(fields("body B /x/\n"), HeaderUse::default());
    assert_eq!(
        fields("header A Server =~ /x/\nheader B exists:X-Mailer\nheader C ToCc =~ /y/\n"),
        HeaderUse::Fields(
            ["cc", "server", "to", "x-mailer"]
                .map(String::from)
                .to_vec()
        )
    );
    assert_eq!(
        fields("header A Server =~ /x/\nheader B ALL =~ /y/\n"),
        HeaderUse::All
    );
}

#[test]
fn header_negation_needs_no_value_to_match() {
    let r = set("header N X-A !~ /bad/\n");
    let mut d = doc("x");
    d.headers = vec![("x-a".into(), "good".into()), ("x-a".into(), "bad".into())];
    assert!(fired(&r, &d).is_empty());
}

#[test]
fn header_if_unset_exists_all_and_modifiers() {
    let r = set(concat!(
        "header U X-Mailer =~ /^none$/ [if-unset: none]\n",
        "header E exists:Set-Cookie\n",
        "header ALLH ALL =~ /^server: evil/m\n",
        "header RAWMOD Server:raw =~ /evil/\n",
    ));
    let mut d = doc("x");
    d.headers = vec![("server".into(), "evil".into())];
    assert_eq!(fired(&r, &d), vec!["U", "ALLH", "RAWMOD"]);
    d.headers.push(("set-cookie".into(), "a=b".into()));
    d.headers.push(("x-mailer".into(), "m".into()));
    assert_eq!(fired(&r, &d), vec!["E", "ALLH", "RAWMOD"]);
}

#[test]
fn meta_rules_combine_and_chain() {
    let r = set(concat!(
        "body __A /aa/\nbody __B /bb/\nbody __C /cc/\n",
        "meta TWO (__A + __B + __C) > 1\n",
        "meta BOTH TWO && !__C\n",
        "meta LATE LATER || __A\nmeta LATER __B\n",
        "score TWO 2\n",
    ));
    assert_eq!(
        fired(&r, &doc("aa bb")),
        vec!["TWO", "BOTH", "LATE", "LATER"]
    );
    assert_eq!(fired(&r, &doc("aa bb cc")), vec!["TWO", "LATE", "LATER"]);
    assert!(fired(&r, &doc("cc")).is_empty());
}

#[test]
fn unknown_directives_and_eval_tests_are_warnings() {
    let r = load("tflags A multiple\nlang de describe A x\nbody A eval:check_stuff()\nmeta M A || B\nbody B /b/\n");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let w: Vec<String> = r.warnings.iter().map(|e| e.to_string()).collect();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].starts_with("t.cf:1: unknown directive 'tflags'"),
        "{w:?}"
    );
    assert!(w[2].contains("A never fires"), "{w:?}");
    let set = r.rules.expect("rules");
    assert_eq!(fired(&set, &doc("a b")), vec!["M", "B"]);
}

#[test]
fn if_blocks_are_skipped_with_a_warning() {
    let r = load("ifplugin Mail::SpamAssassin::Plugin::X\nbody A /a/\nif (1)\nbody B /b/\nendif\nendif\nbody C /c/\n");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.warnings.len(), 1);
    let names: Vec<&str> = r
        .rules
        .as_ref()
        .map(|s| s.rules().iter().map(|r| r.name.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["C"]);
}

#[test]
fn error_table() {
    for (src, want) in [
        (
            "body A /(unclosed/\n",
            "t.cf:1: invalid regex /(unclosed/: unclosed group",
        ),
        ("body A /abc\n", "t.cf:1: regex is not terminated by '/'"),
        ("body A /a/q\n", "t.cf:1: unknown regex flag 'q'"),
        (
            "body A abc\n",
            "t.cf:1: expected a regex like /pattern/flags",
        ),
        (
            "body A /a/ junk\n",
            "t.cf:1: unexpected text after the regex: junk",
        ),
        ("body A\n", "t.cf:1: missing regex"),
        ("body\n", "t.cf:1: 'body' needs a rule name"),
        ("body A-B /a/\n", "t.cf:1: bad rule name 'A-B'"),
        (
            "\nbody A /a/\nbody A /b/\n",
            "t.cf:3: rule A is already defined at t.cf:2",
        ),
        (
            "body A /a/\nmeta A B\n",
            "t.cf:2: rule A is already defined",
        ),
        ("score NOPE 1\n", "t.cf:1: score for undefined rule NOPE"),
        ("body A /a/\nscore A lots\n", "t.cf:2: bad score 'lots'"),
        (
            "body A /a/\nscore A 1 2\n",
            "t.cf:2: score needs one number",
        ),
        ("body A /a/\nscore A NaN\n", "t.cf:2: bad score 'NaN'"),
        (
            "body A /a/\nscore A -1e7\n",
            "t.cf:2: score '-1e7' is out of range",
        ),
        (
            "meta M A && NOPE\nbody A /a/\n",
            "t.cf:1: meta M references unknown rule NOPE",
        ),
        ("meta M (A\nbody A /a/\n", "t.cf:1: missing ')'"),
        ("meta M\n", "t.cf:1: meta needs an expression"),
        (
            "meta M N\nmeta N M\n",
            "t.cf:1: meta M is part of a dependency cycle",
        ),
        ("meta M M\n", "t.cf:1: meta M is part of a dependency cycle"),
        (
            "header H Server ~ /a/\n",
            "t.cf:1: header rule needs '=~' or '!~'",
        ),
        (
            "header H Server =~ /a/ [whatever]\n",
            "t.cf:1: unexpected text after the regex",
        ),
        (
            "header H exists:\n",
            "t.cf:1: exists: needs one header name",
        ),
        ("endif\n", "t.cf:1: 'endif' without 'if'"),
        ("if (1)\nbody A /a/\n", "t.cf:1: 'if' block is not closed"),
        (
            "body A /a/\nifplugin X\nif (1)\nendif\n",
            "t.cf:2: 'if' block is not closed",
        ),
        (
            "body A /a{1000}{1000}{1000}/\n",
            "t.cf:1: regex is too large",
        ),
    ] {
        let got = errors(src);
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "{src:?}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn invalid_utf8_line_is_an_error() {
    let r = RuleSet::from_files(&[(
        PathBuf::from("t.cf"),
        b"body A /a/\nbody B /\xff/\n".to_vec(),
    )]);
    assert_eq!(r.errors[0].to_string(), "t.cf:2: line is not valid UTF-8");
}

#[test]
fn all_errors_are_reported_not_just_the_first() {
    assert_eq!(errors("body A /(/\nbody B /)/\nscore C 1\n").len(), 3);
}

#[test]
fn non_ascii_patterns_compile_with_unicode() {
    let r = set("body DE /günstig/i\nbody RU /[а-я]+ казино/\n");
    assert!(r.slow_rules().next().is_none());
    assert_eq!(fired(&r, &doc("GüNSTIG онлайн казино")), vec!["DE", "RU"]);
}

/// A Unicode class written in ASCII (`\p{Lu}`) needs Unicode mode, not backtracking: it
/// went to the slow path, where `rules check` said it "needs backtracking (look-around or
/// backreference)" and a hostile page could make it give up at the step limit.
#[test]
fn unicode_classes_written_in_ascii_compile_fast() {
    let r = set("body CAPS /\\p{Lu}{4}/\nbody CYR /\\p{Cyrillic}+ casino/\n");
    assert_eq!(
        r.slow_rules().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        Vec::<&str>::new()
    );
    assert_eq!(fired(&r, &doc("ÄÖÜÉ онлайн casino")), vec!["CAPS", "CYR"]);
    assert!(fired(&r, &doc("ABc online casino")).is_empty());
}

#[test]
fn lookaround_and_backrefs_take_the_slow_path() {
    let r = set("body LA /pill(?!ow)/\nbody BR /(\\w+) \\1/\nbody FAST /plain/\n");
    let slow: Vec<&str> = r.slow_rules().map(|r| r.name.as_str()).collect();
    assert_eq!(slow, vec!["LA", "BR"]);
    assert_eq!(fired(&r, &doc("pillow pills")), vec!["LA"]);
    assert_eq!(fired(&r, &doc("pillow, buy buy")), vec!["BR"]);
}

#[test]
fn pathological_backtracking_is_bounded() {
    let r = set("body EVIL /(a+)+\\1b/\nbody LOOK /(?=(a+)+b)a/\nbody OK /a{5}/\n");
    let text = "a".repeat(30 * 1024);
    let start = Instant::now();
    let found = fired(&r, &doc(&text));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    // The fast rule still scores; the slow ones gave up and count as not matching.
    assert_eq!(found, vec!["OK"]);
    // EVIL gives up at its backtrack limit (LOOK's inner part delegates to the linear engine).
    assert!(r.limit_hits() >= 1);
}

#[test]
fn fingerprint_is_stable_and_content_sensitive() {
    let a = set("body A /a/\n").fingerprint();
    assert_eq!(a, set("body A /a/\n").fingerprint());
    assert_ne!(a, set("body A /b/\n").fingerprint());
    assert_eq!(a.len(), 16);
}

#[test]
fn errors_come_in_file_and_line_order() {
    let files = [
        (
            PathBuf::from("10.cf"),
            b"body A /a/\ntflags A x\nbody B /(unclosed/\n".to_vec(),
        ),
        (PathBuf::from("20.cf"), b"body C\nlang x\n".to_vec()),
    ];
    let report = RuleSet::from_files(&files);
    let at = |es: &[LoadError]| -> Vec<String> {
        es.iter()
            .map(|e| format!("{}:{}", e.file.display(), e.line))
            .collect()
    };
    assert_eq!(at(&report.errors), ["10.cf:3", "20.cf:1"]);
    assert_eq!(at(&report.warnings), ["10.cf:2", "20.cf:2"]);
}

#[test]
fn missing_directory_is_an_empty_set_with_a_warning() {
    let (r, warnings) =
        RuleSet::load_dir(Path::new("/nonexistent/sluice/rules")).expect("empty set");
    assert!(r.is_empty());
    let said: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        said,
        ["/nonexistent/sluice/rules: no rules directory; no rules loaded"]
    );
    assert!(r.classify(&doc("anything")).expect("classify").is_empty());
}

#[test]
fn files_load_in_name_order_and_later_scores_override() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("50-rules.cf"), "body A /a/\nscore A 1\n").expect("write");
    std::fs::write(dir.path().join("99-local.cf"), "score A 0\n").expect("write");
    std::fs::write(dir.path().join("10-first.cf"), "score A 5\n").expect("write");
    std::fs::write(dir.path().join("notes.txt"), "garbage").expect("write");
    let (r, _) = RuleSet::load_dir(dir.path()).expect("loads");
    assert_eq!(r.rules()[0].score, 0.0);
    assert!(fired(&r, &doc("a")).is_empty());
}

/// The shipped `rules/` directory, as `serve` loads it by default.
fn shipped() -> RuleSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let (r, warnings) = RuleSet::load_dir(&dir).expect("shipped rules load");
    assert!(warnings.is_empty(), "{warnings:?}");
    r
}

fn total(r: &RuleSet, d: &Document) -> f64 {
    r.classify(d)
        .expect("classify")
        .iter()
        .map(|f| f.score)
        .sum()
}

#[test]
fn shipped_rules_score_obvious_spam_as_spam() {
    let r = shipped();
    let mut phish = doc(concat!(
        "Dear Customer,\nWe detected unusual sign-in activity. Your account has been suspended.\n",
        "Click here to verify your account within 24 hours or it will be permanently closed.\n",
    ));
    phish.raw_text = r#"<form action="http://203.0.113.9/secure/login.php"><input type="password" name="pw"></form>"#.into();
    phish.uris = vec!["http://203.0.113.9/secure/login.php".into()];
    let lottery = doc(concat!(
        "CONGRATULATIONS!!! You have won the International Email Lottery.\n",
        "Contact our claims agent to claim your prize of US$1,500,000.00 today. Processing fee via Western Union.\n",
        "Keep this strictly confidential. Send your full names and bank details.\n",
    ));
    let pharma = doc("Online pharmacy: cheap v1agra and cialis, no prescription needed! Discreet shipping, order now.\n");
    let crypto = doc(concat!(
        "Elon Musk bitcoin giveaway! Send 0.1 BTC and receive 0.2 BTC back.\n",
        "Limited time only, to bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq\n",
    ));
    for (name, d) in [
        ("phish", &phish),
        ("lottery", &lottery),
        ("pharma", &pharma),
        ("crypto", &crypto),
    ] {
        let s = total(&r, d);
        assert!(s >= 5.0, "{name} scored {s}: {:?}", fired(&r, d));
    }
}

#[test]
fn shipped_rules_keep_ordinary_pages_clean() {
    let r = shipped();
    let mut newsletter = doc(concat!(
        "Weekly release notes\nThis week we shipped a faster cache and fixed two bugs in the parser.\n",
        "Our meetup is on Monday in Paris; free entry, register on the site. Read more on the blog.\n",
        "You are receiving this because you subscribed. Unsubscribe or manage your preferences.\n",
    ));
    newsletter.uris = vec![
        "https://news.example.org/2024/notes".into(),
        "https://news.example.org/unsubscribe?id=42".into(),
    ];
    newsletter.raw_text = r#"<html><body><p>Weekly release notes</p><form action="/search"><input name="q"></form></body></html>"#.into();
    let login = Document {
        text: "Sign in to your account\nEmail\nPassword\nForgot your password?".into(),
        raw_text: r#"<form action="/session" method="post"><input type="email"><input type="password"></form>"#.into(),
        uris: vec!["https://example.com/login".into()],
        ..Default::default()
    };
    for (name, d) in [("newsletter", &newsletter), ("login", &login)] {
        let s = total(&r, d);
        assert!(s < 2.5, "{name} scored {s}: {:?}", fired(&r, d));
    }
}

#[test]
fn a_failed_definition_does_not_cascade() {
    let got = errors("body A /(/\nscore A 2\ndescribe A x\nmeta M A\n");
    assert_eq!(got.len(), 1, "{got:?}");
}

/// Editors on Windows save UTF-8 with a byte-order mark; the first rule of such a file was
/// read as the unknown directive `\u{feff}body` and dropped with only a warning.
#[test]
fn a_utf8_bom_does_not_hide_the_first_rule() {
    let r = load("\u{feff}body FIRST /free money/i\r\nscore FIRST 5\r\n");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let rules = r.rules.expect("rules");
    assert_eq!(fired(&rules, &doc("FREE MONEY")), ["FIRST"]);
    assert_eq!(rules.rules()[0].score, 5.0);
}

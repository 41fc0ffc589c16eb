//! Tests of the text model as a whole: training, the file format, loading, scoring.

use super::format::{decode, encode, FormatError};
use super::train::{operating_point, platt, train, Metrics, TrainError, TrainOptions};
use super::*;
use crate::scan::Classifier;

/// Small, fast options for synthetic corpora.
fn tiny_opts() -> TrainOptions {
    TrainOptions {
        features: FeatureConfig {
            bits: 12,
            ..FeatureConfig::default()
        },
        epochs: 8,
        folds: 3,
        ..TrainOptions::default()
    }
}

const SPAM_WORDS: &[&str] = &[
    "FREE",
    "money",
    "winner",
    "click",
    "here",
    "cash",
    "bonus",
    "offer",
    "unsubscribe",
    "$1000",
    "guaranteed",
    "limited",
    "viagra",
    "casino",
    "prize",
    "urgent",
    "credit",
    "loan",
];
const HAM_WORDS: &[&str] = &[
    "meeting", "patch", "kernel", "thanks", "review", "tomorrow", "build", "compile", "lunch",
    "config", "branch", "merge", "release", "notes", "agenda", "bug", "fixed", "team",
];

/// A deterministic pseudo-random document of `n` words drawn from `vocab`.
fn synth(vocab: &[&str], seed: usize, n: usize) -> String {
    (0..n)
        .map(|k| vocab[(seed * 7 + k * k * 13 + k * 5) % vocab.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn synth_corpus() -> Vec<(String, bool)> {
    let mut texts = Vec::new();
    for i in 0..40 {
        texts.push((format!("<p>{}</p>", synth(SPAM_WORDS, i, 30)), true));
        texts.push((synth(HAM_WORDS, i, 30), false));
    }
    texts
}

/// A document as the pipeline decodes it (HTML when it starts with `<`, else plain text).
fn text_doc(text: &str) -> Document {
    let declared = if text.starts_with('<') {
        "text/html"
    } else {
        "text/plain"
    };
    let content = crate::scan::Content {
        bytes: bytes::Bytes::copy_from_slice(text.as_bytes()),
        declared_type: declared.to_string(),
        charset: Some("utf-8".to_string()),
        content_encoding: String::new(),
        url: None,
        headers: Vec::new(),
    };
    crate::scan::decode::decode(
        &content,
        &crate::scan::decode::DecodeLimits::default(),
        None,
    )
    .expect("decodes")
}

#[test]
fn training_separates_a_synthetic_corpus() {
    let (model, report) = train(&synth_corpus(), &tiny_opts()).expect("trains");
    assert_eq!((report.spam, report.ham), (40, 40));
    assert_eq!(report.cv.fp + report.cv.fn_, 0, "{:?}", report.cv);
    let spam = model.margin("click here for your FREE cash prize, guaranteed winner");
    let ham = model.margin("thanks for the review, the patch is merged into the release branch");
    assert!(spam >= model.header.spam_margin, "spam margin {spam}");
    assert!(ham < model.header.zero_margin, "ham margin {ham}");
    assert!(model.points(spam, 5.0) >= 5.0);
    assert!(model.points(ham, 5.0) < 0.0);
}

#[test]
fn training_is_deterministic() {
    let a = train(&synth_corpus(), &tiny_opts()).expect("trains").0;
    let b = train(&synth_corpus(), &tiny_opts()).expect("trains").0;
    assert_eq!(encode(&a).expect("encodes"), encode(&b).expect("encodes"));
}

#[test]
fn training_needs_both_classes() {
    let only_spam: Vec<(String, bool)> = synth_corpus().into_iter().filter(|t| t.1).collect();
    let err = train(&only_spam, &tiny_opts()).unwrap_err();
    assert!(matches!(err, TrainError::EmptyClass("ham")), "{err}");
    let bad = TrainOptions {
        lambda: 0.0,
        ..tiny_opts()
    };
    assert!(matches!(
        train(&synth_corpus(), &bad),
        Err(TrainError::Options(_))
    ));
}

#[test]
fn points_cross_the_threshold_exactly_at_the_operating_point() {
    let (model, _) = train(&synth_corpus(), &tiny_opts()).expect("trains");
    let h = &model.header;
    assert_eq!(model.points(h.spam_margin, 5.0), 5.0);
    assert_eq!(model.points(h.spam_margin, 7.5), 7.5);
    assert_eq!(model.points(h.zero_margin, 5.0), 0.0);
    assert_eq!(model.points(1e9, 5.0), 8.0);
    assert_eq!(model.points(-1e9, 5.0), -2.0);
    let mut last = f64::NEG_INFINITY;
    for k in -40..40 {
        let p = model.points(f64::from(k) * 0.25, 5.0);
        assert!(p >= last, "mapping must be monotone");
        last = p;
    }
}

#[test]
fn model_file_round_trips() {
    let (model, _) = train(&synth_corpus(), &tiny_opts()).expect("trains");
    let bytes = encode(&model).expect("encodes");
    assert_eq!(&bytes[..8], format::MAGIC);
    let back = decode(&bytes).expect("decodes");
    assert_eq!(back.weights, model.weights);
    assert_eq!(back, model);

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(MODEL_FILE), &bytes).expect("writes");
    let cfg = ScanConfig {
        models: dir.path().to_path_buf(),
        ..ScanConfig::default()
    };
    let (loaded, warnings) = TextModel::load(&cfg).expect("loads");
    assert!(warnings.is_empty());
    assert_eq!(loaded.model(), Some(&model));
    assert_eq!(loaded.fingerprint(), crate::scan::sha256_hex(&bytes)[..16]);
}

#[test]
fn corrupt_and_truncated_files_are_errors_not_panics() {
    let (model, _) = train(&synth_corpus(), &tiny_opts()).expect("trains");
    let bytes = encode(&model).expect("encodes");
    for len in (0..bytes.len()).step_by(7) {
        assert!(
            decode(&bytes[..len]).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    assert_eq!(decode(&flipped), Err(FormatError::Checksum));
    let mut version = bytes.clone();
    version[8] = 9;
    assert_eq!(decode(&version), Err(FormatError::Version(9)));
    assert_eq!(decode(b"GIF89a not a model"), Err(FormatError::Magic));

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(MODEL_FILE), &bytes[..bytes.len() - 100]).expect("writes");
    let cfg = ScanConfig {
        models: dir.path().to_path_buf(),
        ..ScanConfig::default()
    };
    let errors = TextModel::load(&cfg)
        .err()
        .expect("a truncated model must not load");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().contains("text.model"),
        "{}",
        errors[0]
    );
}

#[test]
fn missing_model_is_a_noop_with_a_warning() {
    let cfg = ScanConfig {
        models: "/nonexistent/sluice-models".into(),
        ..ScanConfig::default()
    };
    let (model, warnings) = TextModel::load(&cfg).expect("loads as a no-op");
    assert_eq!(warnings.len(), 1);
    assert!(model.model().is_none());
    assert!(model
        .classify(&text_doc("FREE CASH"))
        .expect("classifies")
        .is_empty());
    assert_eq!(model.fingerprint(), "");
}

#[test]
fn operating_point_respects_the_fpr_limit() {
    // 200 ham and 100 spam margins; two ham sit among the spam.
    let mut scored: Vec<(f64, bool)> = (0..200).map(|i| (-f64::from(i), false)).collect();
    scored.extend((0..100).map(|i| (10.0 + f64::from(i), true)));
    scored.push((50.0, false));
    scored.push((5.0, false));
    let (t, m) = operating_point(&scored, 0.005);
    assert_eq!(m, Metrics::at(&scored, t));
    assert!(m.fpr() <= 0.005);
    assert_eq!((m.tp, m.fp), (100, 1), "threshold {t}");
    let (a, b) = platt(&scored);
    assert!(a > 0.0 && (-b / a) < 10.0);
}

fn shipped() -> TextModel {
    let cfg = ScanConfig {
        models: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        ..ScanConfig::default()
    };
    let (model, warnings) = TextModel::load(&cfg).expect("the shipped model loads");
    assert!(warnings.is_empty(), "{warnings:?}");
    model
}

fn score(model: &TextModel, text: &str) -> f64 {
    let findings = model.classify(&text_doc(text)).expect("classifies");
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].classifier, "model");
    assert!(findings[0].detail.starts_with("p(spam)="));
    findings[0].score
}

#[test]
fn shipped_model_flags_obvious_spam() {
    let model = shipped();
    for text in [
        "<html><body><font size=4 color=red><b>CONGRATULATIONS!!!</b></font><br>You have been \
         selected to receive a FREE $500 gift card. <a href=\"http://claim-prize.example/\">CLICK \
         HERE</a> to claim your prize NOW! Limited time offer. To be removed from our mailing \
         list reply with REMOVE in the subject.</body></html>",
        "Dear Friend, Make $5,000 a week working from home! This is NOT a scam. Thousands of \
         people are earning BIG MONEY with our proven system. No experience needed. Order now \
         and receive a FREE bonus. Call toll free 1-800-555-0199. To unsubscribe click here.",
        "<html><body><center><h1>Lowest mortgage rates ever!</h1><p>Refinance today and save \
         thousands. Get a FREE quote in minutes, no obligation. Bad credit OK! <a \
         href=\"http://rates.example/apply\">Apply now</a></p><p>You are receiving this \
         because you opted in. Click here to be removed.</p></center></body></html>",
    ] {
        let s = score(&model, text);
        assert!(s >= 5.0, "score {s} for spam {text:.60}");
    }
}

#[test]
fn shipped_model_passes_obvious_ham() {
    let model = shipped();
    for text in [
        "Hi all,\n\nI pushed a fix for the build failure on the release branch. The problem was \
         a stale config file in the test harness; after removing it the kernel module compiles \
         again. Could someone review the patch before tomorrow's meeting?\n\nThanks,\nMartin\n",
        "On Tue, Sep 10, 2002 at 10:15AM, Tom wrote:\n> Has anyone tried the new version of \
         spamassassin with procmail?\n\nYes, I've been running it for a week. You need to \
         update your .procmailrc to pipe through spamc, and the Bayes database needs a few \
         hundred messages before it helps. Works fine here on Red Hat 7.3.\n",
        "Sorry, I can't make lunch on Friday. My flight was moved to the morning so I'll be \
         packing. Maybe next week? Let me know what works for you.\n",
    ] {
        let s = score(&model, text);
        assert!(s < 2.5, "score {s} for ham {text:.60}");
    }
}

#[test]
fn non_text_documents_get_no_findings() {
    let model = shipped();
    let doc = Document {
        media_type: "image/png".to_string(),
        raw_text: "FREE MONEY CLICK HERE".to_string(),
        ..Document::default()
    };
    assert!(model.classify(&doc).expect("classifies").is_empty());
    assert!(model
        .classify(&text_doc("  "))
        .expect("classifies")
        .is_empty());
}

#[test]
fn scoring_a_decoded_html_page_matches_the_margin_training_uses() {
    let model = shipped();
    let data = model.model().expect("loaded");
    assert!(data.header.features.visible_text);
    let html = "<html><body><h2>Refinance today</h2><p>Lowest rates ever, get a FREE quote \
                in minutes with no obligation. Bad credit OK! <a href=\"http://r.example/\">\
                Apply now</a></p><p>Click here to be removed.</p></body></html>";
    let doc = text_doc(html);
    assert_ne!(doc.text, doc.raw_text, "the pipeline rendered it");
    let findings = model.classify(&doc).expect("classifies");
    let p = data.probability(data.margin(html));
    assert_eq!(findings[0].detail, format!("p(spam)={p:.3}"));
}

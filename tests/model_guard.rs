//! The text model's guard through the real pipeline (decode, sniff, model, class): stock
//! error pages, JSON error bodies, random bytes served as text and short texts must never get
//! model points at or above the spam threshold, while spam pages still do.
//!
//! Fixtures are in `tests/data/model_web/`, written for sluice after the well-known layouts of
//! nginx, Apache, Varnish and CDN error pages (no corpus text).

use std::path::Path;
use std::sync::Arc;

use sluice::config::ScanConfig;
use sluice::scan::model::TextModel;
use sluice::scan::pipeline::{Pipeline, Settings};
use sluice::scan::{Class, Classifier, Content, Verdict};

const SPAM_THRESHOLD: f64 = 5.0;

fn pipeline() -> Pipeline {
    let cfg = ScanConfig {
        models: Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        ..ScanConfig::default()
    };
    let (model, warnings) = TextModel::load(&cfg).expect("the shipped model loads");
    assert!(warnings.is_empty(), "{warnings:?}");
    let classifiers: Vec<Arc<dyn Classifier>> = vec![Arc::new(model)];
    Pipeline::new(classifiers, Settings::from_config(&cfg))
}

fn content(bytes: Vec<u8>, declared: &str, charset: Option<&str>) -> Content {
    Content {
        bytes: bytes.into(),
        declared_type: declared.to_string(),
        charset: charset.map(str::to_string),
        content_encoding: String::new(),
        url: None,
        headers: Vec::new(),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/model_web")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The model's points in a verdict (`None` when it abstained).
fn model_points(v: &Verdict) -> Option<f64> {
    v.findings
        .iter()
        .find(|f| f.classifier == "model")
        .map(|f| f.score)
}

/// `n` bytes of a SplitMix64 stream.
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

#[test]
fn error_pages_and_short_texts_are_not_spam() {
    let p = pipeline();
    // (fixture, declared type, must the model abstain entirely?)
    let cases = [
        ("nginx-403-oneline.html", "text/html", true),
        ("nginx-404.html", "text/html", true),
        ("nginx-503.html", "text/html", true),
        ("apache-404.html", "text/html", false),
        ("apache-500.html", "text/html", false),
        ("varnish-503.html", "text/html", false),
        ("cdn-502.html", "text/html", false),
        ("json-403.json", "application/json", true),
        ("json-429.json", "application/json", true),
        ("ham-sentence.txt", "text/plain", false),
        ("article.html", "text/html", false),
    ];
    for (name, declared, abstains) in cases {
        let v = p.scan_sync(&content(fixture(name), declared, None));
        let points = model_points(&v);
        println!("{name}: class {} model {points:?}", v.class.as_str());
        assert_ne!(v.class, Class::Spam, "{name}: {v:?}");
        assert!(
            points.is_none_or(|s| s < SPAM_THRESHOLD),
            "{name}: model points {points:?}"
        );
        assert_eq!(points.is_none(), abstains, "{name}: {:?}", v.findings);
    }
}

#[test]
fn the_markup_cap_is_what_keeps_markup_heavy_error_pages_down() {
    let p = pipeline();
    for name in ["varnish-503.html", "cdn-502.html"] {
        let v = p.scan_sync(&content(fixture(name), "text/html", None));
        let f = v
            .findings
            .iter()
            .find(|f| f.classifier == "model")
            .expect("scored");
        // The raw markup alone scores these above the threshold; the cap brings them down.
        assert!(f.detail.contains("capped"), "{name}: {f:?}");
        assert!(f.score <= SPAM_THRESHOLD * 0.5 + 1.0, "{name}: {f:?}");
    }
}

#[test]
fn random_bytes_served_as_text_get_no_model_finding() {
    let p = pipeline();
    for (seed, n) in [(1u64, 1024usize), (2, 4096), (3, 300), (4, 64 * 1024)] {
        for (declared, charset) in [
            ("text/plain", None),
            ("text/plain", Some("utf-8")),
            ("text/html", None),
            ("text/plain", Some("iso-8859-1")),
        ] {
            let v = p.scan_sync(&content(random_bytes(seed, n), declared, charset));
            // The declared text type is kept, so it is the guard (not sniffing) that decides.
            assert_eq!(v.media_type, declared, "{n} bytes as {declared}");
            assert_eq!(
                model_points(&v),
                None,
                "{n} random bytes as {declared} {charset:?}: {:?}",
                v.findings
            );
            assert_ne!(v.class, Class::Spam);
        }
    }
}

#[test]
fn spam_pages_still_score() {
    let p = pipeline();
    for (name, declared) in [
        ("spam-pills.html", "text/html"),
        ("spam-income.txt", "text/plain"),
    ] {
        let v = p.scan_sync(&content(fixture(name), declared, None));
        let points = model_points(&v).expect("scored");
        assert!(points >= SPAM_THRESHOLD, "{name}: {:?}", v.findings);
        assert_eq!(v.class, Class::Spam, "{name}");
    }
}

/// What the guard costs on the training split: 5-fold out-of-fold, each held-out body decoded
/// by the pipeline's decoder and scored with and without the guard. Needs the corpus from
/// `shared/spam/make-train.py`: `SLUICE_SPAM_CORPUS=/tmp/spam-corpus/body cargo test
/// --release --test model_guard -- --ignored --nocapture`.
#[test]
#[ignore = "needs the training corpus (SLUICE_SPAM_CORPUS) and a release build"]
fn guard_cost_on_the_training_split() {
    use sluice::scan::decode::{decode, DecodeLimits};
    use sluice::scan::model::corpus::{files_under, text_from_bytes};
    use sluice::scan::model::guard::{abstain, Abstain};
    use sluice::scan::model::train::{train, TrainOptions};
    let root = std::path::PathBuf::from(
        std::env::var("SLUICE_SPAM_CORPUS").expect("set SLUICE_SPAM_CORPUS to .../body"),
    );
    let mut docs = Vec::new();
    for (class, spam) in [("spam", true), ("ham", false)] {
        for path in files_under(&root.join(class)).expect("reads the corpus") {
            let bytes = std::fs::read(&path).expect("reads");
            let html = path.extension().is_some_and(|e| e == "html");
            let declared = if html { "text/html" } else { "text/plain" };
            let doc = decode(
                &content(bytes.clone(), declared, None),
                &DecodeLimits::default(),
                None,
            )
            .expect("decodes");
            docs.push((text_from_bytes(&bytes), spam, doc));
        }
    }
    let folds = 5;
    // [spam, ham] × [called spam without the guard, with it]
    let mut called = [[0usize; 2]; 2];
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for f in 0..folds {
        let fit: Vec<(String, bool)> = docs
            .iter()
            .enumerate()
            .filter(|(i, _)| i % folds != f)
            .map(|(_, d)| (d.0.clone(), d.1))
            .collect();
        let (data, _) = train(&fit, &TrainOptions::default()).expect("trains");
        let model = TextModel::from_data(data.clone(), b"fold", SPAM_THRESHOLD, 1.0);
        for (_, spam, doc) in docs
            .iter()
            .enumerate()
            .filter(|(i, _)| i % folds == f)
            .map(|(_, d)| d)
        {
            let row = usize::from(!spam);
            let before = data.points(data.margin(&doc.raw_text), SPAM_THRESHOLD) >= SPAM_THRESHOLD;
            let after = model
                .classify(doc)
                .expect("classifies")
                .first()
                .is_some_and(|x| x.score >= SPAM_THRESHOLD);
            called[row][0] += usize::from(before);
            called[row][1] += usize::from(after);
            if before && !after {
                let why = match abstain(doc, data.header.features.max_bytes) {
                    Some(Abstain::MediaType) => "media type",
                    Some(Abstain::Junk) => "junk",
                    Some(Abstain::TooShort) => "too short",
                    None => "markup cap",
                };
                *reasons
                    .entry(format!("{} {why}", if *spam { "spam" } else { "ham" }))
                    .or_default() += 1;
            }
        }
    }
    let spam = docs.iter().filter(|d| d.1).count();
    let ham = docs.len() - spam;
    println!(
        "out-of-fold, {spam} spam / {ham} ham: spam called spam {} -> {} with the guard; \
         ham called spam {} -> {}; silenced by reason {reasons:?}",
        called[0][0], called[0][1], called[1][0], called[1][1]
    );
    // The guard may silence only a small share of the spam the model catches.
    assert!(called[0][1] * 100 >= called[0][0] * 95, "{called:?}");
    assert!(called[1][1] <= called[1][0], "{called:?}");
}

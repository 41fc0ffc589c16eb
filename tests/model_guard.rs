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

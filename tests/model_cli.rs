//! `sluice model train` run as a user would: the real binary on a small corpus on disk.

use std::path::Path;
use std::process::Command;

use sluice::config::ScanConfig;
use sluice::scan::model::{TextModel, MODEL_FILE};
use sluice::scan::{Classifier, Document};

const SPAM: &[&str] = &[
    "FREE", "cash", "winner", "click", "here", "bonus", "offer", "prize", "urgent", "$1000",
];
const HAM: &[&str] = &[
    "meeting", "patch", "kernel", "thanks", "review", "build", "merge", "release", "notes", "bug",
];

fn write_corpus(dir: &Path, vocab: &[&str], n: usize) {
    // Nested folders: the command must read recursively.
    let sub = dir.join("nested");
    std::fs::create_dir_all(&sub).expect("mkdir");
    for i in 0..n {
        let text: Vec<&str> = (0..25)
            .map(|k| vocab[(i * 3 + k * k) % vocab.len()])
            .collect();
        let target = if i % 2 == 0 { dir } else { &sub };
        std::fs::write(target.join(format!("{i}.txt")), text.join(" ")).expect("write");
    }
}

fn sluice(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("runs sluice")
}

#[test]
fn model_train_writes_a_model_that_loads_and_scores() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (spam, ham, models) = (
        tmp.path().join("spam"),
        tmp.path().join("ham"),
        tmp.path().join("models"),
    );
    write_corpus(&spam, SPAM, 24);
    write_corpus(&ham, HAM, 30);
    std::fs::create_dir_all(&models).expect("mkdir");
    let out = models.join(MODEL_FILE);
    let run = sluice(&[
        "model".as_ref(),
        "train".as_ref(),
        "--spam".as_ref(),
        spam.as_os_str(),
        "--ham".as_ref(),
        ham.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("24 spam and 30 ham"), "{stdout}");

    let cfg = ScanConfig {
        models,
        ..ScanConfig::default()
    };
    let (model, warnings) = TextModel::load(&cfg).expect("the trained model loads");
    assert!(warnings.is_empty());
    // Plain text as the pipeline decodes it (visible text = raw text); at least ten words, as
    // the model abstains on shorter texts.
    let doc = |text: &str| Document {
        media_type: "text/plain".to_string(),
        raw_text: text.to_string(),
        text: text.to_string(),
        ..Document::default()
    };
    let spam_score = model.classify(&doc(
        "urgent: click here, FREE cash prize and bonus offer for the winner",
    ));
    let ham_score = model.classify(&doc(
        "thanks for the review of the kernel patch notes and the merge of the build",
    ));
    let (s, h) = (
        spam_score.expect("scores")[0].score,
        ham_score.expect("scores")[0].score,
    );
    assert!(s >= 5.0 && h < 0.0, "spam {s}, ham {h}");
}

#[test]
fn model_train_fails_clearly_on_a_missing_dir_or_an_empty_class() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ham = tmp.path().join("ham");
    write_corpus(&ham, HAM, 4);
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = tmp.path().join("out.model");
    for (spam_dir, expect) in [
        (tmp.path().join("missing"), "cannot read"),
        (empty, "no spam documents"),
    ] {
        let run = sluice(&[
            "model".as_ref(),
            "train".as_ref(),
            "--spam".as_ref(),
            spam_dir.as_os_str(),
            "--ham".as_ref(),
            ham.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
        assert!(!out.exists(), "no model is written on failure");
    }
}

/// Is this corpus file in the validation carve-out? (first 8 hex digits of the SHA-256 of the
/// file name, as an integer, divisible by 5: a deterministic ~20%).
fn in_validation(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let hash = sluice::scan::sha256_hex(name.unwrap_or_default().as_bytes());
    u64::from_str_radix(hash.get(..8).unwrap_or("1"), 16).is_ok_and(|h| h % 5 == 0)
}

/// The validation figures of models/README.md: the training recipe run on 80% of the training
/// split and scored on the other 20% at its own operating point. Needs the corpus from
/// `shared/spam/make-train.py`: `SLUICE_SPAM_CORPUS=/tmp/spam-corpus/body cargo test --release
/// --test model_cli -- --ignored --nocapture`.
#[test]
#[ignore = "needs the training corpus (SLUICE_SPAM_CORPUS) and a release build"]
fn validation_carve_out_figures() {
    use sluice::scan::model::corpus::read_texts;
    use sluice::scan::model::train::{train, Metrics, TrainOptions};
    let root = std::path::PathBuf::from(
        std::env::var("SLUICE_SPAM_CORPUS").expect("set SLUICE_SPAM_CORPUS to .../body"),
    );
    let (mut fit, mut val) = (Vec::new(), Vec::new());
    for (class, spam) in [("spam", true), ("ham", false)] {
        for (path, text) in read_texts(&root.join(class)).expect("reads the corpus") {
            if in_validation(&path) {
                val.push((text, spam));
            } else {
                fit.push((text, spam));
            }
        }
    }
    let (model, report) = train(&fit, &TrainOptions::default()).expect("trains");
    let scored: Vec<(f64, bool)> = val.iter().map(|(t, s)| (model.margin(t), *s)).collect();
    let m = Metrics::at(&scored, model.header.spam_margin);
    println!(
        "fit {} / validation {}: out-of-fold P {:.4} R {:.4} F1 {:.4} FPR {:.4}; \
         validation {m:?} P {:.4} R {:.4} F1 {:.4} FPR {:.4}",
        fit.len(),
        val.len(),
        report.cv.precision(),
        report.cv.recall(),
        report.cv.f1(),
        report.cv.fpr(),
        m.precision(),
        m.recall(),
        m.f1(),
        m.fpr()
    );
    assert!(m.f1() > 0.95 && m.fpr() < 0.005, "{m:?}");
}

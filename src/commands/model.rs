//! `sluice model train`: train the text model on a user's corpus.

use std::path::Path;

use crate::scan::model::corpus::read_texts;
use crate::scan::model::format;
use crate::scan::model::train::{train as train_model, TrainOptions};

/// Reads every file under `spam` and `ham`, trains with the default options, writes `out` and
/// prints a one-line summary; returns the exit code.
pub fn train(spam: &Path, ham: &Path, out: &Path) -> u8 {
    match run(spam, ham, out) {
        Ok(summary) => {
            println!("{summary}");
            0
        }
        Err(message) => {
            eprintln!("sluice: {message}");
            1
        }
    }
}

fn run(spam: &Path, ham: &Path, out: &Path) -> Result<String, String> {
    let mut texts = Vec::new();
    for (dir, is_spam, what) in [(spam, true, "spam"), (ham, false, "ham")] {
        let read = read_texts(dir).map_err(|e| e.to_string())?;
        if read.is_empty() {
            return Err(format!("no {what} documents in {}", dir.display()));
        }
        texts.extend(read.into_iter().map(|(_, t)| (t, is_spam)));
    }
    let (model, report) =
        train_model(&texts, &TrainOptions::default()).map_err(|e| e.to_string())?;
    let bytes = format::encode(&model).map_err(|e| e.to_string())?;
    std::fs::write(out, &bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let cv = report.cv;
    Ok(format!(
        "trained text model on {} spam and {} ham documents: wrote {} ({} bytes); \
         cross-validated at the operating point: precision {:.4} recall {:.4} F1 {:.4} FPR {:.4}",
        report.spam,
        report.ham,
        out.display(),
        bytes.len(),
        cv.precision(),
        cv.recall(),
        cv.f1(),
        cv.fpr()
    ))
}

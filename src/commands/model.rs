//! `sluice model train`: train the text model on a user's corpus.

use std::path::Path;

/// Runs the command; returns the exit code.
pub fn train(_spam: &Path, _ham: &Path, _out: &Path) -> u8 {
    eprintln!("sluice: model train is not built yet");
    1
}

//! `sluice scan FILE...`: classify files offline with the serve pipeline.

use std::path::PathBuf;

use crate::config::Config;

/// Runs the command; returns the exit code.
pub fn run(_cfg: &Config, _files: &[PathBuf]) -> u8 {
    eprintln!("sluice: scan is not built yet");
    1
}

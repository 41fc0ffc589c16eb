//! `sluice rules check [DIR]`: parse and compile rule files.

use std::path::Path;

/// Runs the command; returns the exit code.
pub fn check(_dir: &Path) -> u8 {
    eprintln!("sluice: rules check is not built yet");
    1
}

//! `sluice hash FILE...`: SHA-256 and PDQ hash per file, one JSON object per line.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::ScanConfig;
use crate::scan::pdq::hash_image;
use crate::scan::sha256_hex;

/// One output line: `pdq` and `quality` on success, `error` otherwise.
#[derive(Debug, Serialize)]
struct Line {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pdq: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn hash_file(path: &Path, max_pixels: u64) -> Line {
    let mut line = Line {
        path: path.display().to_string(),
        sha256: None,
        pdq: None,
        quality: None,
        error: None,
    };
    match std::fs::read(path) {
        Err(e) => line.error = Some(format!("cannot read file: {e}")),
        Ok(bytes) => {
            line.sha256 = Some(sha256_hex(&bytes));
            match hash_image(&bytes, max_pixels) {
                Ok(h) => {
                    line.pdq = Some(h.to_hex());
                    line.quality = Some(h.quality);
                }
                Err(e) => line.error = Some(e.to_string()),
            }
        }
    }
    line
}

/// Runs the command; returns the exit code (1 when any file failed).
pub fn run(files: &[PathBuf]) -> u8 {
    let max_pixels = ScanConfig::default().max_image_pixels;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    for path in files {
        let line = hash_file(path, max_pixels);
        if let Some(e) = &line.error {
            // Also said where a user whose stdout goes to a file sees it, as `scan` does.
            eprintln!("sluice: {}: {e}", line.path);
            failed = true;
        }
        let json =
            serde_json::to_string(&line).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        if writeln!(out, "{json}").is_err() {
            // stdout closed (e.g. piped into `head`): nothing more can be reported.
            return 1;
        }
    }
    u8::from(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_and_non_image_files_report_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = hash_file(&dir.path().join("nope.jpg"), 1 << 20);
        assert!(missing.sha256.is_none());
        assert!(missing
            .error
            .as_deref()
            .unwrap()
            .starts_with("cannot read file"));
        let text = dir.path().join("a.txt");
        std::fs::write(&text, "hello").unwrap();
        let line = hash_file(&text, 1 << 20);
        assert_eq!(line.sha256.as_deref(), Some(sha256_hex(b"hello").as_str()));
        assert!(line.pdq.is_none());
        let json = serde_json::to_string(&line).unwrap();
        assert!(json.starts_with("{\"path\":"), "{json}");
        assert!(json.contains("\"error\":\"undecodable: "), "{json}");
    }
}

//! `sluice scan FILE...`: classify files offline with the serve pipeline.
//!
//! Each file becomes a [`Content`] (declared type from the extension, `.gz`/`.br` as a
//! Content-Encoding) and is scanned synchronously; one JSON object per line on stdout:
//! `{"path","sha256","media_type","class","score","findings":[...]}` plus `"reason"` when
//! unscanned, or `{"path","error"}` for an unreadable file (the same sentence on stderr, exit
//! 1 at the end). A path of `-` is standard input (its bytes are sniffed: no name to go by).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::scan::decode::{reconcile, sniff};
use crate::scan::pipeline::Pipeline;
use crate::scan::{Class, Content, Finding, Verdict};

/// One output line for a scanned file.
#[derive(Serialize)]
struct Line<'a> {
    path: &'a str,
    sha256: &'a str,
    media_type: &'a str,
    class: Class,
    score: f64,
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// One output line for a file that could not be read.
#[derive(Serialize)]
struct ErrorLine<'a> {
    path: &'a str,
    error: String,
}

/// Runs the command; returns the exit code.
pub fn run(cfg: &Config, files: &[PathBuf]) -> u8 {
    let (pipeline, warnings) = match Pipeline::from_config(&cfg.scan) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return 1;
        }
    };
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let max_body = cfg.scan.max_body.as_usize();
    let mut failed = false;
    let mut out = io::stdout().lock();
    for path in files {
        let shown = path.display().to_string();
        let json = match read_path(path, max_body) {
            Ok(body) => {
                let verdict = scan_file(&pipeline, path, body);
                serde_json::to_string(&Line {
                    path: &shown,
                    sha256: &verdict.sha256,
                    media_type: &verdict.media_type,
                    class: verdict.class,
                    score: verdict.score,
                    findings: &verdict.findings,
                    reason: verdict.reason.as_deref(),
                })
            }
            Err(e) => {
                failed = true;
                let error = format!("cannot read {shown}: {e}");
                eprintln!("sluice: {error}");
                serde_json::to_string(&ErrorLine {
                    path: &shown,
                    error,
                })
            }
        };
        let written = match json {
            Ok(line) => writeln!(out, "{line}"),
            Err(_) => writeln!(
                out,
                "{{\"path\":null,\"error\":\"output not serialisable\"}}"
            ),
        };
        if written.is_err() {
            // stdout closed (e.g. piped into `head`): nothing more can be reported.
            return 1;
        }
    }
    u8::from(failed)
}

/// A file's bytes, or (when larger than `max_body`) its first bytes and whole-file SHA-256.
enum Body {
    Whole(Vec<u8>),
    TooLarge { head: Vec<u8>, sha256: String },
}

/// The body of `path`, or of standard input for `-`.
fn read_path(path: &Path, max_body: usize) -> io::Result<Body> {
    if path == Path::new("-") {
        read_limited(io::stdin().lock(), max_body)
    } else {
        read_limited(File::open(path)?, max_body)
    }
}

/// Reads at most `max_body + 1` bytes into memory; a larger input is hashed as a stream.
fn read_limited(mut file: impl Read, max_body: usize) -> io::Result<Body> {
    let mut head = Vec::new();
    let limit = u64::try_from(max_body)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    (&mut file).take(limit).read_to_end(&mut head)?;
    if head.len() <= max_body {
        return Ok(Body::Whole(head));
    }
    let mut hasher = Sha256::new();
    hasher.update(&head);
    io::copy(&mut file, &mut hasher)?;
    Ok(Body::TooLarge {
        head,
        sha256: hex::encode(hasher.finalize()),
    })
}

fn scan_file(pipeline: &Pipeline, path: &Path, body: Body) -> Verdict {
    let (declared_type, content_encoding) = types_from_name(path);
    match body {
        Body::Whole(bytes) => pipeline.scan_sync(&Content {
            bytes: bytes.into(),
            declared_type,
            content_encoding,
            ..Content::default()
        }),
        Body::TooLarge { head, sha256 } => {
            let media = if content_encoding.is_empty() {
                reconcile(&declared_type, sniff(&head))
            } else {
                declared_type
            };
            Verdict::unscanned(&sha256, &media, "too_large", &pipeline.ruleset())
        }
    }
}

/// The declared media type and Content-Encoding a file name implies: `page.html.gz` is
/// gzip-encoded `text/html`; an unknown extension declares nothing (the bytes are sniffed).
fn types_from_name(path: &Path) -> (String, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let (stem, encoding) = match name.rsplit_once('.') {
        Some((stem, "gz")) => (stem, "gzip"),
        Some((stem, "br")) => (stem, "br"),
        _ => (name.as_str(), ""),
    };
    let declared = match stem.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html" | "htm" | "shtml") => "text/html",
        Some("xhtml") => "application/xhtml+xml",
        Some("txt" | "text") => "text/plain",
        Some("eml" | "msg" | "mbox") => "message/rfc822",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("css") => "text/css",
        Some("js") => "application/javascript",
        _ => "",
    };
    (declared.to_string(), encoding.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_imply_types_and_codings() {
        for (name, declared, encoding) in [
            ("a/page.html", "text/html", ""),
            ("PAGE.HTM", "text/html", ""),
            ("mail.eml", "message/rfc822", ""),
            ("notes.txt", "text/plain", ""),
            ("page.html.gz", "text/html", "gzip"),
            ("data.json.br", "application/json", "br"),
            ("photo.jpg", "", ""),
            ("archive.gz", "", "gzip"),
            ("noext", "", ""),
        ] {
            let (d, e) = types_from_name(Path::new(name));
            assert_eq!((d.as_str(), e.as_str()), (declared, encoding), "{name}");
        }
    }
}

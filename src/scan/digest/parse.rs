//! The list file formats: `*.sha256` (`<64 hex> [label]`) and ClamAV `*.hsb`
//! (`sha256:size:Name[:flevel]`).

use std::path::Path;

use super::{parse_hex, DigestEntry, Inner};
use crate::scan::LoadError;

pub(super) fn parse_file(
    path: &Path,
    bytes: &[u8],
    inner: &mut Inner,
    errors: &mut Vec<LoadError>,
    warnings: &mut Vec<LoadError>,
) {
    let list = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hsb = path.extension().is_some_and(|x| x == "hsb");
    for (n, raw) in crate::scan::file_lines(bytes).enumerate() {
        let err = |message: String| LoadError {
            file: path.to_path_buf(),
            line: n + 1,
            message,
        };
        let Ok(line) = std::str::from_utf8(raw) else {
            errors.push(err("line is not valid UTF-8".into()));
            continue;
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = if hsb {
            parse_hsb(line, &list)
        } else {
            parse_sha256(line, &list)
        };
        match parsed {
            Ok(Some((hash, e))) => inner.insert(hash, e),
            Ok(None) => warnings.push(err(
                "MD5/SHA-1 signature skipped (only SHA-256 is matched)".into()
            )),
            Err(m) => errors.push(err(m)),
        }
    }
}

type Parsed = Option<([u8; 32], DigestEntry)>;

/// `<64 hex> [label]`; `sha256sum`'s `*file` binary marker is dropped from the label.
fn parse_sha256(line: &str, list: &str) -> Result<Parsed, String> {
    let (hash, label) = match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], line[i..].trim()),
        None => (line, ""),
    };
    let hash = parse_hex(&hash.to_ascii_lowercase())
        .ok_or_else(|| format!("expected 64 hex digits, found '{hash}'"))?;
    let label = label.strip_prefix('*').unwrap_or(label).to_string();
    Ok(Some((
        hash,
        DigestEntry {
            label,
            list: list.to_string(),
            size: None,
        },
    )))
}

/// ClamAV `hash:size:Name[:flevel]`.
fn parse_hsb(line: &str, list: &str) -> Result<Parsed, String> {
    let parts: Vec<&str> = line.split(':').collect();
    if !(3..=4).contains(&parts.len()) {
        return Err("expected hash:size:name[:flevel]".into());
    }
    let (hash, size, name) = (parts[0], parts[1], parts[2]);
    if let Some(flevel) = parts.get(3) {
        if flevel.parse::<u32>().is_err() {
            return Err(format!("bad flevel '{flevel}'"));
        }
    }
    if name.is_empty() {
        return Err("missing signature name".into());
    }
    let size = match size {
        "*" => None,
        s => Some(s.parse::<u64>().map_err(|_| format!("bad size '{s}'"))?),
    };
    if (hash.len() == 32 || hash.len() == 40) && hash.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let hash = parse_hex(&hash.to_ascii_lowercase())
        .ok_or_else(|| format!("expected a 64-hex-digit SHA-256, found '{hash}'"))?;
    Ok(Some((
        hash,
        DigestEntry {
            label: name.to_string(),
            list: list.to_string(),
            size,
        },
    )))
}

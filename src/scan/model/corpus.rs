//! Reading a training corpus: every file under a directory, decoded to UTF-8 text the way a
//! proxy's body decoder would (BOM, then valid UTF-8, then a `charset=` label near the top,
//! else windows-1252, which is what browsers assume for unlabelled legacy text).

use std::path::{Path, PathBuf};

/// Why a corpus directory could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct CorpusError {
    /// The directory or file that failed.
    pub path: PathBuf,
    /// The underlying I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Bytes of a body searched for a `charset=` label (HTML's prescan window).
const SNIFF: usize = 1024;

/// Decodes a body to UTF-8 text.
pub fn text_from_bytes(bytes: &[u8]) -> String {
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let rest = bytes.get(bom..).unwrap_or_default();
        return enc.decode_without_bom_handling(rest).0.into_owned();
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let enc =
        sniff_charset(bytes.get(..SNIFF).unwrap_or(bytes)).unwrap_or(encoding_rs::WINDOWS_1252);
    enc.decode_without_bom_handling(bytes).0.into_owned()
}

/// The encoding named by the first `charset=` in `head`, if encoding_rs knows the label.
fn sniff_charset(head: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let lower = head.to_ascii_lowercase();
    let at = lower.windows(8).position(|w| w == b"charset=")? + 8;
    let label: Vec<u8> = lower
        .get(at..)?
        .iter()
        .copied()
        .skip_while(|&b| b == b'"' || b == b'\'' || b == b' ')
        .take_while(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':')
        .collect();
    encoding_rs::Encoding::for_label(&label)
}

/// Every regular file under `dir` (recursively), sorted by path for determinism.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>, CorpusError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let err = |source| CorpusError {
            path: d.clone(),
            source,
        };
        for entry in std::fs::read_dir(&d).map_err(err)? {
            let entry = entry.map_err(err)?;
            let kind = entry.file_type().map_err(err)?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() || (kind.is_symlink() && entry.path().is_file()) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and decodes every file under `dir`.
pub fn read_texts(dir: &Path) -> Result<Vec<(PathBuf, String)>, CorpusError> {
    files_under(dir)?
        .into_iter()
        .map(|p| match std::fs::read(&p) {
            Ok(b) => Ok((p, text_from_bytes(&b))),
            Err(source) => Err(CorpusError { path: p, source }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_passes_through() {
        assert_eq!(text_from_bytes("héllo".as_bytes()), "héllo");
    }

    #[test]
    fn meta_charset_is_honoured() {
        let mut b =
            b"<meta http-equiv=Content-Type content=\"text/html; charset=koi8-r\">".to_vec();
        b.push(0xf0); // KOI8-R for 'П'
        assert!(text_from_bytes(&b).ends_with('П'));
    }

    #[test]
    fn unlabelled_legacy_bytes_are_windows_1252() {
        assert_eq!(
            text_from_bytes(b"caf\xe9 \x93hi\x94"),
            "café \u{201c}hi\u{201d}"
        );
    }

    #[test]
    fn bom_wins() {
        assert_eq!(text_from_bytes(b"\xff\xfeh\x00i\x00"), "hi");
    }

    #[test]
    fn missing_dir_is_an_error_naming_it() {
        let e = read_texts(Path::new("/nonexistent/sluice-corpus")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/sluice-corpus"));
    }
}

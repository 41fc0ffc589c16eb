//! `*.pdq` list files: one `<64 hex> [label]` per line, `#` starts a comment line.

use std::path::{Path, PathBuf};

use super::types::PdqHash;
use crate::scan::LoadError;

/// One hash read from a list file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListEntry {
    pub hash: PdqHash,
    /// The label after the hash, if any (the rest of the line, trimmed).
    pub label: Option<String>,
}

/// One list file's entries, named by the file's stem.
#[derive(Clone, Debug)]
pub(crate) struct List {
    pub name: String,
    pub entries: Vec<ListEntry>,
}

/// Parses one list file's bytes; every malformed line (a line that is not UTF-8 too) is an
/// error `file:line: message`.
pub(crate) fn parse(bytes: &[u8], file: &Path) -> Result<Vec<ListEntry>, Vec<LoadError>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in crate::scan::file_lines(bytes).enumerate() {
        let Ok(line) = std::str::from_utf8(raw) else {
            errors.push(LoadError {
                file: file.to_path_buf(),
                line: i + 1,
                message: "line is not valid UTF-8".into(),
            });
            continue;
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (hex, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match PdqHash::from_hex(hex) {
            Ok(hash) => {
                let label = rest.trim();
                let label = (!label.is_empty()).then(|| label.to_string());
                entries.push(ListEntry { hash, label });
            }
            Err(e) => errors.push(LoadError {
                file: file.to_path_buf(),
                line: i + 1,
                message: format!("not a PDQ hash: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

/// Reads every `*.pdq` file of `dir` in name order. A missing directory is an empty set.
pub(crate) fn load_dir(dir: &Path) -> Result<Vec<List>, Vec<LoadError>> {
    let whole = |message: String| {
        vec![LoadError {
            file: dir.to_path_buf(),
            line: 0,
            message,
        }]
    };
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(whole(format!("cannot read hash list directory: {e}"))),
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pdq") && p.is_file())
        .collect();
    files.sort();
    let mut lists = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => {
                errors.push(LoadError {
                    file,
                    line: 0,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        match parse(&bytes, &file) {
            Ok(entries) => lists.push(List { name, entries }),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(lists)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22";

    #[test]
    fn parses_hashes_labels_and_comments() {
        let text = format!(
            "# a comment\n\n{A}\n  {}  bridge photo  \n",
            A.to_uppercase()
        );
        let entries = parse(text.as_bytes(), Path::new("x.pdq")).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].label, None);
        assert_eq!(entries[1].label.as_deref(), Some("bridge photo"));
        assert_eq!(entries[0].hash, entries[1].hash);
    }

    #[test]
    fn a_utf8_bom_before_the_first_hash_is_skipped() {
        let text = format!("\u{feff}{A} bridge\r\n");
        let entries = parse(text.as_bytes(), Path::new("x.pdq")).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].label.as_deref(), Some("bridge"));
    }

    #[test]
    fn malformed_lines_are_errors_with_file_and_line() {
        let text = format!("{A} ok\nnot-a-hash label\n{}\n", &A[..60]);
        let errs = parse(text.as_bytes(), Path::new("lists/bad.pdq")).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].line, 2);
        assert_eq!(errs[1].line, 3);
        let shown = errs[1].to_string();
        assert!(
            shown.starts_with("lists/bad.pdq:3: not a PDQ hash"),
            "{shown}"
        );
        assert!(shown.contains("found 60 characters"), "{shown}");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_an_error_at_its_line() {
        // A Latin-1 label: the other lines still load and the error names the line.
        let text = [
            format!("{A} ok\n").as_bytes(),
            b"zz caf\xe9\n",
            A.as_bytes(),
        ]
        .concat();
        let errs = parse(&text, Path::new("l.pdq")).unwrap_err();
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["l.pdq:2: line is not valid UTF-8"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pdq"), &text).unwrap();
        let errs = load_dir(dir.path()).unwrap_err();
        assert_eq!((errs.len(), errs[0].line), (1, 2), "{errs:?}");
    }

    #[test]
    fn directory_loading() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_dir(&dir.path().join("missing")).unwrap().is_empty());
        std::fs::write(dir.path().join("b.pdq"), format!("{A} two\n")).unwrap();
        std::fs::write(dir.path().join("a.pdq"), format!("{A}\n")).unwrap();
        std::fs::write(dir.path().join("c.sha256"), "not ours\n").unwrap();
        let lists = load_dir(dir.path()).unwrap();
        let names: Vec<_> = lists.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        std::fs::write(dir.path().join("d.pdq"), "zz\n").unwrap();
        let errs = load_dir(dir.path()).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].file.ends_with("d.pdq"));
    }
}

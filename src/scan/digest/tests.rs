//! Digest list loading, matching and runtime edits.

use super::*;
use std::path::Path;

const EICAR: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).expect("write");
    }
    d
}

fn doc(body: &[u8]) -> Document {
    Document {
        body: bytes::Bytes::copy_from_slice(body),
        sha256: crate::scan::sha256_hex(body),
        ..Default::default()
    }
}

#[test]
fn sha256_and_hsb_lists_match_by_hash_and_size() {
    let body = b"hello world";
    let h = crate::scan::sha256_hex(body);
    let d = dir(&[
        ("a.sha256", &format!("# comment\n\n{h}  *hello.txt\n")),
        (
            "b.hsb",
            &format!("{}:11:Hello.Sig:73\n{EICAR}:68:Eicar\n", h.to_uppercase()),
        ),
    ]);
    let (list, warnings) = DigestList::load_dir(d.path()).expect("loads");
    assert!(warnings.is_empty());
    let f = list.classify(&doc(body)).expect("classify");
    let rules: Vec<(&str, &str)> = f
        .iter()
        .map(|f| (f.rule.as_str(), f.detail.as_str()))
        .collect();
    assert_eq!(
        rules,
        vec![
            ("hello.txt", "sha256 listed in a.sha256"),
            ("Hello.Sig", "sha256 listed in b.hsb")
        ]
    );
    assert!(f.iter().all(|f| f.classifier == "digest" && f.score == 0.0));
    assert!(list.classify(&doc(b"other")).expect("classify").is_empty());
}

#[test]
fn hsb_size_must_match_unless_star() {
    let body = b"abc";
    let h = crate::scan::sha256_hex(body);
    let d = dir(&[("x.hsb", &format!("{h}:4:Wrong.Size\n"))]);
    let (list, _) = DigestList::load_dir(d.path()).expect("loads");
    assert!(list.classify(&doc(body)).expect("classify").is_empty());
    let d = dir(&[("x.hsb", &format!("{h}:*:Any.Size\n"))]);
    let (list, _) = DigestList::load_dir(d.path()).expect("loads");
    assert_eq!(
        list.classify(&doc(body)).expect("classify")[0].rule,
        "Any.Size"
    );
}

#[test]
fn unlabelled_entry_is_named_after_its_list() {
    let h = crate::scan::sha256_hex(b"x");
    let d = dir(&[("bad.sha256", &h)]);
    let (list, _) = DigestList::load_dir(d.path()).expect("loads");
    assert_eq!(
        list.classify(&doc(b"x")).expect("classify")[0].rule,
        "bad.sha256"
    );
}

#[test]
fn md5_hsb_lines_are_warnings() {
    let d = dir(&[(
        "m.hsb",
        "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n",
    )]);
    let (list, warnings) = DigestList::load_dir(d.path()).expect("loads");
    assert!(list.is_empty());
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].line, 1);
}

#[test]
fn malformed_lines_are_errors_with_positions() {
    for (name, text, want) in [
        (
            "a.sha256",
            "abc label\n",
            "a.sha256:1: expected 64 hex digits, found 'abc'",
        ),
        (
            "a.sha256",
            &format!("# c\n{}zz\n", &EICAR[..62]),
            "a.sha256:2: expected 64 hex digits",
        ),
        (
            "b.hsb",
            &format!("{EICAR}:68\n"),
            "b.hsb:1: expected hash:size:name",
        ),
        (
            "b.hsb",
            &format!("{EICAR}:big:Name\n"),
            "b.hsb:1: bad size 'big'",
        ),
        (
            "b.hsb",
            &format!("{EICAR}:68:\n"),
            "b.hsb:1: missing signature name",
        ),
        (
            "b.hsb",
            &format!("{EICAR}:68:N:x\n"),
            "b.hsb:1: bad flevel 'x'",
        ),
        (
            "b.hsb",
            "nothex:68:N\n",
            "b.hsb:1: expected a 64-hex-digit SHA-256",
        ),
    ] {
        let d = dir(&[(name, text)]);
        let errs = DigestList::load_dir(d.path()).err().expect("errors");
        let shown = errs[0].to_string();
        let rel = shown.rsplit('/').next().unwrap_or_default().to_string();
        assert!(rel.starts_with(want), "{text:?}: {shown}");
    }
}

#[test]
fn missing_directory_is_empty() {
    let (list, _) = DigestList::load_dir(Path::new("/nonexistent/sluice/hashes")).expect("empty");
    assert!(list.is_empty());
}

#[test]
fn runtime_add_remove_and_fingerprint() {
    let list = DigestList::default();
    let empty = list.fingerprint();
    let h = crate::scan::sha256_hex(b"body");
    list.add(&h.to_uppercase(), "bad page", "admin")
        .expect("add");
    let with = list.fingerprint();
    assert_ne!(with, empty);
    assert_eq!(
        list.classify(&doc(b"body")).expect("classify")[0].rule,
        "bad page"
    );
    assert_eq!(list.lookup(&h)[0].list, "admin");
    assert_eq!(list.entries().len(), 1);
    list.add(&h, "bad page", "admin").expect("idempotent");
    assert_eq!(list.fingerprint(), with);
    assert_eq!(list.remove(&h), Ok(1));
    assert_eq!(list.fingerprint(), empty);
    assert!(list.classify(&doc(b"body")).expect("classify").is_empty());
    assert_eq!(list.remove(&h), Ok(0));
    assert!(matches!(
        list.add("xyz", "", "admin"),
        Err(DigestError::BadHash(_))
    ));
}

#[test]
fn fingerprint_is_order_independent() {
    let (a, b) = (crate::scan::sha256_hex(b"a"), crate::scan::sha256_hex(b"b"));
    let one = DigestList::default();
    one.add(&a, "", "l").expect("add");
    one.add(&b, "", "l").expect("add");
    let two = DigestList::default();
    two.add(&b, "", "l").expect("add");
    two.add(&a, "", "l").expect("add");
    assert_eq!(one.fingerprint(), two.fingerprint());
}

/// A list saved by a Windows editor starts with a UTF-8 byte-order mark; the first hash was
/// refused as "expected 64 hex digits" over a character nobody can see.
#[test]
fn a_utf8_bom_before_the_first_hash_is_skipped() {
    let body = b"hello world";
    let h = crate::scan::sha256_hex(body);
    let d = dir(&[
        ("a.sha256", &format!("\u{feff}{h}  hello\r\n")),
        ("b.hsb", &format!("\u{feff}{EICAR}:68:Eicar\r\n")),
    ]);
    let (list, warnings) = DigestList::load_dir(d.path()).expect("loads");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(list.len(), 2);
    let f = list.classify(&doc(body)).expect("classify");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].rule, "hello");
}

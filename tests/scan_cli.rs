//! `sluice scan` end to end: the real binary, a temporary config and rules directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sluice::scan::sha256_hex;

const PAGE: &str = "<!doctype html><html><body><p>Hello there, you have won.</p>\
                    <a href=\"http://claim.example/now\">claim</a></body></html>";

/// A temp dir with `sluice.toml` (max_body 1 KiB) and a rules dir holding one simple rule.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("test.cf"),
        "body     SLUICE_TEST_WON  /you have won/i\n\
         describe SLUICE_TEST_WON  Says the reader has won something\n\
         score    SLUICE_TEST_WON  3.0\n",
    )
    .unwrap();
    let cfg = dir.path().join("sluice.toml");
    let text = format!(
        "[scan]\nrules = {:?}\nmodels = {:?}\nhash_lists = {:?}\nmax_body = \"1KiB\"\n",
        rules,
        dir.path().join("no-models"),
        dir.path().join("no-hashes"),
    );
    std::fs::write(&cfg, text).unwrap();
    (dir, cfg)
}

fn sluice_scan(cfg: &Path, files: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("scan")
        .arg("--config")
        .arg(cfg)
        .args(files)
        .output()
        .unwrap()
}

/// The JSON lines of a run that must have exited 0 (its stderr shown when it did not).
#[track_caller]
fn ok_lines(out: &Output) -> Vec<Value> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(out)
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn each_file_gets_one_json_line_with_sha_media_type_and_class() {
    let (dir, cfg) = setup();
    let html = dir.path().join("page.html");
    std::fs::write(&html, PAGE).unwrap();
    let txt = dir.path().join("note.txt");
    std::fs::write(&txt, "plain words, nothing else").unwrap();
    let png = dir.path().join("picture.bin");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let gz = dir.path().join("page.html.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(PAGE.as_bytes()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();

    let out = sluice_scan(&cfg, &[&html, &txt, &png, &gz]);
    let got = ok_lines(&out);
    assert_eq!(got.len(), 4);
    let first_line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_string);
    assert!(
        first_line.unwrap().starts_with("{\"path\":"),
        "path comes first"
    );
    for (v, path, media) in [
        (&got[0], &html, "text/html"),
        (&got[1], &txt, "text/plain"),
        (&got[2], &png, "image/png"),
        (&got[3], &gz, "text/html"),
    ] {
        // A truncated PNG cannot be hashed: unscanned, with the reason as an extra key.
        let mut keys: Vec<&str> = v
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .filter(|k| !(path == &png && *k == "reason"))
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["class", "findings", "media_type", "path", "score", "sha256"],
            "{v}"
        );
        assert_eq!(v["path"], path.display().to_string());
        if path == &png {
            assert_eq!(
                (v["class"].as_str(), v["reason"].as_str()),
                (Some("unscanned"), Some("undecodable")),
                "{v}"
            );
        }
        assert_eq!(v["media_type"], media, "{v}");
        assert!(v["score"].is_number() && v["findings"].is_array(), "{v}");
        let class = v["class"].as_str().unwrap();
        assert!(
            ["clean", "suspect", "spam", "listed", "unscanned"].contains(&class),
            "{v}"
        );
        for f in v["findings"].as_array().unwrap() {
            for k in ["classifier", "rule", "score", "detail"] {
                assert!(f.get(k).is_some(), "finding without {k}: {f}");
            }
        }
    }
    let page_sha = sha256_hex(PAGE.as_bytes());
    assert_eq!(got[0]["sha256"], page_sha);
    assert_eq!(
        got[3]["sha256"], page_sha,
        "verdicts are keyed by the decoded body"
    );
    assert_eq!(got[1]["sha256"], sha256_hex(b"plain words, nothing else"));
}

#[test]
fn a_file_over_max_body_is_unscanned_too_large() {
    let (dir, cfg) = setup();
    let big = dir.path().join("big.html");
    let body = format!("<html><body>{}</body></html>", "x".repeat(2000));
    std::fs::write(&big, &body).unwrap();
    let out = sluice_scan(&cfg, &[&big]);
    assert_eq!(out.status.code(), Some(0));
    let v = &lines(&out)[0];
    assert_eq!(v["class"], "unscanned");
    assert_eq!(v["reason"], "too_large");
    assert_eq!(
        v["sha256"],
        sha256_hex(body.as_bytes()),
        "hash of the whole file"
    );
    assert_eq!(v["media_type"], "text/html");
    assert_eq!(v["findings"][0]["classifier"], "pipeline");
    assert_eq!(v["findings"][0]["rule"], "too_large");
}

#[test]
fn a_gzip_bomb_is_unscanned_limit() {
    let (dir, cfg) = setup();
    let bomb = dir.path().join("bomb.html.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // 200 KB of spaces: a few hundred bytes on disk (under max_body), far over it decoded.
    enc.write_all(&vec![b' '; 200_000]).unwrap();
    std::fs::write(&bomb, enc.finish().unwrap()).unwrap();
    let out = sluice_scan(&cfg, &[&bomb]);
    let v = &lines(&out)[0];
    assert_eq!(
        (v["class"].as_str(), v["reason"].as_str()),
        (Some("unscanned"), Some("limit"))
    );
}

#[test]
fn an_unreadable_file_is_reported_and_exits_1_after_the_others() {
    let (dir, cfg) = setup();
    let missing = dir.path().join("missing.html");
    let html = dir.path().join("page.html");
    std::fs::write(&html, PAGE).unwrap();
    let out = sluice_scan(&cfg, &[&missing, &html]);
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["path"], missing.display().to_string());
    assert!(
        got[0]["error"].as_str().unwrap().contains("missing.html"),
        "{}",
        got[0]
    );
    assert_eq!(got[1]["sha256"], sha256_hex(PAGE.as_bytes()));
    // Errors go to stderr as one sentence too (DESIGN.md), not only into the JSON lines.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read") && stderr.contains("missing.html"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_samples_scan() {
    let (_dir, cfg) = setup();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/samples");
    let files = ["spam-lottery.html", "newsletter.html", "ham.eml"].map(|f| samples.join(f));
    let out = sluice_scan(
        &cfg,
        &files.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    );
    let media: Vec<String> = ok_lines(&out)
        .iter()
        .map(|v| v["media_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(media, ["text/html", "text/html", "message/rfc822"]);
}

#[test]
fn a_bad_config_or_no_files_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[scan]\nmax_body = \"lots\"\n").unwrap();
    let out = sluice_scan(&cfg, &[Path::new("x")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("scan")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
}

/// Regression: `sluice scan --config` with the production file refused to run when the file
/// has a non-loopback `admin.listen` and the token comes from `SLUICE_ADMIN_TOKEN` in the
/// service's environment only: scanning never uses the admin API.
#[test]
fn scan_does_not_need_the_admin_token() {
    let (dir, cfg) = setup();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("[admin]\nlisten = \"0.0.0.0:3129\"\n");
    std::fs::write(&cfg, text).unwrap();
    let html = dir.path().join("page.html");
    std::fs::write(&html, PAGE).unwrap();
    let scan = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .env_remove("SLUICE_ADMIN_TOKEN")
        .arg("scan")
        .arg("--config")
        .arg(&cfg)
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(ok_lines(&scan)[0]["sha256"], sha256_hex(PAGE.as_bytes()));
    // serve still needs it.
    let check = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .env_remove("SLUICE_ADMIN_TOKEN")
        .args(["serve", "--check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stderr).contains("admin.token"));
}

/// Regression: `sluice scan -` answered "cannot read -: No such file or directory"; `-` is
/// standard input, as for `sha256sum -` or `clamscan -`, so a mail can be piped in.
#[test]
fn a_dash_scans_standard_input() {
    use std::process::Stdio;
    let (dir, cfg) = setup();
    let txt = dir.path().join("note.txt");
    std::fs::write(&txt, "plain words").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("scan")
        .arg("--config")
        .arg(&cfg)
        .arg("-")
        .arg(&txt)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(PAGE.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let got = ok_lines(&out);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["path"], "-");
    assert_eq!(got[0]["sha256"], sha256_hex(PAGE.as_bytes()));
    assert_eq!(got[0]["media_type"], "text/html", "sniffed: {}", got[0]);
    assert_eq!(
        got[0]["findings"][0]["rule"], "SLUICE_TEST_WON",
        "{}",
        got[0]
    );
    assert_eq!(got[1]["sha256"], sha256_hex(b"plain words"));
}

//! `sluice rules check` through the real binary: exit codes, messages, and the shipped rules.

use std::path::Path;
use std::process::{Command, Output};

fn check(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["rules", "check"])
        .arg(dir)
        .output()
        .expect("run sluice")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    for (name, body) in files {
        std::fs::write(d.path().join(name), body).expect("write");
    }
    d
}

#[test]
fn good_rules_pass_with_a_summary() {
    let d = dir_with(&[(
        "10-test.cf",
        "body A /cheap pills/i\nscore A 2\ndescribe A Pills\nbody __B /b/\nmeta C A && __B\n",
    )]);
    let out = check(d.path());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "3 rules loaded (0 slow)\n");
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn bad_rules_exit_1_with_file_line_messages() {
    let d = dir_with(&[
        ("10-good.cf", "body A /a/\n"),
        (
            "20-bad.cf",
            "body B /(unclosed/\nscore NOPE 1\nmeta M A || GHOST\n",
        ),
    ]);
    let out = check(d.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let file = d.path().join("20-bad.cf");
    let file = file.display();
    assert!(
        err.contains(&format!(
            "{file}:1: invalid regex /(unclosed/: unclosed group"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:2: score for undefined rule NOPE")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:3: meta M references unknown rule GHOST")),
        "{err}"
    );
    assert!(err.contains("rules check failed: 3 errors"), "{err}");
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn unknown_directives_warn_and_slow_rules_are_listed() {
    let d = dir_with(&[("r.cf", "tflags A nice\nbody A /pill(?!ow)/\nbody B /b/\n")]);
    let out = check(d.path());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let file = d.path().join("r.cf");
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}:1: warning: unknown directive 'tflags' ignored\n",
            file.display()
        )
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("slow: A ({}:2)", file.display())),
        "{stdout}"
    );
    assert!(stdout.ends_with("2 rules loaded (1 slow)\n"), "{stdout}");
}

#[test]
fn missing_directory_exits_1() {
    let out = check(Path::new("/nonexistent/sluice-rules"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("does not exist"));
}

#[test]
fn shipped_rules_load_without_errors_or_warnings() {
    let out = check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let stdout = text(&out.stdout);
    let summary = stdout.lines().last().unwrap_or_default();
    let n: usize = summary
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(n >= 40, "{summary}");
}

#[test]
fn a_file_given_as_the_rules_directory_is_named_as_such() {
    let d = dir_with(&[("10.cf", "body A /a/\n")]);
    let file = d.path().join("10.cf");
    let out = check(&file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    // It used to say "does not exist" about a file that exists.
    assert!(stderr.contains("is not a directory"), "{stderr}");
    let out = check(&d.path().join("nope"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("does not exist"));
}

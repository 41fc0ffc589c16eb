//! `sluice rules check [DIR]`: parse and compile rule files.
//!
//! Errors go to stderr as `file:line: message` (exit 1), warnings as
//! `file:line: warning: message` (exit 0); slow (backtracking) rules are listed on stdout,
//! followed by a summary line `N rules loaded (M slow)`.

use std::path::Path;

use crate::scan::rules::RuleSet;
use crate::scan::LoadError;

fn warning(w: &LoadError) -> String {
    let mut w = w.clone();
    w.message = format!("warning: {}", w.message);
    w.to_string()
}

/// Runs the command; returns the exit code.
pub fn check(dir: &Path) -> u8 {
    if !dir.is_dir() {
        let why = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        eprintln!("sluice: rules directory {} {why}", dir.display());
        return 1;
    }
    let report = RuleSet::load_report(dir);
    for w in &report.warnings {
        eprintln!("{}", warning(w));
    }
    for e in &report.errors {
        eprintln!("{e}");
    }
    match report.rules {
        Some(set) if report.errors.is_empty() => {
            let mut slow = 0;
            for r in set.slow_rules() {
                slow += 1;
                println!(
                    "slow: {} ({}:{}) needs backtracking (look-around or backreference)",
                    r.name,
                    r.file.display(),
                    r.line
                );
            }
            println!("{} rules loaded ({slow} slow)", set.len());
            0
        }
        _ => {
            let n = report.errors.len();
            eprintln!(
                "sluice: rules check failed: {n} error{}",
                if n == 1 { "" } else { "s" }
            );
            1
        }
    }
}

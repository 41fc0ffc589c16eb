//! Property tests for `*.pdq` list files and PDQ hex: arbitrary text parses or reports
//! `file:line: message` for a line that exists; valid lists round-trip exactly.

use std::path::Path;

use proptest::prelude::*;

use super::list::parse;
use super::types::PdqHash;

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn arbitrary_list_text_parses_or_names_an_existing_line(text in "[0-9a-fA-Fxg# \t\n\r-]{0,300}") {
        let lines = text.lines().count();
        match parse(text.as_bytes(), Path::new("fuzz.pdq")) {
            Ok(entries) => prop_assert!(entries.len() <= lines),
            Err(errors) => {
                for e in errors {
                    prop_assert!(e.line >= 1 && e.line <= lines, "line {} of {}", e.line, lines);
                    let prefix = format!("fuzz.pdq:{}: ", e.line);
                    prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
                }
            }
        }
    }

    #[test]
    fn any_unicode_never_panics(text in "\\PC{0,120}") {
        let _ = parse(text.as_bytes(), Path::new("fuzz.pdq"));
        let _ = PdqHash::from_hex(&text);
    }

    #[test]
    fn valid_lists_round_trip(
        entries in prop::collection::vec((any::<[u16; 16]>(), "[A-Za-z0-9 ._-]{0,16}", any::<bool>()), 0..30),
    ) {
        let mut text = String::from("# generated\n");
        for (bits, label, upper) in &entries {
            let hex = PdqHash { bits: *bits, quality: 100 }.to_hex();
            let hex = if *upper { hex.to_ascii_uppercase() } else { hex };
            text.push_str(&format!("{hex} {label}\n\n"));
        }
        let parsed = parse(text.as_bytes(), Path::new("ok.pdq"))
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(parsed.len(), entries.len());
        for (p, (bits, label, _)) in parsed.iter().zip(&entries) {
            prop_assert_eq!(p.hash.bits, *bits);
            let label = label.trim();
            prop_assert_eq!(p.label.as_deref(), (!label.is_empty()).then_some(label));
        }
    }
}

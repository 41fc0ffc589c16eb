//! The `verdicts_by_class` index: `class | inverted scan time | sha256` → empty, so that the
//! newest verdicts of a class are a forward range scan (admin `GET /verdicts?class=`).
//!
//! The time is the verdict's `scanned_at` in whole seconds, inverted (`u64::MAX - secs`) and
//! written as 16 hex digits, so keys sort newest first and the index key of a stored verdict
//! can be recomputed from the verdict alone (to drop it when the verdict is replaced).

use crate::scan::{Class, Verdict};

/// The key prefix of one class: `spam|`.
pub fn class_prefix(class: Class) -> Vec<u8> {
    format!("{}|", class.as_str()).into_bytes()
}

/// The index key of a verdict; `None` when its `scanned_at` is not RFC 3339.
pub fn key(v: &Verdict) -> Option<Vec<u8>> {
    let secs = parse_rfc3339(&v.scanned_at)?;
    let mut k = class_prefix(v.class);
    k.extend_from_slice(format!("{:016x}{}", u64::MAX - secs, v.sha256).as_bytes());
    Some(k)
}

/// The scan time (seconds since the epoch) encoded in the part of a key after the prefix.
pub fn key_secs(rest: &[u8]) -> Option<u64> {
    let hex = std::str::from_utf8(rest.get(..16)?).ok()?;
    u64::from_str_radix(hex, 16).ok().map(|inv| u64::MAX - inv)
}

/// Seconds since the epoch of an RFC 3339 date-time (`2026-11-25T16:46:20Z`, fractional
/// seconds and `±HH:MM` offsets accepted); `None` when malformed or before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = frac.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let tz = rest.get(1..)?;
            if tz.len() != 5 || tz.as_bytes().get(2) != Some(&b':') {
                return None;
            }
            let (oh, om): (i64, i64) = (tz.get(..2)?.parse().ok()?, tz.get(3..)?.parse().ok()?);
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    let t = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(t).ok()
}

/// Howard Hinnant's civil-to-days algorithm (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::scan::pipeline::rfc3339;

    #[test]
    fn parses_what_rfc3339_writes() {
        for secs in [0u64, 951_782_400, 1_795_625_180, 4_107_542_399] {
            let s = rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(parse_rfc3339(&s), Some(secs), "{s}");
        }
    }

    #[test]
    fn offsets_fractions_and_garbage() {
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:10.250Z"), Some(10));
        for bad in [
            "",
            "yesterday",
            "1970-13-01T00:00:00Z",
            "1970-01-01T00:00:00",
            "1970-01-01T00:00:00.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_sort_newest_first() {
        let v = |t: &str, sha: &str| Verdict {
            sha256: sha.into(),
            media_type: "text/plain".into(),
            class: Class::Spam,
            score: 9.0,
            findings: vec![],
            ruleset: "r".into(),
            scanned_at: t.into(),
            reason: None,
            reading: String::new(),
            derived: Default::default(),
        };
        let old = key(&v("2020-01-01T00:00:00Z", "bb")).unwrap();
        let new = key(&v("2026-01-01T00:00:00Z", "aa")).unwrap();
        assert!(new < old);
        assert!(new.starts_with(b"spam|"));
        assert_eq!(key_secs(&new[5..]), parse_rfc3339("2026-01-01T00:00:00Z"));
    }
}

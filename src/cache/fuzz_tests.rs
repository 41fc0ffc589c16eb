//! Property tests: parsers that see network input never panic and stay in bounds.

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::directives::CacheControl;
use super::meta::ObjectMeta;
use super::range::{ranges, RangeOutcome};

proptest! {
    #[test]
    fn cache_control_parsing_never_panics(s in "[ -~]{0,80}") {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&s) {
            h.insert("cache-control", v);
        }
        let cc = CacheControl::parse(&h);
        prop_assert!(cc.max_age.unwrap_or(0) <= super::directives::DELTA_MAX);
    }

    #[test]
    fn cache_control_bytes_never_panic(bytes in proptest::collection::vec(
        prop_oneof![Just(b'"'), Just(b'\\'), Just(b','), Just(b'='), Just(b' '), 0x80u8..=0xff, b'a'..=b'z'],
        0..40,
    )) {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&bytes) {
            h.insert("cache-control", v);
        }
        let cc = CacheControl::parse(&h);
        prop_assert!(cc.max_age.unwrap_or(0) <= super::directives::DELTA_MAX);
    }

    #[test]
    fn ranges_stay_within_the_body(s in "bytes=[0-9,\\- ]{0,40}", len in 0u64..10_000) {
        match ranges(Some(&s), len) {
            RangeOutcome::Partial(r) => prop_assert!(r.start < r.end && r.end <= len),
            RangeOutcome::Multi(rs) => {
                prop_assert!(rs.len() >= 2);
                for w in rs.windows(2) {
                    prop_assert!(w[0].end < w[1].start, "sorted, disjoint");
                }
                prop_assert!(rs.iter().all(|r| r.start < r.end && r.end <= len));
            }
            RangeOutcome::Full | RangeOutcome::Unsatisfiable => {}
        }
    }

    #[test]
    fn meta_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = ObjectMeta::decode(&bytes);
    }
}

//! The tokenizer and feature hasher shared by training and scoring.
//!
//! A text becomes a sparse vector of hashed features: lowercased word unigrams and bigrams,
//! a few word-shape tokens (ALL-CAPS words, long digit runs), and byte n-grams of the
//! lowercased, whitespace-collapsed text. Counts are log-scaled (`1 + ln tf`) and the vector is
//! L2-normalised, so long and short documents weigh the same. The hash is our own (FNV-1a plus a
//! SplitMix64 finaliser) so that bucket numbers never change with the Rust version or platform.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

/// How text is turned into features; stored in the model file so scoring matches training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// log2 of the number of hash buckets (the weight vector's length).
    pub bits: u32,
    /// Emit word bigrams as well as unigrams.
    pub word_bigrams: bool,
    /// Shortest byte n-gram (0 disables byte n-grams).
    pub char_min: usize,
    /// Longest byte n-gram.
    pub char_max: usize,
    /// Relative weight of the byte n-gram block against the word block after normalisation.
    pub char_weight: f32,
    /// Only the first `max_bytes` of a text are looked at (bounds scoring time on huge bodies).
    pub max_bytes: usize,
    /// For HTML, the rendered visible text is appended to the raw markup before tokenizing
    /// (see [`model_text`]). Absent in older model files, which read as `false`.
    #[serde(default)]
    pub visible_text: bool,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            bits: 19,
            word_bigrams: true,
            char_min: 3,
            char_max: 5,
            char_weight: 6.0,
            max_bytes: 128 * 1024,
            visible_text: true,
        }
    }
}

/// The visible text of `raw` when it sniffs as HTML (the renderer the pipeline uses), else
/// `None`; training and [`super::ModelData::margin`] use it, the classifier uses the
/// pipeline's own rendering.
pub fn visible_of(raw: &str) -> Option<String> {
    let head = truncate(raw, 1024);
    match crate::scan::decode::sniff(head.as_bytes()) {
        "text/html" | "application/xhtml+xml" => {
            let mut no_uris = crate::scan::decode::html::UriSet::new(0, None);
            Some(crate::scan::decode::html::to_text(raw, &mut no_uris))
        }
        _ => None,
    }
}

/// The text the model tokenizes: the raw text, plus a newline and the visible text when the
/// model uses it and there is one.
pub fn model_text<'a>(
    raw: &'a str,
    visible: Option<&str>,
    cfg: &FeatureConfig,
) -> std::borrow::Cow<'a, str> {
    match visible {
        Some(v) if cfg.visible_text => std::borrow::Cow::Owned(format!("{raw}\n{v}")),
        _ => std::borrow::Cow::Borrowed(raw),
    }
}

/// Words longer than this are cut (long base64 runs and URLs would otherwise all be unique).
const MAX_WORD: usize = 32;

/// Namespace seeds keep the feature families apart in the shared bucket space.
const NS_WORD: u64 = 0x9e37_79b9_7f4a_7c15;
const NS_BIGRAM: u64 = 0xc2b2_ae3d_27d4_eb4f;
const NS_SHAPE: u64 = 0x1656_67b1_9e37_79f9;
const NS_CHAR: u64 = 0x27d4_eb2f_1656_67c5;

/// A sparse feature vector: (bucket, value) pairs; a bucket may repeat (values add up).
pub type SparseVec = Vec<(u32, f32)>;

/// SplitMix64's finaliser: spreads FNV's weak low bits over the whole word.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a over `bytes`, seeded by a namespace.
fn fnv(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Cuts `text` to at most `max` bytes on a char boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

/// The words of a text: maximal runs of alphanumeric characters (plus `$`, `'`, `_`), as they
/// appear (case kept), each at most [`MAX_WORD`] bytes.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '$' || c == '\'' || c == '_'))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .map(|w| truncate(w, MAX_WORD))
}

/// A word-shape token for words whose form says more than their letters.
fn shape(word: &str) -> Option<&'static str> {
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    if letters >= 3 && word.chars().all(|c| !c.is_lowercase()) {
        return Some("ALLCAPS");
    }
    if word.len() >= 5 && word.bytes().all(|b| b.is_ascii_digit()) {
        return Some("DIGITS5");
    }
    if word.starts_with('$') && word.len() > 1 {
        return Some("MONEY");
    }
    None
}

/// Lowercased text with every whitespace run collapsed to one space (input to byte n-grams).
fn collapse(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(b' ');
        }
        space = false;
        if c.is_ascii() {
            out.push((c as u8).to_ascii_lowercase());
            continue;
        }
        let mut buf = [0u8; 4];
        for lc in c.to_lowercase() {
            out.extend_from_slice(lc.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

/// The bucket of a raw hash: the top `bits` bits of a Fibonacci multiply, which mixes FNV's
/// weak low bits into the high ones.
fn bucket(h: u64, bits: u32) -> u32 {
    // `bits` is at most 24 (checked on load and before training), so this fits a u32.
    (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as u32
}

thread_local! {
    /// Per-thread term counts indexed by bucket, all zero between calls; reusing it makes a
    /// document cost O(its length) with no sorting and no hashing into a map.
    static COUNTS: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

/// Turns buckets (with repeats) into unique buckets with log-scaled counts, L2-normalised to
/// `weight`, appended to `out` in order of first occurrence.
fn block(buckets: &[u32], bits: u32, weight: f32, out: &mut SparseVec) {
    COUNTS.with(|cell| {
        let mut counts = cell.borrow_mut();
        let size = 1usize << bits;
        if counts.len() < size {
            counts.resize(size, 0);
        }
        let start = out.len();
        for &b in buckets {
            let c = &mut counts[b as usize];
            if *c == 0 {
                out.push((b, 0.0));
            }
            *c = c.saturating_add(1);
        }
        let mut norm = 0f32;
        for (b, v) in out[start..].iter_mut() {
            let c = &mut counts[*b as usize];
            *v = 1.0 + f32::from(*c).ln();
            norm += *v * *v;
            *c = 0;
        }
        if norm > 0.0 {
            let k = weight / norm.sqrt();
            for (_, v) in out[start..].iter_mut() {
                *v *= k;
            }
        }
    });
}

/// The feature vector of `text` under `cfg`: the word block then the byte n-gram block (a
/// bucket may appear once in each).
pub fn vectorize(text: &str, cfg: &FeatureConfig) -> SparseVec {
    let text = truncate(text, cfg.max_bytes);
    let bits = cfg.bits;
    let mut buckets = Vec::with_capacity(text.len() / 3);
    let mut prev: Option<u64> = None;
    let mut lower = String::with_capacity(MAX_WORD * 4);
    for w in words(text) {
        lower.clear();
        lower.extend(w.chars().flat_map(char::to_lowercase));
        let h = fnv(NS_WORD, lower.as_bytes());
        buckets.push(bucket(h, bits));
        if cfg.word_bigrams {
            if let Some(p) = prev {
                buckets.push(bucket(mix(p ^ NS_BIGRAM).wrapping_add(h), bits));
            }
            prev = Some(h);
        }
        if let Some(s) = shape(w) {
            buckets.push(bucket(fnv(NS_SHAPE, s.as_bytes()), bits));
        }
    }
    let mut out = Vec::with_capacity(buckets.len() + text.len());
    block(&buckets, bits, 1.0, &mut out);
    if cfg.char_min == 0 || cfg.char_max < cfg.char_min {
        return out;
    }
    let bytes = collapse(text);
    buckets.clear();
    buckets.reserve(bytes.len() * (cfg.char_max - cfg.char_min + 1));
    for start in 0..bytes.len() {
        let mut h = 0xcbf2_9ce4_8422_2325 ^ NS_CHAR;
        for (k, &b) in bytes[start..].iter().take(cfg.char_max).enumerate() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            if k + 1 >= cfg.char_min {
                buckets.push(bucket(h ^ (k as u64 + 1), bits));
            }
        }
    }
    block(&buckets, bits, cfg.char_weight, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_punctuation_and_keep_money_signs() {
        let got: Vec<&str> = words("Buy NOW!! only $19.99 <a href=\"x\">it's</a>").collect();
        assert_eq!(
            got,
            ["Buy", "NOW", "only", "$19", "99", "a", "href", "x", "it's", "a"]
        );
    }

    #[test]
    fn long_words_are_cut_on_a_char_boundary() {
        let long = "é".repeat(40);
        let got: Vec<&str> = words(&long).collect();
        assert_eq!(got.len(), 1);
        assert!(got[0].len() <= MAX_WORD);
        assert_eq!(got[0].chars().count(), MAX_WORD / 2);
    }

    #[test]
    fn shapes_mark_caps_digits_and_money() {
        assert_eq!(shape("FREE"), Some("ALLCAPS"));
        assert_eq!(shape("Free"), None);
        assert_eq!(shape("1234567"), Some("DIGITS5"));
        assert_eq!(shape("$500"), Some("MONEY"));
        assert_eq!(shape("OK"), None);
    }

    #[test]
    fn collapse_lowercases_and_squeezes_whitespace() {
        assert_eq!(collapse("  Hello \n\t WORLD  "), b"hello world");
    }

    #[test]
    fn vectors_are_normalised_per_block() {
        let cfg = FeatureConfig::default();
        let v = vectorize(
            "Free money, FREE money! Click here: http://x.example/",
            &cfg,
        );
        assert!(v
            .iter()
            .all(|&(b, x)| u64::from(b) < (1 << cfg.bits) && x > 0.0));
        let norm: f32 = v.iter().map(|(_, x)| x * x).sum::<f32>();
        // A unit word block plus a char block of norm `char_weight`.
        let expect = 1.0 + cfg.char_weight * cfg.char_weight;
        assert!((norm - expect).abs() < 1e-3 * expect, "squared norm {norm}");
    }

    #[test]
    fn case_does_not_change_words_but_adds_a_shape() {
        let cfg = FeatureConfig {
            char_min: 0,
            word_bigrams: false,
            ..FeatureConfig::default()
        };
        let a = vectorize("money", &cfg);
        let b = vectorize("MONEY", &cfg);
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 2);
        assert!(b.iter().any(|&(bucket, _)| bucket == a[0].0));
    }

    #[test]
    fn empty_and_huge_texts_are_fine() {
        let cfg = FeatureConfig::default();
        assert!(vectorize("", &cfg).is_empty());
        let huge = "spam ".repeat(100_000);
        let v = vectorize(&huge, &cfg);
        assert!(!v.is_empty() && v.len() < 100);
        // More repeats than a u16 counts: the count saturates instead of wrapping.
        let same = "a".repeat(200_000);
        let v = vectorize(&same, &cfg);
        assert!(v.iter().all(|(_, x)| x.is_finite() && *x > 0.0));
    }

    #[test]
    fn counts_are_reset_between_documents() {
        let cfg = FeatureConfig::default();
        let text = "the same text twice, the same text twice";
        let first = vectorize(text, &cfg);
        let _other = vectorize("something else entirely", &cfg);
        assert_eq!(vectorize(text, &cfg), first);
    }

    #[test]
    fn html_gets_its_visible_text_appended_and_plain_text_does_not() {
        let cfg = FeatureConfig::default();
        let html = "<html><body><p>Cheap <b>pills</b> here</p></body></html>";
        let visible = visible_of(html).expect("sniffs as HTML");
        assert!(visible.contains("Cheap pills here"), "{visible:?}");
        let text = model_text(html, Some(&visible), &cfg);
        assert_eq!(text, format!("{html}\n{visible}"));
        assert_eq!(visible_of("just words, <b> later"), None);
        assert_eq!(model_text("plain", None, &cfg), "plain");
        let off = FeatureConfig {
            visible_text: false,
            ..cfg
        };
        assert_eq!(model_text(html, Some(&visible), &off), html);
    }

    #[test]
    fn older_model_headers_without_the_visible_text_flag_read_as_off() {
        let json = r#"{"bits":19,"word_bigrams":true,"char_min":3,"char_max":5,
            "char_weight":6.0,"max_bytes":131072}"#;
        let cfg: FeatureConfig = serde_json::from_str(json).expect("parses");
        assert!(!cfg.visible_text);
        assert!(FeatureConfig::default().visible_text);
    }

    #[test]
    fn hashing_is_stable_across_builds() {
        // Pinned so that a change to the hash (which would silently break shipped models) fails.
        assert_eq!(bucket(fnv(NS_WORD, b"viagra"), 20), 761_560);
    }
}

//! The tokenizer and feature hasher shared by training and scoring.
//!
//! A text becomes a sparse vector of hashed features: lowercased word unigrams and bigrams,
//! a few word-shape tokens (ALL-CAPS words, long digit runs), and byte n-grams of the
//! lowercased, whitespace-collapsed text. Counts are log-scaled (`1 + ln tf`) and the vector is
//! L2-normalised, so long and short documents weigh the same. The hash is our own (FNV-1a plus a
//! SplitMix64 finaliser) so that bucket numbers never change with the Rust version or platform.

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
        }
    }
}

/// Words longer than this are cut (long base64 runs and URLs would otherwise all be unique).
const MAX_WORD: usize = 32;

/// Namespace seeds keep the feature families apart in the shared bucket space.
const NS_WORD: u64 = 0x9e37_79b9_7f4a_7c15;
const NS_BIGRAM: u64 = 0xc2b2_ae3d_27d4_eb4f;
const NS_SHAPE: u64 = 0x1656_67b1_9e37_79f9;
const NS_CHAR: u64 = 0x27d4_eb2f_1656_67c5;

/// A sparse feature vector: (bucket, value) pairs sorted by bucket, buckets unique.
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
        let mut buf = [0u8; 4];
        for lc in c.to_lowercase() {
            out.extend_from_slice(lc.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

/// Turns raw hash values into a sorted, deduplicated, log-scaled, L2-normalised block.
fn block(mut hashes: Vec<u64>, mask: u64, weight: f32) -> SparseVec {
    for h in hashes.iter_mut() {
        *h = mix(*h) & mask;
    }
    hashes.sort_unstable();
    let mut out: SparseVec = Vec::with_capacity(hashes.len() / 2);
    let mut i = 0;
    while i < hashes.len() {
        let bucket = hashes[i];
        let mut j = i + 1;
        while j < hashes.len() && hashes[j] == bucket {
            j += 1;
        }
        // `mask` < 2^32 is checked when a config is loaded, so the cast cannot truncate.
        out.push((bucket as u32, 1.0 + ((j - i) as f32).ln()));
        i = j;
    }
    let norm = out.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        let k = weight / norm;
        for (_, v) in out.iter_mut() {
            *v *= k;
        }
    }
    out
}

/// Merges two sorted sparse vectors, adding values of equal buckets.
fn merge(a: SparseVec, b: SparseVec) -> SparseVec {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (ba, va) = a[i];
        let (bb, vb) = b[j];
        if ba < bb {
            out.push((ba, va));
            i += 1;
        } else if bb < ba {
            out.push((bb, vb));
            j += 1;
        } else {
            out.push((ba, va + vb));
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The feature vector of `text` under `cfg`.
pub fn vectorize(text: &str, cfg: &FeatureConfig) -> SparseVec {
    let text = truncate(text, cfg.max_bytes);
    let mask = (1u64 << cfg.bits) - 1;
    let mut word_hashes = Vec::with_capacity(text.len() / 3);
    let mut prev: Option<u64> = None;
    let mut lower = String::with_capacity(MAX_WORD * 4);
    for w in words(text) {
        lower.clear();
        lower.extend(w.chars().flat_map(char::to_lowercase));
        let h = fnv(NS_WORD, lower.as_bytes());
        word_hashes.push(h);
        if cfg.word_bigrams {
            if let Some(p) = prev {
                word_hashes.push(mix(p ^ NS_BIGRAM).wrapping_add(h));
            }
            prev = Some(h);
        }
        if let Some(s) = shape(w) {
            word_hashes.push(fnv(NS_SHAPE, s.as_bytes()));
        }
    }
    let words = block(word_hashes, mask, 1.0);
    if cfg.char_min == 0 || cfg.char_max < cfg.char_min {
        return words;
    }
    let bytes = collapse(text);
    let per = cfg.char_max - cfg.char_min + 1;
    let mut char_hashes = Vec::with_capacity(bytes.len() * per);
    for start in 0..bytes.len() {
        let mut h = 0xcbf2_9ce4_8422_2325 ^ NS_CHAR;
        for (k, &b) in bytes[start..].iter().take(cfg.char_max).enumerate() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            if k + 1 >= cfg.char_min {
                char_hashes.push(h ^ (k as u64 + 1));
            }
        }
    }
    merge(words, block(char_hashes, mask, cfg.char_weight))
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
    fn vectors_are_sorted_unique_and_normalised() {
        let cfg = FeatureConfig::default();
        let v = vectorize(
            "Free money, FREE money! Click here: http://x.example/",
            &cfg,
        );
        assert!(v.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(v
            .iter()
            .all(|&(b, x)| u64::from(b) < (1 << cfg.bits) && x > 0.0));
        let norm: f32 = v.iter().map(|(_, x)| x * x).sum::<f32>();
        // A unit word block plus a char block of norm `char_weight`, barely colliding.
        let expect = 1.0 + cfg.char_weight * cfg.char_weight;
        assert!((norm - expect).abs() < 0.05 * expect, "squared norm {norm}");
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
    }

    #[test]
    fn hashing_is_stable_across_builds() {
        // Pinned so that a change to the hash (which would silently break shipped models) fails.
        assert_eq!(mix(fnv(NS_WORD, b"viagra")) & 0xfffff, 714_619);
    }
}

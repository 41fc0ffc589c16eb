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

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `bytes`, seeded by a namespace.
fn fnv(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET ^ seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
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

/// A character words are made of: alphanumeric, `$`, `'` or `_`.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '$' || c == '\'' || c == '_'
}

/// [`is_word_char`] for the ASCII characters, by byte.
static ASCII_WORD: [bool; 128] = {
    let mut t = [false; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'$' || c == b'\'' || c == b'_';
        b += 1;
    }
    t
};

/// The end of the run starting at byte `at` of characters whose [`is_word_char`] is `word`.
/// `at` is a char boundary, and so is the result.
fn run_end(text: &str, mut at: usize, word: bool) -> usize {
    let bytes = text.as_bytes();
    while let Some(&b) = bytes.get(at) {
        let (is, len) = match ASCII_WORD.get(usize::from(b)) {
            Some(&is) => (is, 1),
            None => match text.get(at..).and_then(|rest| rest.chars().next()) {
                Some(c) => (is_word_char(c), c.len_utf8()),
                None => return bytes.len(),
            },
        };
        if is != word {
            return at;
        }
        at += len;
    }
    at
}

/// The words of a text: maximal runs of alphanumeric characters (plus `$`, `'`, `_`), as they
/// appear (case kept) with leading and trailing `'` trimmed, each at most [`MAX_WORD`] bytes.
pub fn words(text: &str) -> Words<'_> {
    Words { text, at: 0 }
}

/// The iterator of [`words`]: ASCII is classified by table, other characters by
/// `char::is_alphanumeric`.
pub struct Words<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let start = run_end(self.text, self.at, false);
            if start >= self.text.len() {
                self.at = start;
                return None;
            }
            self.at = run_end(self.text, start, true);
            let word = self.text.get(start..self.at)?.trim_matches('\'');
            if !word.is_empty() {
                return Some(truncate(word, MAX_WORD));
            }
        }
    }
}

/// The hash of a word's lowercase form (`lower` is scratch space for non-ASCII words).
fn word_hash(word: &str, lower: &mut String) -> u64 {
    if word.is_ascii() {
        return word.bytes().fold(FNV_OFFSET ^ NS_WORD, |h, b| {
            (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(FNV_PRIME)
        });
    }
    lower.clear();
    lower.extend(word.chars().flat_map(char::to_lowercase));
    fnv(NS_WORD, lower.as_bytes())
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
    // Before a non-space character: the one space a whitespace run before it became.
    let end_run = |out: &mut Vec<u8>, space: &mut bool| {
        if *space && !out.is_empty() {
            out.push(b' ');
        }
        *space = false;
    };
    let mut rest = text;
    while !rest.is_empty() {
        // ASCII runs byte by byte (`char::is_whitespace` on ASCII is exactly these six).
        let ascii = rest.bytes().take_while(u8::is_ascii).count();
        for b in rest.bytes().take(ascii) {
            if matches!(b, b'\t'..=b'\r' | b' ') {
                space = true;
            } else {
                end_run(&mut out, &mut space);
                out.push(b.to_ascii_lowercase());
            }
        }
        rest = rest.get(ascii..).unwrap_or("");
        let Some(c) = rest.chars().next() else { break };
        rest = rest.get(c.len_utf8()..).unwrap_or("");
        if c.is_whitespace() {
            space = true;
            continue;
        }
        end_run(&mut out, &mut space);
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

/// Turns buckets (with repeats) into unique buckets with log-scaled counts, L2-normalised to
/// `weight`, appended to `out` in order of first occurrence.
///
/// Counts are kept in `out` itself (as f32, exact far beyond the u16 saturation point), found
/// through an open-addressing table that starts at the document's size (at most 8,192 slots)
/// and doubles past half full: a short document touches a few KiB rather than a table over
/// the whole bucket space, and a long one at most ~4 slots per distinct bucket. A long
/// document ([`DENSE_FROM`] buckets or more) counts in a per-thread array over the whole
/// bucket space instead (see [`dense_counts`]).
fn block(buckets: &[u32], bits: u32, weight: f32, out: &mut SparseVec) {
    let start = out.len();
    if buckets.len() >= DENSE_FROM && bits <= DENSE_MAX_BITS {
        dense_counts(bits, out, |d| buckets.iter().for_each(|&b| d.add(b)));
    } else {
        slot_counts(buckets, out);
    }
    normalise(&mut out[start..], weight);
}

/// Log-scales the counts of one block (`1 + ln tf`) and L2-normalises them to `weight`.
fn normalise(block: &mut [(u32, f32)], weight: f32) {
    let mut norm = 0f32;
    for (_, v) in block.iter_mut() {
        // 1 + ln(1) is exactly 1; most n-grams of a document occur once.
        if *v != 1.0 {
            *v = 1.0 + v.ln();
        }
        norm += *v * *v;
    }
    if norm > 0.0 {
        let k = weight / norm.sqrt();
        for (_, v) in block.iter_mut() {
            *v *= k;
        }
    }
}

/// Buckets from which [`block`] counts in the dense array: where the slot table would have
/// grown past 8,192 slots anyway.
const DENSE_FROM: usize = 1 << 13;
/// The widest bucket space counted densely: 2^20 u16 counters, 2 MiB per scan thread.
const DENSE_MAX_BITS: u32 = 20;

/// [`block`]'s counting for short documents: the open-addressing slot table.
fn slot_counts(buckets: &[u32], out: &mut SparseVec) {
    const SATURATE: f32 = u16::MAX as f32;
    let start = out.len();
    let mut slots = Slots::new(buckets.len().min(1 << 12) * 2);
    for &b in buckets {
        match slots.find(b) {
            Ok(at) => {
                let count = &mut out[start + at].1;
                if *count < SATURATE {
                    *count += 1.0;
                }
            }
            Err(free) => {
                out.push((b, 1.0));
                slots.insert(free, b, out.len() - start - 1, &out[start..]);
            }
        }
    }
}

thread_local! {
    /// [`dense_counts`]'s counters, all zero between calls.
    static DENSE: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`block`]'s counting for long documents: one saturating u16 counter per bucket, in an array
/// the thread keeps, zeroed again afterwards by walking only the buckets seen. On a 100 KiB
/// page the slot table grew to ~1 MiB, rehashing at each doubling, and probed it at random;
/// here each n-gram is one increment, and byte n-grams are counted as they are hashed, never
/// collected (`feed` hands every bucket to [`Dense::add`]). The counts are the same.
fn dense_counts(bits: u32, out: &mut SparseVec, feed: impl FnOnce(&mut Dense<'_>)) {
    let start = out.len();
    DENSE.with_borrow_mut(|counts| {
        if counts.len() < 1 << bits {
            counts.resize(1 << bits, 0);
        }
        let mut dense = Dense { counts, out };
        feed(&mut dense);
        let Dense { counts, out } = dense;
        for (b, v) in out[start..].iter_mut() {
            let c = &mut counts[*b as usize];
            *v = f32::from(*c);
            *c = 0;
        }
    });
}

/// The counters [`dense_counts`] feeds, and the block's entries in order of first occurrence.
struct Dense<'a> {
    counts: &'a mut [u16],
    out: &'a mut SparseVec,
}

impl Dense<'_> {
    fn add(&mut self, b: u32) {
        let c = &mut self.counts[b as usize];
        if *c == 0 {
            self.out.push((b, 0.0));
        }
        *c = c.saturating_add(1);
    }
}

/// [`block`]'s index: linear-probing slots of (bucket, 1 + entry index), 0 marking a free
/// slot. Buckets are already uniform, so their low bits are the probe start.
struct Slots {
    slots: Vec<(u32, u32)>,
    used: usize,
}

impl Slots {
    fn new(at_least: usize) -> Slots {
        Slots {
            slots: vec![(0, 0); at_least.next_power_of_two().max(16)],
            used: 0,
        }
    }

    /// The entry index of `b`, or the free slot where it would go.
    fn find(&self, b: u32) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = b as usize & mask;
        loop {
            match self.slots[i] {
                (_, 0) => return Err(i),
                (key, at) if key == b => return Ok(at as usize - 1),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Records entry `at` for `b` in `free` (from [`find`](Self::find)); past half full, the
    /// table doubles and is refilled from `entries`, whose index `at` is `b`'s.
    fn insert(&mut self, free: usize, b: u32, at: usize, entries: &[(u32, f32)]) {
        self.slots[free] = (b, at as u32 + 1);
        self.used += 1;
        if self.used * 2 > self.slots.len() {
            *self = Slots::new(self.slots.len() * 2);
            for (n, &(key, _)) in entries.iter().enumerate() {
                if let Err(free) = self.find(key) {
                    self.slots[free] = (key, n as u32 + 1);
                    self.used += 1;
                }
            }
        }
    }
}

/// How many byte n-grams of `min..=max` bytes a text of `n` bytes has.
fn ngram_count(n: usize, min: usize, max: usize) -> usize {
    (0..n)
        .map(|s| (n - s).min(max).saturating_sub(min - 1))
        .sum()
}

/// Hands `f` the bucket of every byte n-gram of `min..=max` bytes, by start then length.
fn each_ngram(bytes: &[u8], min: usize, max: usize, bits: u32, mut f: impl FnMut(u32)) {
    let n = bytes.len();
    for start in 0..n {
        let mut h = FNV_OFFSET ^ NS_CHAR;
        for (k, &b) in bytes[start..n.min(start + max)].iter().enumerate() {
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            if k + 1 >= min {
                f(bucket(h ^ (k as u64 + 1), bits));
            }
        }
    }
}

/// The feature vector of `text` under `cfg`: the word block then the byte n-gram block (a
/// bucket may appear once in each).
pub fn vectorize(text: &str, cfg: &FeatureConfig) -> SparseVec {
    let text = truncate(text, cfg.max_bytes);
    let bits = cfg.bits;
    let mut buckets = Vec::with_capacity(text.len() / 3);
    let mut prev: Option<u64> = None;
    let mut lower = String::new();
    for w in words(text) {
        let h = word_hash(w, &mut lower);
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
    let (min, max) = (cfg.char_min, cfg.char_max);
    let count = ngram_count(bytes.len(), min, max);
    if count >= DENSE_FROM && bits <= DENSE_MAX_BITS {
        let start = out.len();
        dense_counts(bits, &mut out, |d| {
            each_ngram(&bytes, min, max, bits, |b| d.add(b))
        });
        normalise(&mut out[start..], cfg.char_weight);
    } else {
        buckets.clear();
        buckets.reserve(count);
        each_ngram(&bytes, min, max, bits, |b| buckets.push(b));
        block(&buckets, bits, cfg.char_weight, &mut out);
    }
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
        // Long enough for the per-thread dense counters, which must be zero again after use.
        let long = "the same text, many times over. ".repeat(400);
        assert!(long.len() * 3 >= DENSE_FROM);
        let first = vectorize(&long, &cfg);
        let _other = vectorize(&"other words entirely; ".repeat(500), &cfg);
        assert_eq!(vectorize(&long, &cfg), first);
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

    /// The straightforward definition the fast paths must match bit for bit: shipped models
    /// were trained on its output.
    mod reference {
        use super::super::*;

        pub fn words(text: &str) -> Vec<&str> {
            text.split(|c: char| !is_word_char(c))
                .map(|w| w.trim_matches('\''))
                .filter(|w| !w.is_empty())
                .map(|w| truncate(w, MAX_WORD))
                .collect()
        }

        fn collapse(text: &str) -> Vec<u8> {
            let mut out = Vec::new();
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
                out.extend(c.to_lowercase().collect::<String>().bytes());
            }
            out
        }

        fn block(buckets: &[u32], weight: f32, out: &mut SparseVec) {
            let mut counts = std::collections::HashMap::<u32, u16>::new();
            let start = out.len();
            for &b in buckets {
                let c = counts.entry(b).or_insert(0);
                if *c == 0 {
                    out.push((b, 0.0));
                }
                *c = c.saturating_add(1);
            }
            let mut norm = 0f32;
            for (b, v) in out[start..].iter_mut() {
                *v = 1.0 + f32::from(counts[b]).ln();
                norm += *v * *v;
            }
            if norm > 0.0 {
                let k = weight / norm.sqrt();
                for (_, v) in out[start..].iter_mut() {
                    *v *= k;
                }
            }
        }

        pub fn vectorize(text: &str, cfg: &FeatureConfig) -> SparseVec {
            let text = truncate(text, cfg.max_bytes);
            let mut buckets = Vec::new();
            let mut prev: Option<u64> = None;
            for w in words(text) {
                // Per-char lowercasing (not `str::to_lowercase`, whose final-sigma rule differs).
                let lower: String = w.chars().flat_map(char::to_lowercase).collect();
                let h = fnv(NS_WORD, lower.as_bytes());
                buckets.push(bucket(h, cfg.bits));
                if cfg.word_bigrams {
                    if let Some(p) = prev {
                        buckets.push(bucket(mix(p ^ NS_BIGRAM).wrapping_add(h), cfg.bits));
                    }
                    prev = Some(h);
                }
                if let Some(s) = shape(w) {
                    buckets.push(bucket(fnv(NS_SHAPE, s.as_bytes()), cfg.bits));
                }
            }
            let mut out = Vec::new();
            block(&buckets, 1.0, &mut out);
            if cfg.char_min == 0 || cfg.char_max < cfg.char_min {
                return out;
            }
            let bytes = collapse(text);
            buckets.clear();
            for start in 0..bytes.len() {
                let mut h = 0xcbf2_9ce4_8422_2325 ^ NS_CHAR;
                for (k, &b) in bytes[start..].iter().take(cfg.char_max).enumerate() {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0000_0100_0000_01b3);
                    if k + 1 >= cfg.char_min {
                        buckets.push(bucket(h ^ (k as u64 + 1), cfg.bits));
                    }
                }
            }
            block(&buckets, cfg.char_weight, &mut out);
            out
        }
    }

    /// Texts that exercise every branch: ASCII, Latin-1, multi-char lowercase forms (İ),
    /// final sigma, CJK, apostrophes at word edges, long words, controls and the Unicode
    /// whitespace the ASCII fast path must not treat as text.
    fn tricky_texts() -> Vec<String> {
        let mut texts: Vec<String> = [
            "",
            "   ",
            "Free money, FREE money! Click here: http://x.example/",
            "'quoted' words'' and ''' alone, it's O'Brien's $19.99 _under_score_",
            "İSTANBUL ΣΟΦΟΣ Straße ÆØÅ naïve café Ǆungla ﬁnance",
            "中文字符和English混合 日本語のテキスト 한국어",
            "tabs\tand\nnewlines\r\n\x0bvertical\x0cfeed\u{85}next\u{a0}nbsp\u{2003}em\u{3000}ideo",
            "\u{0}\u{1}control\u{7f}del\u{fffd}replacement\u{1b}esc",
            "<html><body><p>Cheap <b>pills</b> here</p></body></html>\nCheap pills here",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        texts.push("a".repeat(40) + " " + &"é".repeat(40) + " " + &"9".repeat(70));
        texts.push("spam ".repeat(3000));
        // Past the u16 count saturation within the default `max_bytes`.
        texts.push("a".repeat(140_000));
        // Pseudo-random strings over an alphabet mixing all of the above.
        let alphabet: Vec<char> = "aZ9$'_ \t\n.,!-İΣσßé中\u{a0}\u{85}\u{fffd}\u{1}ǅ"
            .chars()
            .collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        // 30,000 characters: enough distinct n-grams to make the count table grow.
        for len in [1usize, 2, 3, 5, 8, 40, 300, 2000, 30_000] {
            for _ in 0..8 {
                let s: String = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        alphabet[(x % alphabet.len() as u64) as usize]
                    })
                    .collect();
                texts.push(s);
            }
        }
        texts
    }

    #[test]
    fn fast_paths_match_the_reference_definition_bit_for_bit() {
        let configs = [
            FeatureConfig::default(),
            FeatureConfig {
                bits: 12,
                word_bigrams: false,
                char_min: 1,
                char_max: 2,
                max_bytes: 100,
                ..FeatureConfig::default()
            },
            FeatureConfig {
                char_min: 0,
                ..FeatureConfig::default()
            },
            FeatureConfig {
                char_min: 4,
                char_max: 3,
                ..FeatureConfig::default()
            },
        ];
        for text in tricky_texts() {
            assert_eq!(
                words(&text).collect::<Vec<_>>(),
                reference::words(&text),
                "{text:?}"
            );
            for cfg in &configs {
                let fast = vectorize(&text, cfg);
                let slow = reference::vectorize(&text, cfg);
                assert_eq!(fast.len(), slow.len(), "{text:?}");
                for (f, s) in fast.iter().zip(&slow) {
                    assert!(
                        f.0 == s.0 && f.1.to_bits() == s.1.to_bits(),
                        "{text:?}: {f:?} {s:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn hashing_is_stable_across_builds() {
        // Pinned so that a change to the hash (which would silently break shipped models) fails.
        assert_eq!(bucket(fnv(NS_WORD, b"viagra"), 20), 761_560);
    }
}

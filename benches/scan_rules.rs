//! Rules throughput: MB/s of the shipped `rules/` over a generated mixed text corpus
//! (newsletter-like prose, HTML markup, URLs and a little spam), one core.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::scan::rules::RuleSet;
use sluice::scan::{Classifier, Document};

const WORDS: &[&str] = &[
    "the",
    "project",
    "release",
    "notes",
    "server",
    "cache",
    "update",
    "meeting",
    "weekly",
    "team",
    "customer",
    "support",
    "order",
    "shipping",
    "account",
    "price",
    "free",
    "today",
    "article",
    "research",
    "report",
    "data",
    "video",
    "photo",
    "school",
    "music",
    "market",
    "city",
    "news",
    "weather",
    "sports",
    "travel",
    "review",
    "community",
    "garden",
    "recipe",
    "kitchen",
    "budget",
    "Monday",
    "Paris",
    "Linux",
    "kernel",
    "patch",
    "thread",
    "mailing",
    "list",
    "subscribe",
    "click",
    "here",
    "more",
    "information",
    "about",
    "with",
    "from",
    "your",
    "our",
    "new",
    "and",
];

const SPAM: &[&str] = &[
    "CONGRATULATIONS!!! You have won the international lottery, claim your prize of $1,500,000 now.",
    "Buy cheap v1agra online pharmacy no prescription needed, discreet shipping!",
    "Your account has been suspended. Click here to verify your account within 24 hours.",
    "Send 0.1 BTC and receive 0.2 BTC back, Elon Musk giveaway, limited time!",
    "To be removed from this list reply with REMOVE in the subject. This is not spam.",
];

/// Deterministic pseudo-random text: ~90-char lines of words, some HTML, URLs, spam.
fn corpus(bytes: usize) -> (String, String, Vec<String>) {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut text, mut raw, mut uris) = (String::new(), String::new(), Vec::new());
    while text.len() < bytes {
        let mut line = String::new();
        while line.len() < 90 {
            let w = WORDS[(next() % WORDS.len() as u64) as usize];
            line.push_str(w);
            line.push(if next() % 12 == 0 { '.' } else { ' ' });
        }
        match next() % 50 {
            0 => line.push_str(SPAM[(next() % SPAM.len() as u64) as usize]),
            1..=3 => {
                let url = format!(
                    "https://www.example{}.com/path/{}?id={}",
                    next() % 100,
                    next() % 1000,
                    next() % 10_000
                );
                line.push_str(&url);
                uris.push(url);
            }
            _ => {}
        }
        raw.push_str("<p class=\"c\">");
        raw.push_str(&line);
        raw.push_str("</p>\n");
        text.push_str(&line);
        text.push('\n');
    }
    (text, raw, uris)
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let (rules, _) = match RuleSet::load_dir(&dir) {
        Ok(r) => r,
        Err(errors) => panic!("shipped rules do not load: {errors:?}"),
    };
    let (text, raw_text, uris) = corpus(2 << 20);
    let bytes = (text.len() + raw_text.len()) as u64;
    let doc = Document {
        text,
        raw_text,
        uris,
        ..Default::default()
    };
    let hits = rules.classify(&doc).map(|f| f.len()).unwrap_or(0);
    assert!(hits > 0, "the corpus should trip some rules");
    let mut g = c.benchmark_group("scan_rules");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.bench_function("shipped_ruleset_text_plus_html", |b| {
        b.iter(|| rules.classify(&doc).map(|f| f.len()).unwrap_or(0))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

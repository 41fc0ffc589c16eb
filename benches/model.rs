//! Text model scoring throughput: documents/s for typical 1–20 KB HTML and plain-text bodies
//! with the shipped model (feature extraction included).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice::config::ScanConfig;
use sluice::scan::model::TextModel;
use sluice::scan::{Classifier, Document};

const PARAGRAPHS: &[&str] = &[
    "<p>Thanks for the quick review. I pushed a second version of the patch that moves the \
     buffer handling into its own function and adds a test for the empty-input case.</p>\n",
    "<p><font color=\"#ff0000\"><b>LIMITED TIME OFFER!</b></font> Save up to 80% on all orders \
     placed before Friday. <a href=\"http://shop.example/deal?id=4411\">Click here</a>.</p>\n",
    "<table width=\"100%\"><tr><td class=\"news\">The conference schedule is now online; \
     talks start at 9:30 and the keynote is in room B.</td></tr></table>\n",
    "<div>Your account statement for September is ready. Log in to view recent activity, \
     update your address or change your e-mail preferences.</div>\n",
];

/// An HTML document of about `size` bytes built from varied paragraphs.
fn document(size: usize) -> Document {
    let mut html = String::from("<html><head><title>Update</title></head><body>\n");
    let mut k = 0usize;
    while html.len() < size {
        html.push_str(PARAGRAPHS[k % PARAGRAPHS.len()]);
        html.push_str(&format!("<!-- item {k} -->\n"));
        k += 1;
    }
    html.push_str("</body></html>\n");
    // The pipeline renders the visible text before the model runs; without it the model's
    // guard abstains (too few words) and the bench would measure nothing.
    let mut uris = sluice::scan::decode::html::UriSet::new(1000, None);
    let text = sluice::scan::decode::html::to_text(&html, &mut uris);
    Document {
        media_type: "text/html".to_string(),
        raw_text: html,
        text,
        ..Document::default()
    }
}

fn bench(c: &mut Criterion) {
    let cfg = ScanConfig {
        models: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        ..ScanConfig::default()
    };
    let Ok((model, _)) = TextModel::load(&cfg) else {
        panic!("the shipped model must load");
    };
    let mut group = c.benchmark_group("model_score");
    for size in [1_000usize, 5_000, 20_000] {
        let doc = document(size);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(size), &doc, |b, doc| {
            b.iter(|| model.classify(black_box(doc)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

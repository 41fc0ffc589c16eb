//! Pipeline tests with fake classifiers: class decision, failures, pool push-back, timeouts
//! and the verdict memo.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::*;
use crate::scan::{Class, Document, Finding};

/// What a fake classifier returns.
#[derive(Clone)]
enum Says {
    Findings(Vec<(&'static str, f64)>),
    Fails(&'static str),
    Panics,
}

/// A classifier that says what it is told, counts calls, and can block until released.
struct Fake {
    name: &'static str,
    says: Says,
    fingerprint: String,
    calls: AtomicUsize,
    gate: Option<Gate>,
}

/// Lets a test see that a classify call started and decide when it may finish.
struct Gate {
    started: mpsc::UnboundedSender<()>,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Fake {
    fn new(name: &'static str, says: Says) -> Fake {
        Fake {
            name,
            says,
            fingerprint: format!("{name}-v1"),
            calls: AtomicUsize::new(0),
            gate: None,
        }
    }

    /// A fake that blocks in classify; returns it, the "started" receiver and the release sender.
    fn gated(
        name: &'static str,
    ) -> (
        Fake,
        mpsc::UnboundedReceiver<()>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (started_tx, started_rx) = mpsc::unbounded_channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel();
        let mut f = Fake::new(name, Says::Findings(vec![]));
        f.gate = Some(Gate {
            started: started_tx,
            release: Mutex::new(release_rx),
        });
        (f, started_rx, release_tx)
    }
}

impl Classifier for Fake {
    fn name(&self) -> &'static str {
        self.name
    }
    fn classify(&self, _doc: &Document) -> Result<Vec<Finding>, ScanError> {
        self.calls.fetch_add(1, SeqCst);
        if let Some(g) = &self.gate {
            let _ = g.started.send(());
            let _ = g.release.lock().unwrap().recv();
        }
        match &self.says {
            Says::Findings(fs) => Ok(fs
                .iter()
                .map(|(rule, score)| Finding {
                    classifier: self.name.to_string(),
                    rule: rule.to_string(),
                    score: *score,
                    detail: format!("{rule} matched"),
                })
                .collect()),
            Says::Fails(msg) => Err(ScanError::Limit(msg.to_string())),
            Says::Panics => panic!("fake classifier panics"),
        }
    }
    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
}

fn pipeline(fakes: Vec<Fake>) -> Pipeline {
    pipeline_with(fakes, Settings::default())
}

fn pipeline_with(fakes: Vec<Fake>, settings: Settings) -> Pipeline {
    let cs: Vec<Arc<dyn Classifier>> = fakes
        .into_iter()
        .map(|f| Arc::new(f) as Arc<dyn Classifier>)
        .collect();
    Pipeline::new(cs, settings)
}

fn html(body: &str) -> Content {
    Content {
        bytes: bytes::Bytes::from(body.to_string()),
        declared_type: "text/html".into(),
        ..Content::default()
    }
}

fn rules(fs: Vec<(&'static str, f64)>) -> Fake {
    Fake::new("rules", Says::Findings(fs))
}

#[test]
fn class_follows_the_score_thresholds() {
    for (scores, class) in [
        (vec![], Class::Clean),
        (vec![("A", 1.0), ("B", 1.4)], Class::Clean),
        (vec![("A", 2.5)], Class::Suspect),
        (vec![("A", 3.0), ("B", 1.9)], Class::Suspect),
        (vec![("A", 3.0), ("B", 2.0)], Class::Spam),
        (vec![("A", 9.0), ("HAM", -5.0)], Class::Suspect),
    ] {
        let want: f64 = scores.iter().map(|(_, s)| s).sum();
        let v = pipeline(vec![rules(scores)]).scan_sync(&html("<p>x</p>"));
        assert_eq!(v.class, class, "score {want}");
        assert_eq!(v.score, want);
        assert_eq!(v.reason, None);
    }
}

#[test]
fn model_and_rule_scores_add_up() {
    let p = pipeline(vec![
        rules(vec![("LOTTERY", 3.0)]),
        Fake::new("model", Says::Findings(vec![("nb", 2.5)])),
    ]);
    let v = p.scan_sync(&html("<p>you won</p>"));
    assert_eq!((v.class, v.score), (Class::Spam, 5.5));
    assert_eq!(v.findings.len(), 2);
}

#[test]
fn a_hash_list_match_is_listed_whatever_the_score() {
    for list in ["digest", "pdq"] {
        let p = pipeline(vec![
            Fake::new(list, Says::Findings(vec![("known-bad", 0.0)])),
            rules(vec![("HAM", -10.0)]),
            Fake::new("model", Says::Fails("model exploded")),
        ]);
        let v = p.scan_sync(&html("<p>x</p>"));
        assert_eq!(v.class, Class::Listed, "{list}");
        assert!(v.header_value().starts_with("listed; score=-10; sha256="));
        assert!(v.header_value().contains("rules=known-bad,HAM"));
    }
}

#[test]
fn a_failing_classifier_makes_it_unscanned_and_keeps_other_findings() {
    let p = pipeline(vec![
        rules(vec![("PHARMA", 6.0)]),
        Fake::new("pdq", Says::Fails("image is 100000x100000")),
    ]);
    let v = p.scan_sync(&html("<p>pills</p>"));
    assert_eq!(v.class, Class::Unscanned);
    assert_eq!(v.reason.as_deref(), Some("limit"));
    assert_eq!(v.findings[0].rule, "PHARMA");
    let f = &v.findings[1];
    assert_eq!(
        (f.classifier.as_str(), f.rule.as_str()),
        ("pipeline", "limit")
    );
    assert!(
        f.detail.contains("pdq") && f.detail.contains("100000x100000"),
        "{}",
        f.detail
    );
    assert!(
        v.header_value().ends_with("; rules=PHARMA; reason=limit"),
        "{}",
        v.header_value()
    );
    let s = p.stats();
    assert_eq!(s.classifiers["pdq"].errors, 1);
    assert_eq!(s.classes["unscanned"], 1);
}

#[test]
fn a_panicking_classifier_is_an_error_not_a_crash() {
    let p = pipeline(vec![Fake::new("rules", Says::Panics)]);
    let v = p.scan_sync(&html("<p>x</p>"));
    assert_eq!(v.class, Class::Unscanned);
    assert_eq!(v.reason.as_deref(), Some("error"));
}

#[test]
fn decode_failures_and_large_bodies_are_unscanned_with_their_reason() {
    let settings = Settings {
        limits: DecodeLimits {
            max_body: 1024,
            ..DecodeLimits::default()
        },
        ..Settings::default()
    };
    let p = pipeline_with(vec![rules(vec![("X", 9.0)])], settings);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[b'a'; 5000]).unwrap();
    let gz = gz.finish().unwrap();
    for (bytes, encoding, reason) in [
        (vec![b'a'; 1025], "", "too_large"),
        (b"not gzip".to_vec(), "gzip", "undecodable"),
        (b"whatever".to_vec(), "zstd", "undecodable"),
        (gz, "gzip", "limit"),
    ] {
        let c = Content {
            bytes: bytes.clone().into(),
            content_encoding: encoding.into(),
            ..Content::default()
        };
        let v = p.scan_sync(&c);
        assert_eq!(v.class, Class::Unscanned, "{reason}");
        assert_eq!(v.reason.as_deref(), Some(reason));
        assert_eq!(v.sha256, crate::scan::sha256_hex(&bytes), "{reason}");
        assert_eq!(v.findings.len(), 1);
        assert_eq!(v.findings[0].classifier, "pipeline");
    }
    assert_eq!(p.stats().scans, 0, "no classifier ran");
}

#[test]
fn unscanned_constructor_and_json_shape() {
    let v = Verdict::unscanned("abc", "image/png", "too_large", "r1");
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["class"], "unscanned");
    assert_eq!(json["reason"], "too_large");
    assert_eq!(json["findings"][0]["rule"], "too_large");
    let back: Verdict = serde_json::from_value(json).unwrap();
    assert_eq!(back, v);
    let clean = pipeline(vec![]).scan_sync(&html("<p>x</p>"));
    let json = serde_json::to_value(&clean).unwrap();
    assert!(json.get("reason").is_none());
    assert_eq!(json["score"].to_string(), "0.0", "no findings: +0, not -0");
    assert!(json["scanned_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn ruleset_names_fingerprints_and_thresholds() {
    let a = pipeline(vec![rules(vec![])]).ruleset();
    assert_eq!(a.len(), 16);
    assert_eq!(a, pipeline(vec![rules(vec![])]).ruleset(), "stable");
    let mut changed = rules(vec![]);
    changed.fingerprint = "rules-v2".into();
    assert_ne!(a, pipeline(vec![changed]).ruleset());
    let mut s = Settings::default();
    s.thresholds.spam = 7.0;
    assert_ne!(a, pipeline_with(vec![rules(vec![])], s).ruleset());
}

/// A scan config over an empty temporary directory: no rules, models or hash lists yet.
fn empty_dirs() -> (tempfile::TempDir, ScanConfig) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ScanConfig {
        rules: dir.path().join("rules"),
        models: dir.path().join("models"),
        hash_lists: dir.path().join("hashes"),
        ..ScanConfig::default()
    };
    (dir, cfg)
}

#[test]
fn from_config_loads_the_four_classifiers() {
    let (_dir, cfg) = empty_dirs();
    let (p, _warnings) = Pipeline::from_config(&cfg).unwrap();
    let v = p.scan_sync(&html("<p>hello</p>"));
    assert_ne!(v.class, Class::Unscanned);
    let names: Vec<_> = p.stats().classifiers.into_keys().collect();
    assert_eq!(names, ["digest", "model", "pdq", "rules"]);
}

#[test]
fn reload_swaps_the_ruleset_and_keeps_counters() {
    let (_dir, mut cfg) = empty_dirs();
    let (p, _) = Pipeline::from_config(&cfg).unwrap();
    let before = p.ruleset();
    p.scan_sync(&html("<p>x</p>"));
    cfg.spam_threshold = 9.0;
    p.reload(&cfg).unwrap();
    assert_ne!(p.ruleset(), before);
    assert_eq!(
        p.stats().classifiers["rules"].calls,
        1,
        "counters survive a reload"
    );
}

#[test]
fn a_reload_keeps_the_rules_in_force_when_their_directory_has_gone() {
    let (_dir, cfg) = empty_dirs();
    // Started without the directory: no rules, and a reload without it is fine.
    let (p, _) = Pipeline::from_config(&cfg).unwrap();
    p.reload(&cfg).expect("nothing in force to lose");
    std::fs::create_dir(&cfg.rules).unwrap();
    std::fs::write(
        cfg.rules.join("a.cf"),
        "body WON /you have won/i\nscore WON 6\n",
    )
    .unwrap();
    p.reload(&cfg).unwrap();
    let spam = || p.scan_sync(&html("<p>you have won</p>")).class;
    assert_eq!(spam(), Class::Spam);
    let ruleset = p.ruleset();
    // The directory is swapped out by a deploy when the reload comes.
    std::fs::rename(&cfg.rules, cfg.rules.with_extension("old")).unwrap();
    let errors = p.reload(&cfg).expect_err("refused");
    assert!(
        errors[0].to_string().contains("1 rules in force are kept"),
        "{errors:?}"
    );
    assert_eq!(p.ruleset(), ruleset, "nothing changed");
    assert_eq!(spam(), Class::Spam);
}

#[test]
fn a_reload_keeps_the_model_in_force_when_its_file_has_gone() {
    let (_dir, cfg) = empty_dirs();
    let (p, _) = Pipeline::from_config(&cfg).unwrap();
    p.reload(&cfg).expect("no model in force to lose");
    std::fs::create_dir(&cfg.models).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/text.model");
    let file = cfg.models.join(crate::scan::model::MODEL_FILE);
    std::fs::copy(shipped, &file).unwrap();
    p.reload(&cfg).unwrap();
    let ruleset = p.ruleset();
    std::fs::remove_file(&file).unwrap();
    let errors = p.reload(&cfg).expect_err("refused");
    assert!(
        errors[0].to_string().contains("model in force is kept"),
        "{errors:?}"
    );
    assert_eq!(p.ruleset(), ruleset, "nothing changed");
}

#[tokio::test]
async fn scan_runs_on_the_pool() {
    let p = pipeline(vec![rules(vec![("A", 5.0)])]);
    let v = p.scan(html("<p>x</p>")).await;
    assert_eq!(v.class, Class::Spam);
    assert_eq!(p.stats().requests, 1);
}

#[tokio::test]
async fn a_full_pool_with_no_queue_pushes_back() {
    let (fake, mut started, release) = Fake::gated("rules");
    let settings = Settings {
        workers: 1,
        queue: 0,
        ..Settings::default()
    };
    let p = pipeline_with(vec![fake], settings);
    let first = tokio::spawn({
        let p = p.clone();
        async move { p.scan(html("<p>one</p>")).await }
    });
    started.recv().await.unwrap();
    let second = p.scan(html("<p>two</p>")).await;
    assert_eq!(second.class, Class::Unscanned);
    assert_eq!(second.reason.as_deref(), Some("limit"));
    assert!(
        second.findings[0].detail.contains("busy"),
        "{}",
        second.findings[0].detail
    );
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap().class, Class::Clean);
    assert_eq!(p.stats().rejected, 1);
}

#[tokio::test]
async fn the_queue_holds_queue_jobs_then_pushes_back() {
    let (fake, mut started, release) = Fake::gated("rules");
    let settings = Settings {
        workers: 1,
        queue: 1,
        ..Settings::default()
    };
    let p = pipeline_with(vec![fake], settings);
    let spawn = |body: &'static str| {
        let p = p.clone();
        tokio::spawn(async move { p.scan(html(body)).await })
    };
    let first = spawn("<p>one</p>");
    started.recv().await.unwrap();
    let second = spawn("<p>two</p>");
    while p.inner.pool.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    let third = p.scan(html("<p>three</p>")).await;
    assert_eq!(third.reason.as_deref(), Some("limit"));
    release.send(()).unwrap();
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap().class, Class::Clean);
    assert_eq!(second.await.unwrap().class, Class::Clean);
    assert_eq!(p.inner.pool.waiting(), 0);
}

#[tokio::test]
async fn a_stuck_classifier_times_out_as_unscanned() {
    let (fake, mut started, release) = Fake::gated("model");
    let settings = Settings {
        // Long enough for the job to start and hash the body even on a loaded machine.
        timeout: Duration::from_secs(1),
        ..Settings::default()
    };
    let p = pipeline_with(vec![fake], settings);
    let body = "<p>slow</p>";
    let v = p.scan(html(body)).await;
    started.recv().await.unwrap();
    assert_eq!(v.class, Class::Unscanned);
    assert_eq!(v.reason.as_deref(), Some("timeout"));
    assert_eq!(v.sha256, crate::scan::sha256_hex(body.as_bytes()));
    assert_eq!(v.media_type, "text/html");
    assert_eq!(p.stats().timeouts, 1);
    release.send(()).unwrap();
}

fn counting_pipeline(store: &Store, fingerprint: &str) -> (Pipeline, Arc<Fake>) {
    let mut f = rules(vec![("PHARMA", 3.0)]);
    f.fingerprint = fingerprint.to_string();
    let f = Arc::new(f);
    let p = Pipeline::new(vec![f.clone() as Arc<dyn Classifier>], Settings::default())
        .with_store(store);
    (p, f)
}

#[test]
fn the_same_bytes_are_scanned_once() {
    let store = Store::temporary().unwrap();
    let (p, fake) = counting_pipeline(&store, "v1");
    let body = "<p>buy pills</p>";
    let first = p.scan_sync(&html(body));
    let second = p.scan_sync(&Content {
        url: Some("http://other.example/".into()),
        ..html(body)
    });
    assert_eq!(fake.calls.load(SeqCst), 1);
    assert_eq!(second, first);
    assert_eq!(p.lookup(&first.sha256), Some(first.clone()));

    // The same decoded bytes, gzip-encoded: decoded once, then known by their raw hash.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.as_bytes()).unwrap();
    let gzipped = Content {
        bytes: gz.finish().unwrap().into(),
        content_encoding: "gzip".into(),
        ..html("")
    };
    assert_eq!(p.scan_sync(&gzipped).sha256, first.sha256);
    assert_eq!(p.scan_sync(&gzipped).sha256, first.sha256);
    assert_eq!(fake.calls.load(SeqCst), 1);
    let s = p.stats();
    assert_eq!((s.requests, s.scans, s.memo_hits), (4, 1, 3));
    assert_eq!(s.classes["suspect"], 4);
    assert_eq!(s.classifiers["rules"].calls, 1);
}

#[test]
fn a_ruleset_change_rescans_and_overwrites() {
    let store = Store::temporary().unwrap();
    let body = html("<p>again</p>");
    let (old, old_fake) = counting_pipeline(&store, "v1");
    let v1 = old.scan_sync(&body);
    let (new, new_fake) = counting_pipeline(&store, "v2");
    let v2 = new.scan_sync(&body);
    assert_eq!(
        new_fake.calls.load(SeqCst),
        1,
        "rescanned under the new ruleset"
    );
    assert_ne!(v1.ruleset, v2.ruleset);
    assert_eq!(
        new.lookup(&v2.sha256).map(|v| v.ruleset),
        Some(v2.ruleset.clone())
    );
    assert_eq!(old.lookup(&v1.sha256), None, "overwritten");
    new.scan_sync(&body);
    assert_eq!(new_fake.calls.load(SeqCst), 1);
    assert_eq!(old_fake.calls.load(SeqCst), 1);
}

#[test]
fn unscanned_verdicts_are_not_memoised() {
    let store = Store::temporary().unwrap();
    let fake = Arc::new(Fake::new("rules", Says::Fails("flaky")));
    let p = Pipeline::new(
        vec![fake.clone() as Arc<dyn Classifier>],
        Settings::default(),
    )
    .with_store(&store);
    p.scan_sync(&html("<p>x</p>"));
    p.scan_sync(&html("<p>x</p>"));
    assert_eq!(fake.calls.load(SeqCst), 2);
}

#[tokio::test]
async fn a_stored_verdict_is_read_by_the_worker_not_on_the_reactor() {
    let store = Store::temporary().unwrap();
    let body = html("<p>buy pills</p>");
    let (first, _) = counting_pipeline(&store, "v1");
    let v = first.scan_sync(&body);
    // A second pipeline over the same store (as after a restart): nothing in memory yet.
    let (p, fake) = counting_pipeline(&store, "v1");
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "text/html".parse().unwrap());
    let raw = match p.memo_for_body(&body.bytes, &headers) {
        Err(Some(raw)) => raw,
        other => panic!("the inline check reads memory only, got {other:?}"),
    };
    assert_eq!(p.scan_unmemoised(body.clone(), Some(raw)).await, v);
    assert_eq!(fake.calls.load(SeqCst), 0, "answered from the store");
    let s = p.stats();
    assert_eq!((s.requests, s.scans, s.memo_hits), (1, 0, 1));
    // Now in memory: answered inline.
    assert!(p.memo_for_body(&body.bytes, &headers).is_ok());
}

#[tokio::test]
async fn a_hit_without_a_kept_verdict_asks_memory_then_the_worker() {
    let store = Store::temporary().unwrap();
    let body = html("<p>buy pills</p>");
    let raw: [u8; 32] = Sha256::digest(&body.bytes).into();
    let v = counting_pipeline(&store, "v1").0.scan_sync(&body);
    // After a restart: the verdict is only in the store, read by the worker.
    let (p, fake) = counting_pipeline(&store, "v1");
    assert_eq!(*p.verdict_for_known(&raw, body.clone()).await, v);
    assert_eq!(fake.calls.load(SeqCst), 0, "answered from the store");
    // Now in memory, and a verdict kept with the object stands while the ruleset does.
    let kept = p.verdict_for_known(&raw, body.clone()).await;
    assert!(p.still_stands(&kept));
    let s = p.stats();
    assert_eq!((s.requests, s.scans, s.memo_hits), (3, 0, 3));
    // A verdict of another ruleset does not stand and is not counted.
    let (other, _) = counting_pipeline(&store, "v2");
    assert!(!other.still_stands(&kept));
    assert_eq!(other.stats().requests, 0);
}

#[tokio::test]
async fn a_verdict_past_the_reuse_age_is_scanned_again_even_when_kept_with_an_object() {
    let store = Store::temporary().unwrap();
    let body = html("<p>buy pills</p>");
    let raw: [u8; 32] = Sha256::digest(&body.bytes).into();
    let mut f = rules(vec![("PHARMA", 3.0)]);
    f.fingerprint = "v1".into();
    let fake = Arc::new(f);
    let p = Pipeline::new(
        vec![fake.clone() as Arc<dyn Classifier>],
        Settings::default(),
    )
    .with_store_reusing_for(&store, Duration::from_secs(3600));
    let fresh = p.scan_sync(&body);
    assert!(p.still_stands(&fresh));
    // The same verdict an hour and a bit later (the clock is the verdict's own stamp).
    let old = Verdict {
        scanned_at: rfc3339(std::time::SystemTime::now() - Duration::from_secs(3700)),
        ..fresh.clone()
    };
    assert!(
        !p.still_stands(&old),
        "kept with an object, too old to stand"
    );
    p.inner.memo.get().unwrap().put(&old);
    let again = p.verdict_for_known(&raw, body.clone()).await;
    assert_eq!(
        fake.calls.load(SeqCst),
        2,
        "the stored one is too old: scanned again"
    );
    assert!(p.still_stands(&again));
}

/// A pipeline over `store` with the ruleset `counting_pipeline(store, "v1")` stores under,
/// as after a restart, its only worker busy with another body and no queue: the next scan
/// is refused. `release` lets the busy scan (`busy`) finish.
async fn full_pool(
    store: &Store,
) -> (
    Pipeline,
    tokio::task::JoinHandle<Verdict>,
    std::sync::mpsc::Sender<()>,
) {
    let (mut gated, mut started, release) = Fake::gated("rules");
    gated.fingerprint = "v1".to_string();
    let settings = Settings {
        workers: 1,
        queue: 0,
        ..Settings::default()
    };
    let p = Pipeline::new(vec![Arc::new(gated) as Arc<dyn Classifier>], settings).with_store(store);
    assert_eq!(p.ruleset(), counting_pipeline(store, "v1").0.ruleset());
    let busy = tokio::spawn({
        let p = p.clone();
        async move { p.scan(html("<p>other</p>")).await }
    });
    started.recv().await.unwrap();
    (p, busy, release)
}

#[tokio::test]
async fn a_full_pool_still_answers_from_the_store() {
    let store = Store::temporary().unwrap();
    let stored = counting_pipeline(&store, "v1")
        .0
        .scan_sync(&html("<p>buy pills</p>"));
    assert_eq!(stored.class, Class::Suspect);
    // After a restart, with the only worker busy and no queue.
    let (p, busy, release) = full_pool(&store).await;
    let v = p.scan(html("<p>buy pills</p>")).await;
    assert_eq!(v, stored, "the stored verdict, not unscanned");
    release.send(()).unwrap();
    busy.await.unwrap();
    assert_eq!(p.stats().rejected, 0);
}

/// The same for a gzip'd body, as a cache hit after a restart asks: its verdict is stored
/// under the decoded SHA-256, which the in-process raw → decoded map has forgotten.
#[tokio::test]
async fn a_full_pool_still_answers_an_encoded_body_from_the_store() {
    let store = Store::temporary().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"<p>buy pills</p>").unwrap();
    let body = Content {
        bytes: bytes::Bytes::from(gz.finish().unwrap()),
        declared_type: "text/html".into(),
        content_encoding: "gzip".into(),
        ..Content::default()
    };
    let raw: [u8; 32] = Sha256::digest(&body.bytes).into();
    let stored = counting_pipeline(&store, "v1").0.scan_sync(&body);
    assert_eq!(stored.class, Class::Suspect);
    // After a restart, with the only worker busy and no queue.
    let (p, busy, release) = full_pool(&store).await;
    let v = p.verdict_for_known(&raw, body.clone()).await;
    assert_eq!(*v, stored, "the stored verdict, not unscanned");
    release.send(()).unwrap();
    busy.await.unwrap();
    assert_eq!(p.stats().rejected, 0);
}

/// The same for a body too large to hash on the reactor (over 64 KiB): a miss passes no raw
/// SHA-256 to the pool, so its refusal must still find the stored verdict.
#[tokio::test]
async fn a_full_pool_still_answers_a_large_body_from_the_store() {
    let store = Store::temporary().unwrap();
    let body = html(&format!(
        "<p>buy pills</p>{}",
        "<p>more text</p>".repeat(5000)
    ));
    assert!(body.bytes.len() > INLINE_MEMO_MAX);
    let stored = counting_pipeline(&store, "v1").0.scan_sync(&body);
    assert_eq!(stored.class, Class::Suspect);
    // After a restart, with the only worker busy and no queue.
    let (p, busy, release) = full_pool(&store).await;
    let v = p.scan(body).await;
    assert_eq!(v, stored, "the stored verdict, not unscanned");
    release.send(()).unwrap();
    busy.await.unwrap();
}

/// A pipeline over real rules: a body rule and a header rule, each enough for `spam`.
fn rules_pipeline(store: &Store) -> Pipeline {
    let cf = b"body LOTTO /you have won the lottery/i\nscore LOTTO 6\n\
               header EVIL_SERVER Server =~ /evil/\nscore EVIL_SERVER 6\n";
    let rules = crate::scan::rules::RuleSet::from_files(&[("r.cf".into(), cf.to_vec())])
        .rules
        .unwrap();
    Pipeline::new(vec![Arc::new(rules)], Settings::default()).with_store(store)
}

fn served(bytes: &'static str, fields: &[(&'static str, &'static str)]) -> Content {
    let mut h = http::HeaderMap::new();
    for (k, v) in fields {
        h.append(*k, v.parse().unwrap());
    }
    content_from_response(bytes::Bytes::from_static(bytes.as_bytes()), &h, None)
}

#[tokio::test]
async fn the_same_bytes_read_another_way_are_judged_again() {
    let store = Store::temporary().unwrap();
    let p = rules_pipeline(&store);
    let spam = "You have won the lottery! Send your bank details.";
    // Not a text type, and nothing to sniff: the rules do not read it.
    let foo = served(spam, &[("content-type", "application/x-foo")]);
    let text = served(spam, &[("content-type", "text/plain")]);
    assert_eq!(p.scan(foo.clone()).await.class, Class::Clean);
    let v = p.scan(text.clone()).await;
    assert_eq!(v.class, Class::Spam, "the bytes read as text this time");
    assert!(
        v.reading.starts_with("text/plain; fields="),
        "{}",
        v.reading
    );
    assert_eq!(p.stats().scans, 2);
    // Both readings are remembered: neither is scanned again, and the inline check (the
    // proxy's, from the header map) agrees with the scan input.
    assert_eq!(p.scan(foo).await.class, Class::Clean);
    assert_eq!(p.scan(text).await.class, Class::Spam);
    let mut h = http::HeaderMap::new();
    h.insert("content-type", "text/plain".parse().unwrap());
    let inline = p.memo_for_body(spam.as_bytes(), &h).expect("memo hit");
    assert_eq!(inline.class, Class::Spam);
    assert_eq!(p.stats().scans, 2);
    // The store keeps the latest verdict of the body.
    assert_eq!(p.stored(&v.sha256).map(|s| s.class), Some(Class::Spam));
}

#[tokio::test]
async fn a_field_a_header_rule_reads_is_part_of_the_reading() {
    let store = Store::temporary().unwrap();
    let p = rules_pipeline(&store);
    let page = "<p>hello</p>";
    let good = served(page, &[("content-type", "text/html"), ("server", "good")]);
    let evil = served(page, &[("content-type", "text/html"), ("server", "evil")]);
    assert_eq!(p.scan(good.clone()).await.class, Class::Clean);
    assert_eq!(p.scan(evil).await.class, Class::Spam);
    // A field no rule reads is not: another Date is the same reading.
    let later = served(
        page,
        &[
            ("content-type", "text/html"),
            ("server", "good"),
            ("date", "Fri, 27 Nov 2026 08:00:00 GMT"),
        ],
    );
    assert_eq!(p.scan(later).await.class, Class::Clean);
    assert_eq!(p.scan(good).await.class, Class::Clean);
    assert_eq!(p.stats().scans, 2);
}

#[test]
fn verdicts_stored_before_readings_existed_are_scanned_again() {
    let store = Store::temporary().unwrap();
    let old = counting_pipeline(&store, "v1")
        .0
        .scan_sync(&html("<p>x</p>"));
    // As an older version wrote it: no `reading` field at all.
    let mut json: serde_json::Value = serde_json::to_value(&old).unwrap();
    json.as_object_mut().unwrap().remove("reading");
    store
        .verdicts
        .insert(old.sha256.as_bytes(), serde_json::to_vec(&json).unwrap())
        .unwrap();
    // After the upgrade (a new process): the old verdict matches no reading.
    let (p, fake) = counting_pipeline(&store, "v1");
    assert_eq!(p.stored(&old.sha256).unwrap().reading, "");
    let fresh = p.scan_sync(&html("<p>x</p>"));
    assert_eq!(fresh.reading, "text/html");
    assert_eq!(fake.calls.load(SeqCst), 1, "scanned again");
    assert_eq!(p.stored(&old.sha256).unwrap().reading, "text/html");
}

#[tokio::test]
async fn a_declared_type_spelt_like_no_type_is_another_reading() {
    // `Content-Type: -` is a type like any other, neither text nor generic: not read. No
    // Content-Type at all is sniffed (here as text/plain): read. Both must not share a memo.
    let store = Store::temporary().unwrap();
    let p = rules_pipeline(&store);
    let spam = "You have won the lottery! Send your bank details.";
    let dash = served(spam, &[("content-type", "-")]);
    let untyped = served(spam, &[]);
    assert_eq!(p.scan(dash).await.class, Class::Clean);
    let v = p.scan(untyped).await;
    assert_eq!(v.class, Class::Spam, "sniffed as text, it is read: {v:?}");
    assert_eq!(p.stats().scans, 2);
}

/// `scan.model_weight` turns the model's points into its score, so a memoised verdict of one
/// weight must not be served under another (README: a verdict is remembered until the
/// rules, lists, model or thresholds change). The store outlives a restart with a new weight.
#[test]
fn a_model_weight_change_is_a_new_ruleset() {
    let (dir, mut cfg) = empty_dirs();
    std::fs::create_dir_all(&cfg.models).unwrap();
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/text.model");
    std::fs::copy(model, cfg.models.join(crate::scan::model::MODEL_FILE)).unwrap();
    let store = Store::temporary().unwrap();
    let spam = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/samples/spam-lottery.html"),
    )
    .unwrap();
    let body = html(&spam);
    let (weighted, _) = Pipeline::from_config(&cfg).unwrap();
    let weighted = weighted.with_store(&store);
    let first = weighted.scan_sync(&body);
    assert!(first.score > 0.0, "the model scores the sample: {first:?}");

    cfg.model_weight = 0.0;
    let (silenced, _) = Pipeline::from_config(&cfg).unwrap();
    let silenced = silenced.with_store(&store);
    assert_ne!(silenced.ruleset(), weighted.ruleset());
    let second = silenced.scan_sync(&body);
    assert_eq!(second.score, 0.0, "{second:?}");
    assert_eq!(second.class, Class::Clean);
    drop(dir);
}

/// Rule scores that are each finite but sum past `f64::MAX` gave a verdict whose score was
/// infinite: JSON has no infinity (serde writes `null`), so the stored verdict could never be
/// read back, and the body was scanned again on every request and unknown to
/// `GET /verdicts`. Such scores are refused at load, as the config refuses thresholds past
/// 10^6, so no sum of rule scores leaves the finite numbers.
#[test]
fn huge_rule_scores_are_refused_so_a_verdict_can_always_be_stored() {
    let (_dir, cfg) = empty_dirs();
    std::fs::create_dir_all(&cfg.rules).unwrap();
    let file = cfg.rules.join("50.cf");
    std::fs::write(
        &file,
        "body WIN /win/\nscore WIN 1e308\nbody PRIZE /prize/\nscore PRIZE 1e6\n",
    )
    .unwrap();
    let Err(errors) = Pipeline::from_config(&cfg) else {
        panic!("a score of 1e308 loaded");
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((&errors[0].file, errors[0].line), (&file, 2));
    assert!(errors[0].message.contains("out of range"), "{errors:?}");

    // At the bound, every rule hit sums to a finite score that is stored and read back.
    std::fs::write(
        &file,
        "body WIN /win/\nscore WIN 1e6\nbody PRIZE /prize/\nscore PRIZE 1e6\n",
    )
    .unwrap();
    let store = Store::temporary().unwrap();
    let p = Pipeline::from_config(&cfg).unwrap().0.with_store(&store);
    let v = p.scan_sync(&html("<p>win a prize</p>"));
    assert_eq!((v.class, v.score), (Class::Spam, 2e6));
    assert_eq!(p.lookup(&v.sha256).map(|s| s.score), Some(2e6));
}

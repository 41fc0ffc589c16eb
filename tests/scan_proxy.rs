//! Issue 5 through the proxy: every class gets its `[scan.action]`, listed images are caught
//! by SHA-256 and (resized) by PDQ, encoded bodies are decoded with bounds, verdicts are
//! memoised by body bytes, observe mode streams first and records later, and a broken ruleset
//! stops startup with `file:line`.

mod common;

use std::io::{Cursor, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{config, get, start, Origin, Sluice, LIMIT};
use sluice::config::{Action, ByteSize, Config, ScanMode};
use sluice::scan::pipeline::StatsSnapshot;
use sluice::scan::{sha256_hex, Class};

/// Obvious lottery / phishing spam, written for this test (every domain under `.example`).
const SPAM: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
<title>CONGRATULATIONS!!! You are our lucky WINNER</title></head><body>\
<h1>Dear Lucky Winner,</h1>\
<p>Your e-mail address has WON the sum of <b>$1,500,000.00 USD</b> in our international \
online lottery draw. You were selected from over 20,000,000 addresses!</p>\
<p>To claim your prize you must act now. Send your full name, bank account number and a \
processing fee of $150 by Western Union to our claims agent within 24 hours, or the money \
will be forfeited. This offer is 100% guaranteed and completely risk free.</p>\
<p>Your account has been suspended: verify your account and confirm your password at \
<a href=\"http://secure-login.bank.example.claims-office.example/verify-account.php?id=7\">\
CLICK HERE TO CLAIM YOUR PRIZE NOW</a></p>\
<p>Double your Bitcoin: send 0.1 BTC to our wallet and receive 0.2 BTC back instantly.</p>\
</body></html>";

/// An ordinary newsletter, written for this test.
const NEWSLETTER: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
<title>Riverside Library - November news</title></head><body>\
<h1>Riverside Library newsletter</h1>\
<p>Hello readers, here is what is happening at the library this month.</p>\
<h2>Reading group</h2>\
<p>The Thursday reading group meets in the upstairs room at seven. This month we are \
discussing a novel about a family of lighthouse keepers on the northern coast. New members \
are always welcome; copies are available at the front desk.</p>\
<h2>Opening hours</h2>\
<p>From the first of December the library opens at nine on Saturdays. The children's \
corner now has a new shelf of picture books donated by local families.</p>\
<p>See the full events calendar on <a href=\"https://library.example/events\">our website</a>.</p>\
<p>Thank you for reading, and see you soon.<br>The library team</p>\
</body></html>";

/// A `200` with `Content-Type`, `Content-Length`, extra header lines (each ending `\r\n`)
/// and `body`.
fn response(ctype: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// An origin answering every request with the same bytes.
async fn serving(answer: Vec<u8>) -> Origin {
    Origin::respond(move |_| answer.clone()).await
}

/// An origin answering every request with a non-cacheable `text/html` page.
async fn page(body: &str) -> Origin {
    serving(response(
        "text/html; charset=utf-8",
        "Cache-Control: no-store\r\n",
        body.as_bytes(),
    ))
    .await
}

/// The running pipeline's counters.
fn stats(s: &Sluice) -> StatsSnapshot {
    s.running
        .as_ref()
        .expect("sluice is running")
        .proxy
        .pipeline
        .stats()
}

/// The `X-Sluice-Verdict` header, or "" when absent.
fn verdict(resp: &common::Response) -> String {
    resp.header("x-sluice-verdict").unwrap_or("").to_string()
}

/// A config using the shipped rules and model but hash lists from `dir`.
fn config_with_lists(dir: &Path) -> Config {
    let mut cfg = config();
    cfg.scan.hash_lists = dir.to_path_buf();
    cfg
}

/// A 512×512 test photo: smooth gradients and rings, enough structure for PDQ quality.
fn photo(seed: f32) -> image::RgbImage {
    image::RgbImage::from_fn(512, 512, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let d = ((fx - 200.0 - seed * 40.0).powi(2) + (fy - 300.0).powi(2)).sqrt();
        let ring = ((d / (18.0 + seed * 7.0)).sin() * 90.0 + 100.0) as u8;
        let grad = ((fx + seed * fy) / 4.0) as u8;
        let blob = if (fx / 128.0).floor() as u32 % 2 == (fy / 96.0).floor() as u32 % 2 {
            60
        } else {
            190
        };
        image::Rgb([ring, grad.wrapping_add(blob), blob])
    })
}

fn png(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encodes");
    out.into_inner()
}

fn jpeg(img: &image::RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .expect("JPEG encodes");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

#[tokio::test]
async fn spam_page_is_blocked_with_a_403_naming_class_and_rules() {
    let origin = page(SPAM).await;
    let sluice = start(config()).await;
    let resp = sluice.fetch(&origin.url("/win")).await;
    assert_eq!(resp.status(), 403, "body: {}", resp.text());
    assert!(
        resp.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain"),
        "{:?}",
        resp.header("content-type")
    );
    let v = verdict(&resp);
    assert!(v.starts_with("spam;"), "{v}");
    let rules = v
        .split("; ")
        .find_map(|p| p.strip_prefix("rules="))
        .unwrap_or_else(|| panic!("no rules= in {v}"));
    let text = resp.text();
    assert!(text.contains("spam"), "{text}");
    for rule in rules.split(',') {
        assert!(text.contains(rule), "403 body should name {rule}: {text}");
    }
    assert!(
        !text.contains("Western Union"),
        "the page itself is withheld"
    );
    assert_eq!(origin.requests().len(), 1, "the origin was contacted once");
}

#[tokio::test]
async fn clean_page_is_delivered_byte_identical_and_tagged_clean() {
    let origin = page(NEWSLETTER).await;
    let sluice = start(config()).await;
    let resp = sluice.fetch(&origin.url("/news")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, NEWSLETTER.as_bytes());
    let v = verdict(&resp);
    let want = format!("sha256={}", sha256_hex(NEWSLETTER.as_bytes()));
    assert!(v.starts_with("clean; score="), "{v}");
    assert!(v.split("; ").any(|p| p == want), "{v} should carry {want}");
}

/// A hash-list dir holding the 512 px photo's SHA-256 (PNG) and PDQ hash, and the images.
struct Images {
    dir: tempfile::TempDir,
    original: Vec<u8>,
    resized: Vec<u8>,
    unrelated: Vec<u8>,
}

fn images() -> Images {
    let img = photo(0.0);
    let original = png(&img);
    let resized = jpeg(
        &image::imageops::resize(&img, 400, 400, image::imageops::FilterType::Triangle),
        85,
    );
    let unrelated = jpeg(&image::imageops::rotate90(&photo(3.0)), 85);
    let hash = sluice::scan::pdq::hash_image(&original, 64_000_000).expect("hashable");
    assert!(hash.quality >= 50, "test photo quality {}", hash.quality);
    let other = sluice::scan::pdq::hash_image(&unrelated, 64_000_000).expect("hashable");
    assert!(
        hash.distance(&other) > 31,
        "the unrelated image must not be a near match ({})",
        hash.distance(&other)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("local.sha256"),
        format!("{} listed-photo-png\n", sha256_hex(&original)),
    )
    .expect("write list");
    std::fs::write(
        dir.path().join("photos.pdq"),
        format!("# test list\n{} listed-photo-pdq\n", hash.to_hex()),
    )
    .expect("write list");
    Images {
        dir,
        original,
        resized,
        unrelated,
    }
}

async fn image_origin(png_body: Vec<u8>, jpeg_body: Vec<u8>, other: Vec<u8>) -> Origin {
    Origin::respond(move |req| {
        let (ctype, body) = match req.target() {
            t if t.ends_with("/original.png") => ("image/png", &png_body),
            t if t.ends_with("/resized.jpg") => ("image/jpeg", &jpeg_body),
            _ => ("image/jpeg", &other),
        };
        response(ctype, "Cache-Control: no-store\r\n", body)
    })
    .await
}

#[tokio::test]
async fn listed_image_is_blocked_by_sha256_and_its_resized_copy_by_pdq() {
    let im = images();
    let origin = image_origin(
        im.original.clone(),
        im.resized.clone(),
        im.unrelated.clone(),
    )
    .await;
    let sluice = start(config_with_lists(im.dir.path())).await;

    let resp = sluice.fetch(&origin.url("/original.png")).await;
    assert_eq!(resp.status(), 403, "{}", resp.text());
    let v = verdict(&resp);
    assert!(v.starts_with("listed;"), "{v}");
    assert!(v.contains(&sha256_hex(&im.original)), "{v}");
    assert!(resp.text().contains("listed-photo-png"), "{}", resp.text());

    let resp = sluice.fetch(&origin.url("/resized.jpg")).await;
    assert_eq!(resp.status(), 403, "{}", resp.text());
    let v = verdict(&resp);
    assert!(v.starts_with("listed;"), "{v}");
    assert!(v.contains(&sha256_hex(&im.resized)), "{v}");
    assert!(resp.text().contains("listed-photo-pdq"), "{}", resp.text());
    assert!(!resp.text().contains("listed-photo-png"), "{}", resp.text());

    let resp = sluice.fetch(&origin.url("/unrelated.jpg")).await;
    assert_eq!(resp.status(), 200, "{}", resp.text());
    assert_eq!(resp.body, im.unrelated);
    assert!(verdict(&resp).starts_with("clean;"), "{}", verdict(&resp));
}

#[tokio::test]
async fn clamav_hsb_entry_blocks_the_matching_body() {
    let body = b"MZ this is a pretend malware sample for the sluice proxy test\n".to_vec();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("test.hsb"),
        format!(
            "# test signatures\n{}:{}:Sluice.Test.Sample:73\n",
            sha256_hex(&body),
            body.len()
        ),
    )
    .expect("write list");
    let origin = serving(response("application/octet-stream", "", &body)).await;
    let sluice = start(config_with_lists(dir.path())).await;
    let resp = sluice.fetch(&origin.url("/sample.exe")).await;
    assert_eq!(resp.status(), 403, "{}", resp.text());
    assert!(verdict(&resp).starts_with("listed;"), "{}", verdict(&resp));
    assert!(
        resp.text().contains("Sluice.Test.Sample"),
        "{}",
        resp.text()
    );
    // A body that differs by one byte is not listed.
    let mut other = body.clone();
    other[0] = b'N';
    let origin2 = serving(response("application/octet-stream", "", &other)).await;
    let resp = sluice.fetch(&origin2.url("/sample.exe")).await;
    assert_eq!(resp.status(), 200, "{}", resp.text());
    assert_eq!(resp.body, other);
}

#[tokio::test]
async fn spam_with_action_tag_is_delivered_with_the_verdict_header() {
    let origin = page(SPAM).await;
    let mut cfg = config();
    cfg.scan.action.spam = Action::Tag;
    let sluice = start(cfg).await;
    let resp = sluice.fetch(&origin.url("/win")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, SPAM.as_bytes());
    let v = verdict(&resp);
    assert!(v.starts_with("spam; score="), "{v}");
    assert!(v.contains("; rules="), "{v}");
}

#[tokio::test]
async fn spam_with_action_log_is_delivered_without_a_header() {
    let origin = page(SPAM).await;
    let mut cfg = config();
    cfg.scan.action.spam = Action::Log;
    let sluice = start(cfg).await;
    let resp = sluice.fetch(&origin.url("/win")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, SPAM.as_bytes());
    assert_eq!(resp.header("x-sluice-verdict"), None);
    assert_eq!(
        stats(&sluice).classes.get("spam"),
        Some(&1),
        "still scanned"
    );
}

/// A text body of `n` bytes.
fn big_text(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"abcdefghij klmnop\n"[i % 18]).collect()
}

#[tokio::test]
async fn body_over_max_body_streams_byte_identical_as_unscanned_too_large() {
    let body = big_text(5000);
    let origin = serving(response("text/plain", "", &body)).await;
    let mut cfg = config();
    cfg.scan.max_body = ByteSize(1024);
    let sluice = start(cfg).await;
    let resp = sluice.fetch(&origin.url("/big.txt")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, body, "byte-identical");
    let v = verdict(&resp);
    assert!(v.starts_with("unscanned;"), "{v}");
    assert!(v.ends_with("reason=too_large"), "{v}");
    assert_eq!(stats(&sluice).scans, 0, "nothing was scanned");
}

#[tokio::test]
async fn unscanned_block_refuses_a_too_large_body_before_sending_any_of_it() {
    let body = big_text(5000);
    let sized = response("text/plain", "", &body);
    let chunked = {
        let mut r =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for c in body.chunks(700) {
            r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            r.extend_from_slice(c);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    };
    let origin = Origin::respond(move |req| {
        if req.target().ends_with("/chunked") {
            chunked.clone()
        } else {
            sized.clone()
        }
    })
    .await;
    let mut cfg = config();
    cfg.scan.max_body = ByteSize(1024);
    cfg.scan.action.unscanned = Action::Block;
    let sluice = start(cfg).await;
    for path in ["/sized", "/chunked"] {
        let resp = sluice.fetch(&origin.url(path)).await;
        assert_eq!(resp.status(), 403, "{path}: {}", resp.text());
        assert!(resp.text().contains("unscanned"), "{}", resp.text());
        let v = verdict(&resp);
        assert!(v.contains("reason=too_large"), "{path}: {v}");
        assert!(!resp.text().contains("abcdefghij"), "no body byte leaks");
    }
    // A small body is still scanned and delivered.
    let small = page(NEWSLETTER).await;
    assert_eq!(sluice.fetch(&small.url("/")).await.status(), 200);
}

#[tokio::test]
async fn gzip_spam_page_is_decoded_and_blocked() {
    let origin = serving(response(
        "text/html; charset=utf-8",
        "Content-Encoding: gzip\r\nCache-Control: no-store\r\n",
        &gzip(SPAM.as_bytes()),
    ))
    .await;
    let sluice = start(config()).await;
    let resp = sluice.fetch(&origin.url("/win.gz")).await;
    assert_eq!(resp.status(), 403, "{}", resp.text());
    let v = verdict(&resp);
    assert!(v.starts_with("spam;"), "{v}");
    // The verdict key is the decoded body's SHA-256.
    assert!(v.contains(&sha256_hex(SPAM.as_bytes())), "{v}");
}

#[tokio::test]
async fn gzip_bomb_is_relayed_unscanned_with_reason_limit_in_bounded_time() {
    let bomb = gzip(&vec![0u8; 10 << 20]);
    assert!(bomb.len() < 64 << 10, "{} compressed bytes", bomb.len());
    let origin = serving(response(
        "text/html",
        "Content-Encoding: gzip\r\nCache-Control: no-store\r\n",
        &bomb,
    ))
    .await;
    let mut cfg = config();
    cfg.scan.max_body = ByteSize(1 << 20);
    let sluice = start(cfg).await;
    let t0 = Instant::now();
    let resp = sluice.fetch(&origin.url("/bomb")).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(resp.status(), 200, "{}", resp.text());
    assert_eq!(resp.body, bomb, "relayed as sent, still encoded");
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    let v = verdict(&resp);
    assert!(v.starts_with("unscanned;"), "{v}");
    assert!(v.ends_with("reason=limit"), "{v}");
}

#[tokio::test]
async fn same_bytes_under_another_url_are_not_rescanned() {
    let origin = page(NEWSLETTER).await;
    let sluice = start(config()).await;
    let first = sluice.fetch(&origin.url("/a")).await;
    assert_eq!(first.status(), 200);
    let before = stats(&sluice);
    assert_eq!(before.scans, 1);
    let second = sluice.fetch(&origin.url("/b?utm=x")).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.body, NEWSLETTER.as_bytes());
    let after = stats(&sluice);
    assert_eq!(after.scans, before.scans, "not scanned again");
    assert_eq!(
        after.memo_hits,
        before.memo_hits + 1,
        "answered by the memo"
    );
    assert_eq!(verdict(&second), verdict(&first));
    assert_eq!(origin.requests().len(), 2, "both URLs were fetched");
}

#[tokio::test]
async fn cache_hit_carries_the_stored_verdict() {
    let origin = serving(response(
        "text/html; charset=utf-8",
        "Cache-Control: max-age=300\r\n",
        NEWSLETTER.as_bytes(),
    ))
    .await;
    let sluice = start(config()).await;
    let first = sluice.fetch(&origin.url("/cached")).await;
    assert_eq!(first.status(), 200);
    let scans = stats(&sluice).scans;
    let hit = sluice.fetch(&origin.url("/cached")).await;
    assert_eq!(hit.status(), 200);
    assert_eq!(origin.requests().len(), 1, "served from the cache");
    assert!(
        hit.header("cache-status").unwrap_or("").contains("hit"),
        "{:?}",
        hit.header("cache-status")
    );
    assert_eq!(hit.body, NEWSLETTER.as_bytes());
    let v = verdict(&hit);
    assert!(v.starts_with("clean;"), "{v}");
    assert_eq!(v, verdict(&first));
    assert_eq!(stats(&sluice).scans, scans, "a hit is not rescanned");
}

#[tokio::test]
async fn cached_spam_stays_blocked_on_a_hit() {
    let origin = serving(response(
        "text/html; charset=utf-8",
        "Cache-Control: max-age=300\r\n",
        SPAM.as_bytes(),
    ))
    .await;
    let sluice = start(config()).await;
    assert_eq!(sluice.fetch(&origin.url("/w")).await.status(), 403);
    let again = sluice.fetch(&origin.url("/w")).await;
    assert_eq!(again.status(), 403, "{}", again.text());
    assert!(verdict(&again).starts_with("spam;"), "{}", verdict(&again));
    assert_eq!(origin.requests().len(), 1, "blocked from the cache");
    // The 403 still says where the object came from.
    let cs = again.header("cache-status").unwrap_or("");
    assert!(cs.starts_with("sluice; hit"), "Cache-Status {cs:?}");
}

/// Reads from `c` until `buf` holds at least `n` bytes.
async fn read_at_least(c: &mut common::Client, buf: &mut Vec<u8>, n: usize) {
    while buf.len() < n {
        buf.extend(c.expect_some(LIMIT).await);
    }
}

#[tokio::test]
async fn observe_mode_streams_at_once_and_records_the_verdict() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let split = SPAM.len() / 2;
    let origin = {
        let release = release.clone();
        Origin::start(move |mut conn| {
            let release = release.clone();
            async move {
                if conn.read_request().await.is_none() {
                    return;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                    SPAM.len()
                );
                let _ = conn.write(format!("{head}{}", &SPAM[..split])).await;
                // The rest only once the client has proven it got the first half.
                release.notified().await;
                let _ = conn.write(&SPAM[split..]).await;
            }
        })
        .await
    };
    let mut cfg = config();
    cfg.scan.mode = ScanMode::Observe;
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/observed"))).await;
    let mut got = Vec::new();
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        got.extend(c.expect_some(LIMIT).await);
    };
    read_at_least(&mut c, &mut got, head_end + split).await;
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    release.notify_one();
    read_at_least(&mut c, &mut got, head_end + SPAM.len()).await;
    assert_eq!(
        &got[head_end..],
        SPAM.as_bytes(),
        "the spam page is delivered"
    );

    let pipeline = &sluice.running.as_ref().expect("running").proxy.pipeline;
    let sha = sha256_hex(SPAM.as_bytes());
    let deadline = Instant::now() + LIMIT;
    let recorded = loop {
        if let Some(v) = pipeline.lookup(&sha) {
            break v;
        }
        assert!(Instant::now() < deadline, "no verdict recorded for {sha}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(recorded.class, Class::Spam);
    assert!(!recorded.findings.is_empty());
}

#[tokio::test]
async fn broken_rule_or_list_file_stops_startup_naming_file_and_line() {
    let rules = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        rules.path().join("bad.cf"),
        "# a comment\n\
         body     LOCAL_OK   /fine/i\n\
         score    LOCAL_OK   not-a-number\n",
    )
    .expect("write rules");
    let lists = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        lists.path().join("photos.pdq"),
        "# list\nnot-a-hash label\n",
    )
    .expect("write list");
    let mut cfg = config();
    cfg.scan.rules = rules.path().to_path_buf();
    cfg.scan.hash_lists = lists.path().to_path_buf();
    let store = sluice::store::Store::temporary().expect("store");
    let err = match sluice::server::start_with_store(cfg, store).await {
        Ok(_) => panic!("a broken ruleset must stop startup"),
        Err(e) => e.to_string(),
    };
    // Every loader's errors are reported together, each as `file:line: message`.
    assert!(err.contains("bad.cf:3: "), "{err}");
    assert!(err.contains("photos.pdq:2: "), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
}

#[tokio::test]
async fn proxy_keeps_serving_after_blocks_bombs_and_bad_images() {
    let bomb = gzip(&vec![0u8; 10 << 20]);
    let mut broken_png = png(&photo(1.0));
    broken_png.truncate(broken_png.len() / 3);
    let spam = SPAM.as_bytes().to_vec();
    let origin = Origin::respond(move |req| match req.target() {
        t if t.ends_with("/spam") => response("text/html", "", &spam),
        t if t.ends_with("/bomb") => response("text/html", "Content-Encoding: gzip\r\n", &bomb),
        t if t.ends_with("/broken.png") => response("image/png", "", &broken_png),
        _ => response("text/html", "", NEWSLETTER.as_bytes()),
    })
    .await;
    let mut cfg = config();
    cfg.scan.max_body = ByteSize(1 << 20);
    let sluice = start(cfg).await;
    assert_eq!(sluice.fetch(&origin.url("/spam")).await.status(), 403);
    let bomb = sluice.fetch(&origin.url("/bomb")).await;
    assert!(
        verdict(&bomb).contains("reason=limit"),
        "{}",
        verdict(&bomb)
    );
    let broken = sluice.fetch(&origin.url("/broken.png")).await;
    assert_eq!(broken.status(), 200);
    assert!(
        verdict(&broken).starts_with("unscanned;") && verdict(&broken).contains("reason="),
        "{}",
        verdict(&broken)
    );
    // On one keep-alive connection, after all of that: a normal page.
    let mut c = sluice.client().await;
    let blocked = c.exchange(get(&origin.url("/spam"))).await;
    assert_eq!(blocked.status(), 403);
    let ok = c.exchange(get(&origin.url("/news"))).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.body, NEWSLETTER.as_bytes());
    assert!(verdict(&ok).starts_with("clean;"), "{}", verdict(&ok));
}

/// An origin that sends a `Content-Length: 5000` head and the first `first` body bytes, then
/// stalls until `release` is notified and sends the rest.
async fn stalling(release: std::sync::Arc<tokio::sync::Notify>, first: usize) -> Origin {
    let body = big_text(5000);
    Origin::start(move |mut conn| {
        let (release, body) = (release.clone(), body.clone());
        async move {
            if conn.read_request().await.is_none() {
                return;
            }
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5000\r\n\r\n";
            let mut start = head.as_bytes().to_vec();
            start.extend_from_slice(&body[..first]);
            let _ = conn.write(start).await;
            release.notified().await;
            let _ = conn.write(&body[first..]).await;
        }
    })
    .await
}

#[tokio::test]
async fn body_declared_over_max_body_streams_at_once_in_enforce_mode() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let origin = stalling(release.clone(), 512).await;
    let mut cfg = config();
    cfg.scan.max_body = ByteSize(1024);
    let sluice = start(cfg).await;
    let mut c = sluice.client().await;
    c.send(get(&origin.url("/declared-big"))).await;
    // The head and the first 512 bytes arrive while the origin still holds the rest back:
    // Content-Length already says the body cannot be scanned, so nothing is buffered.
    let mut got = Vec::new();
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        got.extend(c.expect_some(LIMIT).await);
    };
    read_at_least(&mut c, &mut got, head_end + 512).await;
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("reason=too_large"), "{head}");
    release.notify_one();
    read_at_least(&mut c, &mut got, head_end + 5000).await;
    assert_eq!(&got[head_end..], &big_text(5000)[..], "byte-identical");
}

#[tokio::test]
async fn unscanned_block_refuses_a_declared_too_large_body_without_waiting_for_it() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let origin = stalling(release.clone(), 100).await;
    let mut cfg = config();
    cfg.scan.max_body = ByteSize(1024);
    cfg.scan.action.unscanned = Action::Block;
    let sluice = start(cfg).await;
    // The origin never sends more than 100 bytes: the 403 comes from the head alone.
    let resp = sluice.fetch(&origin.url("/declared-big")).await;
    assert_eq!(resp.status(), 403, "{}", resp.text());
    assert!(
        verdict(&resp).contains("reason=too_large"),
        "{}",
        verdict(&resp)
    );
    release.notify_one();
}

#[tokio::test]
async fn an_origin_cannot_forge_the_verdict_header() {
    let forged = response(
        "text/html",
        "X-Sluice-Verdict: clean; score=0\r\nCache-Control: max-age=300\r\n",
        SPAM.as_bytes(),
    );
    let origin = serving(forged).await;
    // `log` adds no header of its own, so a forged one would survive unless it is removed.
    let mut cfg = config();
    cfg.scan.action.spam = Action::Log;
    let sluice = start(cfg).await;
    let miss = sluice.fetch(&origin.url("/forged")).await;
    assert_eq!(miss.status(), 200);
    assert_eq!(miss.header("x-sluice-verdict"), None, "miss");
    let hit = sluice.fetch(&origin.url("/forged")).await;
    assert_eq!(origin.requests().len(), 1, "the second fetch is a hit");
    assert_eq!(hit.header("x-sluice-verdict"), None, "hit");
    // Observe mode sends the head before any verdict exists.
    let mut cfg = config();
    cfg.scan.mode = ScanMode::Observe;
    let sluice = start(cfg).await;
    let observed = sluice.fetch(&origin.url("/forged")).await;
    assert_eq!(observed.status(), 200);
    assert_eq!(observed.header("x-sluice-verdict"), None, "observe");
}

/// The SHA-256 the `urls` tree records for `url`, if any.
fn recorded_sha(s: &Sluice, url: &str) -> Option<String> {
    let store = &s.running.as_ref().expect("running").proxy.store;
    let value = store.urls.get(url.as_bytes()).expect("urls tree")?;
    let json: serde_json::Value = serde_json::from_slice(&value).expect("urls value is JSON");
    json["sha256"].as_str().map(str::to_string)
}

#[tokio::test]
async fn every_scanned_url_is_recorded_for_look_up_by_url() {
    // Neither page may be stored (no-store): the URL record is for verdicts, not the cache.
    let spam = page(SPAM).await;
    let clean = page(NEWSLETTER).await;
    let sluice = start(config()).await;
    let (spam_url, clean_url) = (spam.url("/win"), clean.url("/news"));
    assert_eq!(sluice.fetch(&spam_url).await.status(), 403);
    assert_eq!(sluice.fetch(&clean_url).await.status(), 200);
    assert_eq!(
        recorded_sha(&sluice, &spam_url),
        Some(sha256_hex(SPAM.as_bytes()))
    );
    assert_eq!(
        recorded_sha(&sluice, &clean_url),
        Some(sha256_hex(NEWSLETTER.as_bytes()))
    );
}

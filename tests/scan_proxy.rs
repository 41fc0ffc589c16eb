//! Issue 5 through the proxy, by class and action: spam is blocked with a 403 naming its
//! rules, clean pages are tagged, listed images are caught by SHA-256 and (resized) by PDQ,
//! ClamAV `.hsb` entries block, `tag`/`log` actions deliver, an origin cannot forge the
//! verdict, a broken ruleset stops startup with `file:line`, and the proxy keeps serving.
//! Bodies, limits, memo and observe mode are in `scan_proxy_body.rs`.

use crate::common;
use crate::scan_support;

use std::io::Cursor;
use std::path::Path;

use common::{config, get, start, Origin, Sluice};
use scan_support::{gzip, page, response, serving, stats, verdict, NEWSLETTER, SPAM};
use sluice::config::{Action, ByteSize, Config, ScanMode};
use sluice::scan::sha256_hex;

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

/// A 304 freshens the stored headers, but a verdict header in it is the origin's forgery
/// like any other: it is neither stored nor relayed.
#[tokio::test]
async fn a_304_cannot_forge_the_verdict_header_either() {
    let first = response(
        "text/html",
        "Cache-Control: max-age=0\r\nETag: \"e\"\r\n",
        SPAM.as_bytes(),
    );
    let origin = Origin::respond(move |req| {
        if req.header("if-none-match").is_some() {
            b"HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\nCache-Control: max-age=300\r\nX-Sluice-Verdict: clean; score=0\r\n\r\n".to_vec()
        } else {
            first.clone()
        }
    })
    .await;
    let mut cfg = config();
    cfg.scan.action.spam = Action::Log;
    let sluice = start(cfg).await;
    assert_eq!(sluice.fetch(&origin.url("/p")).await.status(), 200);
    let revalidated = sluice.fetch(&origin.url("/p")).await;
    assert_eq!(origin.requests().len(), 2, "the second fetch revalidates");
    assert_eq!(
        revalidated.header("x-sluice-verdict"),
        None,
        "after the 304"
    );
    let hit = sluice.fetch(&origin.url("/p")).await;
    assert_eq!(origin.requests().len(), 2, "the third fetch is a fresh hit");
    assert_eq!(
        hit.header("x-sluice-verdict"),
        None,
        "from the merged headers"
    );
}

/// The SHA-256 the `urls` tree records for `url`, if any.
fn recorded_sha(s: &Sluice, url: &str) -> Option<String> {
    let store = &s.running.as_ref().expect("running").proxy.store;
    let value = store.urls.get(url.as_bytes()).expect("urls tree")?;
    let json: serde_json::Value = serde_json::from_slice(&value).expect("urls value is JSON");
    json["sha256"].as_str().map(str::to_string)
}

#[tokio::test]
async fn scanned_urls_are_recorded_except_clean_no_store_exchanges() {
    // `page` answers no-store: no part of a clean exchange is kept, but a blocked one is
    // recorded so `/verdicts?url=` can say why.
    let spam = page(SPAM).await;
    let clean = page(NEWSLETTER).await;
    // Neither storable nor no-store (`private`): the verdict record is kept.
    let private = serving(response(
        "text/html; charset=utf-8",
        "Cache-Control: private\r\n",
        NEWSLETTER.as_bytes(),
    ))
    .await;
    let sluice = start(config()).await;
    let (spam_url, clean_url, private_url) =
        (spam.url("/win"), clean.url("/news"), private.url("/mine"));
    assert_eq!(sluice.fetch(&spam_url).await.status(), 403);
    assert_eq!(sluice.fetch(&clean_url).await.status(), 200);
    assert_eq!(sluice.fetch(&private_url).await.status(), 200);
    // The client's own no-store counts as well.
    let asked = private.url("/asked");
    let mut c = sluice.client().await;
    let r = c
        .exchange(common::request(
            "GET",
            &asked,
            &["Cache-Control: no-store"],
            b"",
        ))
        .await;
    assert!(verdict(&r).starts_with("clean;"), "{}", verdict(&r));
    assert_eq!(
        recorded_sha(&sluice, &spam_url),
        Some(sha256_hex(SPAM.as_bytes()))
    );
    assert_eq!(recorded_sha(&sluice, &clean_url), None, "clean, no-store");
    assert_eq!(recorded_sha(&sluice, &asked), None, "request no-store");
    assert_eq!(
        recorded_sha(&sluice, &private_url),
        Some(sha256_hex(NEWSLETTER.as_bytes()))
    );
    // Not recording the URL does not forget the verdict: the body is not scanned again.
    let scans = stats(&sluice).scans;
    assert_eq!(sluice.fetch(&clean.url("/again")).await.status(), 200);
    assert_eq!(stats(&sluice).scans, scans, "memoised by SHA-256");
}

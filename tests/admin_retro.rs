//! Retro-match through the admin listener: a hash added with `POST /hashes` makes the stored
//! verdicts of bodies and images cached before `listed` at once (by SHA-256 and by URL), and
//! their next cache hit is blocked from the memo, without scanning or hashing again.

use crate::admin_support;
use crate::common;

use admin_support::{
    cacheable, enc, image, scrape, total, verdict_class, verdict_sha, AdminClient, Dirs,
};
use common::{Origin, Sluice};
use serde_json::{json, Value};

/// An origin serving the 512×512 bridge at `/bridge.jpg` and a text page elsewhere.
async fn origin() -> Origin {
    let bridge = image("bridge-mods/square-512x512.jpg");
    Origin::respond(move |req| {
        if req.target().ends_with(".jpg") {
            cacheable("image/jpeg", &bridge)
        } else {
            cacheable("text/plain", b"an innocent looking page")
        }
    })
    .await
}

/// Fetches `url` (a miss, clean) and returns the body's SHA-256.
async fn cache_clean(s: &Sluice, url: &str) -> String {
    let r = s.fetch(url).await;
    assert_eq!((r.status(), verdict_class(&r)), (200, "clean".to_string()));
    verdict_sha(&r)
}

/// Asserts the verdict of `sha` and of `url` is listed by `classifier`, before any refetch.
async fn assert_listed(c: &AdminClient, sha: &str, url: &str, classifier: &str) {
    let by_sha = c.get(&format!("/verdicts/{sha}")).await;
    assert_eq!(by_sha.json["class"], "listed", "{:?}", by_sha.json);
    assert_eq!(by_sha.json["findings"][0]["classifier"], classifier);
    let by_url = c.get(&format!("/verdicts?url={}", enc(url))).await;
    assert_eq!(by_url.json["class"], "listed", "{:?}", by_url.json);
    assert_eq!(by_url.json["url"], url);
}

/// The next fetch is a cache hit, blocked, answered from the memo: no request upstream and
/// no classifier run.
async fn assert_hit_blocked_without_scanning(s: &Sluice, c: &AdminClient, o: &Origin, url: &str) {
    let before = scrape(c).await;
    let upstream = o.requests().len();
    let r = s.fetch(url).await;
    assert_eq!((r.status(), verdict_class(&r)), (403, "listed".to_string()));
    assert_eq!(o.requests().len(), upstream, "served from the cache");
    let after = scrape(c).await;
    let scanned = |m| total(m, "sluice_scanned_bodies_total", &[]);
    assert_eq!(scanned(&after), scanned(&before), "not scanned again");
    let memo = |m| total(m, "sluice_verdict_memo_hits_total", &[]);
    assert_eq!(
        memo(&after),
        memo(&before) + 1.0,
        "the retro-matched verdict"
    );
}

#[tokio::test]
async fn a_new_pdq_hash_lists_an_image_cached_before_at_once() {
    let o = origin().await;
    let s = common::start(Dirs::new().config("")).await;
    let c = AdminClient::of(&s, None);
    let url = o.url("/img/bridge.jpg");
    let sha = cache_clean(&s, &url).await;

    // The hash of a resized copy: a near match, not the image's own hash.
    let near = sluice::scan::pdq::hash_image(&image("bridge-mods/shrink-a-little.jpg"), 1 << 26)
        .expect("hashes");
    let a = c
        .post(
            "/hashes",
            &json!({"kind": "pdq", "hash": near.to_hex(), "label": "bridge-spam"}),
        )
        .await;
    assert_eq!(
        (a.status, a.json["retro_matched"].as_u64()),
        (200, Some(1)),
        "{:?}",
        a.json
    );
    assert_listed(&c, &sha, &url, "pdq").await;
    let v = c.get(&format!("/verdicts/{sha}")).await.json;
    assert_eq!(v["findings"][0]["rule"], "bridge-spam");
    assert_eq!(v["ruleset"], a.json["ruleset"], "current: no rescan needed");
    let listed = c.get("/verdicts?class=listed").await;
    assert_eq!(listed.json["items"][0]["sha256"], sha.as_str());
    assert_hit_blocked_without_scanning(&s, &c, &o, &url).await;

    // Adding it again changes nothing.
    let a = c
        .post(
            "/hashes",
            &json!({"kind": "pdq", "hash": near.to_hex(), "label": "bridge-spam"}),
        )
        .await;
    assert_eq!(a.json["retro_matched"].as_u64(), Some(0));
}

#[tokio::test]
async fn a_new_sha256_lists_a_body_cached_before_at_once() {
    let o = origin().await;
    let s = common::start(Dirs::new().config("")).await;
    let c = AdminClient::of(&s, None);
    let url = o.url("/page");
    let sha = cache_clean(&s, &url).await;
    let a = c
        .post(
            "/hashes",
            &json!([{"kind": "sha256", "hash": sha.to_uppercase(), "label": "reported"}]),
        )
        .await;
    assert_eq!(a.json["retro_matched"].as_u64(), Some(1), "{:?}", a.json);
    assert_listed(&c, &sha, &url, "digest").await;
    assert_eq!(
        c.get(&format!("/verdicts/{sha}")).await.json["findings"][0]["rule"],
        "reported"
    );
    assert_hit_blocked_without_scanning(&s, &c, &o, &url).await;
}

#[tokio::test]
async fn a_bulk_pdq_add_matches_through_an_index_of_the_new_hashes() {
    let o = origin().await;
    let s = common::start(Dirs::new().config("")).await;
    let c = AdminClient::of(&s, None);
    let url = o.url("/img/bridge.jpg");
    let sha = cache_clean(&s, &url).await;
    let page_sha = cache_clean(&s, &o.url("/page")).await;

    let own = sluice::scan::pdq::hash_image(&image("bridge-mods/square-512x512.jpg"), 1 << 26)
        .expect("hashes");
    // 200 unrelated hashes (far from everything) around one that matches exactly.
    let mut entries: Vec<Value> = (0..200u32)
        .map(|i| {
            let h = format!("{:08x}", i.wrapping_mul(2_654_435_761)).repeat(8);
            json!({"kind": "pdq", "hash": h, "list": "bulk"})
        })
        .collect();
    entries.insert(
        100,
        json!({"kind": "pdq", "hash": own.to_hex(), "list": "bulk"}),
    );
    let a = c.post("/hashes", &Value::Array(entries)).await;
    assert_eq!(
        (
            a.status,
            a.json["added"].as_u64(),
            a.json["retro_matched"].as_u64()
        ),
        (200, Some(201), Some(1)),
        "{:?}",
        a.json
    );
    assert_listed(&c, &sha, &url, "pdq").await;
    let page = c.get(&format!("/verdicts/{page_sha}")).await;
    assert_eq!(page.json["class"], "clean", "a text body has no PDQ hash");
}

//! Runtime hash entries through the admin listener: add, list, delete, validation, effect on
//! the next fetch, retro-match of bodies cached before, survival across reload and restart.

use crate::admin_support;
use crate::common;

use admin_support::{cacheable, enc, image, verdict_class, verdict_sha, AdminClient, Dirs};
use common::Origin;
use serde_json::{json, Value};

fn sha(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[tokio::test]
async fn add_list_and_delete_entries() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    let ruleset0 = c.get("/healthz").await.json["ruleset"].clone();

    let a = c
        .post(
            "/hashes",
            &json!({"kind": "sha256", "hash": sha(1).to_uppercase(), "label": "one"}),
        )
        .await;
    assert_eq!(
        (a.status, a.json["added"].as_u64()),
        (200, Some(1)),
        "{:?}",
        a.json
    );
    assert_ne!(
        a.json["ruleset"], ruleset0,
        "a new hash changes the ruleset"
    );
    let entries: Vec<Value> = (2..7)
        .map(|i| json!({"kind": "sha256", "hash": sha(i), "list": "bulk"}))
        .chain([json!({"kind": "pdq", "hash": sha(9), "label": "img", "list": "bulk"})])
        .collect();
    let a = c.post("/hashes", &Value::Array(entries)).await;
    assert_eq!(a.json["added"].as_u64(), Some(6));

    let a = c.get("/hashes?kind=sha256&limit=4").await;
    let items = a.json["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["hash"], sha(1).as_str(), "stored lowercase");
    assert_eq!(items[0]["list"], "runtime", "default list");
    let next = a.json["next"].as_str().expect("more pages").to_string();
    let a = c
        .get(&format!("/hashes?kind=sha256&limit=4&after={}", enc(&next)))
        .await;
    assert_eq!(a.json["items"].as_array().map(Vec::len), Some(2));
    assert!(a.json["next"].is_null());
    let a = c
        .get(&format!("/hashes?kind=pdq&after={}", enc(&next)))
        .await;
    assert_eq!(
        a.status, 400,
        "a sha256 cursor on a pdq listing: {:?}",
        a.json
    );
    let a = c.get("/hashes?list=bulk").await;
    assert_eq!(a.json["items"].as_array().map(Vec::len), Some(6));
    let a = c.get("/hashes?kind=pdq").await;
    assert_eq!(a.json["items"][0]["label"], "img");

    let a = c.delete(&format!("/hashes/sha256/{}", sha(1))).await;
    assert_eq!(a.status, 200);
    let a = c.delete(&format!("/hashes/sha256/{}", sha(1))).await;
    assert_eq!(a.status, 404);
    let a = c.delete("/hashes/md5/abc").await;
    assert_eq!(a.status, 400);
    let a = c.get("/hashes?kind=sha256").await;
    assert_eq!(a.json["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(c.get("/hashes?kind=md5").await.status, 400);
}

#[tokio::test]
async fn an_invalid_entry_rejects_the_whole_request_with_its_index() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    for (body, index) in [
        (
            json!([{"kind": "sha256", "hash": sha(1)}, {"kind": "sha256", "hash": "abc"}]),
            Some(1),
        ),
        (
            json!([{"kind": "sha256", "hash": sha(1)}, {"kind": "md5", "hash": sha(2)}]),
            Some(1),
        ),
        (json!([{"kind": "pdq", "hash": "zz".repeat(32)}]), Some(0)),
        (
            json!([{"kind": "sha256", "hash": sha(1), "colour": "red"}]),
            Some(0),
        ),
        (json!({"kind": "sha256"}), None),
    ] {
        let a = c.post("/hashes", &body).await;
        assert_eq!(a.status, 400, "{body}");
        assert!(a.json["error"].is_string());
        assert_eq!(a.json["index"].as_u64(), index.map(|i| i as u64), "{body}");
    }
    let a = c.get("/hashes").await;
    assert_eq!(
        a.json["items"].as_array().map(Vec::len),
        Some(0),
        "nothing was added"
    );
}

#[tokio::test]
async fn a_sha256_entry_blocks_a_body_cached_before() {
    let origin = Origin::respond(|_| cacheable("text/plain", b"an innocent looking page")).await;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    let url = origin.url("/page");
    let r = s.fetch(&url).await;
    assert_eq!((r.status(), verdict_class(&r)), (200, "clean".to_string()));
    let body_sha = verdict_sha(&r);

    let a = c
        .post(
            "/hashes",
            &json!({"kind": "sha256", "hash": body_sha, "label": "reported"}),
        )
        .await;
    assert_eq!(a.status, 200);
    let fetched = origin.requests().len();
    let r = s.fetch(&url).await;
    assert_eq!(r.status(), 403, "the cached copy is blocked now");
    assert_eq!(verdict_class(&r), "listed");
    assert_eq!(
        origin.requests().len(),
        fetched,
        "served from the cache, rescanned"
    );
    let a = c.get(&format!("/verdicts/{body_sha}")).await;
    assert_eq!(a.json["class"], "listed");
    assert_eq!(a.json["findings"][0]["rule"], "reported");

    // Deleting it unblocks again; a reload keeps runtime entries.
    c.post("/hashes", &json!({"kind": "sha256", "hash": sha(7)}))
        .await;
    assert_eq!(
        c.delete(&format!("/hashes/sha256/{body_sha}")).await.status,
        200
    );
    assert_eq!(s.fetch(&url).await.status(), 200);
    c.post("/hashes", &json!({"kind": "sha256", "hash": body_sha}))
        .await;
    let a = c.send("POST", "/rules/reload", b"", &[]).await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(
        s.fetch(&url).await.status(),
        403,
        "still listed after a reload"
    );
}

#[tokio::test]
async fn a_pdq_entry_blocks_a_resized_copy_and_retro_matches_the_cached_original() {
    let original = image("bridge-mods/square-512x512.jpg");
    let resized = image("bridge-mods/shrink-a-little.jpg");
    let pdq = sluice::scan::pdq::hash_image(&original, 50_000_000).expect("hashes");
    let origin = Origin::respond(move |req| {
        let body = if req.target().ends_with("/small.jpg") {
            &resized
        } else {
            &original
        };
        cacheable("image/jpeg", body)
    })
    .await;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);

    let big = origin.url("/big.jpg");
    let r = s.fetch(&big).await;
    assert_eq!((r.status(), verdict_class(&r)), (200, "clean".to_string()));
    let a = c
        .post(
            "/hashes",
            &json!({"kind": "pdq", "hash": pdq.to_hex(), "label": "bridge-spam"}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json);

    let r = s.fetch(&origin.url("/small.jpg")).await;
    assert_eq!(
        r.status(),
        403,
        "a resized copy matches within the distance"
    );
    assert_eq!(verdict_class(&r), "listed");

    let fetched = origin.requests().len();
    let r = s.fetch(&big).await;
    assert_eq!(
        r.status(),
        403,
        "the image cached before is blocked on its next hit"
    );
    assert_eq!(origin.requests().len(), fetched);
    let a = c.get(&format!("/verdicts?url={}", enc(&big))).await;
    assert_eq!(a.json["class"], "listed", "{:?}", a.json);
    assert_eq!(a.json["findings"][0]["classifier"], "pdq");
}

/// A restart on the same store (sled's own durability is its business): the stored entries
/// are replayed into the classifiers at start-up.
#[tokio::test]
async fn stored_entries_are_in_force_after_a_restart() {
    let origin = Origin::respond(|_| cacheable("text/plain", b"persisted page")).await;
    let dirs = Dirs::new();
    let store = sluice::store::Store::temporary().expect("store");
    let start = |store: sluice::store::Store| {
        let cfg = dirs.config("");
        async move {
            let running = sluice::server::start_with_store(cfg, store)
                .await
                .expect("starts");
            common::Sluice {
                addr: running.proxy_addr,
                running: Some(running),
            }
        }
    };
    let url = origin.url("/p");
    let mut s = start(store.clone()).await;
    let r = s.fetch(&url).await;
    assert_eq!(r.status(), 200);
    let body_sha = verdict_sha(&r);
    let c = AdminClient::of(&s, None);
    assert_eq!(
        c.post("/hashes", &json!({"kind": "sha256", "hash": body_sha}))
            .await
            .status,
        200
    );
    s.running.take().expect("running").shutdown().await;

    let s = start(store).await;
    let c = AdminClient::of(&s, None);
    assert_eq!(
        c.get("/hashes").await.json["items"][0]["hash"],
        body_sha.as_str()
    );
    assert_eq!(
        s.fetch(&url).await.status(),
        403,
        "the stored entry is in force after restart"
    );
}

#[tokio::test]
async fn a_bulk_request_of_100k_entries_is_accepted_in_one_go() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    let entries: Vec<Value> = (0u32..100_000)
        .map(|i| {
            // Well spread, like real hashes.
            let h = sluice::scan::sha256_hex(&i.to_le_bytes());
            let kind = if i % 2 == 0 { "pdq" } else { "sha256" };
            json!({"kind": kind, "hash": h, "label": "bulk"})
        })
        .collect();
    let started = std::time::Instant::now();
    let a = c.post("/hashes", &Value::Array(entries)).await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(a.json["added"].as_u64(), Some(100_000));
    eprintln!("100k entries in {:?}", started.elapsed());
    let m = c.get("/metrics").await.resp.text();
    assert!(m.contains("sluice_runtime_hashes 100000"), "{m}");
}

/// Re-adding a hash under another label or list replaces the stored entry (one per kind and
/// hash), and the running classifiers follow: the body is blocked under the new name only,
/// as it would be after a restart. Within one request the last entry of a hash wins alike.
#[tokio::test]
async fn re_adding_a_hash_with_another_label_replaces_the_running_entry() {
    let origin = Origin::respond(|_| cacheable("text/plain", b"an innocent looking page")).await;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    let url = origin.url("/page");
    let body_sha = verdict_sha(&s.fetch(&url).await);
    let rules_of = |r: &common::Response| {
        let v = r.header("x-sluice-verdict").unwrap_or("").to_string();
        v.split("; ")
            .find_map(|p| p.strip_prefix("rules="))
            .unwrap_or("")
            .to_string()
    };

    let old = json!({"kind": "sha256", "hash": body_sha, "label": "old", "list": "a"});
    assert_eq!(c.post("/hashes", &old).await.status, 200);
    let r = s.fetch(&url).await;
    assert_eq!((r.status(), rules_of(&r)), (403, "old".to_string()));

    let new = json!({"kind": "sha256", "hash": body_sha, "label": "new", "list": "b"});
    assert_eq!(c.post("/hashes", &new).await.status, 200);
    let r = s.fetch(&url).await;
    assert_eq!((r.status(), rules_of(&r)), (403, "new".to_string()));
    let items = c.get("/hashes").await.json["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["list"], "b");

    let both = json!([
        {"kind": "sha256", "hash": body_sha, "label": "first"},
        {"kind": "sha256", "hash": body_sha, "label": "second"},
    ]);
    assert_eq!(c.post("/hashes", &both).await.status, 200);
    let r = s.fetch(&url).await;
    assert_eq!((r.status(), rules_of(&r)), (403, "second".to_string()));

    // Deleting the one stored entry leaves nothing of the hash running.
    let a = c.delete(&format!("/hashes/sha256/{body_sha}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(s.fetch(&url).await.status(), 200);
}

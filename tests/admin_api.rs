//! The admin API through its real listener: auth, protocol errors, healthz, purge, verdicts.

use crate::admin_support;
use crate::common;

use admin_support::{cacheable_text, enc, verdict_class, verdict_sha, AdminClient, Dirs};
use common::Origin;
use serde_json::json;
use sluice::scan::Content;

#[tokio::test]
async fn with_a_token_every_endpoint_but_healthz_needs_it() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config("s3cret")).await;
    let anon = AdminClient::of(&s, None);
    let wrong = AdminClient::of(&s, Some("s3cre"));
    let good = AdminClient::of(&s, Some("s3cret"));

    let h = anon.get("/healthz").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.json["status"], "ok");
    assert_eq!(h.json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h.json["ruleset"].as_str().map(str::len), Some(16));

    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/verdicts?class=spam"),
        ("GET", "/hashes"),
        ("POST", "/purge"),
        ("POST", "/rules/reload"),
        ("DELETE", "/hashes/sha256/00"),
    ] {
        for c in [&anon, &wrong] {
            let a = c.send(method, path, b"", &[]).await;
            assert_eq!(a.status, 401, "{method} {path}");
            assert_eq!(
                a.header("www-authenticate"),
                Some("Bearer"),
                "{method} {path}"
            );
            assert!(a.json["error"].is_string());
        }
    }
    assert_eq!(good.get("/metrics").await.status, 200);
    assert_eq!(good.get("/hashes").await.status, 200);
}

#[tokio::test]
async fn without_a_token_no_auth_is_needed() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let anon = AdminClient::of(&s, None);
    assert_eq!(anon.get("/metrics").await.status, 200);
    assert_eq!(anon.get("/hashes").await.status, 200);
}

#[tokio::test]
async fn protocol_errors_are_json_with_the_right_status() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config("t")).await;
    let c = AdminClient::of(&s, Some("t"));

    let a = c.get("/nope").await;
    assert_eq!(a.status, 404);
    assert!(a.json["error"].as_str().unwrap_or("").contains("/nope"));

    let a = c.send("DELETE", "/purge", b"", &[]).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("POST"));
    let a = c.send("PUT", "/hashes", b"", &[]).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("GET, HEAD, POST"));

    let a = c.send("POST", "/purge", b"{\"url\": ", &[]).await;
    assert_eq!(a.status, 400);
    assert!(
        a.json["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("invalid JSON"),
        "{:?}",
        a.json
    );

    let big = vec![b' '; 100 * 1024];
    let a = c.send("POST", "/purge", &big, &[]).await;
    assert_eq!(a.status, 413);
    assert!(a.json["error"].is_string());

    let a = c.post("/purge", &json!({"url": "ftp://x/"})).await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn purge_by_url_and_by_prefix() {
    let origin = Origin::respond(|req| cacheable_text(&format!("body of {}", req.target()))).await;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    let urls = [
        origin.url("/img/a"),
        origin.url("/img/b"),
        origin.url("/img/c?x=1"),
        origin.url("/other"),
    ];
    for u in &urls {
        assert_eq!(s.fetch(u).await.status(), 200);
    }
    let before = origin.requests().len();
    for u in &urls {
        s.fetch(u).await; // hits
    }
    assert_eq!(origin.requests().len(), before, "all four are cached");

    let a = c.post("/purge", &json!({"url": urls[3]})).await;
    assert_eq!((a.status, a.json["purged"].as_u64()), (200, Some(1)));
    let a = c
        .post("/purge", &json!({"prefix": origin.url("/img/")}))
        .await;
    assert_eq!((a.status, a.json["purged"].as_u64()), (200, Some(3)));
    let a = c.post("/purge", &json!({"url": urls[3]})).await;
    assert_eq!(a.json["purged"].as_u64(), Some(0), "already gone");

    for u in &urls {
        s.fetch(u).await;
    }
    assert_eq!(
        origin.requests().len(),
        before + 4,
        "every purged URL is fetched again"
    );
    let a = c
        .post("/purge", &json!({"url": urls[0], "prefix": urls[0]}))
        .await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn verdicts_by_sha_and_by_url() {
    let origin = Origin::respond(|req| {
        if req.target().ends_with("/spam") {
            cacheable_text("Congratulations, you have won a prize!")
        } else {
            cacheable_text("a perfectly ordinary page")
        }
    })
    .await;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);

    let spam_url = origin.url("/spam");
    let r = s.fetch(&spam_url).await;
    assert_eq!(r.status(), 403);
    assert_eq!(verdict_class(&r), "spam");
    let sha = verdict_sha(&r);
    assert_eq!(sha.len(), 64);

    let a = c.get(&format!("/verdicts/{sha}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["class"], "spam");
    assert_eq!(a.json["sha256"], sha.as_str());
    assert_eq!(a.json["findings"][0]["rule"], "ADMIN_TEST_WON");

    let a = c.get(&format!("/verdicts?url={}", enc(&spam_url))).await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(a.json["class"], "spam");
    assert_eq!(a.json["url"], spam_url.as_str());
    assert!(a.json["fetched_at"].as_str().unwrap_or("").ends_with('Z'));

    let a = c
        .get(&format!("/verdicts?url={}", enc(&origin.url("/never"))))
        .await;
    assert_eq!(a.status, 404);
    let a = c.get(&format!("/verdicts/{}", "0".repeat(64))).await;
    assert_eq!(a.status, 404);
    let a = c.get("/verdicts/xyz").await;
    assert_eq!(a.status, 400);
    let a = c.get("/verdicts?class=nonsense").await;
    assert_eq!(a.status, 400);
}

/// `store.verdict_retention` (R): at start the sweep drops URL records older than R and
/// verdicts older than 2R; a verdict older than R is not reused, on a miss (memo) or a hit
/// (the one kept with the object), so the body is scanned again and stamped now.
#[tokio::test]
async fn verdict_history_is_kept_for_the_retention_and_old_verdicts_are_rescanned() {
    use sluice::scan::pipeline::{index::parse_rfc3339, memo::Memo, rfc3339};
    use std::time::{Duration, SystemTime};
    const DAY: Duration = Duration::from_secs(86_400);

    let origin = Origin::respond(|req| {
        if req.target().ends_with("/cached") {
            cacheable_text("Cached, and you have won a prize!")
        } else {
            let fields = ["Content-Type: text/plain", "Cache-Control: no-store"];
            common::cache::answer("200 OK", &fields, b"Not stored, yet you have won again!")
        }
    })
    .await;
    let dirs = Dirs::new();
    let mut cfg = dirs.config("");
    cfg.store.verdict_retention = DAY;
    let store = sluice::store::Store::temporary().expect("store");
    let start =
        |store: &sluice::store::Store| sluice::server::start_with_store(cfg.clone(), store.clone());
    let running = start(&store).await.expect("starts");
    let (cached, fresh) = (origin.url("/cached"), origin.url("/fresh"));
    let mut shas = Vec::new();
    for url in [&cached, &fresh] {
        let r = common::fetch(running.proxy_addr, url).await;
        assert_eq!(verdict_class(&r), "spam", "{url}");
        shas.push(verdict_sha(&r));
    }
    running.shutdown().await;

    // Age both verdicts to 1.5 R (kept by the sweep, too old to reuse), and add history past
    // the retention: a URL record fetched 1.1 R ago, a verdict scanned 2.1 R ago.
    let memo = Memo::new(store.verdicts.clone()).with_index(store.verdicts_by_class.clone());
    let now = SystemTime::now();
    for sha in &shas {
        let mut v = memo.get_any(sha).expect("stored verdict");
        v.scanned_at = rfc3339(now - DAY * 3 / 2);
        memo.put(&v);
    }
    let ancient = "a".repeat(64);
    let mut v = memo.get_any(&shas[0]).expect("stored verdict");
    (v.sha256, v.scanned_at) = (ancient.clone(), rfc3339(now - DAY * 21 / 10));
    memo.put(&v);
    let old_url = origin.url("/long-ago");
    let record = json!({"sha256": shas[1], "fetched_at": rfc3339(now - DAY * 11 / 10)});
    store
        .urls
        .insert(&old_url, record.to_string().as_bytes())
        .expect("insert");

    let running = start(&store).await.expect("restarts");
    common::cache::wait_until("the sweep at start", || {
        store.verdicts.get(&ancient).expect("read").is_none()
    })
    .await;
    assert!(store.urls.get(&old_url).expect("read").is_none());
    let c = AdminClient {
        addr: running.admin_addr,
        token: None,
    };
    let a = c.get(&format!("/verdicts?url={}", enc(&old_url))).await;
    assert_eq!(a.status, 404, "{:?}", a.json);
    let scanned = |a: &admin_support::Answer| parse_rfc3339(a.json["scanned_at"].as_str().unwrap());
    for (url, sha) in [&cached, &fresh].into_iter().zip(&shas) {
        let a = c.get(&format!("/verdicts/{sha}")).await;
        assert_eq!(a.status, 200, "{url}: kept through the sweep");
        let before = scanned(&a).expect("time");
        let r = common::fetch(running.proxy_addr, url).await;
        assert_eq!(verdict_class(&r), "spam", "{url}");
        let a = c.get(&format!("/verdicts?url={}", enc(url))).await;
        assert_eq!(a.status, 200, "{url}");
        assert!(
            scanned(&a).expect("time") > before + 86_400,
            "{url}: scanned again"
        );
    }
    running.shutdown().await;
}

#[tokio::test]
async fn class_listing_pages_over_1000_verdicts_newest_first() {
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    let pipeline = s.running.as_ref().expect("running").proxy.pipeline.clone();
    let want = tokio::task::spawn_blocking(move || {
        let mut want = std::collections::HashSet::new();
        for i in 0..1050 {
            let body = format!("item {i}: you have won!");
            let v = pipeline.scan_sync(&Content {
                bytes: body.into(),
                declared_type: "text/plain".into(),
                ..Content::default()
            });
            assert_eq!(v.class.as_str(), "spam");
            want.insert(v.sha256);
        }
        // A clean one must not show up in the spam listing.
        pipeline.scan_sync(&Content {
            bytes: "nothing to see".into(),
            declared_type: "text/plain".into(),
            ..Content::default()
        });
        want
    })
    .await
    .expect("scans");

    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    let mut last_time = String::from("9999");
    loop {
        let q = match &after {
            Some(a) => format!("/verdicts?class=spam&limit=400&after={a}"),
            None => "/verdicts?class=spam&limit=400".to_string(),
        };
        let a = c.get(&q).await;
        assert_eq!(a.status, 200, "{:?}", a.json);
        let items = a.json["items"].as_array().expect("items").clone();
        pages += 1;
        for it in &items {
            assert_eq!(it["class"], "spam");
            let t = it["scanned_at"].as_str().expect("time").to_string();
            assert!(t <= last_time, "newest first");
            last_time = t;
            assert!(
                seen.insert(it["sha256"].as_str().expect("sha").to_string()),
                "no repeats"
            );
        }
        match a.json["next"].as_str() {
            Some(n) => {
                assert_eq!(items.len(), 400);
                after = Some(n.to_string());
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, want);

    let a = c
        .get("/verdicts?class=spam&since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(a.json["items"].as_array().map(Vec::len), Some(0));
    assert!(a.json["next"].is_null());
    let a = c
        .get("/verdicts?class=spam&since=2000-01-01T00:00:00Z&limit=5")
        .await;
    assert_eq!(a.json["items"].as_array().map(Vec::len), Some(5));
    let a = c.get("/verdicts?class=spam&since=yesterday").await;
    assert_eq!(a.status, 400);
    let a = c.get("/verdicts?class=clean").await;
    assert_eq!(a.json["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_prefix_purge_completes_when_its_client_hangs_up() {
    use tokio::io::AsyncWriteExt;
    const URLS: usize = 3_000;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let cache = s.running.as_ref().expect("running").proxy.cache.clone();
    common::cache::store_directly(cache, "http://purged.test/p/", URLS).await;
    let cache = &s.running.as_ref().expect("running").proxy.cache;
    assert_eq!(cache.stats().objects, URLS);
    // The whole request, then the client leaves before the answer (a curl --max-time).
    let admin = s.running.as_ref().expect("running").admin_addr;
    let mut tcp = tokio::net::TcpStream::connect(admin)
        .await
        .expect("connect");
    let body = json!({ "prefix": "http://purged.test/p/" }).to_string();
    let req = format!(
        "POST /purge HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.expect("send");
    tcp.shutdown().await.expect("half-close");
    drop(tcp);
    common::cache::wait_until("every object under the prefix purged", || {
        cache.stats().objects == 0
    })
    .await;
}

/// Regression: query values were form-decoded, so a `+` typed unencoded (the README's curl
/// examples pass `url=` and `since=` as they are) became a space: `?url=` of a URL with
/// `+` in its query answered 404 for a URL that has a verdict, and `since=` with a `+01:00`
/// offset was a 400.
#[tokio::test]
async fn a_plus_in_url_or_since_is_a_plus() {
    let origin =
        Origin::respond(|_| cacheable_text("Congratulations, you have won a prize!")).await;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);

    let url = origin.url("/search?q=won+prize");
    let r = s.fetch(&url).await;
    assert_eq!(verdict_class(&r), "spam");

    // Unencoded, as typed after `curl "$A/verdicts?url=`.
    let a = c.get(&format!("/verdicts?url={url}")).await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(a.json["url"], url.as_str());
    // Form-encoded (the `+` as %2B) still works.
    let a = c.get(&format!("/verdicts?url={}", enc(&url))).await;
    assert_eq!(a.status, 200, "{:?}", a.json);

    for since in [
        "2000-01-01T01:00:00+01:00",
        "2000-01-01+00:00:00Z",
        "2000-01-01T00:00:00%2B00:00",
    ] {
        let a = c.get(&format!("/verdicts?class=spam&since={since}")).await;
        assert_eq!(a.status, 200, "{since}: {:?}", a.json);
        assert_eq!(a.json["items"].as_array().map(Vec::len), Some(1), "{since}");
    }
    let a = c
        .get("/verdicts?class=spam&since=2999-01-01T00:00:00+01:00")
        .await;
    assert_eq!(a.json["items"].as_array().map(Vec::len), Some(0));
}

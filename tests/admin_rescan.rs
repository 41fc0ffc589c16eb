//! `POST /rescan` and `GET /rescan` through the admin listener: stored bodies re-classified
//! with the current rules in the background (by class and by SHA-256, plain and gzip'd
//! bodies), progress to `done`, one rescan at a time (409), input validation (400).

use crate::admin_support;
use crate::common;

use std::io::Write as _;
use std::sync::PoisonError;

use admin_support::{verdict_class, verdict_sha, AdminClient, Answer, Dirs};
use common::{Origin, LIMIT};
use serde_json::{json, Value};

const PILLS_RULE: &str = "body ADMIN_TEST_PILLS /cheap pills/i\nscore ADMIN_TEST_PILLS 6.0\n";

fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).expect("gzip");
    e.finish().expect("gzip")
}

/// `/gz/<text>`: the text gzip'd; `/<text>`: the text (underscores as spaces). Cacheable.
async fn origin() -> Origin {
    Origin::respond(|req| {
        let target = req.target().to_string();
        let text = target.rsplit('/').next().unwrap_or("").replace('_', " ");
        let (body, coding) = if target.contains("/gz/") {
            (gzip(&text), "Content-Encoding: gzip\r\n")
        } else {
            (text.into_bytes(), "")
        };
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{coding}Cache-Control: max-age=600\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    })
    .await
}

/// Polls `GET /rescan` until the rescan is over; its final progress.
async fn finished(c: &AdminClient) -> Value {
    tokio::time::timeout(LIMIT, async {
        loop {
            let a = c.get("/rescan").await;
            assert_eq!(a.status, 200);
            if matches!(a.json["state"].as_str(), Some("done" | "failed")) {
                return a.json;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the rescan finishes")
}

async fn class_of(c: &AdminClient, sha: &str) -> String {
    let a = c.get(&format!("/verdicts/{sha}")).await;
    a.json["class"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn a_rule_change_and_a_class_rescan_reclassify_cached_bodies() {
    let o = origin().await;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    assert_eq!(c.get("/rescan").await.json["state"], "idle");

    let mut shas = Vec::new();
    for path in [
        "/cheap_pills_here",
        "/gz/more_cheap_pills",
        "/a_harmless_page",
    ] {
        let r = s.fetch(&o.url(path)).await;
        assert_eq!((r.status(), verdict_class(&r)), (200, "clean".to_string()));
        shas.push(verdict_sha(&r));
    }
    std::fs::write(dirs.rules().join("pills.cf"), PILLS_RULE).expect("rule file");
    let a = c.send("POST", "/rules/reload", b"", &[]).await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(class_of(&c, &shas[0]).await, "clean", "lazily: not yet");

    let a = c.post("/rescan", &json!({"class": "clean"})).await;
    assert_eq!(a.status, 202, "{:?}", a.json);
    let p = finished(&c).await;
    assert_eq!(p["state"], "done", "{p}");
    assert_eq!(
        (
            &p["total"],
            &p["done"],
            &p["changed"],
            &p["skipped"],
            &p["errors"]
        ),
        (&json!(3), &json!(3), &json!(2), &json!(0), &json!(0)),
        "{p}"
    );
    assert!(
        p["started_at"].is_string() && p["finished_at"].is_string(),
        "{p}"
    );
    assert_eq!(class_of(&c, &shas[0]).await, "spam");
    assert_eq!(class_of(&c, &shas[1]).await, "spam", "the gzip'd body too");
    assert_eq!(class_of(&c, &shas[2]).await, "clean");
    let spam = c.get("/verdicts?class=spam").await;
    assert_eq!(spam.json["items"].as_array().map(Vec::len), Some(2));

    // The cached copies are blocked on their next hit, from the new verdicts.
    let fetched = o.requests().len();
    assert_eq!(s.fetch(&o.url("/cheap_pills_here")).await.status(), 403);
    assert_eq!(o.requests().len(), fetched);

    // Again: nothing left to change.
    assert_eq!(
        c.post("/rescan", &json!({"class": "spam"})).await.status,
        202
    );
    let p = finished(&c).await;
    assert_eq!((&p["total"], &p["changed"]), (&json!(2), &json!(0)), "{p}");
}

#[tokio::test]
async fn a_sha256_rescan_skips_bodies_no_longer_stored() {
    let o = origin().await;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    let url = o.url("/cheap_pills_again");
    let sha = verdict_sha(&s.fetch(&url).await);
    let gone = verdict_sha(&s.fetch(&o.url("/purged_pills")).await);
    let a = c
        .post("/purge", &json!({"url": o.url("/purged_pills")}))
        .await;
    assert_eq!(a.json["purged"], 1);
    std::fs::write(dirs.rules().join("pills.cf"), PILLS_RULE).expect("rule file");
    assert_eq!(c.send("POST", "/rules/reload", b"", &[]).await.status, 200);

    let never_seen = "ab".repeat(32);
    let a = c
        .post(
            "/rescan",
            &json!({"sha256": [sha.to_uppercase(), gone, never_seen]}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.json);
    let p = finished(&c).await;
    assert_eq!(
        (&p["total"], &p["changed"], &p["skipped"]),
        (&json!(3), &json!(1), &json!(2)),
        "{p}"
    );
    assert_eq!(class_of(&c, &sha).await, "spam");
    assert_eq!(class_of(&c, &gone).await, "clean", "not stored: kept");
}

/// The rescan selects under the hash-list edit lock; holding it keeps the first rescan
/// running, so the second `POST` deterministically meets it.
#[tokio::test]
#[allow(clippy::await_holding_lock)]
async fn a_second_rescan_while_one_runs_is_409_with_its_progress() {
    let o = origin().await;
    let s = common::start(Dirs::new().config("")).await;
    let c = AdminClient::of(&s, None);
    let sha = verdict_sha(&s.fetch(&o.url("/some_page")).await);
    let proxy = s.running.as_ref().expect("running").proxy.clone();

    let edits = proxy
        .list_edits
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let a = c.post("/rescan", &json!({"sha256": [sha]})).await;
    assert_eq!((a.status, &a.json["state"]), (202, &json!("selecting")));
    let b = c.post("/rescan", &json!({"class": "spam"})).await;
    assert_eq!(b.status, 409, "{:?}", b.json);
    assert_eq!(b.json["state"], "selecting");
    assert!(b.json["error"].is_string());
    assert_eq!(b.json["request"], json!({"sha256": 1}), "the running one's");
    assert_eq!(c.get("/rescan").await.json["state"], "selecting");
    drop(edits);

    let p = finished(&c).await;
    assert_eq!(
        (&p["state"], &p["total"]),
        (&json!("done"), &json!(1)),
        "{p}"
    );
    assert_eq!(
        c.post("/rescan", &json!({"class": "clean"})).await.status,
        202
    );
    finished(&c).await;
}

#[tokio::test]
async fn bad_rescan_requests_are_400_with_a_reason() {
    let s = common::start(Dirs::new().config("")).await;
    let c = AdminClient::of(&s, None);
    let bad: [(&[u8], Option<u64>); 9] = [
        (b"{}", None),
        (b"not json", None),
        (br#"{"class":"nope"}"#, None),
        (br#"{"class":"spam","since":"yesterday"}"#, None),
        (br#"{"since":"2026-01-01T00:00:00Z"}"#, None),
        (br#"{"sha256":[]}"#, None),
        (br#"{"sha256":["abc"]}"#, Some(0)),
        (br#"{"class":"spam","sha256":["abc"]}"#, None),
        (br#"{"class":"spam","colour":"red"}"#, None),
    ];
    for (body, index) in bad {
        let a: Answer = c.send("POST", "/rescan", body, &[]).await;
        let shown = String::from_utf8_lossy(body);
        assert_eq!(a.status, 400, "{shown}: {:?}", a.json);
        assert!(
            a.json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{shown}"
        );
        assert_eq!(a.json["index"].as_u64(), index, "{shown}");
    }
    assert_eq!(
        c.get("/rescan").await.json["state"],
        "idle",
        "nothing started"
    );
    assert_eq!(c.delete("/rescan").await.status, 405);
}

/// Shutdown drains the scan workers: a rescan then stops instead of submitting more, which
/// held the drain for `scan.timeout` and wrote verdicts after the store's final flush.
#[tokio::test]
async fn a_rescan_stops_once_shutdown_drains_the_scanners() {
    let o = origin().await;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    for text in ["cheap_pills_one", "cheap_pills_two"] {
        assert_eq!(
            verdict_class(&s.fetch(&o.url(&format!("/{text}"))).await),
            "clean"
        );
    }
    let proxy = s.running.as_ref().expect("running").proxy.clone();
    proxy.pipeline.drain().await;
    let a = c.post("/rescan", &json!({"class": "clean"})).await;
    assert_eq!(a.status, 202, "{:?}", a.json);
    let p = finished(&c).await;
    assert_eq!(p["state"], "failed", "{p}");
    assert!(
        p["error"].as_str().unwrap_or("").contains("shutting down"),
        "{p}"
    );
    assert_eq!((&p["total"], &p["done"]), (&json!(2), &json!(0)), "{p}");
}

//! kill -9 of the real binary after verdicts and a runtime hash entry were written: once
//! sled has put them in its log they survive the crash — the verdicts answer by URL with the
//! right digest, and the hash entry is listed and blocks its body after the restart.
//! (tests/cache_crash.rs covers cached objects under a write load.)

use crate::common;

use std::time::{Duration, Instant};

use common::bin::{sha_hex, write_config, Bin, Launch};
use common::cache::answer;
use common::Origin;

const PAGES: usize = 12;
const BLOCKED: &[u8] = b"a body an operator blocks by its digest after the fact";

fn page(i: usize) -> String {
    format!("page {i}: an ordinary page about gardening, number {i}, nothing more")
}

async fn origin() -> Origin {
    Origin::respond(|r| {
        let body = match r.target().rsplit('/').next().and_then(|s| s.parse().ok()) {
            Some(i) => page(i).into_bytes(),
            None => BLOCKED.to_vec(),
        };
        answer(
            "200 OK",
            // `private`: fetched every time, never cached, and (unlike no-store) the URL
            // record is kept.
            &["Content-Type: text/plain", "Cache-Control: private"],
            &body,
        )
    })
    .await
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Polls (bounded) until every needle is in sled's log file: sled writes its log every
/// 500 ms, and what is in the file survives kill -9.
async fn wait_until_logged(db: &std::path::Path, needles: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bytes = std::fs::read(db).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        if needles.iter().all(|n| text.contains(n.as_str())) {
            return;
        }
        assert!(Instant::now() < deadline, "sled never wrote its log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn verdicts_and_runtime_hash_entries_survive_kill_9() {
    let origin = origin().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "");
    let store = dir.path().join("store");
    let mut bin = Bin::spawn(&config, &store, Launch::default());
    bin.wait_ready().await;

    let mut shas = Vec::new();
    for i in 0..PAGES {
        let r = common::fetch(bin.proxy, &origin.url(&format!("/page/{i}"))).await;
        assert_eq!(r.status(), 200);
        let sha = sha_hex(page(i).as_bytes());
        assert!(
            r.header("x-sluice-verdict").unwrap_or("").contains(&sha),
            "scanned"
        );
        shas.push(sha);
    }
    let blocked = sha_hex(BLOCKED);
    let add =
        format!(r#"{{"kind":"sha256","hash":"{blocked}","label":"crash-test","list":"crash"}}"#);
    assert_eq!(bin.admin("POST", "/hashes", &add).await.status(), 200);

    let mut needles = shas.clone();
    needles.push(blocked.clone());
    wait_until_logged(&store.join("db"), &needles).await;
    bin.kill9().await;

    let mut bin = Bin::spawn(&config, &store, Launch::default());
    bin.wait_ready().await;
    let listed = bin.admin("GET", "/hashes?list=crash", "").await;
    assert_eq!(listed.status(), 200);
    assert!(
        listed.text().contains(&blocked),
        "the entry survived: {}",
        listed.text()
    );
    let r = common::fetch(bin.proxy, &origin.url("/blocked")).await;
    assert_eq!(r.status(), 403, "the surviving entry is applied at start");
    assert!(r
        .header("x-sluice-verdict")
        .unwrap_or("")
        .starts_with("listed"));
    for (i, sha) in shas.iter().enumerate() {
        let url = origin.url(&format!("/page/{i}"));
        let v = bin
            .admin("GET", &format!("/verdicts?url={}", enc(&url)), "")
            .await;
        assert_eq!(
            v.status(),
            200,
            "verdict for page {i} survived: {}",
            v.text()
        );
        let json: serde_json::Value = serde_json::from_slice(&v.body).expect("json");
        assert_eq!(json["sha256"], sha.as_str(), "page {i}");
        assert_eq!(json["class"], "clean", "page {i}");
    }
    assert!(!bin.stderr().contains("panicked"), "{}", bin.stderr());

    // An acknowledged delete is as durable as an add: killed right after the 200, the
    // entry must not come back (sled alone would write the removal up to 500 ms later).
    let path = format!("/hashes/sha256/{blocked}");
    assert_eq!(bin.admin("DELETE", &path, "").await.status(), 200);
    bin.kill9().await;
    let mut bin = Bin::spawn(&config, &store, Launch::default());
    bin.wait_ready().await;
    let listed = bin.admin("GET", "/hashes?list=crash", "").await;
    assert!(
        !listed.text().contains(&blocked),
        "the deleted entry came back: {}",
        listed.text()
    );
    let r = common::fetch(bin.proxy, &origin.url("/blocked")).await;
    assert_eq!(r.status(), 200, "the deleted entry no longer blocks");
    bin.kill9().await;
}

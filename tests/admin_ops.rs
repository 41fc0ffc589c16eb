//! Operations through the admin listener: rule reloads (HTTP and SIGHUP). `/metrics` is in
//! `admin_metrics.rs`, rescans in `admin_rescan.rs`.

use crate::admin_support;
use crate::common;

use admin_support::{cacheable_text, verdict_class, AdminClient, Dirs};
use common::{Origin, LIMIT};
use serde_json::Value as Json;

/// An origin answering `/<text>` with that text (underscores as spaces).
async fn echo_origin() -> Origin {
    Origin::respond(|req| {
        let text = req
            .target()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .replace('_', " ");
        cacheable_text(&text)
    })
    .await
}

#[tokio::test]
async fn a_bad_rule_file_keeps_the_old_set_and_a_fixed_one_loads() {
    let origin = echo_origin().await;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    let ruleset = |a: &admin_support::Answer| a.json["ruleset"].clone();
    let before = ruleset(&c.get("/healthz").await);

    std::fs::write(
        dirs.rules().join("bad.cf"),
        "body FREE_MONEY /free (money/i\n",
    )
    .expect("write");
    let a = c.send("POST", "/rules/reload", b"", &[]).await;
    assert_eq!(a.status, 422, "{:?}", a.json);
    let errors = a.json["errors"].as_array().expect("errors").clone();
    assert!(!errors.is_empty());
    assert!(
        errors[0].as_str().unwrap_or("").contains("bad.cf"),
        "{errors:?}"
    );
    assert_eq!(
        ruleset(&c.get("/healthz").await),
        before,
        "old set in force"
    );
    let r = s.fetch(&origin.url("/you_have_won_1")).await;
    assert_eq!(r.status(), 403, "old rules still apply");

    std::fs::write(
        dirs.rules().join("bad.cf"),
        "body FREE_MONEY /free money/i\nscore FREE_MONEY 6.0\n",
    )
    .expect("write");
    let a = c.send("POST", "/rules/reload", b"", &[]).await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(a.json["errors"], Json::Array(vec![]));
    assert!(a.json["loaded"].as_u64().unwrap_or(0) >= 2, "{:?}", a.json);
    assert_ne!(ruleset(&a), before);
    let r = s.fetch(&origin.url("/get_free_money")).await;
    assert_eq!((r.status(), verdict_class(&r)), (403, "spam".to_string()));
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_rules() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let dirs = Dirs::new();
    let s = common::start(dirs.config("")).await;
    let c = AdminClient::of(&s, None);
    let before = c.get("/healthz").await.json["ruleset"].clone();
    std::fs::write(
        dirs.rules().join("more.cf"),
        "body CHEAP_PILLS /cheap pills/i\n",
    )
    .expect("write");
    kill(Pid::this(), Signal::SIGHUP).expect("signal");
    let changed = tokio::time::timeout(LIMIT, async {
        loop {
            if c.get("/healthz").await.json["ruleset"] != before {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        changed.is_ok(),
        "SIGHUP reloaded the rules (ruleset changed)"
    );
}

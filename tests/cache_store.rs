//! What reaches the store: a truncated upstream body is never stored (nor served as
//! complete), and stored objects survive a restart on the same store directory.

use crate::common;

use common::cache::{assert_cache_status, hits, ok_with};
use common::Origin;
use sluice::config::ScanMode;

/// An origin that declares 100 bytes, sends 50 and closes.
async fn truncating_origin() -> Origin {
    Origin::start(|mut conn| async move {
        if conn.read_request().await.is_some() {
            let head =
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 100\r\n\r\n";
            let _ = conn.write(head).await;
            let _ = conn.write([b'x'; 50]).await;
        }
    })
    .await
}

async fn truncated_body_is_not_served_complete_nor_stored(mode: ScanMode) {
    let origin = truncating_origin().await;
    let mut cfg = common::config();
    cfg.scan.mode = mode;
    let sluice = common::start(cfg).await;
    let url = origin.url("/cut");
    for n in 1..=2 {
        let mut c = sluice.client().await;
        c.send(common::get(&url)).await;
        // An error means the connection was cut: the client sees the truncation.
        if let Ok(r) = c.try_read_response().await {
            assert!(
                r.status() >= 500 && r.body.len() != 100,
                "{mode:?} request {n}: a truncated body must not arrive as a complete 200 \
                 (status {}, {} bytes)",
                r.status(),
                r.body.len()
            );
        }
        assert_eq!(
            hits(&origin, "/cut"),
            n,
            "{mode:?}: request {n} must reach the origin"
        );
    }
}

#[tokio::test]
async fn a_truncated_body_is_neither_served_as_complete_nor_stored_in_enforce_mode() {
    truncated_body_is_not_served_complete_nor_stored(ScanMode::Enforce).await;
}

#[tokio::test]
async fn a_truncated_body_is_neither_served_as_complete_nor_stored_in_observe_mode() {
    truncated_body_is_not_served_complete_nor_stored(ScanMode::Observe).await;
}

/// An origin that starts a chunked body and closes before the last chunk.
async fn chunked_truncating_origin() -> Origin {
    Origin::start(|mut conn| async move {
        if conn.read_request().await.is_some() {
            let head = "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n\
                        Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
            let _ = conn.write(head).await;
        }
    })
    .await
}

async fn truncated_chunked_body_is_not_stored(mode: ScanMode) {
    let origin = chunked_truncating_origin().await;
    let mut cfg = common::config();
    cfg.scan.mode = mode;
    let sluice = common::start(cfg).await;
    let url = origin.url("/cut-chunked");
    for n in 1..=2 {
        let mut c = sluice.client().await;
        c.send(common::get(&url)).await;
        if let Ok(r) = c.try_read_response().await {
            assert!(
                r.status() >= 500,
                "{mode:?} {n}: {} {:?}",
                r.status(),
                r.text()
            );
        }
        assert_eq!(hits(&origin, "/cut-chunked"), n, "{mode:?}: request {n}");
    }
}

#[tokio::test]
async fn a_chunked_body_cut_before_its_last_chunk_is_not_stored_in_enforce_mode() {
    truncated_chunked_body_is_not_stored(ScanMode::Enforce).await;
}

#[tokio::test]
async fn a_chunked_body_cut_before_its_last_chunk_is_not_stored_in_observe_mode() {
    truncated_chunked_body_is_not_stored(ScanMode::Observe).await;
}

#[tokio::test]
async fn a_stored_object_is_served_after_a_restart_on_the_same_store() {
    let origin =
        Origin::respond(|_| ok_with(&["Cache-Control: max-age=600"], "persisted body")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = origin.url("/persist");
    {
        let store = sluice::store::Store::open(dir.path()).expect("open store");
        let running = sluice::server::start_with_store(common::config(), store)
            .await
            .expect("start");
        let r = common::fetch(running.proxy_addr, &url).await;
        assert_cache_status(&r, "stored");
        running.shutdown().await;
    }
    assert_eq!(hits(&origin, "/persist"), 1);
    let store = sluice::store::Store::open(dir.path()).expect("reopen store after shutdown");
    let running = sluice::server::start_with_store(common::config(), store)
        .await
        .expect("restart");
    let r = common::fetch(running.proxy_addr, &url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "persisted body");
    assert_cache_status(&r, "hit");
    assert_eq!(
        hits(&origin, "/persist"),
        1,
        "served from the store, no origin contact"
    );
    running.shutdown().await;
}

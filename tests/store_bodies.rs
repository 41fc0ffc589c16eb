//! Bodies damaged on disk, seen through the proxy: a stored chunk whose bytes changed (or
//! vanished) fails its SHA-256 check on read, the object is dropped, the request goes to the
//! origin and gets the right bytes, and the fresh copy is stored and served from then on.

use crate::common;

use common::cache::{answer, assert_cache_status, hits};
use common::Origin;
use sha2::{Digest, Sha256};
use sluice::cache::bodies::{chunk_key, manifest_key, CHUNK};
use sluice::config::ByteSize;
use sluice::store::Store;

/// `/small`: 1 kB in one chunk; `/big`: 2.5 MiB in three chunks.
fn body_of(path: &str) -> Vec<u8> {
    let len = if path.ends_with("/big") {
        CHUNK * 5 / 2
    } else {
        1000
    };
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn origin() -> Origin {
    Origin::respond(|r| {
        answer(
            "200 OK",
            &[
                "Cache-Control: max-age=3600",
                "Content-Type: application/octet-stream",
            ],
            &body_of(r.target()),
        )
    })
    .await
}

/// sluice over `store` with no memory tier, so every hit reads (and checks) sled.
async fn start(store: &Store) -> common::Sluice {
    let mut cfg = common::config();
    cfg.store.memory = ByteSize(0);
    let running = sluice::server::start_with_store(cfg, store.clone())
        .await
        .expect("start");
    common::Sluice {
        addr: running.proxy_addr,
        running: Some(running),
    }
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Fetches `path` three times around `damage`: stored, then (damaged) fetched again from
/// the origin with the right bytes, then a hit on the fresh copy.
async fn damaged_body_is_refetched(path: &str, damage: impl FnOnce(&Store, [u8; 32])) {
    let origin = origin().await;
    let store = Store::temporary().expect("store");
    let s = start(&store).await;
    let url = origin.url(path);
    let want = body_of(path);

    let r = s.fetch(&url).await;
    assert_eq!(r.status(), 200);
    assert_cache_status(&r, "stored");
    let r = s.fetch(&url).await;
    assert_cache_status(&r, "hit");
    assert_eq!(hits(&origin, path), 1);

    damage(&store, sha(&want));
    let r = s.fetch(&url).await;
    assert_eq!(r.status(), 200);
    assert!(r.body == want, "{path}: the damaged copy was served");
    assert_eq!(
        hits(&origin, path),
        2,
        "{path}: fetched again from the origin"
    );
    assert_cache_status(&r, "fwd=uri-miss");

    let r = s.fetch(&url).await;
    assert_cache_status(&r, "hit");
    assert!(r.body == want, "{path}: the fresh copy is intact");
    assert_eq!(hits(&origin, path), 2, "{path}: and stored again");
}

fn flip_byte(store: &Store, key: &[u8], at: usize) {
    let mut raw = store
        .bodies
        .get(key)
        .expect("read")
        .expect("chunk")
        .to_vec();
    raw[at] ^= 0x01;
    store.bodies.insert(key, raw).expect("write");
}

#[tokio::test]
async fn a_flipped_bit_in_a_single_chunk_body_is_refetched_never_served() {
    damaged_body_is_refetched("/small", |s, sha| flip_byte(s, &chunk_key(&sha, 0), 500)).await;
}

#[tokio::test]
async fn a_flipped_bit_in_the_middle_chunk_of_a_large_body_is_refetched() {
    damaged_body_is_refetched("/big", |s, sha| flip_byte(s, &chunk_key(&sha, 1), 12_345)).await;
}

#[tokio::test]
async fn a_missing_or_shortened_chunk_is_refetched() {
    damaged_body_is_refetched("/big", |s, sha| {
        s.bodies.remove(chunk_key(&sha, 2)).expect("remove");
    })
    .await;
    damaged_body_is_refetched("/small", |s, sha| {
        let key = chunk_key(&sha, 0);
        let raw = s.bodies.get(key).expect("read").expect("chunk");
        s.bodies.insert(key, &raw[..raw.len() - 1]).expect("write");
    })
    .await;
}

#[tokio::test]
async fn a_body_whose_manifest_vanished_is_refetched() {
    damaged_body_is_refetched("/small", |s, sha| {
        s.bodies.remove(manifest_key(&sha)).expect("remove");
    })
    .await;
}

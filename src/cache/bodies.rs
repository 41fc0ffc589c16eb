//! Content-addressed bodies in the `bodies` tree, chunked, reference counted.
//!
//! Layout: `m ‖ sha256` → manifest (`len: u64 ‖ chunks: u32 ‖ refs: u64`, big-endian) and
//! `c ‖ sha256 ‖ index: u32` → up to [`CHUNK`] bytes. Manifests and chunks live under separate
//! prefixes so a scan of the manifests at start never reads body bytes. A body referenced by
//! many URLs is stored once; its `refs` counts the metas that name it and it is deleted with
//! the last one. All changes happen inside the same sled transaction as the meta change.

use bytes::{Bytes, BytesMut};
use sled::transaction::{TransactionalTree, UnabortableTransactionError};
use sled::Tree;

/// Bodies are split into values of at most this many bytes (DESIGN.md: chunked above 1 MiB).
pub const CHUNK: usize = 1 << 20;

type TxResult<T> = Result<T, UnabortableTransactionError>;

/// A body's manifest record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Body length.
    pub len: u64,
    /// Number of chunks.
    pub chunks: u32,
    /// Number of metas referring to the body.
    pub refs: u64,
}

impl Manifest {
    /// Encodes the record.
    pub fn encode(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[..8].copy_from_slice(&self.len.to_be_bytes());
        out[8..12].copy_from_slice(&self.chunks.to_be_bytes());
        out[12..].copy_from_slice(&self.refs.to_be_bytes());
        out
    }

    /// Decodes a manifest; `None` for a damaged record.
    pub fn decode(b: &[u8]) -> Option<Manifest> {
        let len = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let chunks = u32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
        let refs = u64::from_be_bytes(b.get(12..20)?.try_into().ok()?);
        Some(Manifest { len, chunks, refs })
    }
}

/// Manifest key of a body.
pub fn manifest_key(sha: &[u8; 32]) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = b'm';
    k[1..].copy_from_slice(sha);
    k
}

/// Key of chunk `i` of a body.
pub fn chunk_key(sha: &[u8; 32], i: u32) -> [u8; 37] {
    let mut k = [0u8; 37];
    k[0] = b'c';
    k[1..33].copy_from_slice(sha);
    k[33..].copy_from_slice(&i.to_be_bytes());
    k
}

/// Adds a reference to `sha`, writing the chunks first when the body is new.
pub fn add_ref(t: &TransactionalTree, sha: &[u8; 32], body: &[u8]) -> TxResult<()> {
    let mk = manifest_key(sha);
    let existing = t.get(mk)?.and_then(|v| Manifest::decode(&v));
    let m = match existing {
        Some(m) => Manifest {
            refs: m.refs + 1,
            ..m
        },
        None => {
            // Chunks before the manifest that makes them reachable.
            let mut n = 0u32;
            for (i, chunk) in body.chunks(CHUNK).enumerate() {
                t.insert(&chunk_key(sha, i as u32)[..], chunk)?;
                n += 1;
            }
            Manifest {
                len: body.len() as u64,
                chunks: n,
                refs: 1,
            }
        }
    };
    t.insert(&mk[..], &m.encode()[..])?;
    Ok(())
}

/// Drops a reference to `sha`; the last one deletes the body.
pub fn release(t: &TransactionalTree, sha: &[u8; 32]) -> TxResult<()> {
    let mk = manifest_key(sha);
    let Some(m) = t.get(mk)?.and_then(|v| Manifest::decode(&v)) else {
        return Ok(());
    };
    if m.refs > 1 {
        t.insert(
            &mk[..],
            &Manifest {
                refs: m.refs - 1,
                ..m
            }
            .encode()[..],
        )?;
    } else {
        delete(t, sha, m.chunks)?;
    }
    Ok(())
}

/// Deletes a body whatever its reference count (used when it is found corrupt).
pub fn delete(t: &TransactionalTree, sha: &[u8; 32], chunks: u32) -> TxResult<()> {
    t.remove(&manifest_key(sha)[..])?;
    for i in 0..chunks {
        t.remove(&chunk_key(sha, i)[..])?;
    }
    Ok(())
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadFailure {
    /// No manifest: never written, or already reclaimed.
    Missing,
    /// A chunk is missing, the length is wrong, or the SHA-256 does not match.
    Corrupt {
        /// Chunk count from the manifest, for deleting what is there.
        chunks: u32,
    },
}

/// Reads and verifies a body. One chunk is returned without copying.
pub fn read(tree: &Tree, sha: &[u8; 32]) -> Result<Result<Bytes, ReadFailure>, sled::Error> {
    let Some(m) = tree
        .get(manifest_key(sha))?
        .and_then(|v| Manifest::decode(&v))
    else {
        return Ok(Err(ReadFailure::Missing));
    };
    let corrupt = Err(ReadFailure::Corrupt { chunks: m.chunks });
    let body = if m.chunks == 1 {
        match tree.get(chunk_key(sha, 0))? {
            Some(v) => Bytes::from_owner(v),
            None => return Ok(corrupt),
        }
    } else {
        let mut buf = BytesMut::with_capacity(usize::try_from(m.len).unwrap_or(0).min(1 << 30));
        for i in 0..m.chunks {
            match tree.get(chunk_key(sha, i))? {
                Some(v) => buf.extend_from_slice(&v),
                None => return Ok(corrupt),
            }
        }
        buf.freeze()
    };
    if body.len() as u64 != m.len || super::meta::sha256(&body) != *sha {
        return Ok(corrupt);
    }
    Ok(Ok(body))
}

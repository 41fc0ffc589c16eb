//! The sled database: one directory, named trees, a schema version checked on open.
//!
//! Trees (DESIGN.md): `objects` (cache key → object meta), `bodies` (content-addressed by
//! SHA-256: a manifest `m‖sha256` and chunks `c‖sha256‖i` of at most 1 MiB, see
//! `cache::bodies`), `verdicts` (SHA-256 → verdict), `urls` (URL → latest SHA-256 and time),
//! `hashes` (kind|hash → entry), `meta` (schema version), and `verdicts_by_class`
//! (class|inverted time|SHA-256 → empty; the admin API's newest-first listing by class).

use std::path::{Path, PathBuf};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Errors opening or using the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("store at {path} has schema version {found}, newer than this build's {SCHEMA_VERSION}; upgrade sluice or point --store elsewhere")]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("store at {path} has an unreadable schema version")]
    BadSchema { path: PathBuf },
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
}

/// The open database and its trees. Cheap to clone (sled handles are reference counted).
#[derive(Clone)]
pub struct Store {
    pub db: sled::Db,
    pub objects: sled::Tree,
    pub bodies: sled::Tree,
    pub verdicts: sled::Tree,
    pub urls: sled::Tree,
    pub hashes: sled::Tree,
    pub meta: sled::Tree,
    /// Index of `verdicts` by class and time, maintained by the verdict memo.
    pub verdicts_by_class: sled::Tree,
    /// `pdq_of`: decoded-body SHA-256 → PDQ hash and quality of each scanned image
    /// (`scan::pipeline::memo::encode_pdq`), so a PDQ entry added later is matched against
    /// stored images without decoding them again (admin retro-match).
    pub pdq_of: sled::Tree,
}

impl Store {
    /// Opens (creating if needed) the store at `path` and checks its schema version.
    pub fn open(path: &Path) -> Result<Store, Error> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(64 << 20)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|source| Error::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_db(db, path)
    }

    /// A throwaway in-memory store, for tests and `sluice scan`.
    pub fn temporary() -> Result<Store, Error> {
        let db = sled::Config::new().temporary(true).open()?;
        Self::from_db(db, Path::new("<temporary>"))
    }

    fn from_db(db: sled::Db, path: &Path) -> Result<Store, Error> {
        let meta = db.open_tree("meta")?;
        match meta.get("schema")? {
            None => {
                meta.insert("schema", &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| Error::BadSchema {
                        path: path.to_path_buf(),
                    })?;
                if found > SCHEMA_VERSION {
                    return Err(Error::NewerSchema {
                        path: path.to_path_buf(),
                        found,
                    });
                }
            }
        }
        Ok(Store {
            objects: db.open_tree("objects")?,
            bodies: db.open_tree("bodies")?,
            verdicts: db.open_tree("verdicts")?,
            urls: db.open_tree("urls")?,
            hashes: db.open_tree("hashes")?,
            verdicts_by_class: db.open_tree("verdicts_by_class")?,
            pdq_of: db.open_tree("pdq_of")?,
            meta,
            db,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.meta.insert("schema", &99u32.to_be_bytes()).unwrap();
            s.db.flush().unwrap();
        }
        let err = Store::open(dir.path())
            .err()
            .expect("newer schema must fail");
        assert!(err.to_string().contains("schema version 99"), "{err}");
    }

    #[test]
    fn reopening_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.urls.insert("k", "v").unwrap();
            s.db.flush().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.urls.get("k").unwrap().unwrap().as_ref(), b"v");
    }
}

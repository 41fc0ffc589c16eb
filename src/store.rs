//! The sled database: one directory, named trees, a schema version checked on open.
//!
//! Trees (DESIGN.md): `objects` (cache key → object meta), `bodies` (content-addressed by
//! SHA-256: a manifest `m‖sha256` and chunks `c‖sha256‖i` of at most 1 MiB, see
//! `cache::bodies`), `verdicts` (SHA-256 → verdict), `urls` (URL → latest SHA-256 and time),
//! `hashes` (kind|hash → entry), `meta` (schema version), and `verdicts_by_class`
//! (class|inverted time|SHA-256 → empty; the admin API's newest-first listing by class).
//!
//! Opening never panics: sled's recovery panics on some damaged logs, which [`Store::open`]
//! turns into [`Error::Corrupt`]. `sluice serve` opens with [`Store::open_or_move_aside`]: a
//! damaged store is renamed to `<dir>.corrupt-<UTC time>` and an empty one started (as
//! Traffic Server clears a bad cache and keeps serving); a newer schema, a store locked by
//! another process or an I/O error stops start-up with a message instead, touching nothing.

mod damage;
pub mod retention;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use damage::{is_sled_damage, move_aside};

/// How long [`Store::open`] waits for another process's lock on the store to go away.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// A plain file in the store directory repeating the schema version (decimal), so a newer
/// store is refused before sled opens — and so rewrites — its files.
pub const SCHEMA_FILE: &str = "sluice-schema";

/// Errors opening or using the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("store at {path} has schema version {found}, newer than this build's {SCHEMA_VERSION}; upgrade sluice or point --store elsewhere")]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("store at {path} has an unreadable schema version")]
    BadSchema { path: PathBuf },
    #[error("store at {path} is damaged: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "store at {path} is damaged ({detail}) and could not be moved aside to {aside}: {source}"
    )]
    MoveAside {
        path: PathBuf,
        aside: PathBuf,
        detail: String,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
}

impl Error {
    /// Whether another holder (a process, or a handle of this one whose sled threads have
    /// not finished) has the store's lock. sled 0.34 reports a held lock as an `Other` I/O
    /// error whose message names it, wrapping the `WouldBlock` from `flock` in text.
    pub fn is_lock_held(&self) -> bool {
        matches!(self, Error::Open { source: sled::Error::Io(e), .. }
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.to_string().starts_with("could not acquire lock"))
    }

    /// Whether the files are damaged (so moving the store aside is the cure), as opposed to
    /// a newer schema, a lock held by another process, permissions or a full disk.
    pub fn is_damage(&self) -> bool {
        match self {
            Error::Corrupt { .. } | Error::BadSchema { .. } => true,
            Error::Open { source, .. } | Error::Sled(source) => damage::is_sled_damage(source),
            Error::NewerSchema { .. } | Error::MoveAside { .. } => false,
        }
    }
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

/// sled's own page cache. Hot objects live in the memory tier (`store.memory`) and the OS
/// caches the file, so sled's cache holds little worth keeping: at 64 MiB it took 60-110 MB
/// more RSS with 50,000 objects stored than at 16 MiB, and scan-miss throughput was the same.
const SLED_CACHE: u64 = 16 << 20;

impl Store {
    /// Opens (creating if needed) the store at `path` and checks its schema version.
    /// A panic in sled's recovery is caught and reported as [`Error::Corrupt`]. A newer
    /// schema recorded in [`SCHEMA_FILE`] is refused before sled touches any file. A store
    /// locked by another process is waited for up to [`LOCK_WAIT`] (a sluice killed with
    /// kill -9 holds the lock until its last thread is gone), then refused.
    pub fn open(path: &Path) -> Result<Store, Error> {
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match Self::open_once(path) {
                Err(e) if e.is_lock_held() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Store, Error> {
        check_schema_file(path)?;
        let opened = damage::catching_panics(|| {
            let db = sled::Config::new()
                .path(path)
                .cache_capacity(SLED_CACHE)
                .flush_every_ms(Some(500))
                .open()
                .map_err(|source| Error::Open {
                    path: path.to_path_buf(),
                    source,
                })?;
            Self::from_db(db, path)
        });
        let store = opened.unwrap_or_else(|detail| {
            Err(Error::Corrupt {
                path: path.to_path_buf(),
                detail,
            })
        })?;
        write_schema_file(path);
        Ok(store)
    }

    /// [`open`](Self::open) for serving: a damaged store is moved aside (logged at error
    /// level) and an empty one opened in its place; returns where the old one went. Every
    /// other error is returned unchanged and nothing is moved.
    pub fn open_or_move_aside(path: &Path) -> Result<(Store, Option<PathBuf>), Error> {
        match Store::open(path) {
            Err(e) if e.is_damage() => {
                let aside = move_aside(path, &e)?;
                Ok((Store::open(path)?, Some(aside)))
            }
            other => other.map(|s| (s, None)),
        }
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

/// Refuses a store whose [`SCHEMA_FILE`] names a newer schema (a missing file is fine:
/// stores from before the file, or new ones).
fn check_schema_file(path: &Path) -> Result<(), Error> {
    let Ok(text) = std::fs::read_to_string(path.join(SCHEMA_FILE)) else {
        return Ok(());
    };
    match text.trim().parse::<u32>() {
        Ok(found) if found > SCHEMA_VERSION => Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found,
        }),
        Ok(_) => Ok(()),
        Err(_) => Err(Error::BadSchema {
            path: path.to_path_buf(),
        }),
    }
}

/// Records [`SCHEMA_VERSION`] in [`SCHEMA_FILE`] (write, then rename); best effort, since
/// the `meta` tree stays the authority.
fn write_schema_file(path: &Path) {
    let file = path.join(SCHEMA_FILE);
    let want = format!("{SCHEMA_VERSION}\n");
    if std::fs::read_to_string(&file).is_ok_and(|t| t == want) {
        return;
    }
    let tmp = path.join(format!("{SCHEMA_FILE}.tmp"));
    if let Err(e) = std::fs::write(&tmp, &want).and_then(|()| std::fs::rename(&tmp, &file)) {
        tracing::warn!(error = %e, file = %file.display(), "cannot record the schema version");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_by_another_handle_is_recognised_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Store::open(dir.path()).unwrap();
        let err = Store::open_once(dir.path())
            .err()
            .expect("the lock is held");
        assert!(err.is_lock_held(), "{err:?}");
        let other = Error::Open {
            path: dir.path().to_path_buf(),
            source: sled::Error::Io(std::io::Error::other("permission denied")),
        };
        assert!(!other.is_lock_held());
    }

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
    fn a_newer_schema_file_is_refused_before_sled_opens() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let file = dir.path().join(SCHEMA_FILE);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "1\n");
        std::fs::write(&file, "7\n").unwrap();
        let err = Store::open(dir.path())
            .err()
            .expect("newer schema must fail");
        assert!(err.to_string().contains("schema version 7"), "{err}");
        assert!(!err.is_damage());
        std::fs::write(&file, "seven").unwrap();
        let err = Store::open(dir.path()).err().expect("garbage must fail");
        assert!(err.is_damage(), "{err}");
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

//! A damaged store: recognising it, opening sled without a panic escaping, and moving the
//! directory aside so `sluice serve` can start on an empty one.
//!
//! sled 0.34 recovers a truncated or garbled log by dropping its damaged tail (like a crash),
//! but some damage makes its recovery code panic or report corruption instead. Opening runs
//! under `catch_unwind` with the panic message captured (not printed), so such a store becomes
//! an ordinary [`Error::Corrupt`]. What counts as damage is deliberately narrow: a store
//! locked by another process, a permission problem or a full disk is *not* damage and is never
//! moved aside.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::SystemTime;

use super::Error;

thread_local! {
    /// Set while this thread opens sled: the panic hook records the message here instead of
    /// printing it.
    static CAPTURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that stays silent for threads inside
/// [`catching_panics`] and defers to the previous hook everywhere else.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let captured = CAPTURE.with(|c| match c.borrow_mut().as_mut() {
                Some(slot) => {
                    *slot = describe(info);
                    true
                }
                None => false,
            });
            if !captured {
                previous(info);
            }
        }));
    });
}

/// One line: the panic's message and where in sled it gave up.
fn describe(info: &panic::PanicHookInfo<'_>) -> String {
    let message = crate::panic_message(info.payload())
        .unwrap_or("no message")
        .replace('\n', " ");
    match info.location() {
        Some(l) => format!("{message} (at {}:{})", l.file(), l.line()),
        None => message,
    }
}

/// Runs `f`, turning a panic into `Err(message)` without printing it.
pub(super) fn catching_panics<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    CAPTURE.with(|c| *c.borrow_mut() = Some(String::new()));
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    let message = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    out.map_err(|_| {
        if message.is_empty() {
            "sled's recovery gave up".to_string()
        } else {
            format!("sled's recovery gave up: {message}")
        }
    })
}

/// Whether a sled error means the files are damaged (rather than locked, unreadable for
/// permissions, or on a full disk).
pub fn is_sled_damage(e: &sled::Error) -> bool {
    use std::io::ErrorKind;
    match e {
        sled::Error::Corruption { .. }
        | sled::Error::Unsupported(_)
        | sled::Error::ReportableBug(_) => true,
        sled::Error::Io(io) => {
            matches!(io.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData)
        }
        sled::Error::CollectionNotFound(_) => false,
    }
}

/// `<dir>.corrupt-<UTC time>` (`.2`, `.3` … if that exists already).
pub(super) fn aside_path(path: &Path, now: SystemTime) -> PathBuf {
    let stamp: String = crate::scan::pipeline::rfc3339(now)
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{stamp}"));
    let first = path.with_file_name(&name);
    let mut candidate = first.clone();
    let mut n = 2;
    while candidate.exists() {
        let mut numbered = name.clone();
        numbered.push(format!(".{n}"));
        candidate = first.with_file_name(numbered);
        n += 1;
    }
    candidate
}

/// Renames the damaged store directory out of the way; returns where it went.
pub fn move_aside(path: &Path, why: &Error) -> Result<PathBuf, Error> {
    let aside = aside_path(path, SystemTime::now());
    std::fs::rename(path, &aside).map_err(|source| Error::MoveAside {
        path: path.to_path_buf(),
        aside: aside.clone(),
        detail: why.to_string(),
        source,
    })?;
    tracing::error!(
        store = %path.display(),
        moved_to = %aside.display(),
        "the store is damaged ({why}); moved it aside and starting with an empty store \
         (cached objects, verdicts and runtime hash entries start over; the old files are kept)"
    );
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn panics_become_errors_with_their_message() {
        let r: Result<(), String> = catching_panics(|| panic!("boom at page 7"));
        let msg = r.expect_err("a panic is an error");
        assert!(msg.contains("boom at page 7"), "{msg}");
        assert_eq!(catching_panics(|| 5), Ok(5));
    }

    #[test]
    fn aside_names_carry_a_utc_stamp_and_never_collide() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("data");
        let t = UNIX_EPOCH + Duration::from_secs(1_764_089_180); // 2025-11-25T16:46:20Z
        let a = aside_path(&store, t);
        assert_eq!(
            a.file_name().and_then(|n| n.to_str()),
            Some("data.corrupt-20251125T164620Z")
        );
        std::fs::create_dir(&a).expect("mkdir");
        let b = aside_path(&store, t);
        assert_eq!(
            b.file_name().and_then(|n| n.to_str()),
            Some("data.corrupt-20251125T164620Z.2")
        );
    }

    #[test]
    fn only_real_damage_counts() {
        use std::io::{Error as IoError, ErrorKind};
        assert!(is_sled_damage(&sled::Error::Unsupported("old".into())));
        assert!(is_sled_damage(&sled::Error::Io(IoError::from(
            ErrorKind::UnexpectedEof
        ))));
        for kind in [
            ErrorKind::WouldBlock,
            ErrorKind::PermissionDenied,
            ErrorKind::StorageFull,
            ErrorKind::NotFound,
        ] {
            assert!(
                !is_sled_damage(&sled::Error::Io(IoError::from(kind))),
                "{kind:?}"
            );
        }
    }
}

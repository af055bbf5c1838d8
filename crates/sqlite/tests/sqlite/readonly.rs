//! A file or directory the store cannot write: refused at start, naming the path; a
//! write error that clears is recovered from without a restart.
//!
//! How writes are made to fail: the tests run as root here, and permission bits do
//! not stop root. The ext4 immutable attribute (`chattr +i`, which needs
//! CAP_LINUX_IMMUTABLE) does: no new file in an immutable directory, and no write to
//! an immutable file, even through a descriptor opened before (EPERM), until
//! `chattr -i`. As another user, taking the write bits off does the same at open
//! time. [`Unwritable`] picks whichever applies and undoes it when dropped.

use crate::fresh_file;
use hearth_contract::fixtures::{append, household, order_id};
use hearth_core::ports::{EventStore, StoreError};
use hearth_sqlite::{Sharing, SqliteEventStore};
use std::path::{Path, PathBuf};
use std::process::Command;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `path` made unwritable (immutable as root, read-only bits otherwise) until dropped.
struct Unwritable {
    path: PathBuf,
    root: bool,
    mode: u32,
}

impl Unwritable {
    fn new(path: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let root = is_root();
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        if root {
            let status = Command::new("chattr").arg("+i").arg(path).status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "chattr +i {} failed ({status:?}): these tests need a filesystem with the immutable attribute (ext4, xfs, btrfs) and CAP_LINUX_IMMUTABLE",
                path.display()
            );
        } else {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o222)).unwrap();
        }
        Self {
            path: path.to_owned(),
            root,
            mode,
        }
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        if self.root {
            let _ = Command::new("chattr").arg("-i").arg(&self.path).status();
        } else {
            let _ =
                std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode));
        }
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

#[test]
fn start_is_refused_on_a_directory_it_cannot_write_naming_it() {
    // A clean shutdown removed the -wal and -shm files; the directory turned
    // read-only. Before: "unable to open database file", no word of read-only.
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    drop(store);
    assert!(
        !sibling(&path, "-wal").exists(),
        "a clean close removes the log"
    );
    let dir = path.parent().unwrap().to_owned();
    let blocked = Unwritable::new(&dir);
    let err = SqliteEventStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("not writable"), "{err}");
    assert!(
        err.contains(&dir.display().to_string()),
        "names the directory: {err}"
    );
    // A new file in such a directory, likewise.
    let err = SqliteEventStore::open(dir.join("new.db"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not writable"), "{err}");
    drop(blocked);
    // Writable again: it opens.
    SqliteEventStore::open(&path).unwrap();
}

#[tokio::test]
async fn start_is_refused_on_a_file_it_cannot_write_after_a_crash() {
    // A crash leaves the -wal and -shm files; then the files turn read-only. Before:
    // the store opened (SQLite fell back to read-only), reads worked, and every
    // write failed until a restart.
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    store
        .append(append(household(), order_id(), 0, 1))
        .await
        .unwrap();
    // As a crash would: the connections are never closed, the log stays.
    std::mem::forget(store);
    let wal = sibling(&path, "-wal");
    assert!(wal.exists());
    let blocked = (Unwritable::new(&path), Unwritable::new(&wal));
    let err = SqliteEventStore::open(&path)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&path.display().to_string()),
        "names the file: {err}"
    );
    assert!(
        err.contains("read-only") || err.contains("write failed"),
        "{err}"
    );
    drop(blocked);
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    store
        .append(append(household(), order_id(), 0, 1))
        .await
        .unwrap();
}

#[tokio::test]
async fn start_is_refused_when_only_the_log_cannot_be_written() {
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    store
        .append(append(household(), order_id(), 0, 1))
        .await
        .unwrap();
    std::mem::forget(store);
    let blocked = Unwritable::new(&sibling(&path, "-wal"));
    let err = SqliteEventStore::open(&path)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("a test write failed"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    drop(blocked);
}

/// A regression guard rather than a fix: an open writer connection whose log
/// cannot be written (and, tried by hand on a 2 MiB tmpfs, a full disk) fails each
/// commit with `Unavailable` and commits again once the cause clears. What did not
/// recover before was a connection SQLite had opened read-only, which the checks at
/// start now refuse.
#[tokio::test]
async fn a_write_error_that_clears_is_recovered_from_without_a_restart() {
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    let hh = household();
    store.append(append(hh, order_id(), 0, 1)).await.unwrap();
    {
        let _blocked = Unwritable::new(&sibling(&path, "-wal"));
        for _ in 0..3 {
            let failed = store.append(append(hh, order_id(), 0, 1)).await;
            assert!(
                matches!(failed, Err(StoreError::Unavailable(_))),
                "{failed:?}"
            );
        }
    }
    let appended = store.append(append(hh, order_id(), 0, 1)).await.unwrap();
    let hearth_core::ports::Appended::Committed { outcome, .. } = appended else {
        panic!("{appended:?}")
    };
    assert_eq!(
        outcome,
        hearth_core::CommandOutcome::Accepted { seq: 2, events: 1 },
        "the failed appends left nothing"
    );
}

/// The files of the store, which exist now: the database and its `-wal` and `-shm`.
fn store_files(path: &Path) -> Vec<PathBuf> {
    [
        path.to_owned(),
        sibling(path, "-wal"),
        sibling(path, "-shm"),
    ]
    .into_iter()
    .filter(|p| p.exists())
    .collect()
}

/// Issue 19's read-only scenario: the data directory and every file in it made
/// immutable under a running store, with writes before and after. Before: the next
/// write killed the process with SIGBUS (the WAL index, `-shm`, was a shared memory
/// mapping of an immutable file). Now, opened for this process alone (as `hearth
/// serve` on the embedded executor opens it): each write fails with a retryable
/// `Unavailable`, reads go on, and the first write after the directory is writable
/// again commits, on the same store.
#[tokio::test]
async fn the_data_dir_turning_read_only_under_a_running_store_fails_writes_then_recovers() {
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open_with(&path, Sharing::Exclusive).unwrap();
    let hh = household();
    for _ in 0..3 {
        store.append(append(hh, order_id(), 0, 1)).await.unwrap();
    }
    {
        let dir = path.parent().unwrap().to_owned();
        let _blocked: Vec<Unwritable> = std::iter::once(dir)
            .chain(store_files(&path))
            .map(|p| Unwritable::new(&p))
            .collect();
        for attempt in 0..3 {
            let failed = store.append(append(hh, order_id(), 0, 1)).await;
            match failed {
                Err(StoreError::Unavailable(message)) => assert!(
                    message.contains("read-only data directory"),
                    "attempt {attempt}: says what to look at: {message}"
                ),
                other => panic!("attempt {attempt}: {other:?}"),
            }
        }
        // Reads still answer from what was committed.
        assert_eq!(store.head(hh).await.unwrap(), 3);
    }
    let appended = store.append(append(hh, order_id(), 0, 1)).await.unwrap();
    let hearth_core::ports::Appended::Committed { outcome, .. } = appended else {
        panic!("{appended:?}")
    };
    assert_eq!(
        outcome,
        hearth_core::CommandOutcome::Accepted { seq: 4, events: 1 },
        "the failed appends left nothing"
    );
}

//! `Sharing::Exclusive`: the file for this process alone. Other stores and
//! connections of the process share it (the WAL index in this process's memory);
//! another process is kept out, and told so, rather than let in with a WAL index of
//! its own.

use crate::fresh_file;
use hearth_contract::fixtures::{append, household, order_id};
use hearth_core::ports::EventStore;
use hearth_sqlite::{Sharing, SqliteEventStore};
use std::process::Command;

const STRESS: &str = env!("CARGO_BIN_EXE_hearth-sqlite-stress");

#[tokio::test]
async fn an_exclusive_store_has_no_shm_file_and_shares_the_file_within_its_process() {
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open_with(&path, Sharing::Exclusive).unwrap();
    let hh = household();
    store.append(append(hh, order_id(), 0, 1)).await.unwrap();
    assert!(
        !std::path::PathBuf::from(format!("{}-shm", path.display())).exists(),
        "the WAL index is in memory"
    );
    // A second store in the same process sees the first one's commits and appends after them.
    let (second, _feed) = SqliteEventStore::open_with(&path, Sharing::Exclusive).unwrap();
    assert_eq!(second.head(hh).await.unwrap(), 1);
    second.append(append(hh, order_id(), 0, 1)).await.unwrap();
    assert_eq!(store.head(hh).await.unwrap(), 2);
}

#[tokio::test]
async fn another_process_cannot_open_a_file_held_exclusively() {
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open_with(&path, Sharing::Exclusive).unwrap();
    let hh = household();
    store.append(append(hh, order_id(), 0, 1)).await.unwrap();
    // The stress binary opens the file shared; it waits out the busy timeout (5 s).
    let out = Command::new(STRESS)
        .args(["--seconds", "1", "--writers", "1"])
        .arg(&path)
        .arg(hh.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it must not open: {stderr}");
    assert!(stderr.contains("database is locked"), "{stderr}");
    // Nothing of it reached the file, and the store goes on.
    assert_eq!(store.head(hh).await.unwrap(), 1);
    store.append(append(hh, order_id(), 0, 1)).await.unwrap();
}

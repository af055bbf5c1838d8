//! The write-ahead log is copied into the database file by the checkpointer thread
//! (src/checkpoint.rs), not inside the writer's commits (under appends that never pause it
//! still grows until a checkpoint catches up: docs/sqlite.md, issue 20).

use crate::fresh_file;
use futures::future::join_all;
use hearth_contract::fixtures::{append, household, order_id};
use hearth_core::ports::EventStore;
use hearth_sqlite::SqliteEventStore;
use std::time::{Duration, Instant};

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_into_the_file_while_appends_go_on() {
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    let wal = path.with_extension("db-wal");
    let empty = file_len(&path);
    // Given: enough appends to fill well over 1,000 WAL pages (4 KiB each).
    let hh = household();
    for round in 0..20 {
        let appends = (0..100).map(|_| store.append(append(hh, order_id(), 0, 3)));
        for result in join_all(appends).await {
            result.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
    // Then: the pages reach the database file. The writer's own auto-checkpoint is
    // off, so without the checkpointer they would stay in an ever-growing log.
    let deadline = Instant::now() + Duration::from_secs(10);
    while file_len(&path) <= empty + 1_000_000 {
        assert!(
            Instant::now() < deadline,
            "database file still {} bytes (WAL {} bytes): nothing was checkpointed",
            file_len(&path),
            file_len(&wal)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! The write-ahead log is copied into the database file by the checkpointer thread
//! (src/checkpoint.rs), not inside the writer's commits, and is started again from its
//! beginning once past its limit even while appends never pause (docs/sqlite.md).

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

/// The log's limit (LOG_LIMIT_PAGES of 4 KiB) in bytes.
const LOG_LIMIT_BYTES: u64 = hearth_sqlite::LOG_LIMIT_PAGES as u64 * 4096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_sustained_appends_the_log_is_restarted_past_its_limit() {
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    let wal = path.with_extension("db-wal");
    // Given: appends that never pause (16 at a time, each round waiting for the last),
    // so a passive checkpoint never finds the log fully copied.
    let households: Vec<_> = (0..100).map(|_| household()).collect();
    let mut rounds = 0;
    // When: the log passes its limit (each one-event append adds several pages).
    // Then: a restarting checkpoint copies it whole and the writer starts it again
    // from its beginning. Bounded: 40,000 appends write several times the limit.
    while store.checkpoint_stats().restarts == 0 {
        assert!(
            rounds < 2_500,
            "the log was never restarted: {} bytes after {rounds} rounds of 16 appends ({:?})",
            file_len(&wal),
            store.checkpoint_stats()
        );
        let appends = (0..16).map(|i| {
            store.append(append(
                households[(rounds * 16 + i) % 100],
                order_id(),
                0,
                1,
            ))
        });
        for result in join_all(appends).await {
            result.unwrap_or_else(|e| panic!("round {rounds}: {e}"));
        }
        rounds += 1;
    }
    // And: the next append wrote from the log's beginning, into a file cut back to the
    // limit (journal_size_limit), so the log stays near the limit, not at all it held.
    let appends = (0..16).map(|i| store.append(append(households[i], order_id(), 0, 1)));
    for result in join_all(appends).await {
        result.unwrap();
    }
    assert!(
        file_len(&wal) <= LOG_LIMIT_BYTES,
        "log file {} bytes after a restart, limit {LOG_LIMIT_BYTES}",
        file_len(&wal)
    );
}

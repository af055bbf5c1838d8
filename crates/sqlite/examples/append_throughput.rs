//! Append throughput of the SQLite event store (docs/sqlite.md, "Group commit").
//!
//! ```text
//! cargo run --release -p hearth-sqlite --example append_throughput -- \
//!     [--tasks 16] [--households 100] [--seconds 10] [--dir /var/tmp] [--exclusive]
//! ```
//!
//! `--exclusive` opens the file with `Sharing::Exclusive` (as `hearth serve` on the
//! embedded executor does: the WAL index in memory), otherwise `Sharing::Shared`.
//!
//! Opens a fresh file in a new temporary directory under `--dir`, then runs `--tasks`
//! concurrent tasks for `--seconds`; each appends one-event commands (a new order at
//! version 0) to households picked round-robin from `--households`, one append at a
//! time, waiting for each answer. Prints the appends answered per second and how
//! they were grouped into transactions.

#![allow(clippy::unwrap_used)] // a throwaway measuring program

use hearth_contract::fixtures::{append, household, order_id};
use hearth_core::ports::{Appended, EventStore};
use hearth_sqlite::{Sharing, SqliteEventStore};
use std::time::{Duration, Instant};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap())
}

fn dir_arg() -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| std::env::temp_dir().display().to_string())
}

#[tokio::main]
async fn main() {
    let tasks = arg("--tasks", 16);
    let households: Vec<_> = (0..arg("--households", 100)).map(|_| household()).collect();
    let seconds = arg("--seconds", 10);
    let dir = tempfile::tempdir_in(dir_arg()).unwrap();
    let sharing = if std::env::args().any(|a| a == "--exclusive") {
        Sharing::Exclusive
    } else {
        Sharing::Shared
    };
    let (store, _feed) = SqliteEventStore::open_with(dir.path().join("bench.db"), sharing).unwrap();

    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut running = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        let households = households.clone();
        running.push(tokio::spawn(async move {
            let mut done = 0u64;
            let mut i = t as usize;
            while Instant::now() < deadline {
                let tenant = households[i % households.len()];
                i += tasks as usize;
                match store
                    .append(append(tenant, order_id(), 0, 1))
                    .await
                    .unwrap()
                {
                    Appended::Committed { events, .. } => assert_eq!(events.len(), 1),
                    other => panic!("not committed: {other:?}"),
                }
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for task in running {
        total += task.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{sharing:?}: {total} appends in {elapsed:.2} s by {tasks} tasks to {} households: {:.0} appends/s",
        households.len(),
        total as f64 / elapsed
    );
    let stats = store.batch_stats();
    println!(
        "{} batches, {:.1} appends per batch",
        stats.batches,
        stats.appends as f64 / stats.batches.max(1) as f64
    );
}

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

    // The log file's largest length, sampled every 100 ms.
    let wal = dir.path().join("bench.db-wal");
    let largest_log = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let largest_log = largest_log.clone();
        tokio::spawn(async move {
            loop {
                let len = std::fs::metadata(&wal).map_or(0, |m| m.len());
                largest_log.fetch_max(len, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
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
    let checkpoints = store.checkpoint_stats();
    println!(
        "{} checkpoints, {} restarts of the log (the writer paused {:.1} ms for them in all); log file now {} MiB, at most {} MiB",
        checkpoints.checkpoints,
        checkpoints.restarts,
        checkpoints.writer_micros as f64 / 1000.0,
        std::fs::metadata(dir.path().join("bench.db-wal")).map_or(0, |m| m.len()) >> 20,
        largest_log.load(std::sync::atomic::Ordering::Relaxed) >> 20
    );
    sampler.abort();
    let per_append = |ticks: u64| ticks as f64 * 1e6 / ticks_per_second() / total.max(1) as f64;
    println!(
        "CPU per append (user + sys): writer thread {:.0} us, whole process {:.0} us",
        per_append(thread_ticks("hearth-sqlite-w")),
        per_append(process_ticks())
    );
}

/// Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux).
fn ticks_per_second() -> f64 {
    100.0
}

/// utime + stime, in clock ticks, of this whole process (ended threads included).
fn process_ticks() -> u64 {
    stat_ticks(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// utime + stime from a /proc `stat` line.
fn stat_ticks(stat: &str) -> u64 {
    // The fields after the command name (which may hold spaces) start after its ')':
    // state is field 3, utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// utime + stime, in clock ticks, of this process's threads whose name starts with
/// `prefix` (thread names are cut at 15 bytes). Linux only; 0 elsewhere.
fn thread_ticks(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut ticks = 0;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        ticks += stat_ticks(&std::fs::read_to_string(task.path().join("stat")).unwrap_or_default());
    }
    ticks
}

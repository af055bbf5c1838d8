//! The checkpointer: copies the write-ahead log into the database file off the
//! writer's path.
//!
//! By default SQLite checkpoints inside the COMMIT that pushes the WAL past 1,000
//! pages, so every so often one batch of appends also pays for copying the log into
//! the file and syncing it, and every append queued behind it waits. The writer
//! connection therefore runs with `wal_autocheckpoint = 0`, and this thread, on its
//! own connection, runs a `PASSIVE` checkpoint every [`EVERY`]: it copies whatever
//! no reader still needs, never blocks the writer or the readers, and lets the
//! writer restart the log from its beginning once all of it was copied. Durability
//! does not depend on it (each commit still syncs the WAL); only the size of the WAL
//! does.
//!
//! Under sustained appends a passive checkpoint never catches up: by the time it has
//! copied the frames it saw, the writer has added more, so the writer never finds the
//! log fully copied and never restarts it, and the log grows without bound (1 GB in
//! 10 s of appends measured; issue 20). So once a checkpoint leaves the log longer than
//! [`LOG_LIMIT_PAGES`], this thread runs passive checkpoints back to back, each copying
//! only what the writer added during the one before, until what is left is at most
//! [`HANDOVER_PAGES`]; then it hands the rest to the writer. The writer, between two
//! batches, runs one more passive checkpoint itself: it is the only writer, so nothing
//! is added meanwhile and it waits on no lock, and its next batch starts the log from
//! its beginning. The commands' pause is the copy of that small rest and the file's
//! sync, once per limit's worth of log. Two earlier versions paused them longer and
//! were measured and taken back (docs/sqlite.md, "The log under sustained appends"): a
//! `RESTART` checkpoint from this thread made the writer wait in SQLite's busy
//! handler, and a handover after one pass every [`EVERY`] left the writer up to a
//! quarter second of log to copy. A log still past twice the limit is handed over
//! whatever is left: a bounded file comes before the tail. The writer's
//! `journal_size_limit` cuts a log file that grew past the limit back to it.

use crate::db::{Fail, Sharing, connect};
use crate::repeats::Repeats;
use hearth_core::ports::StoreError;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the checkpointer runs.
pub(crate) const EVERY: Duration = Duration::from_millis(250);

/// The log's length, in pages, past which a checkpoint restarts it (64 MiB at SQLite's
/// 4 KiB pages).
pub const LOG_LIMIT_PAGES: i64 = 16_384;

/// At most this many pages of log left uncopied are handed to the writer to copy
/// between two batches (2 MiB).
pub const HANDOVER_PAGES: i64 = 512;

/// The most back-to-back checkpoints run to bring the rest of a long log down to
/// [`HANDOVER_PAGES`] before handing it over anyway.
const CATCH_UP_PASSES: usize = 32;

/// What the checkpointer did since the file was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Checkpoints run (the checkpointer's and the writer's, failed or not).
    pub checkpoints: u64,
    /// The writer's checkpoints that copied the whole log after it passed
    /// [`LOG_LIMIT_PAGES`], so that its next batch started the log from its beginning.
    pub restarts: u64,
    /// Time the writer spent on those checkpoints, in microseconds: the pause they
    /// put on the appends queued behind them.
    pub writer_micros: u64,
}

#[derive(Debug, Default)]
pub(crate) struct CheckpointCounters {
    checkpoints: AtomicU64,
    restarts: AtomicU64,
    writer_micros: AtomicU64,
    /// Set by the checkpointer when the log is past the limit and at most
    /// [`HANDOVER_PAGES`] of it are left to copy (or it is past twice the limit); taken
    /// by the writer between two batches.
    restart_wanted: AtomicBool,
}

impl CheckpointCounters {
    /// The writer, between batches: if the checkpointer asked for it, copies the rest
    /// of the log into the file on the writer's own connection, so that its next batch
    /// starts the log from its beginning.
    pub(crate) fn restart_if_wanted(&self, conn: &rusqlite::Connection) {
        if !self.restart_wanted.swap(false, Ordering::Relaxed) {
            return;
        }
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        // A failure only leaves the log longer; the checkpointer asks again.
        if let Ok((0, log, copied)) = run(conn, "PASSIVE")
            && log == copied
        {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.writer_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> CheckpointStats {
        CheckpointStats {
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            writer_micros: self.writer_micros.load(Ordering::Relaxed),
        }
    }
}

/// A running checkpointer; dropping it runs a last checkpoint and stops the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(
        path: &Path,
        sharing: Sharing,
        counters: Arc<CheckpointCounters>,
    ) -> Result<Self, StoreError> {
        let conn = connect(path, true, sharing).map_err(StoreError::from)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let repeats = Repeats::default();
        let thread = std::thread::Builder::new()
            .name("hearth-sqlite-checkpoint".into())
            .spawn(move || {
                loop {
                    let last = matches!(
                        stopped.recv_timeout(EVERY),
                        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected)
                    );
                    match checkpoint(&conn, &counters) {
                        Err(e) => {
                            let error = StoreError::from(e).to_string();
                            if let Some(held_back) = repeats.admit(&error, Instant::now()) {
                                tracing::warn!(%error, held_back, "sqlite checkpoint failed; will retry (an identical failure is logged once a minute, held_back counts the others)");
                            }
                        }
                        Ok(()) => {
                            if repeats.clear() {
                                tracing::info!("sqlite checkpoints succeed again");
                            }
                        }
                    }
                    if last {
                        return;
                    }
                }
            })
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the sqlite checkpointer: {e}"))
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One passive checkpoint; if it leaves the log past [`LOG_LIMIT_PAGES`], more until
/// little is left, then the writer is asked to copy the rest (module docs).
fn checkpoint(conn: &rusqlite::Connection, counters: &CheckpointCounters) -> Result<(), Fail> {
    let pass = || {
        counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        run(conn, "PASSIVE")
    };
    let (_, mut log, mut copied) = pass()?;
    if log <= LOG_LIMIT_PAGES {
        return Ok(());
    }
    for _ in 0..CATCH_UP_PASSES {
        if log - copied <= HANDOVER_PAGES {
            break;
        }
        (_, log, copied) = pass()?;
    }
    if log - copied <= HANDOVER_PAGES || log > 2 * LOG_LIMIT_PAGES {
        counters.restart_wanted.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// `PRAGMA wal_checkpoint(mode)`: (1 if it could not finish because a reader or the
/// writer held on past the busy timeout, pages in the log, pages copied).
fn run(conn: &rusqlite::Connection, mode: &str) -> Result<(i64, i64, i64), Fail> {
    Ok(
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?,
    )
}

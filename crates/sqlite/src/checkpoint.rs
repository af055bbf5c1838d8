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

use crate::db::{Fail, Sharing, connect};
use crate::repeats::Repeats;
use hearth_core::ports::StoreError;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the checkpointer runs.
pub(crate) const EVERY: Duration = Duration::from_millis(250);

/// A running checkpointer; dropping it runs a last checkpoint and stops the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path, sharing: Sharing) -> Result<Self, StoreError> {
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
                    match passive(&conn) {
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

fn passive(conn: &rusqlite::Connection) -> Result<(), Fail> {
    // Returns (busy, pages in the log, pages checkpointed); nothing to act on.
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    Ok(())
}

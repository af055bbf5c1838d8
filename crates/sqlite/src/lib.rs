//! SQLite adapters of Hearth's storage ports: the embedded default store.
//!
//! One database file in WAL mode holds the event log, snapshots, commands, the jobs
//! outbox, and the directory (households, members, invites). [`SqliteEventStore`]
//! implements `EventStore`, [`SqliteEventFeed`] `EventFeed` (an in-process
//! doorbell), [`SqliteDirectory`] `Directory`. All writes go through one writer
//! thread, which group-commits appends (one transaction and one fsync per batch of
//! queued appends, no savepoints; see [`SqliteEventStore::batch_stats`]).
//!
//! **Invariant:** SQLite has no row-level security, so every statement this crate
//! runs names the household (`tenant_id`) in its key or `WHERE` clause; the only
//! exception is the job relay's outbox scan, `Outbox::pending_jobs`.
//!
//! ```no_run
//! # fn main() -> Result<(), hearth_core::ports::StoreError> {
//! let (store, feed) = hearth_sqlite::SqliteEventStore::open("hearth.db")?;
//! let directory = store.directory();
//! # let _ = (feed, directory);
//! # Ok(())
//! # }
//! ```

mod checkpoint;
mod db;
mod directory;
mod repeats;
mod store;
mod writer;

pub use checkpoint::{CheckpointStats, HANDOVER_PAGES, LOG_LIMIT_PAGES};
pub use db::Sharing;
pub use directory::SqliteDirectory;
pub use store::{SqliteEventFeed, SqliteEventStore};
pub use writer::BatchStats;

//! The database file: connections, pragmas, migrations, and the bridge from async
//! callers to blocking SQLite calls (the writer thread of [`crate::writer`] for
//! writes, `spawn_blocking` for reads).

use crate::checkpoint::{CheckpointCounters, CheckpointStats, Checkpointer, LOG_LIMIT_PAGES};
use crate::writer::{self, BatchStats, Counters, Job};
use hearth_core::Timestamp;
use hearth_core::ports::{Append, Appended, DirectoryError, FeedSignal, StoreError};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast, oneshot};

/// Schema migrations, applied in order on open. `PRAGMA user_version` records how
/// many have been applied; each runs in its own transaction with the bump.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_domains.sql"),
    include_str!("migrations/0003_sessions.sql"),
    include_str!("migrations/0004_time_zone.sql"),
    include_str!("migrations/0005_job_correlation.sql"),
    include_str!("migrations/0006_append_shape.sql"),
];

/// How long a connection waits for another connection's lock before giving up
/// with `SQLITE_BUSY` (reported as [`StoreError::Unavailable`]).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle reader connections kept for reuse.
const IDLE_READERS: usize = 8;

/// The most reads running at once, each on a connection of its own and a blocking
/// thread; the others wait for a turn without holding either. Without it a burst of
/// reads (a thousand sockets opening at once, each loading its household) opened a
/// connection, a file descriptor and a thread per read in flight: about 190 at once,
/// up to tokio's 512 blocking threads, on a machine with two cores.
pub(crate) const MAX_READS: usize = 16;

/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 64;

/// Signals buffered per feed subscriber before it lags (and gets `Resync`).
const DOORBELL_CAPACITY: usize = 1024;

/// Whether other processes may open the file while a store has it open: it decides
/// where SQLite keeps the WAL index (docs/sqlite.md, "One process or several").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sharing {
    /// Other processes may open the file too (e.g. `hearth worker` beside `hearth
    /// serve`). The WAL index is the `-shm` file, mapped into memory by every process
    /// that has the file open. If that file turns unwritable under a running store
    /// (`chattr +i`), the next write to the index kills the process with SIGBUS:
    /// nothing in SQLite can turn that into an error.
    #[default]
    Shared,
    /// Only this process (any number of stores and connections in it). SQLite's
    /// `unix-excl` VFS: the first access takes a lock on the file that keeps every
    /// other process out (they wait, then get "database is locked"), and the WAL
    /// index lives in this process's heap, so there is no `-shm` file and no mapped
    /// file: a data directory that turns read-only fails writes with an error, which
    /// clears when it is writable again.
    Exclusive,
}

impl Sharing {
    /// The VFS that implements it; `None` is SQLite's default.
    fn vfs(self) -> Option<&'static std::ffi::CStr> {
        match self {
            Sharing::Shared => None,
            #[cfg(unix)]
            Sharing::Exclusive => Some(c"unix-excl"),
            // Elsewhere the default VFS: one process per file is then not enforced.
            #[cfg(not(unix))]
            Sharing::Exclusive => None,
        }
    }
}

/// Why an operation failed, inside the adapter. Converted to the port errors at the
/// boundary, so no rusqlite type leaks out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Fail {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// A new connection that SQLite could only open read-only, refused under
    /// [`Sharing::Exclusive`] (see [`connect`]).
    #[error(
        "cannot open a connection to {0}: SQLite could only open it read-only \
         (an immutable attribute, permissions or a read-only filesystem?)"
    )]
    OpenedReadOnly(PathBuf),
}

impl Fail {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Fail::Store(StoreError::Corrupt(what.to_string()))
    }
}

/// Translates a SQLite error into the store's vocabulary.
fn sql_to_store(e: &rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match e {
        E::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
        {
            StoreError::Corrupt(e.to_string())
        }
        E::FromSqlConversionFailure(..)
        | E::InvalidColumnType(..)
        | E::IntegralValueOutOfRange(..)
        | E::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(format!("sqlite: {e}{}", write_hint(e))),
    }
}

/// What to look at when SQLite could not write (appended to the message): the error
/// itself says only "disk I/O error" or "attempt to write a readonly database".
pub(crate) fn write_hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(ErrorCode::SystemIoFailure | ErrorCode::ReadOnly | ErrorCode::DiskFull) => {
            " (the database file or its -wal could not be written: a full disk or a \
             read-only data directory? it is retried once that clears)"
        }
        _ => "",
    }
}

impl From<Fail> for StoreError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Sql(e) => sql_to_store(&e),
            Fail::Store(e) => e,
            Fail::Directory(DirectoryError::Store(e)) => e,
            // The event store never raises directory errors; keep the message.
            Fail::Directory(e) => StoreError::Corrupt(e.to_string()),
            f @ Fail::OpenedReadOnly(_) => StoreError::Unavailable(f.to_string()),
        }
    }
}

impl From<Fail> for DirectoryError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Sql(e) => DirectoryError::Store(sql_to_store(&e)),
            Fail::Store(e) => DirectoryError::Store(e),
            Fail::Directory(e) => e,
            f @ Fail::OpenedReadOnly(_) => DirectoryError::Store(f.into()),
        }
    }
}

/// One SQLite file: a single writer connection, owned by the writer thread, which
/// runs every write in queue order and group-commits appends (so `seq` is gap-free
/// and commit-ordered), and a pool of read-only connections (WAL lets them read
/// while the writer writes).
#[derive(Debug)]
pub(crate) struct Db {
    path: PathBuf,
    sharing: Sharing,
    /// The writer thread's queue; `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    reads: Reads,
    /// Rung by the writer after each batch's commit.
    doorbell: broadcast::Sender<FeedSignal>,
    counters: Arc<Counters>,
    checkpoints: Arc<CheckpointCounters>,
    /// Dropped after the writer has stopped (fields drop after `Drop::drop`).
    _checkpointer: Checkpointer,
}

impl Db {
    /// Opens (creating if needed) the file, sets WAL mode, applies migrations and
    /// starts the writer thread. Blocks: call it at start-up, or from a blocking task.
    pub(crate) fn open(path: &Path, sharing: Sharing) -> Result<Arc<Self>, StoreError> {
        let open_failed = |e: Fail| {
            let held = sharing == Sharing::Exclusive && is_busy(&e);
            match StoreError::from(e) {
                StoreError::Unavailable(m) if held => StoreError::Unavailable(format!(
                    "cannot open {}: {m}; this store opens the file for its process alone, \
                     and another process has it open (another hearth serve or worker, or a \
                     sqlite3 shell?)",
                    path.display()
                )),
                StoreError::Unavailable(m) => {
                    StoreError::Unavailable(format!("cannot open {}: {m}", path.display()))
                }
                other => other,
            }
        };
        // Refuse a file or directory this process cannot write, saying so: otherwise
        // SQLite opens a file it cannot write read-only (reads work, every write fails
        // until a restart), or fails with "unable to open database file".
        check_directory_writable(path)?;
        create_private(path)?;
        let mut conn = connect(path, true, sharing).map_err(open_failed)?;
        check_file_writable(path, &mut conn)?;
        migrate(&mut conn).map_err(open_failed)?;
        // Checkpoints run on their own thread, not inside a batch's COMMIT.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| open_failed(e.into()))?;
        // A log that grew past the limit (before a restarting checkpoint caught it) is
        // cut back to it when the writer restarts it, so the disk is given back.
        conn.pragma_update(None, "journal_size_limit", LOG_LIMIT_PAGES * 4096)
            .map_err(|e| open_failed(e.into()))?;
        let checkpoints = Arc::new(CheckpointCounters::default());
        let checkpointer = Checkpointer::start(path, sharing, Arc::clone(&checkpoints))?;
        let (doorbell, _) = broadcast::channel(DOORBELL_CAPACITY);
        let counters = Arc::new(Counters::default());
        let (jobs, writer) = writer::start(
            conn,
            doorbell.clone(),
            Arc::clone(&counters),
            Arc::clone(&checkpoints),
        )?;
        Ok(Arc::new(Self {
            path: path.to_owned(),
            sharing,
            jobs: Some(jobs),
            writer: Some(writer),
            readers: Mutex::new(Vec::new()),
            reads: Reads::default(),
            doorbell,
            counters,
            checkpoints,
            _checkpointer: checkpointer,
        }))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The doorbell the writer rings after each commit.
    pub(crate) fn doorbell(&self) -> &broadcast::Sender<FeedSignal> {
        &self.doorbell
    }

    pub(crate) fn checkpoint_stats(&self) -> CheckpointStats {
        self.checkpoints.get()
    }

    pub(crate) fn batch_stats(&self) -> BatchStats {
        self.counters.get()
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(writer_gone)
    }

    /// Queues one append to the writer, which group-commits it with the appends
    /// queued around it; the answer comes after the batch's COMMIT returned.
    pub(crate) async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Append {
            append: Box::new(append),
            reply,
        })?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Runs `f` on the writer connection, alone (between batches of appends).
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, Fail>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Write(Box::new(move |conn| {
            let _ = reply.send(f(conn));
        })))?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Runs `f` on a read-only connection, off the async runtime. When no idle reader
    /// is left and a new one cannot be opened for writing (the directory turned
    /// read-only under an exclusive store, see [`connect`]), `f` runs on the writer
    /// connection instead, queued with the writes, so reads go on meanwhile.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, Fail>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    {
        self.reads.waiting.fetch_add(1, Ordering::Relaxed);
        let turn = Arc::clone(&self.reads.turns).acquire_owned().await;
        self.reads.waiting.fetch_sub(1, Ordering::Relaxed);
        // The semaphore is never closed.
        let turn =
            turn.map_err(|_| Fail::Store(StoreError::Unavailable("sqlite reads closed".into())))?;
        let db = Arc::clone(self);
        let ran = tokio::task::spawn_blocking(move || {
            // Held until the connection is back in the pool (or closed), even if the
            // caller stopped waiting.
            let _turn = turn;
            let running = db.reads.running.fetch_add(1, Ordering::Relaxed) + 1;
            db.reads.peak.fetch_max(running, Ordering::Relaxed);
            let _running = Decrement(&db.reads.running);
            let idle = db.idle().pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => match connect(&db.path, false, db.sharing) {
                    Ok(conn) => conn,
                    Err(Fail::OpenedReadOnly(_)) => return Err(f),
                    Err(e) => return Ok(Err(e)),
                },
            };
            let result = f(&mut conn);
            let mut idle = db.idle();
            if idle.len() < IDLE_READERS && conn.is_autocommit() {
                idle.push(conn);
            }
            Ok(result)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite task failed: {e}")))?;
        match ran {
            Ok(result) => result,
            Err(f) => self.write(f).await,
        }
    }
}

/// Reads in flight and waiting for a turn ([`MAX_READS`]).
#[derive(Debug)]
struct Reads {
    turns: Arc<Semaphore>,
    waiting: AtomicUsize,
    running: AtomicUsize,
    /// The most that ever ran at once.
    peak: AtomicUsize,
}

impl Default for Reads {
    fn default() -> Self {
        Self {
            turns: Arc::new(Semaphore::new(MAX_READS)),
            waiting: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }
}

/// Counts one down when dropped (also on a panic in the read).
struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Db {
    /// Closes the queue and waits for the writer to finish what was queued and close
    /// the writer connection, so the file is released when the store is dropped.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(writer) = self.writer.take()
            && writer.thread().id() != std::thread::current().id()
        {
            let _ = writer.join();
        }
    }
}

/// The file's directory must take new files: SQLite creates `<file>-wal` and
/// `<file>-shm` there whenever it opens the file after a clean close (and the file
/// itself when it is new). Probed by creating and removing a file.
fn check_directory_writable(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "hearth".into(), |n| n.to_string_lossy().into_owned());
    let probe = dir.join(format!(".{name}.write-probe-{}", std::process::id()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match created {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Left by a process with our pid that died: the directory took it.
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(StoreError::Unavailable(format!(
            "cannot open {}: its directory {} is not writable ({e}); SQLite must create the \
             database's -wal and -shm files there: make it writable, or choose another data directory",
            path.display(),
            dir.display()
        ))),
    }
}

/// The file must take writes: SQLite opens a file it cannot write read-only without
/// a word, and a write-ahead log it cannot write fails only at the first commit. So
/// the open is checked, then one small transaction is committed (the schema version,
/// rewritten unchanged).
fn check_file_writable(path: &Path, conn: &mut Connection) -> Result<(), StoreError> {
    let refused = |why: String| {
        StoreError::Unavailable(format!(
            "cannot open {}: {why}; the store needs to write the file and its -wal \
             (permissions, an immutable attribute, a read-only filesystem or a full disk?)",
            path.display()
        ))
    };
    if conn
        .is_readonly(c"main")
        .map_err(|e| refused(e.to_string()))?
    {
        return Err(refused("SQLite could only open it read-only".into()));
    }
    let probe = |conn: &mut Connection| -> Result<(), rusqlite::Error> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()
    };
    probe(conn).map_err(|e| refused(format!("a test write failed: {e}")))
}

/// The writer thread is gone, or dropped a job without answering (a panic).
fn writer_gone() -> StoreError {
    StoreError::Unavailable("the sqlite writer stopped before answering".into())
}

/// Creates the database file readable and writable by its owner only (0600), if it
/// does not exist yet. SQLite creates the `-wal` and `-shm` files with the mode of the
/// database file, so they are 0600 too. An existing file keeps its mode; one that
/// others may read is reported.
#[cfg(unix)]
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format_args!("{mode:o}"),
                        "the database file is readable by others than its owner \
                         (chmod 600 it, and its -wal and -shm files)"
                    );
                }
            }
            Ok(())
        }
        Err(e) => Err(StoreError::Unavailable(format!(
            "cannot create {} with mode 0600: {e}",
            path.display()
        ))),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// SQLite failed on another connection's (or process's) lock.
fn is_busy(e: &Fail) -> bool {
    matches!(e, Fail::Sql(rusqlite::Error::SqliteFailure(f, _)) if f.code == ErrorCode::DatabaseBusy)
}

/// The most page cache a writing connection keeps, in KiB (SQLite allocates it as
/// pages are used).
pub(crate) const WRITER_CACHE_KIB: i64 = 64 * 1024;

pub(crate) fn connect(path: &Path, writer: bool, sharing: Sharing) -> Result<Connection, Fail> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = match sharing.vfs() {
        Some(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs)?,
        None => Connection::open_with_flags(path, flags)?,
    };
    // SQLite opens a file it cannot write read-only, silently. Under `unix-excl` such
    // a connection locks the file with the process's own POSIX locks, which would
    // replace (and on release drop) the lock that keeps other processes out; so it is
    // refused before its first read takes any lock. The writer's file is checked at
    // start; a reader opened while the directory is read-only lands here.
    if sharing == Sharing::Exclusive && conn.is_readonly(c"main")? {
        return Err(Fail::OpenedReadOnly(path.to_owned()));
    }
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if writer {
        // WAL is a property of the file: set once, kept across opens.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Fail::Store(StoreError::Unavailable(format!(
                "journal_mode is {mode}, WAL is required"
            ))));
        }
    }
    // FULL: in WAL mode every commit fsyncs the log, so an acknowledged command
    // survives a power loss too, not only a process crash (docs/sqlite.md).
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Every statement of the append path is cached: re-preparing them was a fifth
    // of the writer thread's time. Room for all the adapter's statements.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if writer {
        // The pages appends touch (the last leaf of each household in every table and
        // index an append writes) stay in the writer's cache instead of being read from
        // the file again: with SQLite's default 2 MiB the writer read about 8 pages per
        // append back (docs/sqlite.md, "The writer's page cache"; issue 20).
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    } else {
        conn.pragma_update(None, "query_only", "ON")?;
    }
    Ok(conn)
}

/// Applies the migrations this file lacks. Foreign keys are off while they run (a
/// migration may rebuild a table others refer to, which SQLite can only do by
/// swapping it) and checked before each commits.
fn migrate(conn: &mut Connection) -> Result<(), Fail> {
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let migrated = apply_migrations(conn);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrated
}

fn apply_migrations(conn: &mut Connection) -> Result<(), Fail> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if applied > MIGRATIONS.len() {
            return Err(Fail::corrupt(format!(
                "the database has schema version {applied}, this build knows up to {}",
                MIGRATIONS.len()
            )));
        }
        let Some(sql) = MIGRATIONS.get(applied) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        let broken: i64 =
            tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        if broken > 0 {
            return Err(Fail::corrupt(format!(
                "migration {} left {broken} rows whose foreign keys point nowhere",
                applied + 1
            )));
        }
        tx.pragma_update(None, "user_version", applied + 1)?;
        tx.commit()?;
    }
}

/// Microseconds since the epoch: the stored form of every timestamp.
pub(crate) fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(v: i64) -> Result<Timestamp, Fail> {
    chrono::DateTime::from_timestamp_micros(v)
        .ok_or_else(|| Fail::corrupt(format!("timestamp {v} µs is out of range")))
}

pub(crate) fn now_micros() -> i64 {
    micros(chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

    use super::*;

    #[test]
    fn a_writing_connection_keeps_a_larger_page_cache_than_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        let cache = |conn: &Connection| -> i64 {
            conn.pragma_query_value(None, "cache_size", |r| r.get(0))
                .unwrap()
        };
        let writer = connect(&path, true, Sharing::Shared).unwrap();
        assert_eq!(cache(&writer), -WRITER_CACHE_KIB);
        let reader = connect(&path, false, Sharing::Shared).unwrap();
        assert!(cache(&reader) > -WRITER_CACHE_KIB, "{}", cache(&reader));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_past_the_limit_wait_for_a_turn_instead_of_opening_connections() {
        use std::sync::Condvar;
        use std::time::Instant;
        const READS: usize = 4 * MAX_READS;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("reads.db"), Sharing::Exclusive).unwrap();
        // Given: every read, once running, holds its connection until the gate opens.
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        /// Opens the gate when dropped, so a failed assertion does not leave blocking
        /// threads waiting (the runtime waits for them on shutdown).
        struct Opens(Arc<(Mutex<bool>, Condvar)>);
        impl Drop for Opens {
            fn drop(&mut self) {
                *self.0.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
                self.0.1.notify_all();
            }
        }
        let opens = Opens(Arc::clone(&gate));
        let (entered, entries) = mpsc::channel::<()>();
        let reads: Vec<_> = (0..READS)
            .map(|_| {
                let (db, gate, entered) = (Arc::clone(&db), Arc::clone(&gate), entered.clone());
                tokio::spawn(async move {
                    db.read(move |conn| {
                        entered.send(()).unwrap();
                        let (open, opened) = &*gate;
                        let mut open = open.lock().unwrap();
                        while !*open {
                            open = opened.wait(open).unwrap();
                        }
                        Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?)
                    })
                    .await
                })
            })
            .collect();
        // When: four times the limit are asked for at once.
        // Then: the limit runs, the rest wait for a turn (without a connection).
        for _ in 0..MAX_READS {
            entries.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while db.reads.waiting.load(Ordering::Relaxed) < READS - MAX_READS {
            assert!(
                Instant::now() < deadline,
                "{} reads running, {} waiting; expected {MAX_READS} and {}",
                db.reads.running.load(Ordering::Relaxed),
                db.reads.waiting.load(Ordering::Relaxed),
                READS - MAX_READS
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(db.reads.running.load(Ordering::Relaxed), MAX_READS);
        // And: once the gate opens every read gets its answer, never more than the
        // limit at once.
        drop(opens);
        for read in reads {
            assert_eq!(read.await.unwrap().unwrap(), 1);
        }
        assert_eq!(db.reads.peak.load(Ordering::Relaxed), MAX_READS);
        assert!(db.idle().len() <= IDLE_READERS);
    }
}

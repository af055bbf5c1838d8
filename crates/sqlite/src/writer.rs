//! The writer thread, and group commit of appends (docs/sqlite.md, "Group commit").
//!
//! One std thread owns the file's only writer connection and takes jobs from an
//! unbounded channel, in queue order. A job is an append or any other write (a
//! snapshot, a job mark, the directory). Async callers send their job and await a
//! oneshot answer; SQLite calls block, so this is a plain blocking loop rather than
//! the async batchers of PostgreSQL (crates/postgres/src/batch.rs), with the same
//! semantics:
//!
//! - **A batch is whatever is queued.** When the writer takes an append it also takes
//!   every append queued behind it, up to [`MAX_BATCH`] (no timer, no artificial
//!   delay: a batch is what arrived while the previous job was running), and runs them
//!   in ONE `BEGIN IMMEDIATE` transaction, in queue order, then one COMMIT. With WAL
//!   and `synchronous=FULL` the COMMIT is what fsyncs the log, so a batch pays one
//!   fsync, not one per append.
//! - **A refused append is refused alone.** An append first checks everything that
//!   can refuse it without writing (its command id, its stream's version, its events'
//!   order, every row serialized: `store::append_one`); refused there, it has written
//!   nothing and the appends after it go on in the same transaction. One that fails
//!   after it began writing (a constraint the checks cannot see, such as a job id
//!   already taken, or a failed write) rolls the whole transaction back, and the batch
//!   runs again without it: nothing of it remains. A repeated command id is not a
//!   failure: the append reads the stored outcome inside the transaction (also one
//!   written earlier in the same batch) and answers `Appended::Duplicate`, writing
//!   nothing. There are no savepoints: one per append made SQLite copy every page an
//!   append touched into its statement journal first (docs/sqlite.md, "Group commit").
//! - **Answers after COMMIT.** Every caller gets its answer (committed, duplicate or
//!   refused) only once COMMIT has returned. If BEGIN, a rollback or COMMIT fails (or
//!   the batch panics), every append of the batch gets
//!   `StoreError::Unavailable`: nothing of it is reported as written, and the open
//!   transaction is rolled back.
//! - **Order.** One thread, one connection, queue order: a household's appends keep
//!   their order within a batch and across batches, so `seq` stays gap-free and
//!   commit-ordered per household.
//! - **Doorbell.** After COMMIT, before the answers, one `FeedSignal::Committed` per
//!   household that moved in the batch, with its highest `seq`.
//! - **Other writes run alone**, as their own transactions, between batches: a write
//!   queued behind appends ends the batch being gathered and runs right after it, so
//!   nothing interleaves with a batch's transaction and queue order holds.
//!
//! The thread ends when the [`crate::db::Db`] that started it is dropped (which closes
//! the channel) after finishing the jobs already queued.

use crate::checkpoint::CheckpointCounters;
use crate::db::write_hint;
use crate::store::{Refusal, append_one};
use hearth_core::HouseholdId;
use hearth_core::ports::{Append, Appended, FeedSignal, StoreError};
use rusqlite::{Connection, TransactionBehavior};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use tokio::sync::{broadcast, oneshot};

/// The most appends in one transaction.
pub(crate) const MAX_BATCH: usize = 64;

/// Any write other than an append: runs alone on the writer connection.
pub(crate) type WriteFn = Box<dyn FnOnce(&mut Connection) + Send>;

/// What a caller's append gets back.
pub(crate) type Reply = oneshot::Sender<Result<Appended, StoreError>>;

/// One job for the writer thread.
pub(crate) enum Job {
    /// Group-committed with the appends queued behind it.
    Append { append: Box<Append>, reply: Reply },
    /// Run alone, between batches.
    Write(WriteFn),
}

/// Counts of what the writer did since the file was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Batch transactions begun (committed or not).
    pub batches: u64,
    /// Appends in them.
    pub appends: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    appends: AtomicU64,
}

impl Counters {
    pub(crate) fn get(&self) -> BatchStats {
        BatchStats {
            batches: self.batches.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
        }
    }
}

/// Starts the writer thread on `conn`; returns its queue and its handle.
pub(crate) fn start(
    conn: Connection,
    doorbell: broadcast::Sender<FeedSignal>,
    counters: Arc<Counters>,
    checkpoints: Arc<CheckpointCounters>,
) -> Result<(mpsc::Sender<Job>, JoinHandle<()>), StoreError> {
    let (queue, jobs) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("hearth-sqlite-writer".into())
        .spawn(move || run(conn, &jobs, &doorbell, &counters, &checkpoints))
        .map_err(|e| StoreError::Unavailable(format!("cannot start the sqlite writer: {e}")))?;
    Ok((queue, handle))
}

/// The writer loop: one job at a time; an append takes the appends queued behind it.
fn run(
    mut conn: Connection,
    jobs: &mpsc::Receiver<Job>,
    doorbell: &broadcast::Sender<FeedSignal>,
    counters: &Counters,
    checkpoints: &CheckpointCounters,
) {
    let mut batch: Vec<(Append, Reply)> = Vec::with_capacity(MAX_BATCH);
    let mut next = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(mpsc::RecvError) => return, // the Db was dropped
            },
        };
        match job {
            Job::Write(write) => run_write(&mut conn, write),
            Job::Append { append, reply } => {
                batch.push((*append, reply));
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(Job::Append { append, reply }) => batch.push((*append, reply)),
                        Ok(write) => {
                            // Runs after this batch has committed.
                            next = Some(write);
                            break;
                        }
                        Err(_) => break, // nothing more queued (or the Db was dropped)
                    }
                }
                counters.batches.fetch_add(1, Ordering::Relaxed);
                counters
                    .appends
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                commit_batch(&mut conn, &mut batch, doorbell);
                // Between batches, never inside one: the log's restart, if asked for.
                checkpoints.restart_if_wanted(&conn);
            }
        }
    }
}

/// Runs one write alone. A panic in it is contained: its caller's answer is dropped
/// (it gets `Unavailable`), any transaction it left open is rolled back, and the
/// writer goes on.
fn run_write(conn: &mut Connection, write: WriteFn) {
    if catch_unwind(AssertUnwindSafe(|| write(conn))).is_err() {
        roll_back_leftover(conn);
    }
}

fn roll_back_leftover(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// Runs `batch` (emptying it) as one transaction, rings the doorbell, answers.
fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<(Append, Reply)>,
    doorbell: &broadcast::Sender<FeedSignal>,
) {
    let (appends, replies): (Vec<Append>, Vec<Reply>) = batch.drain(..).unzip();
    let answers = match catch_unwind(AssertUnwindSafe(|| run_batch(conn, &appends))) {
        Ok(Ok(answers)) => answers,
        Ok(Err(message)) => {
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable(message.clone())));
            }
            return;
        }
        Err(_) => {
            roll_back_leftover(conn);
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable(
                    "the sqlite writer panicked in this batch; nothing of it was committed".into(),
                )));
            }
            return;
        }
    };
    // Rung after COMMIT and before the answers; no receiver is not an error.
    for (tenant, seq) in heads(&answers) {
        let _ = doorbell.send(FeedSignal::Committed { tenant, seq });
    }
    for (reply, answer) in replies.into_iter().zip(answers) {
        // A caller that stopped waiting is not an error: its append is committed.
        let _ = reply.send(answer);
    }
}

/// The highest `seq` of every household that moved, in order of first appearance.
fn heads(answers: &[Result<Appended, StoreError>]) -> Vec<(HouseholdId, u64)> {
    let mut heads: Vec<(HouseholdId, u64)> = Vec::new();
    for answer in answers {
        let Ok(Appended::Committed { events, .. }) = answer else {
            continue;
        };
        let Some(last) = events.last() else { continue };
        match heads.iter_mut().find(|(tenant, _)| *tenant == last.tenant) {
            Some((_, seq)) => *seq = (*seq).max(last.seq),
            None => heads.push((last.tenant, last.seq)),
        }
    }
    heads
}

/// One transaction for the whole batch. An append refused before it wrote anything is
/// answered and the others go on; one that failed after writing part of it (rare: a
/// constraint the append's checks cannot see, or a failed write) makes the whole
/// transaction roll back, and the batch runs again without it, so nothing of it
/// remains. Every pass leaves out one more append, so a batch runs at most
/// `appends.len() + 1` times. `Err` means no append of the batch may be reported as
/// written (the transaction was rolled back when it dropped, or its COMMIT failed).
fn run_batch(
    conn: &mut Connection,
    appends: &[Append],
) -> Result<Vec<Result<Appended, StoreError>>, String> {
    let fatal = |what: &str, e: rusqlite::Error| format!("sqlite {what}: {e}{}", write_hint(&e));
    // The appends that failed midway in an earlier pass, with their answers.
    let mut left_out: Vec<Option<StoreError>> = appends.iter().map(|_| None).collect();
    'pass: loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| fatal("begin", e))?;
        let mut answers = Vec::with_capacity(appends.len());
        for (i, append) in appends.iter().enumerate() {
            if let Some(error) = &left_out[i] {
                answers.push(Err(error.clone()));
                continue;
            }
            let outcome = append_one(&tx, append);
            if tx.is_autocommit() {
                // SQLite may roll a transaction back itself on some errors (I/O, a
                // full disk): what ran before is gone and what followed would commit
                // statement by statement. The batch is given up.
                return Err(
                    "sqlite ended the batch's transaction after an error; nothing of the \
                     batch is reported as written"
                        .into(),
                );
            }
            match outcome {
                Ok(appended) => answers.push(Ok(appended)),
                Err(Refusal::Before(refused)) => answers.push(Err(refused.into())),
                Err(Refusal::Midway(failed)) => {
                    // The rollback takes back half an append and the appends before
                    // it; they run again in the next pass.
                    tx.rollback().map_err(|e| fatal("rollback", e))?;
                    left_out[i] = Some(failed.into());
                    continue 'pass;
                }
            }
        }
        tx.commit().map_err(|e| fatal("commit", e))?;
        return Ok(answers);
    }
}

//! Application-level group commit of appends (docs/postgres.md, "Group commit").
//!
//! `PgEventStore::append` prepares its statement and parameters in the caller's
//! task and queues them to a batcher. A batcher takes whatever is queued (up to
//! `max_batch`; no artificial delay: a batch is whatever arrived while the
//! previous one was committing) and runs it as ONE transaction on one pooled
//! connection, so the commit and its WAL flush are paid once per batch. Each
//! append keeps its own statements and its own tenant: `set_config('app.tenant_id',
//! household, true)` right before its statement, so RLS applies per append.
//!
//! Two ways to run a batch:
//!
//! 1. **Optimistic** (one round trip): `BEGIN`, then per append `set_config` and
//!    its statement, then `COMMIT`, all pipelined. If every statement succeeded and
//!    COMMIT returned, the batch is durable.
//! 2. **With savepoints**, only when an append of the optimistic attempt was
//!    refused (duplicate command id, version conflict, any database error): the
//!    server turned the pipelined COMMIT into a rollback (nothing of the batch was
//!    written), and the batch is run again, this time with a `SAVEPOINT` around
//!    each append. A refused append is rolled back to its savepoint (nothing of it
//!    remains) and the others go on; COMMIT is sent once every append has its
//!    answer.
//!
//! Callers are answered only after COMMIT returned; if COMMIT (or the connection)
//! fails, every append of the batch gets `StoreError::Unavailable`. Appends are
//! ordered by household before running (stable: a household's appends keep their
//! queue order), so every batch takes household row locks in the same order and
//! batchers of any number of processes cannot deadlock each other. The feed's
//! doorbell gets one message per committed batch.

use crate::sql::{SET_TENANT, describe};
use deadpool_postgres::Pool;
use hearth_core::HouseholdId;
use hearth_core::ports::StoreError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

/// Parameters of one append's statement, owned so they can cross to the batcher.
pub(crate) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// What a committed batch answers for one append.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The statement ran and the batch committed; its row, if it returned one.
    Done(Option<Row>),
    /// The statement raised (its savepoint was rolled back: nothing of it remains);
    /// the rest of the batch committed.
    Refused(tokio_postgres::Error),
}

/// One append queued to a batcher.
pub(crate) struct Request {
    pub tenant: HouseholdId,
    pub sql: &'static str,
    pub params: Params,
    /// Ring the doorbell with the `bigint` in column 0 of the row (the new head).
    pub rings: bool,
    pub reply: oneshot::Sender<Result<Answer, StoreError>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("tenant", &self.tenant)
            .field("params", &self.params.len())
            .finish_non_exhaustive()
    }
}

/// How appends are batched: see [`crate::PgEventStore::with_batching`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// Batchers running in parallel on one queue, each with one pooled connection
    /// while it runs a batch.
    pub batchers: usize,
    /// At most this many appends per transaction (clamped to 1..=64: with
    /// savepoints each append is a subtransaction, and PostgreSQL caches 64 per
    /// backend before every snapshot gets slower).
    pub max_batch: usize,
    /// The doorbell rings at most once per this interval, for every household that
    /// moved meanwhile (one NOTIFY transaction, not one per batch). Rooms that were
    /// handed a commit directly (this node's members' commands) do not wait for it;
    /// other nodes, and commits of other dispatchers such as the fulfilment
    /// executor, may wait up to this long more. Zero: ring after every batch.
    pub doorbell_pace: std::time::Duration,
}

impl Default for Batching {
    /// Measured on the 2-core benchmark machine (BENCHMARKS.md).
    fn default() -> Self {
        Self {
            batchers: 2,
            max_batch: 32,
            doorbell_pace: std::time::Duration::from_millis(2),
        }
    }
}

/// Counts of what the batchers did since the store was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Batch transactions run (committed or not).
    pub batches: u64,
    /// Appends in them.
    pub appends: u64,
    /// Batches run a second time with savepoints because an append was refused.
    pub reruns: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    appends: AtomicU64,
    reruns: AtomicU64,
}

impl Counters {
    pub(crate) fn get(&self) -> BatchStats {
        BatchStats {
            batches: self.batches.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
            reruns: self.reruns.load(Ordering::Relaxed),
        }
    }
}

/// The most appends in one transaction, whatever is configured.
const MAX_BATCH: usize = 64;

/// Starts the batchers on one shared queue and returns it.
pub(crate) fn start(
    pool: &Pool,
    batching: Batching,
    doorbell: &mpsc::UnboundedSender<Vec<(HouseholdId, u64)>>,
    counters: &Arc<Counters>,
) -> mpsc::UnboundedSender<Request> {
    let max_batch = batching.max_batch.clamp(1, MAX_BATCH);
    let (queue, requests) = mpsc::unbounded_channel();
    let requests = Arc::new(Mutex::new(requests));
    for _ in 0..batching.batchers.max(1) {
        tokio::spawn(run_batcher(
            pool.clone(),
            requests.clone(),
            doorbell.clone(),
            counters.clone(),
            max_batch,
        ));
    }
    queue
}

/// One batcher: waits for its turn at the queue, takes what is there (at least one
/// append, at most `max_batch`), lets the next batcher wait at the queue while it
/// runs the batch.
async fn run_batcher(
    pool: Pool,
    requests: Arc<Mutex<mpsc::UnboundedReceiver<Request>>>,
    doorbell: mpsc::UnboundedSender<Vec<(HouseholdId, u64)>>,
    counters: Arc<Counters>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        let received = {
            let mut queue = requests.lock().await;
            queue.recv_many(&mut batch, max_batch).await
        };
        if received == 0 {
            return; // the store was dropped
        }
        // Stable: a household's appends keep their queue order (consecutive seqs).
        batch.sort_by_key(|r: &Request| r.tenant);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .appends
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let result = run_batch(&pool, &batch, &counters).await;
        let requests = batch.drain(..);
        match result {
            Ok(answers) => {
                let mut heads = Vec::new();
                for (request, answer) in requests.as_slice().iter().zip(&answers) {
                    if let (true, Answer::Done(Some(row))) = (request.rings, answer)
                        && let Ok(seq) = row.try_get::<_, i64>(0)
                        && let Ok(seq) = u64::try_from(seq)
                    {
                        heads.push((request.tenant, seq));
                    }
                }
                if !heads.is_empty() {
                    // Rung after commit, outside the transaction: see `ring_doorbell`.
                    let _ = doorbell.send(heads);
                }
                for (request, answer) in requests.zip(answers) {
                    let _ = request.reply.send(Ok(answer));
                }
            }
            Err(message) => {
                for request in requests {
                    let _ = request
                        .reply
                        .send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}

type Step<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send + 'a>>;

/// Runs `steps` pipelined on one connection: tokio-postgres sends a request when its
/// future is first polled, so they are polled in order (the wire order is the
/// statement order), then all awaited.
async fn pipeline(steps: Vec<Step<'_>>) -> Vec<Result<Option<Row>, tokio_postgres::Error>> {
    let mut steps: Vec<_> = steps.into_iter().map(futures::future::maybe_done).collect();
    futures::future::poll_fn(|cx| {
        let mut done = true;
        for step in steps.iter_mut() {
            if Pin::new(step).poll(cx).is_pending() {
                done = false;
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    steps
        .iter_mut()
        .filter_map(|step| Pin::new(step).take_output())
        .collect()
}

/// Why the batch failed as a whole (nothing of it was committed, or the commit's
/// fate is unknown): every append gets it as `Unavailable`.
fn fatal(what: &str, e: &tokio_postgres::Error) -> String {
    format!("{what}: {}", describe(e))
}

fn exec<'a>(client: &'a tokio_postgres::Client, sql: &'a str) -> Step<'a> {
    Box::pin(async move { client.batch_execute(sql).await.map(|()| None) })
}

fn query<'a>(
    client: &'a tokio_postgres::Client,
    statement: &'a Statement,
    params: &'a [&'a (dyn ToSql + Sync)],
) -> Step<'a> {
    Box::pin(async move { client.query_opt(statement, params).await })
}

fn set_tenant<'a>(
    client: &'a tokio_postgres::Client,
    statement: &'a Statement,
    tenant: &'a [&'a (dyn ToSql + Sync); 1],
) -> Step<'a> {
    Box::pin(async move { client.execute(statement, tenant).await.map(|_| None) })
}

/// Runs one batch; `Err` means no append of it may be reported as written.
async fn run_batch(
    pool: &Pool,
    batch: &[Request],
    counters: &Counters,
) -> Result<Vec<Answer>, String> {
    let client = pool
        .get()
        .await
        .map_err(|e| format!("no connection: {e}"))?;
    let result = run_on(&client, batch, counters).await;
    if result.is_err() && client.batch_execute("ROLLBACK").await.is_err() {
        // The connection's state is unknown: do not hand it back to the pool.
        drop(deadpool_postgres::Object::take(client));
    }
    result
}

async fn run_on(
    client: &deadpool_postgres::ClientWrapper,
    batch: &[Request],
    counters: &Counters,
) -> Result<Vec<Answer>, String> {
    let set = client
        .prepare_cached(SET_TENANT)
        .await
        .map_err(|e| fatal("prepare", &e))?;
    let mut statements: Vec<(&'static str, Statement)> = Vec::new();
    for request in batch {
        if !statements.iter().any(|(sql, _)| *sql == request.sql) {
            let statement = client
                .prepare_cached(request.sql)
                .await
                .map_err(|e| fatal("prepare", &e))?;
            statements.push((request.sql, statement));
        }
    }
    let mut statement_of = Vec::with_capacity(batch.len());
    for request in batch {
        let Some((_, statement)) = statements.iter().find(|(sql, _)| *sql == request.sql) else {
            return Err("statement not prepared".into());
        };
        statement_of.push(statement);
    }
    let tenants: Vec<String> = batch.iter().map(|r| r.tenant.to_string()).collect();
    let tenant_params: Vec<[&(dyn ToSql + Sync); 1]> =
        tenants.iter().map(|t| [t as &(dyn ToSql + Sync)]).collect();
    let params: Vec<Vec<&(dyn ToSql + Sync)>> = batch
        .iter()
        .map(|r| {
            r.params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect()
        })
        .collect();

    // 1. Optimistic: one transaction, one round trip, no savepoints.
    let mut steps = Vec::with_capacity(2 + 2 * batch.len());
    steps.push(exec(client, "BEGIN"));
    for i in 0..batch.len() {
        steps.push(set_tenant(client, &set, &tenant_params[i]));
        steps.push(query(client, statement_of[i], &params[i]));
    }
    steps.push(exec(client, "COMMIT"));
    let mut results = pipeline(steps).await;
    if results.len() != 2 + 2 * batch.len() {
        return Err("pipeline lost a result".into());
    }
    let committed = results.pop();
    let mut results = results.into_iter();
    if let Some(Err(e)) = results.next() {
        return Err(fatal("begin", &e));
    }
    let mut answers = Vec::with_capacity(batch.len());
    let mut refused = false;
    while let (Some(set), Some(statement)) = (results.next(), results.next()) {
        for result in [&set, &statement] {
            if let Err(e) = result
                && e.as_db_error().is_none()
            {
                return Err(fatal("append", e));
            }
        }
        match (set, statement) {
            (Ok(_), Ok(row)) => answers.push(Answer::Done(row)),
            _ => refused = true,
        }
    }
    if !refused {
        return match committed {
            Some(Ok(_)) => Ok(answers),
            Some(Err(e)) => Err(fatal("commit", &e)),
            None => Err("pipeline lost the commit".into()),
        };
    }
    // A statement raised, so the server rolled the whole transaction back (COMMIT
    // of an aborted transaction is a rollback). Run it again with savepoints.
    if let Some(Err(e)) = committed
        && e.as_db_error().is_none()
    {
        return Err(fatal("rollback", &e));
    }

    // 2. With a savepoint per append: a refused append is rolled back alone.
    counters.reruns.fetch_add(1, Ordering::Relaxed);
    let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
    let mut first = "BEGIN";
    loop {
        let start = answers.len();
        let mut steps = Vec::with_capacity(1 + 4 * (batch.len() - start));
        steps.push(exec(client, first));
        for i in start..batch.len() {
            steps.push(exec(client, "SAVEPOINT hearth_append"));
            steps.push(set_tenant(client, &set, &tenant_params[i]));
            steps.push(query(client, statement_of[i], &params[i]));
            steps.push(exec(client, "RELEASE SAVEPOINT hearth_append"));
        }
        let mut results = pipeline(steps).await.into_iter();
        match results.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(fatal(first, &e)),
            None => return Err("pipeline lost a result".into()),
        }
        let mut refusal = false;
        for _ in start..batch.len() {
            let (Some(savepoint), Some(set), Some(statement), Some(release)) = (
                results.next(),
                results.next(),
                results.next(),
                results.next(),
            ) else {
                return Err("pipeline lost a result".into());
            };
            savepoint.map_err(|e| fatal("savepoint", &e))?;
            set.map_err(|e| fatal("set_config", &e))?;
            match statement {
                Ok(row) => {
                    release.map_err(|e| fatal("release savepoint", &e))?;
                    answers.push(Answer::Done(row));
                }
                Err(e) if e.as_db_error().is_some() => {
                    // Everything after it in this pipeline failed as "in failed
                    // transaction": roll back to its savepoint, go on after it.
                    answers.push(Answer::Refused(e));
                    refusal = true;
                    break;
                }
                Err(e) => return Err(fatal("append", &e)),
            }
        }
        if !refusal {
            break;
        }
        first = "ROLLBACK TO SAVEPOINT hearth_append; RELEASE SAVEPOINT hearth_append";
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| fatal("commit", &e))?;
    Ok(answers)
}

//! Application-level group commit of appends (docs/postgres.md, "Group commit").
//!
//! `PgEventStore::append` checks and encodes the decision in the caller's task and
//! queues it to a batcher. A batcher takes whatever is queued (up to `max_batch`;
//! no artificial delay: a batch is whatever arrived while the previous one was
//! committing) and writes it with ONE call of the `hearth_append` function
//! (migration 0002) on one pooled connection, in one implicit transaction, so the
//! statement, the commit and its WAL flush are paid once per batch. The function
//! sets the tenant before each append (`set_config('app.tenant_id', household,
//! true)`), so RLS checks each append against its own household, and answers each
//! append on its own: written (the household's new head), a repeated command id,
//! or a version conflict. Those refusals write nothing and do not disturb the rest
//! of the batch.
//!
//! If the call raises (an error the function's checks do not turn into an answer:
//! a value the tables refuse, or a rejected command racing an accepted one with the
//! same id), nothing of the batch was written, and the batcher runs the batch again
//! as one call per append, each in its own transaction, pipelined: the failing
//! append gets its error, the others are written.
//!
//! Callers are answered only after the commit: the server commits the implicit
//! transaction before it reports ready for the next query, which is what the query
//! waits for. If the connection fails before that, the appends it carried get
//! `StoreError::Unavailable` (their fate is unknown). Appends are ordered by
//! household before running (stable: a household's appends keep their queue order),
//! so every batch takes household row locks in the same order and batchers of any
//! number of processes cannot deadlock each other. The feed's doorbell gets one
//! message per committed batch.

use crate::sql::describe;
use deadpool_postgres::Pool;
use hearth_core::ports::StoreError;
use hearth_core::{HouseholdId, Timestamp};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// The one statement of a batch (see migrations 0002 and 0003 for what it answers).
const APPEND_BATCH: &str = "SELECT hearth_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                            $11, $12, $13, $14, $15, $16, $17, $18)";

/// One append, in the shape `hearth_append` takes it.
#[derive(Debug)]
pub(crate) struct AppendRow {
    pub tenant: HouseholdId,
    pub command_id: Uuid,
    pub command_type: String,
    pub command_payload: Value,
    pub command_metadata: Value,
    pub write: Write,
}

/// What an append writes besides its command id.
#[derive(Debug)]
pub(crate) enum Write {
    /// The command was rejected: recorded with this outcome, nothing else.
    Rejected(Value),
    /// The command was accepted: these events, at `expected + 1`, `+ 2`, ...
    Events {
        domain: &'static str,
        aggregate: Uuid,
        expected: i32,
        events: Vec<EventRow>,
    },
}

/// One event of an append, its `{type, payload}` split into columns.
#[derive(Debug)]
pub(crate) struct EventRow {
    pub id: Uuid,
    pub kind: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: Value,
    pub created_at: Timestamp,
    pub requires_job: bool,
    /// The outbox job written with the event, if it needs durable work.
    pub job: Option<&'static str>,
}

impl AppendRow {
    fn events(&self) -> &[EventRow] {
        match &self.write {
            Write::Rejected(_) => &[],
            Write::Events { events, .. } => events,
        }
    }
}

/// The committed answer for one append.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Written. For accepted commands: the household's `last_seq` after it.
    Written(u64),
    /// The command id was already recorded: nothing written.
    Duplicate,
    /// The order was not at the expected version: nothing written.
    VersionConflict,
    /// Run alone, the append raised this error: nothing of it was written.
    Refused(tokio_postgres::Error),
}

/// One append queued to a batcher.
pub(crate) struct Request {
    pub append: AppendRow,
    pub reply: oneshot::Sender<Result<Answer, StoreError>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("tenant", &self.append.tenant)
            .field("command_id", &self.append.command_id)
            .finish_non_exhaustive()
    }
}

/// How appends are batched: see [`crate::PgEventStore::with_batching`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// Batchers running in parallel on one queue, each with one pooled connection
    /// while it runs a batch.
    pub batchers: usize,
    /// At most this many appends per call (clamped to 1..=64).
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
    /// Batches whose call raised and that were run again one call per append.
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

/// The most appends in one call, whatever is configured.
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
        batch.sort_by_key(|r: &Request| r.append.tenant);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .appends
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let appends: Vec<&AppendRow> = batch.iter().map(|r| &r.append).collect();
        let result = run_batch(&pool, &appends, &counters).await;
        let requests = batch.drain(..);
        match result {
            Ok(answers) => {
                let heads: Vec<(HouseholdId, u64)> = requests
                    .as_slice()
                    .iter()
                    .zip(&answers)
                    .filter_map(|(request, answer)| match answer {
                        Ok(Answer::Written(head)) if !request.append.events().is_empty() => {
                            Some((request.append.tenant, *head))
                        }
                        _ => None,
                    })
                    .collect();
                if !heads.is_empty() {
                    // Rung after commit, outside the transaction: see `ring_doorbell`.
                    let _ = doorbell.send(heads);
                }
                for (request, answer) in requests.zip(answers) {
                    let _ = request.reply.send(answer);
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

/// The batch as `hearth_append`'s eighteen parallel arrays, borrowed from it.
struct Columns<'a> {
    tenants: Vec<Uuid>,
    command_ids: Vec<Uuid>,
    command_types: Vec<&'a str>,
    command_payloads: Vec<&'a Value>,
    command_metadata: Vec<&'a Value>,
    outcomes: Vec<Option<&'a Value>>,
    domains: Vec<Option<&'static str>>,
    aggregates: Vec<Option<Uuid>>,
    expected: Vec<i32>,
    counts: Vec<i32>,
    event_ids: Vec<Uuid>,
    event_types: Vec<&'a str>,
    event_schemas: Vec<i32>,
    event_payloads: Vec<&'a Value>,
    event_metadata: Vec<&'a Value>,
    event_created: Vec<Timestamp>,
    event_requires: Vec<bool>,
    job_kinds: Vec<Option<&'static str>>,
}

impl<'a> Columns<'a> {
    fn of(appends: &[&'a AppendRow]) -> Result<Self, String> {
        let n = appends.len();
        let events: usize = appends.iter().map(|a| a.events().len()).sum();
        let mut c = Columns {
            tenants: Vec::with_capacity(n),
            command_ids: Vec::with_capacity(n),
            command_types: Vec::with_capacity(n),
            command_payloads: Vec::with_capacity(n),
            command_metadata: Vec::with_capacity(n),
            outcomes: Vec::with_capacity(n),
            domains: Vec::with_capacity(n),
            aggregates: Vec::with_capacity(n),
            expected: Vec::with_capacity(n),
            counts: Vec::with_capacity(n),
            event_ids: Vec::with_capacity(events),
            event_types: Vec::with_capacity(events),
            event_schemas: Vec::with_capacity(events),
            event_payloads: Vec::with_capacity(events),
            event_metadata: Vec::with_capacity(events),
            event_created: Vec::with_capacity(events),
            event_requires: Vec::with_capacity(events),
            job_kinds: Vec::with_capacity(events),
        };
        for append in appends {
            c.tenants.push(append.tenant.0);
            c.command_ids.push(append.command_id);
            c.command_types.push(&append.command_type);
            c.command_payloads.push(&append.command_payload);
            c.command_metadata.push(&append.command_metadata);
            let (outcome, domain, aggregate, expected) = match &append.write {
                Write::Rejected(outcome) => (Some(outcome), None, None, 0),
                Write::Events {
                    domain,
                    aggregate,
                    expected,
                    ..
                } => (None, Some(*domain), Some(*aggregate), *expected),
            };
            c.outcomes.push(outcome);
            c.domains.push(domain);
            c.aggregates.push(aggregate);
            c.expected.push(expected);
            let events = append.events();
            c.counts
                .push(i32::try_from(events.len()).map_err(|_| "too many events in one append")?);
            for event in events {
                c.event_ids.push(event.id);
                c.event_types.push(&event.kind);
                c.event_schemas.push(event.schema_version);
                c.event_payloads.push(&event.payload);
                c.event_metadata.push(&event.metadata);
                c.event_created.push(event.created_at);
                c.event_requires.push(event.requires_job);
                c.job_kinds.push(event.job);
            }
        }
        Ok(c)
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 18] {
        [
            &self.tenants,
            &self.command_ids,
            &self.command_types,
            &self.command_payloads,
            &self.command_metadata,
            &self.outcomes,
            &self.domains,
            &self.aggregates,
            &self.expected,
            &self.counts,
            &self.event_ids,
            &self.event_types,
            &self.event_schemas,
            &self.event_payloads,
            &self.event_metadata,
            &self.event_created,
            &self.event_requires,
            &self.job_kinds,
        ]
    }
}

/// Why the batch failed as a whole (nothing of it was committed, or the commit's
/// fate is unknown): every append gets it as `Unavailable`.
fn fatal(what: &str, e: &tokio_postgres::Error) -> String {
    format!("{what}: {}", describe(e))
}

/// `hearth_append`'s answers, one per append.
fn answers(row: &tokio_postgres::Row, appends: usize) -> Result<Vec<Answer>, String> {
    let codes: Vec<i64> = row
        .try_get(0)
        .map_err(|e| fatal("hearth_append answered", &e))?;
    if codes.len() != appends {
        return Err(format!(
            "hearth_append answered {} appends of {appends}",
            codes.len()
        ));
    }
    codes
        .into_iter()
        .map(|code| match code {
            -1 => Ok(Answer::Duplicate),
            -2 => Ok(Answer::VersionConflict),
            head => u64::try_from(head)
                .map(Answer::Written)
                .map_err(|_| format!("hearth_append answered {head}")),
        })
        .collect()
}

type Call<'a> =
    Pin<Box<dyn Future<Output = Result<tokio_postgres::Row, tokio_postgres::Error>> + Send + 'a>>;

/// Runs `calls` pipelined on one connection: tokio-postgres sends a request when its
/// future is first polled, so they are polled in order (the wire order is the
/// call order), then all awaited.
async fn pipeline(calls: Vec<Call<'_>>) -> Vec<Result<tokio_postgres::Row, tokio_postgres::Error>> {
    let mut calls: Vec<_> = calls.into_iter().map(futures::future::maybe_done).collect();
    futures::future::poll_fn(|cx| {
        let mut done = true;
        for call in calls.iter_mut() {
            if Pin::new(call).poll(cx).is_pending() {
                done = false;
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    calls
        .iter_mut()
        .filter_map(|call| Pin::new(call).take_output())
        .collect()
}

/// Runs one batch. `Err`: no append of it may be reported as written.
async fn run_batch(
    pool: &Pool,
    batch: &[&AppendRow],
    counters: &Counters,
) -> Result<Vec<Result<Answer, StoreError>>, String> {
    let client = pool
        .get()
        .await
        .map_err(|e| format!("no connection: {e}"))?;
    let result = run_on(&client, batch, counters).await;
    // A connection that lost a call is in an unknown state: not back to the pool.
    let broken = match &result {
        Err(_) => true,
        Ok(answers) => answers
            .iter()
            .any(|a| matches!(a, Err(StoreError::Unavailable(_)))),
    };
    if broken && client.batch_execute("SELECT 1").await.is_err() {
        drop(deadpool_postgres::Object::take(client));
    }
    result
}

async fn run_on(
    client: &deadpool_postgres::ClientWrapper,
    batch: &[&AppendRow],
    counters: &Counters,
) -> Result<Vec<Result<Answer, StoreError>>, String> {
    let statement = client
        .prepare_cached(APPEND_BATCH)
        .await
        .map_err(|e| fatal("prepare", &e))?;
    let columns = Columns::of(batch)?;
    match client.query_one(&statement, &columns.params()).await {
        Ok(row) => return Ok(answers(&row, batch.len())?.into_iter().map(Ok).collect()),
        // The server rolled the call back: nothing of the batch was written.
        Err(e) if e.as_db_error().is_some() => {}
        Err(e) => return Err(fatal("append", &e)),
    }

    // One call per append, each its own transaction, pipelined: the append that
    // raised gets its error alone.
    counters.reruns.fetch_add(1, Ordering::Relaxed);
    let singles = batch
        .iter()
        .map(|append| Columns::of(std::slice::from_ref(append)))
        .collect::<Result<Vec<_>, _>>()?;
    let params: Vec<_> = singles.iter().map(Columns::params).collect();
    let calls = params
        .iter()
        .map(|params| call(client, &statement, params))
        .collect();
    Ok(pipeline(calls)
        .await
        .into_iter()
        .map(|result| match result {
            Ok(row) => match answers(&row, 1) {
                Ok(mut answer) => answer.pop().ok_or_else(|| "no answer".to_string()),
                Err(message) => Err(message),
            }
            .map_err(StoreError::Unavailable),
            Err(e) if e.as_db_error().is_some() => Ok(Answer::Refused(e)),
            Err(e) => Err(StoreError::Unavailable(fatal("append", &e))),
        })
        .collect())
}

fn call<'a>(
    client: &'a tokio_postgres::Client,
    statement: &'a Statement,
    params: &'a [&'a (dyn ToSql + Sync); 18],
) -> Call<'a> {
    Box::pin(client.query_one(statement, params))
}

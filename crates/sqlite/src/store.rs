//! The EventStore and EventFeed ports on SQLite.

use crate::checkpoint::CheckpointStats;
use crate::db::{Db, Fail, Sharing, from_micros, micros, now_micros};
use crate::directory::SqliteDirectory;
use crate::writer::BatchStats;
use async_trait::async_trait;
use hearth_core::ports::{
    Append, Appended, Decision, EventFeed, EventStore, FeedSignal, FeedStream, Job, JobKind,
    Loaded, Outbox, Snapshot, StoreError,
};
use hearth_core::{
    AggregateId, CommandEnvelope, CommandId, CommandOutcome, DomainId, EventEnvelope, EventId,
    HouseholdId,
};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::broadcast;
use uuid::Uuid;

/// The event log of every household, in one SQLite file.
///
/// Appends go to the file's writer thread, which group-commits the appends queued
/// together in one `BEGIN IMMEDIATE` transaction, one
/// fsync per batch (see `writer.rs`): per-household `seq` is gap-free and
/// commit-ordered, and an append is answered only after its batch committed.
/// Every statement names the household (`tenant_id`): SQLite has no row-level
/// security, so isolation is this adapter's job (docs/sqlite.md).
#[derive(Debug)]
pub struct SqliteEventStore {
    db: Arc<Db>,
}

impl SqliteEventStore {
    /// Opens (or creates) the store in the file at `path`, applies migrations, and
    /// returns it with the feed of its commits. Blocks briefly: call it at start-up.
    /// Other processes may open the file too ([`Sharing::Shared`]).
    pub fn open(path: impl AsRef<Path>) -> Result<(Arc<Self>, SqliteEventFeed), StoreError> {
        Self::open_with(path, Sharing::Shared)
    }

    /// [`Self::open`], saying whether other processes may open the file while this
    /// store has it: [`Sharing::Exclusive`] keeps them out, and keeps the WAL index in
    /// memory rather than in a mapped `-shm` file, so a data directory that turns
    /// read-only under the store fails writes instead of killing the process.
    pub fn open_with(
        path: impl AsRef<Path>,
        sharing: Sharing,
    ) -> Result<(Arc<Self>, SqliteEventFeed), StoreError> {
        let db = Db::open(path.as_ref(), sharing)?;
        let store = Arc::new(Self { db });
        let feed = store.feed();
        Ok((store, feed))
    }

    /// The feed of this store's commits (another handle on the same doorbell).
    pub fn feed(&self) -> SqliteEventFeed {
        SqliteEventFeed {
            doorbell: self.db.doorbell().clone(),
        }
    }

    /// How appends were grouped into transactions so far (for benchmarks, tests
    /// and diagnostics). Shared with the directory from [`Self::directory`], which
    /// uses the same writer but appends nothing.
    pub fn batch_stats(&self) -> BatchStats {
        self.db.batch_stats()
    }

    /// What the checkpointer did so far: how often it copied the log into the file,
    /// and how often it restarted a log past its limit (for benchmarks and tests).
    pub fn checkpoint_stats(&self) -> CheckpointStats {
        self.db.checkpoint_stats()
    }

    /// The directory kept in the same file, sharing this store's connections.
    pub fn directory(&self) -> SqliteDirectory {
        SqliteDirectory::from_db(Arc::clone(&self.db))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }
}

#[async_trait]
impl EventStore for SqliteEventStore {
    /// Group-committed by the writer thread; the doorbell is rung there, after
    /// the batch's commit.
    async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        self.db.append(append).await
    }

    async fn load(
        &self,
        tenant: HouseholdId,
        aggregate: AggregateId,
        snapshot_schema: u32,
    ) -> Result<Loaded, StoreError> {
        let loaded = self
            .db
            .read(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
                let snapshot = tx
                    .query_row(
                        "SELECT version, state FROM snapshots
                         WHERE tenant_id = ?1 AND domain = ?2 AND aggregate_id = ?3
                           AND schema_version = ?4",
                        params![
                            tenant.0,
                            aggregate.domain.name(),
                            aggregate.id,
                            snapshot_schema
                        ],
                        |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)),
                    )
                    .optional()?
                    .map(|(version, state)| {
                        Ok::<_, Fail>(Snapshot {
                            tenant,
                            aggregate,
                            version,
                            schema_version: snapshot_schema,
                            state: json(&state, "snapshot state")?,
                        })
                    })
                    .transpose()?;
                let after = snapshot.as_ref().map_or(0, |s| s.version);
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE tenant_id = ?1 AND domain = ?2 AND aggregate_id = ?3 AND version > ?4
                     ORDER BY version"
                ))?;
                let raw = stmt
                    .query_map(
                        params![tenant.0, aggregate.domain.name(), aggregate.id, after],
                        RawEvent::from_row,
                    )?
                    .collect::<Result<Vec<_>, _>>()?;
                let events = raw
                    .into_iter()
                    .map(|r| r.into_envelope(tenant))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Loaded { snapshot, events })
            })
            .await?;
        Ok(loaded)
    }

    async fn read_feed(
        &self,
        tenant: HouseholdId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let events = self
            .db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE tenant_id = ?1 AND seq > ?2
                     ORDER BY seq LIMIT ?3"
                ))?;
                let raw = stmt
                    .query_map(params![tenant.0, after, limit], RawEvent::from_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                raw.into_iter()
                    .map(|r| r.into_envelope(tenant))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(events)
    }

    async fn head(&self, tenant: HouseholdId) -> Result<u64, StoreError> {
        let head = self
            .db
            .read(move |conn| Ok(last_seq(conn, tenant)?.unwrap_or(0)))
            .await?;
        Ok(head)
    }

    async fn outcome(
        &self,
        tenant: HouseholdId,
        command_id: CommandId,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        let outcome = self
            .db
            .read(move |conn| stored_outcome(conn, tenant, command_id))
            .await?;
        Ok(outcome)
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.db
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let tenant = snapshot.tenant;
                let stream = stream_version(&tx, tenant, snapshot.aggregate)?;
                if snapshot.version > stream {
                    return Err(Fail::corrupt(format!(
                        "snapshot of {} at version {} is ahead of its stream ({stream})",
                        snapshot.aggregate, snapshot.version
                    )));
                }
                ensure_household(&tx, tenant)?;
                let state = serde_json::to_string(&snapshot.state)
                    .map_err(|e| Fail::corrupt(format!("snapshot state: {e}")))?;
                // Never regress: an older (or equal) version leaves the row as it is.
                tx.execute(
                    "INSERT INTO snapshots
                     (tenant_id, domain, aggregate_id, schema_version, version, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (tenant_id, domain, aggregate_id, schema_version) DO UPDATE
                     SET version = excluded.version, state = excluded.state
                     WHERE excluded.version > snapshots.version",
                    params![
                        tenant.0,
                        snapshot.aggregate.domain.name(),
                        snapshot.aggregate.id,
                        snapshot.schema_version,
                        snapshot.version,
                        state
                    ],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Outbox for SqliteEventStore {
    /// The one query that reads across households: the job relay's scan of the
    /// outbox. Nothing else in the adapter omits `tenant_id`.
    async fn pending_jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let jobs = self
            .db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT tenant_id, job_id, domain, aggregate_id, kind, command_id, created_at,
                            correlation_id, traceparent
                     FROM jobs WHERE started_at IS NULL ORDER BY job_no LIMIT ?1",
                )?;
                let raw = stmt
                    .query_map(params![limit], |r| {
                        Ok((
                            r.get::<_, Uuid>(0)?,
                            r.get::<_, Uuid>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Uuid>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, Uuid>(5)?,
                            r.get::<_, i64>(6)?,
                            r.get::<_, Option<Uuid>>(7)?,
                            r.get::<_, Option<String>>(8)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                raw.into_iter()
                    .map(|row| {
                        let (
                            tenant,
                            id,
                            domain,
                            aggregate,
                            kind,
                            command,
                            created,
                            correlation,
                            tp,
                        ) = row;
                        Ok(Job {
                            id: EventId(id),
                            tenant: HouseholdId(tenant),
                            aggregate: AggregateId::new(domain_named(&domain)?, aggregate),
                            kind: job_kind(&kind)?,
                            command_id: CommandId(command),
                            // A job recorded before correlation ids were kept (schema 5).
                            correlation_id: correlation.unwrap_or(command),
                            traceparent: tp,
                            created_at: from_micros(created)?,
                        })
                    })
                    .collect::<Result<Vec<_>, Fail>>()
            })
            .await?;
        Ok(jobs)
    }

    async fn mark_job_started(&self, tenant: HouseholdId, job: EventId) -> Result<(), StoreError> {
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE jobs SET started_at = ?3
                     WHERE tenant_id = ?1 AND job_id = ?2 AND started_at IS NULL",
                    params![tenant.0, job.0, now_micros()],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }
}

/// Why an append of a batch was not written.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Refused before it wrote anything (a version conflict, an event that does not
    /// continue its stream, a value that does not serialize, a failed read): the
    /// batch's transaction goes on without it.
    Before(Fail),
    /// Failed after writing part of it (a constraint the checks cannot see, such as a
    /// job id already taken, or a failed write): the transaction holds half an
    /// append and must be rolled back (writer.rs runs the batch again without it).
    Midway(Fail),
}

impl<E: Into<Fail>> From<E> for Refusal {
    /// A failure of the checks, before anything is written.
    fn from(e: E) -> Self {
        Refusal::Before(e.into())
    }
}

/// One append, on the writer connection inside its batch's transaction (writer.rs).
/// Commits nothing. First everything that can refuse it without writing (the command
/// id's outcome, the stream's version, the events' order, every row serialized), then
/// the writes; an error among the writes is [`Refusal::Midway`].
pub(crate) fn append_one(tx: &Connection, append: &Append) -> Result<Appended, Refusal> {
    let Append { command, decision } = append;
    let tenant = command.tenant;
    if let Some(outcome) = stored_outcome(tx, tenant, command.id)? {
        // A repeat (perhaps of an append earlier in this batch): nothing is written.
        return Ok(Appended::Duplicate(outcome));
    }
    let (aggregate, expected_version, new_events) = match decision {
        Decision::Rejected { code, message } => {
            let outcome = CommandOutcome::Rejected {
                code: code.clone(),
                message: message.clone(),
            };
            let row = CommandRow::new(command, "rejected", &outcome)?;
            write(|| {
                ensure_household(tx, tenant)?;
                row.insert(tx)
            })?;
            return Ok(Appended::Committed {
                events: Vec::new(),
                outcome,
            });
        }
        Decision::Events {
            aggregate,
            expected_version,
            events,
        } => (*aggregate, *expected_version, events),
    };
    if !new_events.is_empty() {
        let current = stream_version(tx, tenant, aggregate)?;
        if current != expected_version {
            return Err(StoreError::VersionConflict {
                aggregate,
                expected: expected_version,
            }
            .into());
        }
    }
    for (i, event) in new_events.iter().enumerate() {
        let want = u64::from(expected_version) + 1 + i as u64;
        if u64::from(event.version) != want || event.aggregate() != aggregate {
            return Err(Fail::corrupt(format!(
                "event {} has version {} for {}, expected {want} for {aggregate}",
                event.id,
                event.version,
                event.aggregate()
            ))
            .into());
        }
    }
    let count = u32::try_from(new_events.len())
        .map_err(|_| Fail::corrupt("more than u32::MAX events in one append"))?;
    let head = last_seq(tx, tenant)?.unwrap_or(0);
    let new_head = head + u64::from(count);
    let outcome = CommandOutcome::Accepted {
        seq: new_head,
        events: count,
    };
    let command_row = CommandRow::new(command, "accepted", &outcome)?;
    let mut committed = Vec::with_capacity(new_events.len());
    for (i, event) in new_events.iter().enumerate() {
        let mut envelope = EventEnvelope::committed(tenant, head + 1 + i as u64, event.clone());
        // The store keeps microseconds: answer with what a read will return.
        envelope.created_at = from_micros(micros(envelope.created_at))?;
        committed.push(envelope);
    }
    let rows = committed
        .iter()
        .map(|envelope| Ok((EventRow::new(envelope)?, Job::for_append(command, envelope))))
        .collect::<Result<Vec<_>, Fail>>()?;
    write(|| {
        ensure_household(tx, tenant)?;
        command_row.insert(tx)?;
        for (row, job) in &rows {
            row.insert(tx, command.id, aggregate, expected_version)?;
            if let Some(job) = job {
                insert_job(tx, job, row.envelope.seq)?;
            }
        }
        if count > 0 {
            tx.prepare_cached("UPDATE households SET last_seq = ?2 WHERE tenant_id = ?1")?
                .execute(params![tenant.0, new_head])?;
        }
        Ok(())
    })?;
    Ok(Appended::Committed {
        events: committed,
        outcome,
    })
}

/// Runs an append's writes: any failure leaves part of it written.
fn write(writes: impl FnOnce() -> Result<(), Fail>) -> Result<(), Refusal> {
    writes().map_err(Refusal::Midway)
}

fn ensure_household(tx: &Connection, tenant: HouseholdId) -> Result<(), Fail> {
    tx.prepare_cached(
        "INSERT INTO households (tenant_id) VALUES (?1) ON CONFLICT (tenant_id) DO NOTHING",
    )?
    .execute(params![tenant.0])?;
    Ok(())
}

fn last_seq(conn: &Connection, tenant: HouseholdId) -> Result<Option<u64>, Fail> {
    Ok(conn
        .prepare_cached("SELECT last_seq FROM households WHERE tenant_id = ?1")?
        .query_row(params![tenant.0], |r| r.get::<_, u64>(0))
        .optional()?)
}

fn stream_version(
    conn: &Connection,
    tenant: HouseholdId,
    aggregate: AggregateId,
) -> Result<u32, Fail> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(MAX(version), 0) FROM events
             WHERE tenant_id = ?1 AND domain = ?2 AND aggregate_id = ?3",
        )?
        .query_row(
            params![tenant.0, aggregate.domain.name(), aggregate.id],
            |r| r.get::<_, u32>(0),
        )?)
}

fn domain_named(name: &str) -> Result<DomainId, Fail> {
    DomainId::from_name(name).ok_or_else(|| Fail::corrupt(format!("unknown domain {name:?}")))
}

fn stored_outcome(
    conn: &Connection,
    tenant: HouseholdId,
    command: CommandId,
) -> Result<Option<CommandOutcome>, Fail> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT outcome FROM commands WHERE tenant_id = ?1 AND command_id = ?2")?
        .query_row(params![tenant.0, command.0], |r| r.get(0))
        .optional()?;
    stored
        .map(|s| {
            serde_json::from_str(&s)
                .map_err(|e| Fail::corrupt(format!("outcome of command {command}: {e}")))
        })
        .transpose()
}

/// A `commands` row, serialized before anything is written.
struct CommandRow<'a> {
    command: &'a CommandEnvelope,
    status: &'static str,
    kind: String,
    payload: Option<String>,
    metadata: String,
    outcome: String,
}

impl<'a> CommandRow<'a> {
    fn new(
        command: &'a CommandEnvelope,
        status: &'static str,
        outcome: &CommandOutcome,
    ) -> Result<Self, Fail> {
        let (kind, payload) = split_tagged(&command.command, "command")?;
        Ok(Self {
            command,
            status,
            kind,
            payload,
            metadata: to_json(&command.metadata, "command metadata")?,
            outcome: to_json(outcome, "command outcome")?,
        })
    }

    fn insert(&self, tx: &Connection) -> Result<(), Fail> {
        tx.prepare_cached(
            "INSERT INTO commands
             (tenant_id, command_id, type, payload, metadata, status, outcome, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            self.command.tenant.0,
            self.command.id.0,
            self.kind,
            self.payload,
            self.metadata,
            self.status,
            self.outcome,
            now_micros()
        ])?;
        Ok(())
    }
}

/// An `events` row, serialized before anything is written.
struct EventRow<'a> {
    envelope: &'a EventEnvelope,
    kind: String,
    payload: Option<String>,
    metadata: String,
}

impl<'a> EventRow<'a> {
    fn new(envelope: &'a EventEnvelope) -> Result<Self, Fail> {
        let (kind, payload) = split_tagged(&envelope.event, "event")?;
        Ok(Self {
            envelope,
            kind,
            payload,
            metadata: to_json(&envelope.metadata, "event metadata")?,
        })
    }

    /// `command` is the id of the append that writes the event (normally equal to
    /// the metadata's `command_id`; the column records the writer, whatever the
    /// metadata).
    fn insert(
        &self,
        tx: &Connection,
        command: CommandId,
        aggregate: AggregateId,
        expected: u32,
    ) -> Result<(), Fail> {
        let e = self.envelope;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO events
             (tenant_id, seq, event_id, domain, aggregate_id, version, type, schema_version,
              payload, metadata, command_id, created_at, requires_job)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                e.tenant.0,
                e.seq,
                e.id.0,
                e.event.domain().name(),
                e.aggregate_id,
                e.version,
                self.kind,
                e.schema_version,
                self.payload,
                self.metadata,
                command.0,
                micros(e.created_at),
                e.requires_job
            ]);
        match inserted {
            Ok(_) => Ok(()),
            // The unique (tenant_id, domain, aggregate_id, version) key is the last word
            // on optimistic concurrency, should the explicit check ever miss.
            Err(rusqlite::Error::SqliteFailure(f, Some(message)))
                if f.code == rusqlite::ErrorCode::ConstraintViolation
                    && message.contains("events.version") =>
            {
                Err(StoreError::VersionConflict {
                    aggregate,
                    expected,
                }
                .into())
            }
            Err(other) => Err(refused_row(&format!("event {}", e.id), other)),
        }
    }
}

/// `seq` is the position of the job's event (whose id is the job's).
fn insert_job(tx: &Connection, job: &Job, seq: u64) -> Result<(), Fail> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO jobs (tenant_id, job_id, seq, domain, aggregate_id, kind, command_id,
                           created_at, correlation_id, traceparent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            job.tenant.0,
            job.id.0,
            seq,
            job.aggregate.domain.name(),
            job.aggregate.id,
            job.kind.as_str(),
            job.command_id.0,
            micros(job.created_at),
            job.correlation_id,
            job.traceparent
        ]);
    // A constraint here is a job id already taken in the household (a job's id is its
    // event's).
    inserted.map_err(|e| refused_row(&format!("job {}", job.id), e))?;
    Ok(())
}

/// A row a constraint refused (a key already taken) is a caller's corrupt input, not an
/// unavailable store; any other error is the store's.
fn refused_row(row: &str, e: rusqlite::Error) -> Fail {
    match e {
        rusqlite::Error::SqliteFailure(f, message)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Fail::corrupt(format!("{row} refused: {}", message.unwrap_or_default()))
        }
        other => other.into(),
    }
}

fn job_kind(s: &str) -> Result<JobKind, Fail> {
    JobKind::parse(s).ok_or_else(|| Fail::corrupt(format!("unknown job kind {s:?}")))
}

const EVENT_COLUMNS: &str = "seq, event_id, aggregate_id, version, type, schema_version, \
                             payload, metadata, created_at, requires_job";

/// An events row as stored, before its JSON is parsed.
struct RawEvent {
    seq: u64,
    id: Uuid,
    aggregate_id: Uuid,
    version: u32,
    kind: String,
    schema_version: u32,
    payload: Option<String>,
    metadata: String,
    created_at: i64,
    requires_job: bool,
}

impl RawEvent {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: r.get(0)?,
            id: r.get(1)?,
            aggregate_id: r.get(2)?,
            version: r.get(3)?,
            kind: r.get(4)?,
            schema_version: r.get(5)?,
            payload: r.get(6)?,
            metadata: r.get(7)?,
            created_at: r.get(8)?,
            requires_job: r.get(9)?,
        })
    }

    fn into_envelope(self, tenant: HouseholdId) -> Result<EventEnvelope, Fail> {
        let event = join_tagged(self.kind, self.payload.as_deref(), "event")?;
        Ok(EventEnvelope {
            id: EventId(self.id),
            tenant,
            seq: self.seq,
            aggregate_id: self.aggregate_id,
            version: self.version,
            event,
            schema_version: self.schema_version,
            metadata: json(&self.metadata, "event metadata")?,
            created_at: from_micros(self.created_at)?,
            requires_job: self.requires_job,
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<String, Fail> {
    serde_json::to_string(value).map_err(|e| Fail::corrupt(format!("{what}: {e}")))
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, Fail> {
    serde_json::from_str(text).map_err(|e| Fail::corrupt(format!("stored {what}: {e}")))
}

/// Splits an adjacently tagged value (`{"type": ..., "payload": ...}`) into the
/// `type` and `payload` columns.
fn split_tagged<T: serde::Serialize>(
    value: &T,
    what: &str,
) -> Result<(String, Option<String>), Fail> {
    let mut value =
        serde_json::to_value(value).map_err(|e| Fail::corrupt(format!("{what}: {e}")))?;
    let kind = match value.get("type") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(Fail::corrupt(format!("{what} has no type tag"))),
    };
    let payload = match value.get_mut("payload").map(Value::take) {
        Some(p) => Some(to_json(&p, what)?),
        None => None,
    };
    Ok((kind, payload))
}

fn join_tagged<T: serde::de::DeserializeOwned>(
    kind: String,
    payload: Option<&str>,
    what: &str,
) -> Result<T, Fail> {
    let mut object = serde_json::Map::new();
    object.insert("type".into(), Value::String(kind));
    if let Some(p) = payload {
        object.insert("payload".into(), json::<Value>(p, what)?);
    }
    serde_json::from_value(Value::Object(object))
        .map_err(|e| Fail::corrupt(format!("stored {what}: {e}")))
}

/// The doorbell of a [`SqliteEventStore`]: an in-process broadcast channel rung
/// after each commit. A subscriber that falls behind gets [`FeedSignal::Resync`]
/// instead of the signals it missed, and re-reads from its cursor.
#[derive(Debug, Clone)]
pub struct SqliteEventFeed {
    doorbell: broadcast::Sender<FeedSignal>,
}

impl EventFeed for SqliteEventFeed {
    fn subscribe(&self) -> FeedStream {
        let rx = self.doorbell.subscribe();
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(signal) => Some((signal, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((FeedSignal::Resync, rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        }))
    }
}

//! [`PgEventStore`]: the EventStore port on PostgreSQL.

use crate::batch::{
    self, Answer, AppendRow, BatchStats, Batching, Counters, EventRow, Request, Write,
};
use crate::feed::FEED_CHANNEL;
use crate::sql::{
    BEGIN, BEGIN_READ, client, describe, in_tenant, join_tagged, split_tagged, to_i32, to_u32,
    to_u64, unavailable,
};
use async_trait::async_trait;
use deadpool_postgres::Pool;
use hearth_core::ports::{
    Append, Appended, Decision, EventStore, JobKind, Loaded, Snapshot, StoreError,
};
use hearth_core::{
    AggregateId, CommandEnvelope, CommandId, CommandOutcome, EventEnvelope, EventId, HouseholdId,
    NewEvent, Timestamp,
};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;

const EVENT_COLUMNS: &str = "tenant_id, seq, id, aggregate_id, version, type, schema_version, \
                             payload, metadata, created_at, requires_job";

const SELECT_SNAPSHOT: &str = "
SELECT version, state FROM snapshots
WHERE tenant_id = $1 AND domain = $2 AND aggregate_id = $3 AND schema_version = $4";

const SAVE_SNAPSHOT: &str = "
INSERT INTO snapshots AS s (tenant_id, domain, aggregate_id, schema_version, version, state)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, domain, aggregate_id, schema_version) DO UPDATE
SET version = EXCLUDED.version, state = EXCLUDED.state, updated_at = now()
WHERE s.version < EXCLUDED.version";

const SELECT_OUTCOME: &str = "SELECT outcome FROM commands WHERE tenant_id = $1 AND id = $2";
const SELECT_HEAD: &str = "SELECT last_seq FROM households WHERE tenant_id = $1";

/// One coalesced doorbell: a notification per household that moved, all in one
/// autocommit statement (one NOTIFY commit for the whole batch).
const RING: &str = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p";

/// At most this many households per doorbell statement.
const MAX_RING_BATCH: usize = 512;

/// The event store on PostgreSQL.
///
/// `app` connects as the application role (RLS applies; every call is scoped to
/// one household); the outbox's cross-household read is [`crate::PgOutbox`]'s.
/// Appends are group-committed by background batchers (see [`Batching`]) and the
/// doorbell is rung after commit by a background task, so it must be created
/// inside a Tokio runtime.
pub struct PgEventStore {
    app: Pool,
    batches: mpsc::UnboundedSender<Request>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for PgEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEventStore")
            .field("app", &self.app.status())
            .finish_non_exhaustive()
    }
}

impl PgEventStore {
    /// With the default [`Batching`].
    pub fn new(app: Pool) -> Self {
        Self::with_batching(app, Batching::default())
    }

    /// Appends are queued to `batching.batchers` batchers sharing one queue; each
    /// commits whatever the queue holds when its turn comes, up to
    /// `batching.max_batch` appends, in one transaction on one connection of `app`.
    pub fn with_batching(app: Pool, batching: Batching) -> Self {
        let (doorbell, rings) = mpsc::unbounded_channel();
        tokio::spawn(ring_doorbell(app.clone(), rings, batching.doorbell_pace));
        let counters = Arc::new(Counters::default());
        let batches = batch::start(&app, batching, &doorbell, &counters);
        Self {
            app,
            batches,
            counters,
        }
    }

    /// What the batchers did so far (for benchmarks and diagnostics).
    pub fn batch_stats(&self) -> BatchStats {
        self.counters.get()
    }

    /// Queues one append to the batchers and waits for the answer, which comes
    /// only after the batch committed.
    async fn submit(&self, append: AppendRow) -> Result<Answer, StoreError> {
        let stopped = || StoreError::Unavailable("the append batcher has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.batches
            .send(Request { append, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn duplicate(
        &self,
        tenant: HouseholdId,
        command: CommandId,
    ) -> Result<Appended, StoreError> {
        match self.outcome(tenant, command).await? {
            Some(outcome) => Ok(Appended::Duplicate(outcome)),
            None => Err(StoreError::Unavailable(format!(
                "command {command} was reported as recorded but cannot be read; retry"
            ))),
        }
    }

    async fn append_events(
        &self,
        command: &CommandEnvelope,
        aggregate: AggregateId,
        expected_version: u32,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        let tenant = command.tenant;
        let n = events.len();
        let mut rows = Vec::with_capacity(n);
        for (i, event) in events.iter().enumerate() {
            let want = u64::from(expected_version) + 1 + i as u64;
            if event.aggregate() != aggregate || u64::from(event.version) != want {
                return Err(StoreError::Corrupt(format!(
                    "event {} has version {} of {}, expected {want} of {aggregate}",
                    event.id,
                    event.version,
                    event.aggregate()
                )));
            }
            let (kind, payload) = split_tagged(json(&event.event)?).map_err(StoreError::Corrupt)?;
            rows.push(EventRow {
                id: event.id.0,
                kind,
                schema_version: to_i32(event.schema_version, "schema version")?,
                payload,
                metadata: json(&event.metadata)?,
                created_at: event.created_at,
                requires_job: event.requires_job,
                job: event
                    .requires_job
                    .then(|| event.event.job().map(JobKind::as_str))
                    .flatten(),
            });
        }
        let write = Write::Events {
            domain: aggregate.domain.name(),
            aggregate: aggregate.id,
            expected: to_i32(expected_version, "expected version")?,
            events: rows,
        };
        let last_seq = match self.submit(command_row(command, write)?).await? {
            Answer::Written(head) => head,
            Answer::Duplicate => return self.duplicate(tenant, command.id).await,
            Answer::VersionConflict => {
                return Err(StoreError::VersionConflict {
                    aggregate,
                    expected: expected_version,
                });
            }
            Answer::Refused(e) => {
                return match refusal(&e) {
                    Some(Refusal::Duplicate) => self.duplicate(tenant, command.id).await,
                    Some(Refusal::VersionConflict) => Err(StoreError::VersionConflict {
                        aggregate,
                        expected: expected_version,
                    }),
                    None => Err(StoreError::Unavailable(describe(&e))),
                };
            }
        };
        let first = last_seq + 1 - n as u64;
        let committed: Vec<EventEnvelope> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| EventEnvelope::committed(tenant, first + i as u64, e))
            .collect();
        Ok(Appended::Committed {
            events: committed,
            outcome: CommandOutcome::Accepted {
                seq: last_seq,
                events: u32::try_from(n).unwrap_or(u32::MAX),
            },
        })
    }
}

/// An append of `command` that writes `write`.
fn command_row(command: &CommandEnvelope, write: Write) -> Result<AppendRow, StoreError> {
    let (kind, payload) = split_tagged(json(&command.command)?).map_err(StoreError::Corrupt)?;
    Ok(AppendRow {
        tenant: command.tenant,
        command_id: command.id.0,
        command_type: kind,
        command_payload: payload,
        command_metadata: json(&command.metadata)?,
        write,
    })
}

/// What a unique violation of an append run alone means: the checks of
/// `hearth_append` answer these under the household's lock, so only a race with a
/// writer that does not take it (a rejected command with the same id) ends here.
enum Refusal {
    Duplicate,
    VersionConflict,
}

fn refusal(e: &tokio_postgres::Error) -> Option<Refusal> {
    let db = e.as_db_error()?;
    match (db.code().code(), db.constraint()) {
        ("23505", Some("commands_pkey")) => Some(Refusal::Duplicate),
        ("23505", Some("events_stream_version")) => Some(Refusal::VersionConflict),
        _ => None,
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn event_from_row(row: &Row) -> Result<EventEnvelope, StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::Corrupt(describe(&e));
    let kind: String = row.try_get(5).map_err(get)?;
    let payload: Value = row.try_get(7).map_err(get)?;
    let event = serde_json::from_value(join_tagged(kind, payload))
        .map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))?;
    let metadata = serde_json::from_value(row.try_get::<_, Value>(8).map_err(get)?)
        .map_err(|e| StoreError::Corrupt(format!("event metadata: {e}")))?;
    Ok(EventEnvelope {
        tenant: HouseholdId(row.try_get(0).map_err(get)?),
        seq: to_u64(row.try_get(1).map_err(get)?, "seq")?,
        id: EventId(row.try_get(2).map_err(get)?),
        aggregate_id: row.try_get(3).map_err(get)?,
        version: to_u32(row.try_get(4).map_err(get)?, "version")?,
        event,
        schema_version: to_u32(row.try_get(6).map_err(get)?, "schema version")?,
        metadata,
        created_at: row.try_get::<_, Timestamp>(9).map_err(get)?,
        requires_job: row.try_get(10).map_err(get)?,
    })
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        let Append { command, decision } = append;
        match decision {
            Decision::Events {
                aggregate,
                expected_version,
                events,
            } => {
                self.append_events(&command, aggregate, expected_version, events)
                    .await
            }
            Decision::Rejected { code, message } => {
                let tenant = command.tenant;
                let outcome = CommandOutcome::Rejected { code, message };
                let write = Write::Rejected(json(&outcome)?);
                match self.submit(command_row(&command, write)?).await? {
                    Answer::Written(_) => {}
                    Answer::Duplicate => return self.duplicate(tenant, command.id).await,
                    Answer::Refused(e) if matches!(refusal(&e), Some(Refusal::Duplicate)) => {
                        return self.duplicate(tenant, command.id).await;
                    }
                    Answer::Refused(e) => return Err(StoreError::Unavailable(describe(&e))),
                    Answer::VersionConflict => {
                        return Err(StoreError::Unavailable(
                            "a rejected command was answered with a version conflict".into(),
                        ));
                    }
                }
                Ok(Appended::Committed {
                    events: Vec::new(),
                    outcome,
                })
            }
        }
    }

    async fn load(
        &self,
        tenant: HouseholdId,
        aggregate: AggregateId,
        snapshot_schema: u32,
    ) -> Result<Loaded, StoreError> {
        let schema = to_i32(snapshot_schema, "snapshot schema")?;
        let client = client(&self.app).await?;
        let snap = client
            .prepare_cached(SELECT_SNAPSHOT)
            .await
            .map_err(unavailable)?;
        let events = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE tenant_id = $1 AND domain = $2 AND aggregate_id = $3
                   AND version > coalesce((SELECT version FROM snapshots
                        WHERE tenant_id = $1 AND domain = $2 AND aggregate_id = $3
                          AND schema_version = $4), 0)
                 ORDER BY version"
            ))
            .await
            .map_err(unavailable)?;
        let domain = aggregate.domain.name();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&tenant.0, &domain, &aggregate.id, &schema];
        // REPEATABLE READ: the snapshot and the events after it come from one view.
        let (snap_rows, event_rows) = in_tenant(&client, BEGIN_READ, tenant, async {
            futures::try_join!(client.query(&snap, &params), client.query(&events, &params))
        })
        .await
        .map_err(unavailable)?;
        let snapshot = match snap_rows.first() {
            Some(row) => Some(Snapshot {
                tenant,
                aggregate,
                version: to_u32(row.try_get(0).map_err(unavailable)?, "snapshot version")?,
                schema_version: snapshot_schema,
                state: row.try_get(1).map_err(unavailable)?,
            }),
            None => None,
        };
        let events = event_rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Loaded { snapshot, events })
    }

    async fn read_feed(
        &self,
        tenant: HouseholdId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let (Ok(after), Ok(limit)) = (i64::try_from(after), i64::try_from(limit)) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = client(&self.app).await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ))
            .await
            .map_err(unavailable)?;
        let rows = in_tenant(
            &client,
            BEGIN_READ,
            tenant,
            client.query(&stmt, &[&tenant.0, &after, &limit]),
        )
        .await
        .map_err(unavailable)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn head(&self, tenant: HouseholdId) -> Result<u64, StoreError> {
        let client = client(&self.app).await?;
        let stmt = client
            .prepare_cached(SELECT_HEAD)
            .await
            .map_err(unavailable)?;
        let row = in_tenant(
            &client,
            BEGIN_READ,
            tenant,
            client.query_opt(&stmt, &[&tenant.0]),
        )
        .await
        .map_err(unavailable)?;
        match row {
            Some(row) => to_u64(row.try_get(0).map_err(unavailable)?, "last_seq"),
            None => Ok(0),
        }
    }

    async fn outcome(
        &self,
        tenant: HouseholdId,
        command_id: CommandId,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        let client = client(&self.app).await?;
        let stmt = client
            .prepare_cached(SELECT_OUTCOME)
            .await
            .map_err(unavailable)?;
        let row = in_tenant(
            &client,
            BEGIN_READ,
            tenant,
            client.query_opt(&stmt, &[&tenant.0, &command_id.0]),
        )
        .await
        .map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let Some(outcome) = row.try_get::<_, Option<Value>>(0).map_err(unavailable)? else {
            return Err(StoreError::Corrupt(format!(
                "command {command_id} has no outcome"
            )));
        };
        serde_json::from_value(outcome)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("outcome of command {command_id}: {e}")))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let version = to_i32(snapshot.version, "snapshot version")?;
        let schema = to_i32(snapshot.schema_version, "snapshot schema")?;
        let client = client(&self.app).await?;
        let stmt = client
            .prepare_cached(SAVE_SNAPSHOT)
            .await
            .map_err(unavailable)?;
        in_tenant(
            &client,
            BEGIN,
            snapshot.tenant,
            client.execute(
                &stmt,
                &[
                    &snapshot.tenant.0,
                    &snapshot.aggregate.domain.name(),
                    &snapshot.aggregate.id,
                    &schema,
                    &version,
                    &snapshot.state,
                ],
            ),
        )
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}

/// Rings the feed's doorbell for committed appends, outside their transactions.
///
/// A transaction that NOTIFYs takes a cluster-wide lock at commit and holds it
/// through its WAL flush, which serialises every notifying commit. So appends never
/// notify: each committed batch hands its `(household, seq)` pairs to this task
/// after COMMIT, and it sends one autocommit statement per ring with one
/// notification per household that moved (its highest seq). Rings are paced (at
/// most one per `pace`) and whatever arrives meanwhile rings together, so under
/// load there is one notifying commit per interval, whatever the append rate; the
/// cost is up to `pace` of extra latency for other nodes' rooms (this node's rooms
/// are handed its commits directly). A ring lost (crash, error) only delays
/// delivery until the feed's fallback poll.
async fn ring_doorbell(
    pool: Pool,
    mut rings: mpsc::UnboundedReceiver<Vec<(HouseholdId, u64)>>,
    pace: Duration,
) {
    let mut last_ring: Option<tokio::time::Instant> = None;
    while let Some(batch) = rings.recv().await {
        // Paced: the heads that arrive until the interval is up ring together.
        if let Some(last) = last_ring {
            tokio::time::sleep_until(last + pace).await;
        }
        last_ring = Some(tokio::time::Instant::now());
        let mut heads: HashMap<HouseholdId, u64> = HashMap::new();
        let add = |heads: &mut HashMap<HouseholdId, u64>, batch: Vec<(HouseholdId, u64)>| {
            for (tenant, seq) in batch {
                let head = heads.entry(tenant).or_insert(0);
                *head = (*head).max(seq);
            }
        };
        add(&mut heads, batch);
        while heads.len() < MAX_RING_BATCH {
            match rings.try_recv() {
                Ok(batch) => add(&mut heads, batch),
                Err(_) => break,
            }
        }
        let payloads: Vec<String> = heads.iter().map(|(t, s)| format!("{t}:{s}")).collect();
        let rung = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let stmt = client
                .prepare_cached(RING)
                .await
                .map_err(|e| describe(&e))?;
            client
                .execute(&stmt, &[&FEED_CHANNEL, &payloads])
                .await
                .map_err(|e| describe(&e))
        };
        if let Err(error) = rung.await {
            tracing::warn!(%error, households = payloads.len(), "doorbell not rung; the feed's poll will catch up");
        }
    }
}

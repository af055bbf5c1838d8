//! Migration 2 (issue 15: streams of any domain) carries a version-1 file's data over:
//! its orders' events load as order streams and continue, and pending outbox jobs keep
//! their meaning (`fulfil` becomes `start`, `cancel` becomes `wake`). Migration 4
//! (issue 17) gives the households of a version-3 file a time zone, UTC. Migration 6
//! (issue 20) rebuilds commands, events and jobs in the shape that writes fewer pages
//! per append, keeping what each key guarded.

use hearth_contract::fixtures::append;
use hearth_core::contracts::CommandOutcome;
use hearth_core::ports::{
    Appended, DEFAULT_TIME_ZONE, Directory, EventStore, JobKind, Outbox, StoreError,
};
use hearth_core::{AggregateId, CommandId, DomainId, EventId, HouseholdId, OrderId};
use hearth_sqlite::SqliteEventStore;
use rusqlite::params;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_version_1_file_is_migrated_with_its_orders_and_jobs_carried_over() {
    let path = crate::fresh_file();
    let tenant = Uuid::now_v7();
    let order = Uuid::now_v7();
    let member = Uuid::now_v7();
    let (place, cancel) = (Uuid::now_v7(), Uuid::now_v7());
    let (placed, cancelled) = (Uuid::now_v7(), Uuid::now_v7());
    {
        // A file as version 1 wrote it: one order placed, then cancelled, both jobs
        // still pending.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../src/migrations/0001_initial.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        let now = 1_764_000_000_000_000_i64;
        let actor = json!({"kind": "member", "id": member});
        let meta = |cmd: Uuid| {
            json!({"commandId": cmd, "causationId": cmd, "correlationId": cmd, "actor": actor})
                .to_string()
        };
        conn.execute(
            "INSERT INTO households (tenant_id, last_seq) VALUES (?1, 2)",
            params![tenant],
        )
        .unwrap();
        for (cmd, kind, seq) in [(place, "PlaceOrder", 1), (cancel, "CancelOrder", 2)] {
            conn.execute(
                "INSERT INTO commands (tenant_id, command_id, type, payload, metadata, status,
                 outcome, recorded_at) VALUES (?1, ?2, ?3, '{}', ?4, 'accepted', ?5, ?6)",
                params![
                    tenant,
                    cmd,
                    kind,
                    json!({"actor": actor}).to_string(),
                    json!({"status": "accepted", "seq": seq, "events": 1}).to_string(),
                    now
                ],
            )
            .unwrap();
        }
        let placed_payload = json!({"orderId": order, "lines": [{"sku": "milk", "name": "Milk",
            "quantity": 1, "unitPriceCents": 120}], "totalCents": 120, "placedBy": member});
        let cancelled_payload = json!({"orderId": order, "by": actor});
        for (seq, id, cmd, kind, payload) in [
            (1, placed, place, "OrderPlaced", placed_payload),
            (2, cancelled, cancel, "OrderCancelled", cancelled_payload),
        ] {
            conn.execute(
                "INSERT INTO events (tenant_id, seq, event_id, aggregate_id, version, type,
                 schema_version, payload, metadata, command_id, created_at, requires_job)
                 VALUES (?1, ?2, ?3, ?4, ?2, ?5, 1, ?6, ?7, ?8, ?9, 1)",
                params![
                    tenant,
                    seq,
                    id,
                    order,
                    kind,
                    payload.to_string(),
                    meta(cmd),
                    cmd,
                    now
                ],
            )
            .unwrap();
        }
        for (id, kind, cmd) in [(placed, "fulfil", place), (cancelled, "cancel", cancel)] {
            conn.execute(
                "INSERT INTO jobs (tenant_id, job_id, order_id, kind, command_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![tenant, id, order, kind, cmd, now],
            )
            .unwrap();
        }
    }

    // Opening it migrates it.
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    let household = HouseholdId(tenant);
    let loaded = store
        .load(household, OrderId(order).into(), 1)
        .await
        .unwrap();
    let types: Vec<_> = loaded.events.iter().map(|e| e.event.type_name()).collect();
    assert_eq!(types, ["OrderPlaced", "OrderCancelled"]);
    let jobs = store.pending_jobs(10).await.unwrap();
    let jobs: Vec<_> = jobs.iter().map(|j| (j.id.0, j.aggregate, j.kind)).collect();
    let aggregate = AggregateId::new(DomainId::Order, order);
    assert_eq!(
        jobs,
        [
            (placed, aggregate, JobKind::Start),
            (cancelled, aggregate, JobKind::Wake)
        ]
    );
    // The stream goes on at version 3, the household at seq 3.
    store
        .append(append(household, OrderId(order), 2, 1))
        .await
        .unwrap();
    assert_eq!(store.head(household).await.unwrap(), 3);
    // Migration 6 rebuilt the tables: a command id recorded before is still a repeat,
    // a stale version is still a conflict, and a job is still marked started by its id.
    let mut repeat = append(household, OrderId(order), 3, 1);
    repeat.command.id = CommandId(place);
    let Appended::Duplicate(outcome) = store.append(repeat).await.unwrap() else {
        panic!("a command id recorded before migration 6 must be a repeat");
    };
    assert_eq!(outcome, CommandOutcome::Accepted { seq: 1, events: 1 });
    assert!(matches!(
        store.append(append(household, OrderId(order), 2, 1)).await,
        Err(StoreError::VersionConflict { .. })
    ));
    store
        .mark_job_started(household, EventId(placed))
        .await
        .unwrap();
    let pending: Vec<_> = store
        .pending_jobs(10)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id.0)
        .collect();
    assert_eq!(pending, [cancelled]);
    // Opening it again migrates nothing more.
    drop(store);
    let (again, _) = SqliteEventStore::open(&path).unwrap();
    assert_eq!(
        again
            .load(household, OrderId(order).into(), 1)
            .await
            .unwrap()
            .events
            .len(),
        3
    );
}

#[tokio::test]
async fn a_version_3_file_is_migrated_with_its_households_in_utc() {
    let path = crate::fresh_file();
    let tenant = Uuid::now_v7();
    {
        // A file as version 3 wrote it: one named household.
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in [
            include_str!("../../src/migrations/0001_initial.sql"),
            include_str!("../../src/migrations/0002_domains.sql"),
            include_str!("../../src/migrations/0003_sessions.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute(
            "INSERT INTO households (tenant_id, name, created_at) VALUES (?1, 'Home', ?2)",
            params![tenant, 1_764_000_000_000_000_i64],
        )
        .unwrap();
    }

    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    let directory = store.directory();
    let household = HouseholdId(tenant);
    let found = directory.household(household).await.unwrap().unwrap();
    assert_eq!(
        (found.name.as_str(), found.time_zone.as_str()),
        ("Home", DEFAULT_TIME_ZONE)
    );
    let changed = directory
        .set_time_zone(household, "Europe/Lisbon")
        .await
        .unwrap();
    assert_eq!(changed.time_zone, "Europe/Lisbon");
    assert_eq!(changed.created_at, found.created_at);
}

#[tokio::test]
async fn rows_go_to_the_end_of_their_tables_and_only_keys_reads_use_are_indexed() {
    // Migration 6's shape (docs/sqlite.md, "Schema"): an append's rows share the last
    // pages of `commands` and `events` (rowid tables) whatever their household, and
    // events carry no index on their id (nothing reads by it).
    let path = crate::fresh_file();
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    for table in ["commands", "events"] {
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                params![table],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            !sql.contains("WITHOUT ROWID"),
            "{table} is keyed by household again: {sql}"
        );
    }
    let mut indexed = conn
        .prepare(
            "SELECT ii.name FROM pragma_index_list('events') il, pragma_index_info(il.name) ii",
        )
        .unwrap();
    let columns: Vec<String> = indexed
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(columns.contains(&"seq".to_string()), "{columns:?}");
    assert!(!columns.contains(&"event_id".to_string()), "{columns:?}");
}

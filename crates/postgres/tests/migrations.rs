//! Migration 3 (issue 15: streams of any domain) carries a version-2 database's data
//! over: its orders load as order streams and continue, and pending outbox jobs keep
//! their meaning (`fulfil` becomes `start`, `cancel` becomes `wake`) and stay readable
//! by the relay role. Migration 5 (issue 17) gives a version-4 database's households
//! a time zone, UTC, that the application role can change. Migration 6 (issue 18)
//! gives the outbox's jobs a correlation id and a trace context: a job pending from
//! before reads as correlated to its command, and a new append records both.

#![allow(clippy::unwrap_used)]

mod common;

use hearth_contract::fixtures::append;
use hearth_core::ports::{DEFAULT_TIME_ZONE, Directory, EventStore, JobKind, Outbox};
use hearth_core::{AggregateId, DomainId, HouseholdId, OrderId};
use hearth_postgres::{PgDirectory, PgEventStore, PgOutbox, connect, migrate, migrate_up_to};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_version_2_database_is_migrated_with_its_orders_and_jobs_carried_over() {
    // A database of its own, owned by the owner role the shared set-up created.
    let own = common::OwnDb::create("hearth_migr").await;
    let as_role = |role: &str| own.as_role(role);
    let owner = connect(&as_role("hearth_owner")).await.unwrap();
    assert_eq!(migrate_up_to(&owner, 2).await.unwrap(), [1, 2]);

    // What version 2 held: one order placed, then cancelled, both jobs still pending
    // (written as the owner, in the household's scope: row-level security is forced).
    let (tenant, order, member) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (place, cancel) = (Uuid::now_v7(), Uuid::now_v7());
    let (placed, cancelled) = (Uuid::now_v7(), Uuid::now_v7());
    let actor = json!({"kind": "member", "id": member});
    let meta = |cmd: Uuid| json!({"commandId": cmd, "causationId": cmd, "correlationId": cmd, "actor": actor});
    owner.batch_execute("BEGIN").await.unwrap();
    owner
        .execute(
            "SELECT set_config('app.tenant_id', $1, true)",
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
    owner
        .execute(
            "INSERT INTO households (tenant_id, last_seq) VALUES ($1, 2)",
            &[&tenant],
        )
        .await
        .unwrap();
    for (cmd, kind, seq) in [(place, "PlaceOrder", 1), (cancel, "CancelOrder", 2)] {
        owner
            .execute(
                "INSERT INTO commands (tenant_id, id, type, payload, metadata, status, outcome)
                 VALUES ($1, $2, $3, '{}', $4, 'accepted', $5)",
                &[
                    &tenant,
                    &cmd,
                    &kind,
                    &json!({"actor": actor}),
                    &json!({"status": "accepted", "seq": seq, "events": 1}),
                ],
            )
            .await
            .unwrap();
    }
    let placed_payload = json!({"orderId": order, "lines": [{"sku": "milk", "name": "Milk",
        "quantity": 1, "unitPriceCents": 120}], "totalCents": 120, "placedBy": member});
    for (seq, id, cmd, kind, payload) in [
        (1_i64, placed, place, "OrderPlaced", placed_payload),
        (
            2,
            cancelled,
            cancel,
            "OrderCancelled",
            json!({"orderId": order, "by": actor}),
        ),
    ] {
        owner
            .execute(
                "INSERT INTO events (tenant_id, seq, id, aggregate_id, version, type,
                 schema_version, payload, metadata, created_at, requires_job)
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, now(), true)",
                &[
                    &tenant,
                    &seq,
                    &id,
                    &order,
                    &(seq as i32),
                    &kind,
                    &payload,
                    &meta(cmd),
                ],
            )
            .await
            .unwrap();
    }
    for (id, kind, cmd) in [(placed, "fulfil", place), (cancelled, "cancel", cancel)] {
        owner
            .execute(
                "INSERT INTO jobs (tenant_id, id, order_id, kind, command_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, now())",
                &[&tenant, &id, &order, &kind, &cmd],
            )
            .await
            .unwrap();
    }
    owner.batch_execute("COMMIT").await.unwrap();

    assert_eq!(migrate_up_to(&owner, 3).await.unwrap(), [3]);
    migrate(&owner).await.unwrap();

    let app = hearth_postgres::pool(as_role("hearth_app"), 2).unwrap();
    let relay = hearth_postgres::pool(as_role("hearth_relay"), 1).unwrap();
    let store = PgEventStore::new(app.clone());
    let outbox = PgOutbox::new(relay, app);
    let household = HouseholdId(tenant);
    let loaded = store
        .load(household, OrderId(order).into(), 1)
        .await
        .unwrap();
    let types: Vec<_> = loaded.events.iter().map(|e| e.event.type_name()).collect();
    assert_eq!(types, ["OrderPlaced", "OrderCancelled"]);
    let mut jobs: Vec<_> = outbox
        .pending_jobs(10)
        .await
        .unwrap()
        .iter()
        .map(|j| (j.id.0, j.aggregate, j.kind))
        .collect();
    jobs.sort_by_key(|j| j.2 == JobKind::Wake);
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

    drop((store, outbox, owner));
    own.drop_now().await;
}

#[tokio::test]
async fn a_version_4_database_is_migrated_with_its_households_in_utc() {
    let own = common::OwnDb::create("hearth_migr_tz").await;
    let owner = connect(&own.as_role("hearth_owner")).await.unwrap();
    assert_eq!(migrate_up_to(&owner, 4).await.unwrap(), [1, 2, 3, 4]);
    let tenant = Uuid::now_v7();
    owner.batch_execute("BEGIN").await.unwrap();
    owner
        .execute(
            "SELECT set_config('app.tenant_id', $1, true)",
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
    owner
        .execute(
            "INSERT INTO households (tenant_id, name, created_at) VALUES ($1, 'Home', now())",
            &[&tenant],
        )
        .await
        .unwrap();
    owner.batch_execute("COMMIT").await.unwrap();

    assert_eq!(migrate_up_to(&owner, 5).await.unwrap(), [5]);

    let directory = PgDirectory::new(hearth_postgres::pool(own.as_role("hearth_app"), 1).unwrap());
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
    assert_eq!(directory.household(household).await.unwrap(), Some(changed));

    drop((directory, owner));
    own.drop_now().await;
}

#[tokio::test]
async fn a_version_5_database_keeps_its_pending_jobs_and_records_correlation_ids_after() {
    let own = common::OwnDb::create("hearth_migr_corr").await;
    let owner = connect(&own.as_role("hearth_owner")).await.unwrap();
    assert_eq!(migrate_up_to(&owner, 5).await.unwrap(), [1, 2, 3, 4, 5]);
    // A job pending at version 5 (no correlation column yet).
    let (tenant, job, command) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    owner.batch_execute("BEGIN").await.unwrap();
    owner
        .execute(
            "SELECT set_config('app.tenant_id', $1, true)",
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
    owner
        .execute(
            "INSERT INTO jobs (tenant_id, id, domain, aggregate_id, kind, command_id, created_at)
             VALUES ($1, $2, 'order', gen_random_uuid(), 'start', $3, now())",
            &[&tenant, &job, &command],
        )
        .await
        .unwrap();
    owner.batch_execute("COMMIT").await.unwrap();

    assert_eq!(migrate_up_to(&owner, 6).await.unwrap(), [6]);

    let relay = hearth_postgres::pool(own.as_role("hearth_relay"), 1).unwrap();
    let app = hearth_postgres::pool(own.as_role("hearth_app"), 2).unwrap();
    let outbox = PgOutbox::new(relay, app.clone());
    let pending = outbox.pending_jobs(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id.0, job);
    assert_eq!(pending[0].correlation_id, command, "read as its command's");
    assert_eq!(pending[0].traceparent, None);

    // After: an append records its event's correlation id and its command's trace
    // context with the job (through the replaced hearth_append).
    let store = PgEventStore::new(app);
    let household = HouseholdId(Uuid::now_v7());
    let mut placed = append(household, OrderId(Uuid::now_v7()), 0, 1);
    let correlation = Uuid::new_v4();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned();
    placed.command.metadata.correlation_id = Some(correlation);
    placed.command.metadata.traceparent = Some(traceparent.clone());
    if let hearth_core::ports::Decision::Events { events, .. } = &mut placed.decision {
        events[0].metadata.correlation_id = correlation;
    }
    store.append(placed).await.unwrap();
    let jobs: Vec<_> = outbox
        .pending_jobs(10)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.tenant == household)
        .collect();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].correlation_id, correlation);
    assert_eq!(jobs[0].traceparent.as_deref(), Some(traceparent.as_str()));

    drop((store, outbox, owner));
    own.drop_now().await;
}

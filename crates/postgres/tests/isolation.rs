//! Row-level security, tested from outside: raw SQL as the application role (and
//! the owner and relay roles), against rows written through the adapters.

#![allow(clippy::unwrap_used)]

mod common;

use hearth_contract::fixtures::{append, household, member, now};
use hearth_core::ports::{
    Directory, EventStore, Household, Invite, Member, Outbox, Role, Snapshot,
};
use hearth_core::{HouseholdId, OrderId};
use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

const TABLES: [&str; 9] = [
    "households",
    "events",
    "snapshots",
    "commands",
    "jobs",
    "members",
    "invites",
    "sessions",
    "session_credentials",
];

/// Household A with a row in every table, written through the adapters.
async fn household_a() -> (HouseholdId, OrderId) {
    let db = common::db().await;
    let a = household();
    let owner = Member {
        household: a,
        id: member(),
        name: "A's owner".into(),
        role: Role::Owner,
        joined_at: now(),
    };
    let directory = db.directory();
    directory
        .create_household(
            Household {
                id: a,
                name: "A".into(),
                time_zone: "UTC".into(),
                created_at: now(),
            },
            owner.clone(),
        )
        .await
        .unwrap();
    directory
        .create_invite(Invite {
            household: a,
            code: format!("code-{}", Uuid::now_v7()),
            created_by: owner.id,
            created_at: now(),
            expires_at: now() + chrono::TimeDelta::hours(1),
        })
        .await
        .unwrap();
    directory
        .create_session(
            hearth_core::ports::Session {
                household: a,
                id: hearth_core::SessionId(Uuid::now_v7()),
                member: owner.id,
                device: "A's phone".into(),
                created_at: now(),
                last_used_at: now(),
            },
            &hearth_core::ports::CredentialHash(format!("hash-{}", Uuid::now_v7())),
        )
        .await
        .unwrap();
    let store = db.store();
    let order = hearth_contract::fixtures::order_id();
    store.append(append(a, order, 0, 2)).await.unwrap();
    store
        .save_snapshot(Snapshot {
            tenant: a,
            aggregate: order.into(),
            version: 1,
            schema_version: 1,
            state: serde_json::json!({}),
        })
        .await
        .unwrap();
    (a, order)
}

async fn set_tenant<C: GenericClient>(client: &C, tenant: HouseholdId) {
    client
        .execute(
            "SELECT set_config('app.tenant_id', $1, true)",
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
}

async fn count<C: GenericClient>(client: &C, table: &str, tenant: HouseholdId) -> i64 {
    client
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
            &[&tenant.0],
        )
        .await
        .unwrap()
        .get(0)
}

fn code(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.as_db_error().map(|db| db.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn household_b_cannot_read_update_delete_or_insert_a_rows() {
    let db = common::db().await;
    let (a, _) = household_a().await;
    let b = household();
    let mut app = db.connect(&db.app).await;

    // A sees its own rows (the check below is not vacuous).
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, a).await;
    for table in TABLES {
        assert!(count(&tx, table, a).await > 0, "A has rows in {table}");
    }
    tx.commit().await.unwrap();

    // B reads none of them.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, b).await;
    for table in TABLES {
        assert_eq!(count(&tx, table, a).await, 0, "B reads A's {table}");
        let all: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(all, 0, "B sees no row at all in {table}");
    }
    // B's updates of A's rows affect nothing (where the app role may update).
    for sql in [
        "UPDATE households SET last_seq = last_seq + 100, name = 'B was here' WHERE tenant_id = $1",
        "UPDATE snapshots SET version = 99 WHERE tenant_id = $1",
        "UPDATE jobs SET status = 'started' WHERE tenant_id = $1",
        "UPDATE invites SET used_at = now() WHERE tenant_id = $1",
    ] {
        assert_eq!(tx.execute(sql, &[&a.0]).await.unwrap(), 0, "{sql}");
    }
    tx.commit().await.unwrap();

    // The app role may not DELETE at all (no grant): refused before RLS.
    for table in TABLES {
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, b).await;
        let err = tx
            .execute(
                &format!("DELETE FROM {table} WHERE tenant_id = $1"),
                &[&a.0],
            )
            .await
            .unwrap_err();
        assert_eq!(
            code(&err),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{table}"
        );
        tx.rollback().await.unwrap();
    }

    // Inserting a row of A while B is set: refused by WITH CHECK (42501).
    let inserts = [
        "INSERT INTO households (tenant_id, last_seq) VALUES ($1, 0)",
        "INSERT INTO events (tenant_id, seq, id, aggregate_id, version, type, schema_version, payload, metadata, created_at, requires_job)
         VALUES ($1, 1000, gen_random_uuid(), gen_random_uuid(), 1, 'OrderConfirmed', 1, '{}', '{}', now(), false)",
        "INSERT INTO snapshots (tenant_id, aggregate_id, schema_version, version, state) VALUES ($1, gen_random_uuid(), 1, 1, '{}')",
        "INSERT INTO commands (tenant_id, id, type, payload, metadata, status) VALUES ($1, gen_random_uuid(), 'X', '{}', '{}', 'accepted')",
        "INSERT INTO jobs (tenant_id, id, domain, aggregate_id, kind, command_id, created_at) VALUES ($1, gen_random_uuid(), 'order', gen_random_uuid(), 'start', gen_random_uuid(), now())",
        "INSERT INTO members (tenant_id, id, name, role, joined_at) VALUES ($1, gen_random_uuid(), 'intruder', 'member', now())",
        "INSERT INTO invites (tenant_id, code, created_by, created_at, expires_at) VALUES ($1, 'intruder', gen_random_uuid(), now(), now())",
        "INSERT INTO sessions (tenant_id, id, member_id, device, created_at, last_used_at) VALUES ($1, gen_random_uuid(), gen_random_uuid(), 'x', now(), now())",
        "INSERT INTO session_credentials (tenant_id, hash, session_id, issued_at) VALUES ($1, 'x', gen_random_uuid(), now())",
    ];
    for sql in inserts {
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, b).await;
        let err = tx.execute(sql, &[&a.0]).await.unwrap_err();
        assert_eq!(
            code(&err),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
        tx.rollback().await.unwrap();
    }

    // The owner role is subject to the policies too (FORCE): as B, its DELETE of
    // A's rows affects nothing.
    let mut owner = db.connect(&db.owner).await;
    let tx = owner.transaction().await.unwrap();
    set_tenant(&tx, b).await;
    for table in TABLES {
        let deleted = tx
            .execute(
                &format!("DELETE FROM {table} WHERE tenant_id = $1"),
                &[&a.0],
            )
            .await
            .unwrap();
        assert_eq!(deleted, 0, "owner as B deleted A's {table}");
    }
    tx.commit().await.unwrap();

    // Nothing of A changed.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, a).await;
    let row = tx
        .query_one(
            "SELECT name, last_seq FROM households WHERE tenant_id = $1",
            &[&a.0],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "A");
    assert_eq!(row.get::<_, i64>(1), 2);
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tenant_nothing_is_visible_or_writable() {
    let db = common::db().await;
    let (a, _) = household_a().await;
    let app = db.connect(&db.app).await;
    for table in TABLES {
        let n: i64 = app
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "no tenant set, yet {table} shows rows");
    }
    let err = app
        .execute(
            "INSERT INTO households (tenant_id, last_seq) VALUES ($1, 0)",
            &[&Uuid::now_v7()],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    // Set to the empty string (what a session shows after a local setting ended):
    // still nothing, and no cast error.
    app.batch_execute("SET app.tenant_id = ''").await.unwrap();
    assert_eq!(count(&app, "events", a).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_reused_after_commit_sees_nothing() {
    let db = common::db().await;
    let (a, _) = household_a().await;
    let pool = db.app_pool(1);
    let first_pid: i32;
    {
        let mut client = pool.get().await.unwrap();
        first_pid = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let tx = client.transaction().await.unwrap();
        set_tenant(&*tx, a).await;
        assert_eq!(count(&*tx, "events", a).await, 2);
        tx.commit().await.unwrap();
    }
    let client = pool.get().await.unwrap();
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pid, first_pid, "the same pooled connection");
    let setting: String = client
        .query_one("SELECT current_setting('app.tenant_id', true)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(setting, "", "the local setting ended with the transaction");
    for table in TABLES {
        assert_eq!(count(&**client, table, a).await, 0, "{table} after COMMIT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_every_tenant_table_has_forced_rls_and_a_policy() {
    let db = common::db().await;
    let admin = db.connect(&db.admin).await;
    let rows = admin
        .query(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                    (SELECT count(*) FROM pg_policy p
                      WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation'
                        AND pg_get_expr(p.polqual, p.polrelid) LIKE '%current_setting(''app.tenant_id''::text, true)%'
                        AND pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%current_setting(''app.tenant_id''::text, true)%'
                    ) AS policies
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND c.relkind IN ('r', 'p')
               AND EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)",
            &[],
        )
        .await
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    for row in &rows {
        let table: String = row.get(0);
        assert!(row.get::<_, bool>(1), "{table}: RLS not enabled");
        assert!(row.get::<_, bool>(2), "{table}: RLS not forced");
        assert_eq!(row.get::<_, i64>(3), 1, "{table}: no tenant policy");
        seen.push(table);
    }
    seen.sort();
    let mut expected: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected);

    // Every index of those tables leads with tenant_id.
    let bad = admin
        .query(
            "SELECT i.indexrelid::regclass::text FROM pg_index i
             JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
             WHERE n.nspname = 'public' AND c.relname = ANY($1) AND a.attname <> 'tenant_id'",
            &[&TABLES.to_vec()],
        )
        .await
        .unwrap();
    assert!(
        bad.is_empty(),
        "indexes not led by tenant_id: {:?}",
        bad.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    );

    // The app and relay roles: no superuser, no BYPASSRLS, own nothing.
    for role in [common::APP, common::RELAY] {
        let row = admin
            .query_one(
                "SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb,
                        (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid),
                        (SELECT count(*) FROM pg_namespace s WHERE s.nspowner = r.oid),
                        (SELECT count(*) FROM pg_proc p WHERE p.proowner = r.oid),
                        (SELECT count(*) FROM pg_database d WHERE d.datdba = r.oid)
                 FROM pg_roles r WHERE r.rolname = $1",
                &[&role],
            )
            .await
            .unwrap();
        assert!(!row.get::<_, bool>(0), "{role} is superuser");
        assert!(!row.get::<_, bool>(1), "{role} has BYPASSRLS");
        assert!(!row.get::<_, bool>(2), "{role} has CREATEROLE");
        assert!(!row.get::<_, bool>(3), "{role} has CREATEDB");
        for i in 4..8 {
            assert_eq!(row.get::<_, i64>(i), 0, "{role} owns something ({i})");
        }
    }
    // And the connection the adapters use really is the app role.
    let app = db.connect(&db.app).await;
    let who: String = app
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, common::APP);
    // No function runs with its owner's rights (SECURITY DEFINER bypasses RLS).
    let definers: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public' AND p.prosecdef",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(definers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_reads_heads_and_pending_jobs_only() {
    let db = common::db().await;
    let (a, _) = household_a().await;
    let relay = db.connect(&db.relay).await;
    // What it may read, across households.
    let head: i64 = relay
        .query_one(
            "SELECT last_seq FROM households WHERE tenant_id = $1",
            &[&a.0],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(head, 2);
    let pending: i64 = relay
        .query_one(
            "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND status = 'pending'",
            &[&a.0],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 1);
    // Nothing else: other columns, other tables, any write.
    for sql in [
        "SELECT name FROM households LIMIT 1",
        "SELECT count(*) FROM events",
        "SELECT count(*) FROM commands",
        "SELECT count(*) FROM members",
        "SELECT count(*) FROM invites",
        "SELECT count(*) FROM snapshots",
        "SELECT started_at FROM jobs LIMIT 1",
        "UPDATE jobs SET status = 'started'",
        "UPDATE households SET last_seq = 0",
        "INSERT INTO households (tenant_id) VALUES (gen_random_uuid())",
        "DELETE FROM jobs",
    ] {
        let err = relay.execute(sql, &[]).await.unwrap_err();
        assert_eq!(
            code(&err),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
    }
    // Started jobs are out of its sight.
    let outbox = db.outbox();
    let job = outbox
        .pending_jobs(100_000)
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.tenant == a)
        .unwrap();
    outbox.mark_job_started(a, job.id).await.unwrap();
    let visible: i64 = relay
        .query_one("SELECT count(*) FROM jobs WHERE tenant_id = $1", &[&a.0])
        .await
        .unwrap()
        .get(0);
    assert_eq!(visible, 0);
}

/// Declares `tenants` as the batch's households in this transaction, as
/// `hearth_append` does before its insert.
async fn declare_batch<C: GenericClient>(client: &C, tenants: &[HouseholdId]) {
    let list: Vec<String> = tenants.iter().map(ToString::to_string).collect();
    client
        .execute(
            "SELECT set_config('app.batch_tenants', $1, true)",
            &[&format!("{{{}}}", list.join(","))],
        )
        .await
        .unwrap();
}

/// `app.batch_tenants` (the households a batch of appends declared; migration 7) lets
/// the app role insert rows of those households into commands, events and jobs, and
/// nothing else: no other household's row, no other table, no read, no update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_batch_admits_inserts_of_its_households_only() {
    let db = common::db().await;
    let (a, _) = household_a().await;
    let (b, _) = household_a().await;
    let (c, _) = household_a().await;
    let mut app = db.connect(&db.app).await;
    let insert_command =
        "INSERT INTO commands (tenant_id, id, type, payload, metadata, status, outcome)
                          VALUES ($1, $2, 'PlaceOrder', '{}', '{}', 'rejected', '{}')";

    // A household outside the declared set: refused by row-level security.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, a).await;
    declare_batch(&tx, &[a, b]).await;
    let refused = tx
        .execute(insert_command, &[&c.0, &Uuid::now_v7()])
        .await
        .unwrap_err();
    assert_eq!(
        code(&refused),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{refused}"
    );
    tx.rollback().await.unwrap();

    // A declared household: its row may be inserted, but still not read or updated
    // under A, and its other tables stay out of reach.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, a).await;
    declare_batch(&tx, &[a, b]).await;
    tx.execute(insert_command, &[&b.0, &Uuid::now_v7()])
        .await
        .unwrap();
    for table in TABLES {
        assert_eq!(count(&tx, table, b).await, 0, "A reads B's {table}");
    }
    let updated = tx
        .execute(
            "UPDATE jobs SET status = 'started' WHERE tenant_id = $1",
            &[&b.0],
        )
        .await
        .unwrap();
    assert_eq!(updated, 0, "A updated B's jobs");
    let refused = tx
        .execute(
            "INSERT INTO snapshots (tenant_id, domain, aggregate_id, schema_version, version, state)
             VALUES ($1, 'order', $2, 1, 1, '{}')",
            &[&b.0, &Uuid::now_v7()],
        )
        .await
        .unwrap_err();
    assert_eq!(
        code(&refused),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{refused}"
    );
    tx.rollback().await.unwrap();

    // Without a tenant, a declared set alone reads nothing either.
    let tx = app.transaction().await.unwrap();
    declare_batch(&tx, &[a, b, c]).await;
    for table in TABLES {
        let all: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(all, 0, "{table} read with only a declared batch");
    }
    tx.rollback().await.unwrap();
}

/// Every policy on the household tables is one of the three this schema defines: the
/// tenant's own (every command), the relay's reads, and the declared batch's inserts
/// (INSERT only, the app role only, commands, events and jobs only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_policies_are_the_tenant_the_relay_and_the_declared_batch() {
    let db = common::db().await;
    let admin = db.connect(&db.admin).await;
    let rows = admin
        .query(
            "SELECT c.relname::text, p.polname::text, p.polcmd::text,
                    array(SELECT r.rolname::text FROM pg_roles r WHERE r.oid = ANY (p.polroles)
                          ORDER BY 1)
             FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
             ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    let mut batch = Vec::new();
    for row in &rows {
        let (table, name, cmd, roles): (String, String, String, Vec<String>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        match name.as_str() {
            "tenant_isolation" => assert_eq!(cmd, "*", "{table}"),
            "relay_heads" | "relay_pending_jobs" => {
                assert_eq!(
                    (cmd.as_str(), roles.clone()),
                    ("r", vec![common::RELAY.to_owned()]),
                    "{table}"
                );
            }
            "batch_insert" => {
                assert_eq!(
                    (cmd.as_str(), roles.clone()),
                    ("a", vec![common::APP.to_owned()]),
                    "{table}"
                );
                batch.push(table);
            }
            other => panic!("unexpected policy {other} on {table}"),
        }
    }
    assert_eq!(batch, ["commands", "events", "jobs"]);
}

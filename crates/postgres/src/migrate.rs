//! Versioned migrations, embedded in the binary. Each runs once, in its own
//! transaction, recorded in `hearth_migrations` with a checksum of its text; an
//! advisory lock keeps two concurrent `hearth migrate` runs apart.

use crate::PgError;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// One schema change: plain SQL, applied as the owner role.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this binary knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "schema",
        sql: include_str!("../migrations/0001_schema.sql"),
    },
    Migration {
        version: 2,
        name: "append_function",
        sql: include_str!("../migrations/0002_append_function.sql"),
    },
    Migration {
        version: 3,
        name: "domains",
        sql: include_str!("../migrations/0003_domains.sql"),
    },
    Migration {
        version: 4,
        name: "sessions",
        sql: include_str!("../migrations/0004_sessions.sql"),
    },
    Migration {
        version: 5,
        name: "time_zone",
        sql: include_str!("../migrations/0005_time_zone.sql"),
    },
    Migration {
        version: 6,
        name: "job_correlation",
        sql: include_str!("../migrations/0006_job_correlation.sql"),
    },
    Migration {
        version: 7,
        name: "batch_inserts",
        sql: include_str!("../migrations/0007_batch_inserts.sql"),
    },
    Migration {
        version: 8,
        name: "batch_check_once",
        sql: include_str!("../migrations/0008_batch_check_once.sql"),
    },
];

/// Key of the advisory lock held while migrating ("hearth" in ASCII).
const LOCK_KEY: i64 = 0x6865_6172_7468;

/// FNV-1a of the migration text: detects a migration edited after it was applied.
fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn db(e: tokio_postgres::Error) -> PgError {
    PgError::Db(crate::sql::describe(&e))
}

/// Applies the migrations the database lacks; returns the versions applied now.
/// Connect as the owner role (the one that owns the schema).
pub async fn migrate(client: &Client) -> Result<Vec<i32>, PgError> {
    migrate_up_to(client, i32::MAX).await
}

/// [`migrate`], but only the migrations up to `version`: a database as an older
/// binary left it (how a test checks that a migration carries data over).
pub async fn migrate_up_to(client: &Client, version: i32) -> Result<Vec<i32>, PgError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(db)?;
    let result = apply(client, version).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .map_err(db);
    let applied = result?;
    unlock?;
    Ok(applied)
}

/// Checks that the database has every migration this binary knows, connected as
/// the application role: a process started on an older schema would otherwise fail
/// at its first append. The application role may read `hearth_migrations` from
/// migration 2 on; a database where it cannot (or where the table is missing) is
/// behind too.
pub async fn check_schema(client: &Client) -> Result<(), PgError> {
    let needs = MIGRATIONS.last().map_or(0, |m| m.version);
    let at: Option<i32> = match client
        .query_one("SELECT max(version) FROM hearth_migrations", &[])
        .await
    {
        Ok(row) => row.try_get(0).map_err(db)?,
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => None,
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            return Err(PgError::SchemaBehind {
                at: "older than migration 2".into(),
                needs,
            });
        }
        Err(e) => return Err(db(e)),
    };
    match at {
        Some(at) if at >= needs => Ok(()),
        at => Err(PgError::SchemaBehind {
            at: at.map_or_else(|| "not migrated".into(), |at| format!("at migration {at}")),
            needs,
        }),
    }
}

async fn apply(client: &Client, up_to: i32) -> Result<Vec<i32>, PgError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS hearth_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(db)?;
    let rows = client
        .query("SELECT version, checksum FROM hearth_migrations", &[])
        .await
        .map_err(db)?;
    let mut done = Vec::new();
    for row in rows {
        let version: i32 = row.try_get(0).map_err(db)?;
        let sum: String = row.try_get(1).map_err(db)?;
        let Some(known) = MIGRATIONS.iter().find(|m| m.version == version) else {
            return Err(PgError::UnknownMigration(version));
        };
        if checksum(known.sql) != sum {
            return Err(PgError::Migration {
                version,
                name: known.name,
                message: "it was changed after it was applied".into(),
            });
        }
        done.push(version);
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS
        .iter()
        .filter(|m| !done.contains(&m.version) && m.version <= up_to)
    {
        let fail = |e: tokio_postgres::Error| PgError::Migration {
            version: m.version,
            name: m.name,
            message: crate::sql::describe(&e),
        };
        client.batch_execute("BEGIN").await.map_err(fail)?;
        let run = async {
            client.batch_execute(m.sql).await?;
            client
                .execute(
                    "INSERT INTO hearth_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    &[&m.version, &m.name, &checksum(m.sql)],
                )
                .await?;
            client.batch_execute("COMMIT").await
        };
        if let Err(e) = run.await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(fail(e));
        }
        tracing::info!(version = m.version, name = m.name, "migration applied");
        applied.push(m.version);
    }
    Ok(applied)
}

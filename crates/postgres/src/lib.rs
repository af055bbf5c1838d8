//! PostgreSQL adapters of Hearth's ports (DESIGN.md section 4, docs/postgres.md).
//!
//! - [`PgEventStore`]: the event log. Concurrent appends are group-committed by
//!   batchers ([`Batching`]): one call of the `hearth_append` function per batch,
//!   one transaction, which records each append's command id, per-household `seq`,
//!   events and outbox jobs under that append's own tenant setting.
//! - [`PgEventFeed`]: a dedicated `LISTEN` connection per process on one channel,
//!   with a slow fallback poll; the doorbell is rung after commit, coalesced.
//! - [`PgOutbox`]: the jobs recorded with their events, scanned as the relay role.
//! - [`PgDirectory`]: households, members, single-use invites.
//!
//! Every statement runs as the application role after `app.tenant_id` was set for
//! its household in its transaction; row-level security does the rest. Only the
//! relay role reads across households ([`PgOutbox::pending_jobs`] and the
//! feed's fallback poll).
//!
//! **Invariant:** no `tokio_postgres` or `deadpool` error leaves this crate through a
//! port: they are translated into `StoreError` / `DirectoryError`.

mod batch;
mod directory;
mod feed;
mod migrate;
mod outbox;
mod roles;
mod sql;
mod store;
mod tls;

pub use batch::{BatchStats, Batching};
pub use directory::PgDirectory;
pub use feed::{FEED_CHANNEL, FeedOptions, FeedStats, PgEventFeed};
pub use migrate::{MIGRATIONS, Migration, check_schema, migrate, migrate_up_to};
pub use outbox::PgOutbox;
pub use roles::{HEARTH_TABLES, UnsafeRole, check_role};
pub use store::PgEventStore;

pub use deadpool_postgres::Pool;
pub use tls::{Config, RootCert, SslMode};

/// Errors of setting things up (connecting, migrating); the ports have their own.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("invalid database url: {0}")]
    Url(String),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("TLS to PostgreSQL: {0}")]
    Tls(String),
    #[error("migration {version} ({name}) failed: {message}")]
    Migration {
        version: i32,
        name: &'static str,
        message: String,
    },
    #[error("the database has migration {0} that this binary does not know")]
    UnknownMigration(i32),
    #[error(
        "the database schema is behind this binary ({at}; it needs migration {needs}): \
         run `hearth migrate` as the owner role"
    )]
    SchemaBehind { at: String, needs: i32 },
    #[error(
        "refusing to run as the database role {role}: {reason}. Connect as the application \
         role `hearth migrate` sets up (hearth_app for --database-url, hearth_relay for \
         --relay-database-url; docs/postgres.md, Roles), never as the owner or a superuser"
    )]
    UnsafeRole { role: String, reason: UnsafeRole },
    #[error("PostgreSQL: {0}")]
    Db(String),
}

/// Parses a `postgres://` URL (or a key=value string), with libpq's `sslmode` and
/// `sslrootcert` (see [`Config`]).
pub fn parse_url(url: &str) -> Result<Config, PgError> {
    Config::parse(url)
}

/// A connection pool on `config`. Connections are created lazily.
pub fn pool(config: Config, max_size: usize) -> Result<Pool, PgError> {
    let manager = deadpool_postgres::Manager::from_config(
        config.pg().clone(),
        config.tls(),
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| PgError::Connect(e.to_string()))
}

/// One unpooled connection, driven by a spawned task.
/// What to do about a failed connection, for the commonest causes: said after the
/// error, so an operator does not have to guess.
fn connect_hint(sqlstate: Option<&str>, what: &str) -> &'static str {
    match sqlstate {
        // invalid_authorization_specification, invalid_password
        Some("28000" | "28P01") => {
            "; check the role and password in the URL (serve and worker connect as hearth_app and hearth_relay, which `hearth migrate` creates; docs/postgres.md, Roles)"
        }
        // invalid_catalog_name: no such database
        Some("3D000") => "; check the database name in the URL",
        _ if what.contains("Connection refused") => {
            "; is PostgreSQL running and listening on that host and port?"
        }
        _ => "",
    }
}

pub async fn connect(config: &Config) -> Result<tokio_postgres::Client, PgError> {
    let (client, connection) = config.pg().connect(config.tls()).await.map_err(|e| {
        let what = sql::describe(&e);
        let hint = connect_hint(e.as_db_error().map(|db| db.code().code()), &what);
        let role = config.pg().get_user().unwrap_or("(no user in the URL)");
        PgError::Connect(format!("{} as {role}: {what}{hint}", config.target()))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

//! Which store `hearth serve` (and the workers) run on: PostgreSQL when a database URL
//! is given, otherwise the embedded SQLite file in the data directory, or memory.

use anyhow::Context as _;
use hearth_axum::{NotReady, ReadyCheck};
use hearth_core::ports::{Directory, EventFeed, EventStore, Outbox};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// PostgreSQL URL of the application role (`hearth_app`). When set, Hearth runs on
    /// PostgreSQL (run `hearth migrate` first) instead of the embedded SQLite file.
    #[arg(long, env = "HEARTH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL URL of the relay role (`hearth_relay`): the feed's listener and
    /// fallback poll and the job relay read through it. Required with --database-url.
    #[arg(
        long,
        env = "HEARTH_RELAY_DATABASE_URL",
        hide_env_values = true,
        requires = "database_url"
    )]
    pub relay_database_url: Option<String>,
    /// Size of the application role's connection pool.
    #[arg(long, env = "HEARTH_DATABASE_POOL", default_value_t = 16)]
    pub database_pool: usize,
    /// Directory of the embedded store (SQLite file `hearth.sqlite`), used when no
    /// database URL is given.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "hearth-data")]
    pub data_dir: PathBuf,
    /// The SQLite file itself, instead of `<data-dir>/hearth.sqlite`.
    #[arg(long, env = "HEARTH_SQLITE", conflicts_with = "database_url")]
    pub sqlite: Option<PathBuf>,
    /// Keep everything in memory: nothing survives a restart.
    #[arg(long, conflicts_with = "database_url")]
    pub memory: bool,
}

/// The store ports, opened.
#[derive(Debug, Clone)]
pub struct Stores {
    pub store: Arc<dyn EventStore>,
    /// The jobs the store records with its events, for the relay.
    pub outbox: Arc<dyn Outbox>,
    pub feed: Arc<dyn EventFeed>,
    pub directory: Arc<dyn Directory>,
    /// What it is, for the log.
    pub kind: String,
    /// What `/readyz` checks of the store besides a read: on PostgreSQL, that the
    /// schema is current (SQLite's file is migrated by the process that opens it).
    pub ready_checks: Vec<ReadyCheck>,
}

impl StoreArgs {
    /// Opens the store. `sharing` says whether another process may open the SQLite
    /// file while this one runs (ignored on PostgreSQL and in memory).
    pub async fn open(&self, sharing: hearth_sqlite::Sharing) -> anyhow::Result<Stores> {
        if self.memory {
            let store = Arc::new(hearth_memory::MemoryEventStore::new());
            return Ok(Stores {
                feed: Arc::new(store.feed()),
                outbox: store.clone(),
                store,
                directory: Arc::new(hearth_memory::MemoryDirectory::new()),
                kind: "memory".into(),
                ready_checks: Vec::new(),
            });
        }
        if let Some(url) = &self.database_url {
            let relay_url = self.relay_database_url.as_deref().context(
                "--relay-database-url (HEARTH_RELAY_DATABASE_URL) is required with --database-url",
            )?;
            let app_config = hearth_postgres::parse_url(url)?;
            let relay_config = hearth_postgres::parse_url(relay_url)?;
            // Fail now, with what to do, rather than at the first command: a role that
            // row-level security does not bind, or a schema behind this binary.
            let check = hearth_postgres::connect(&app_config)
                .await
                .context("connecting with --database-url")?;
            hearth_postgres::check_role(&check)
                .await
                .context("checking the role of --database-url")?;
            hearth_postgres::check_schema(&check).await?;
            drop(check);
            let check = hearth_postgres::connect(&relay_config)
                .await
                .context("connecting with --relay-database-url")?;
            hearth_postgres::check_role(&check)
                .await
                .context("checking the role of --relay-database-url")?;
            drop(check);
            let app = hearth_postgres::pool(app_config, self.database_pool)?;
            let relay = hearth_postgres::pool(relay_config.clone(), 2)?;
            let store = Arc::new(hearth_postgres::PgEventStore::new(app.clone()));
            let outbox = Arc::new(hearth_postgres::PgOutbox::new(relay, app.clone()));
            let feed = Arc::new(hearth_postgres::PgEventFeed::start(
                relay_config,
                hearth_postgres::FeedOptions::default(),
            ));
            return Ok(Stores {
                store,
                outbox,
                feed,
                directory: Arc::new(hearth_postgres::PgDirectory::new(app.clone())),
                kind: "postgres".into(),
                ready_checks: vec![schema_check(app)],
            });
        }
        let path = match &self.sqlite {
            Some(file) => file.clone(),
            None => {
                create_private_dir(&self.data_dir)?;
                self.data_dir.join("hearth.sqlite")
            }
        };
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                hearth_sqlite::SqliteEventStore::open_with(path, sharing)
            })
            .await?
        };
        let (store, feed) = opened.with_context(|| format!("opening {}", path.display()))?;
        Ok(Stores {
            directory: Arc::new(store.directory()),
            feed: Arc::new(feed),
            outbox: store.clone(),
            store,
            kind: format!("sqlite {}", path.display()),
            ready_checks: Vec::new(),
        })
    }

    /// A token secret kept in the data directory, so tokens survive a restart of the
    /// embedded default without configuration. Created once, readable by the owner only.
    pub fn persistent_token_secret(&self) -> anyhow::Result<Option<String>> {
        if self.memory || self.database_url.is_some() {
            return Ok(None);
        }
        let path = self.data_dir.join("token-secret");
        if let Ok(secret) = std::fs::read_to_string(&path) {
            let secret = secret.trim().to_owned();
            if !secret.is_empty() {
                return Ok(Some(secret));
            }
        }
        create_private_dir(&self.data_dir)?;
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
        Ok(Some(secret))
    }
}

/// `/readyz`'s `schema` check on PostgreSQL: the database has every migration this
/// binary knows (`hearth_postgres::check_schema`, as the application role). A database
/// behind it (restored from an older backup, say) makes the node not ready, saying
/// where it is; `hearth migrate` brings it level.
fn schema_check(pool: hearth_postgres::Pool) -> ReadyCheck {
    ReadyCheck::new("schema", move || {
        let pool = pool.clone();
        async move {
            let client = pool
                .get()
                .await
                .map_err(|e| NotReady::new("unavailable", e))?;
            match hearth_postgres::check_schema(&client).await {
                Ok(()) => Ok(()),
                Err(error) => {
                    let said = match &error {
                        hearth_postgres::PgError::SchemaBehind { at, needs } => {
                            format!("behind: {at}, this binary needs migration {needs}")
                        }
                        _ => "unavailable".to_owned(),
                    };
                    Err(NotReady::new(said, error))
                }
            }
        }
    })
}

/// Creates the data directory (and missing parents) accessible to its owner only
/// (0700); an existing directory keeps its mode.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating the data directory {} (mode 0700)", dir.display()))
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

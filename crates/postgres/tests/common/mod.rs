//! Test support: a database of our own on a real PostgreSQL, with our own roles.
//!
//! The server is `HEARTH_TEST_PG_URL` (a superuser URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each test run (nextest's
//! `NEXTEST_RUN_ID`, else each process) gets a fresh database `hearth_pg_<run>`, owned
//! by the non-superuser `hearth_owner`, migrated by it; the tests connect as
//! `hearth_app` and `hearth_relay`. Databases of runs older than three hours are
//! dropped on the way.

#![allow(dead_code, clippy::unwrap_used)]

use hearth_postgres::{
    Config, FeedOptions, PgDirectory, PgEventFeed, PgEventStore, PgOutbox, Pool,
};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const OWNER: &str = "hearth_owner";
pub const APP: &str = "hearth_app";
pub const RELAY: &str = "hearth_relay";

/// Connection settings of one test database, per role.
#[derive(Clone, Debug)]
pub struct TestDb {
    pub name: String,
    /// Superuser, connected to the test database (for checks from outside only).
    pub admin: Config,
    pub owner: Config,
    pub app: Config,
    pub relay: Config,
}

impl TestDb {
    pub fn app_pool(&self, size: usize) -> Pool {
        hearth_postgres::pool(self.app.clone(), size).unwrap()
    }

    pub fn relay_pool(&self, size: usize) -> Pool {
        hearth_postgres::pool(self.relay.clone(), size).unwrap()
    }

    pub fn store(&self) -> Arc<PgEventStore> {
        Arc::new(PgEventStore::new(self.app_pool(16)))
    }

    pub fn outbox(&self) -> Arc<PgOutbox> {
        Arc::new(PgOutbox::new(self.relay_pool(2), self.app_pool(2)))
    }

    pub fn directory(&self) -> Arc<PgDirectory> {
        Arc::new(PgDirectory::new(self.app_pool(8)))
    }

    pub fn feed(&self, options: FeedOptions) -> PgEventFeed {
        PgEventFeed::start(self.relay.clone(), options)
    }

    pub async fn connect(&self, config: &Config) -> tokio_postgres::Client {
        hearth_postgres::connect(config).await.unwrap()
    }
}

pub fn server_url() -> String {
    std::env::var("HEARTH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

static DB: tokio::sync::OnceCell<TestDb> = tokio::sync::OnceCell::const_new();

/// The test database of this run on the shared server, created on first use.
pub async fn db() -> &'static TestDb {
    DB.get_or_init(|| async {
        let run = std::env::var("NEXTEST_RUN_ID")
            .unwrap_or_else(|_| uuid::Uuid::now_v7().to_string())
            .replace('-', "");
        let name = format!("hearth_pg_{}", &run[..run.len().min(20)]);
        setup(hearth_postgres::parse_url(&server_url()).unwrap(), &name).await
    })
    .await
}

fn as_role(server: &Config, role: &str, db: &str) -> Config {
    let mut c = server.clone();
    c.user(role).password(role).dbname(db);
    c
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Creates (once, under an advisory lock) the roles and database `name` on the
/// server of `server` (a superuser connection), and migrates it as the owner.
pub async fn setup(server: Config, name: &str) -> TestDb {
    let admin = hearth_postgres::connect(&server).await.unwrap();
    admin
        .execute("SELECT pg_advisory_lock(7261)", &[])
        .await
        .unwrap();
    for (role, extra) in [
        (OWNER, "CREATEROLE"),
        (APP, "NOINHERIT"),
        (RELAY, "NOINHERIT"),
    ] {
        let exists = admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .unwrap()
            .is_some();
        if !exists {
            admin
                .batch_execute(&format!(
                    "CREATE ROLE {role} LOGIN PASSWORD '{role}' NOSUPERUSER NOBYPASSRLS \
                     NOCREATEDB {extra}"
                ))
                .await
                .unwrap();
        }
    }
    // Old runs' databases (a comment holds their creation time).
    let stale = admin
        .query(
            "SELECT datname FROM pg_database
             WHERE datname LIKE 'hearth\\_pg\\_%' AND datname <> $1
               AND coalesce(shobj_description(oid, 'pg_database'), '0')::bigint < $2",
            &[&name, &((unix_now() - 3 * 3600) as i64)],
        )
        .await
        .unwrap();
    for row in stale {
        let old: String = row.get(0);
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {old}"))
            .await;
    }
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {name} OWNER {OWNER}"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("COMMENT ON DATABASE {name} IS '{}'", unix_now()))
            .await
            .unwrap();
    }
    let owner = as_role(&server, OWNER, name);
    let owner_client = hearth_postgres::connect(&owner).await.unwrap();
    hearth_postgres::migrate(&owner_client).await.unwrap();
    admin
        .execute("SELECT pg_advisory_unlock(7261)", &[])
        .await
        .unwrap();
    let mut admin_db = server.clone();
    admin_db.dbname(name);
    TestDb {
        name: name.to_owned(),
        admin: admin_db,
        owner,
        app: as_role(&server, APP, name),
        relay: as_role(&server, RELAY, name),
    }
}

/// A private PostgreSQL 15 instance in a temporary directory, on a free loopback
/// port, that a test may stop and start (the shared server is never restarted).
/// Runs initdb/pg_ctl as the `postgres` OS user when the tests run as root.
#[derive(Debug)]
pub struct PrivateServer {
    pub dir: String,
    pub port: u16,
    /// More `-c name=value` options for the server.
    options: String,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn as_postgres(program: &str, args: &[&str]) -> std::process::Output {
    let root = running_as_root();
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).output().unwrap()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PrivateServer {
    pub fn start() -> Self {
        Self::start_with(|_| String::new())
    }

    /// A server with TLS on, presenting `cert_pem` (with its key `key_pem`).
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::start_with(|dir| {
            let cert = format!("{dir}/server.crt");
            let key = format!("{dir}/server.key");
            std::fs::write(&cert, cert_pem).unwrap();
            std::fs::write(&key, key_pem).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            if running_as_root() {
                let ok = Command::new("chown")
                    .args(["postgres:postgres", &cert, &key])
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "chown {cert} {key}");
            }
            format!(" -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}")
        })
    }

    /// Starts a server; `prepare` gets the directory (before the server starts) and
    /// returns more server options.
    fn start_with(prepare: impl FnOnce(&str) -> String) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = format!("/tmp/hearth-pg-{}", uuid::Uuid::now_v7().simple());
        std::fs::create_dir_all(&dir).unwrap();
        if running_as_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres", &dir])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown {dir}");
        }
        let data = format!("{dir}/data");
        let out = as_postgres(
            &format!("{PG_BIN}/initdb"),
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let options = prepare(&dir);
        let server = Self { dir, port, options };
        server.pg_ctl_start();
        server
    }

    fn pg_ctl_start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60{}",
            self.port, self.dir, self.options
        );
        let out = as_postgres(
            &format!("{PG_BIN}/pg_ctl"),
            &[
                "-D",
                &format!("{}/data", self.dir),
                "-l",
                &format!("{}/log", self.dir),
                "-o",
                &opts,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server again after [`PrivateServer::stop`].
    pub fn start_again(&self) {
        self.pg_ctl_start();
    }

    /// Stops the server (fast: connections are terminated), waits, starts it again.
    pub fn restart(&self, down_for: Duration) {
        self.stop();
        // The scenario, not synchronisation: the server stays down this long.
        std::thread::sleep(down_for);
        self.pg_ctl_start();
    }

    pub fn stop(&self) {
        let _ = as_postgres(
            &format!("{PG_BIN}/pg_ctl"),
            &[
                "-D",
                &format!("{}/data", self.dir),
                "-m",
                "fast",
                "-w",
                "-t",
                "30",
                "stop",
            ],
        );
    }

    pub fn config(&self) -> Config {
        hearth_postgres::parse_url(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port
        ))
        .unwrap()
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh, empty database of a test's own on the test server, owned by the owner role
/// the shared set-up created (named after the shared one, which other test processes
/// clean up, with `prefix`). Dropped by [`OwnDb::drop_now`].
pub struct OwnDb {
    pub admin: tokio_postgres::Client,
    pub name: String,
    server: Config,
}

impl OwnDb {
    pub async fn create(prefix: &str) -> Self {
        let shared = db().await;
        let server = hearth_postgres::parse_url(&server_url()).unwrap();
        let admin = hearth_postgres::connect(&server).await.unwrap();
        let name = format!("{prefix}_{}", &shared.name["hearth_pg_".len()..]);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name} OWNER hearth_owner"))
            .await
            .unwrap();
        Self {
            admin,
            name,
            server,
        }
    }

    /// How `role` (its password is its name) connects to this database.
    pub fn as_role(&self, role: &str) -> Config {
        let mut config = self.server.clone();
        config.user(role).password(role).dbname(&self.name);
        config
    }

    pub async fn drop_now(self) {
        self.admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

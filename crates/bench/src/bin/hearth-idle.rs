//! `hearth-idle`: idle sockets on one node (issue 20, goal 5). Starts a `hearth serve`
//! (SQLite in a temporary data directory, `--no-durable`), signs up households and
//! members over HTTP, then opens `--count` WebSockets to the household rooms from
//! several loopback source addresses (127.0.0.2, 127.0.0.3, ...: each gives one range
//! of ephemeral ports) and leaves them idle, answering the server's pings and reading
//! (and dropping) whatever else comes. It measures, from the outside:
//!
//! - the server's RSS (`VmRSS`) before the first socket and at each quarter of the
//!   count, and RSS per socket = (RSS - RSS before) / sockets;
//! - the server's CPU (utime + stime from `/proc/<pid>/stat`) over an idle window at the
//!   full count: what pings and the sockets' periodic work cost when nothing happens;
//! - this client's own RSS and CPU.
//!
//! The server's edge limits are raised with its flags for the run (connections, per
//! address, request and signup rates, the token's lifetime); the per-member and
//! per-room socket caps keep their defaults unless `--server-arg` says otherwise, and
//! the sockets are spread over enough households and members to stay within them.
//! Prints a table and one JSON line (`{"idle": ...}`). The run stops early (reporting
//! what it reached) when a socket cannot be opened, when one closes, or when the
//! server's RSS passes `--max-server-rss-mib`.
//!
//! The open-file limit must allow the count on both sides: `bench/idle.sh` raises it.

use anyhow::{Context as _, bail, ensure};
use futures::StreamExt as _;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::BufReader;
use tokio::net::TcpSocket;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

#[derive(Debug, clap::Parser)]
#[command(
    name = "hearth-idle",
    about = "Idle sockets on one Hearth node (issue 20)"
)]
struct Args {
    /// Sockets to open and hold.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Households to sign up (their sockets are spread evenly); default: one per 20
    /// sockets (5 per member of 4).
    #[arg(long)]
    households: Option<usize>,
    /// Members per household, the owner included.
    #[arg(long, default_value_t = 4)]
    members: usize,
    /// Loopback source addresses (127.0.0.2 upwards); default: one per 20,000 sockets,
    /// at least 4.
    #[arg(long)]
    sources: Option<usize>,
    /// Seconds of the idle window at the full count, over which the server's CPU is read.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Seconds of a shorter idle window at each quarter before the last (0: none).
    #[arg(long, default_value_t = 0)]
    step_idle_secs: u64,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 256)]
    opening: usize,
    /// Stop when the server's RSS passes this (MiB).
    #[arg(long, default_value_t = 4096)]
    max_server_rss_mib: u64,
    /// The `hearth` binary (default: `hearth` next to this one).
    #[arg(long, env = "HEARTH_BIN")]
    hearth_bin: Option<PathBuf>,
    /// Another flag for `hearth serve` (repeatable), after the ones this tool sets.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// A name for this run in the JSON line (e.g. before/after).
    #[arg(long, default_value = "run")]
    label: String,
    /// Where the server's log goes (default: in the temporary data directory, removed).
    #[arg(long)]
    log: Option<PathBuf>,
}

/// What the sockets saw, all of them together.
#[derive(Debug, Default)]
struct Seen {
    opened: AtomicU64,
    failed: AtomicU64,
    closed: AtomicU64,
    pings: AtomicU64,
    other: AtomicU64,
    first_failure: Mutex<Option<String>>,
    first_close: Mutex<Option<String>>,
}

impl Seen {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.first_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
    }

    fn close(&self, why: String) {
        self.closed.fetch_add(1, Ordering::Relaxed);
        self.first_close
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
    }

    fn first_failure(&self) -> Option<String> {
        self.first_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn first_close(&self) -> Option<String> {
        self.first_close
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One row of the table: the state at a count of open sockets.
#[derive(Debug, Serialize)]
struct Step {
    sockets: u64,
    server_rss_kib: u64,
    /// (RSS - RSS before the first socket) / sockets.
    per_socket_kib: f64,
    client_rss_kib: u64,
    /// Seconds the sockets of this step took to open.
    open_secs: f64,
    /// Server CPU per socket opened in this step.
    server_cpu_ms_per_open: f64,
    /// Server CPU over this step's idle window, in cores (None: no window).
    idle_server_cores: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Idle {
    sockets: u64,
    secs: f64,
    server_cpu_ms: f64,
    /// Server CPU over the window / its length: cores busy.
    server_cores: f64,
    /// Server CPU per socket per second, in microseconds.
    server_us_per_socket_s: f64,
    client_cpu_ms: f64,
    pings: u64,
    pings_per_s: f64,
    closed_during: u64,
    loadavg: String,
}

#[derive(Debug, Serialize)]
struct Report {
    label: String,
    target: usize,
    reached: u64,
    households: usize,
    members: usize,
    sources: usize,
    ping_interval_secs: Option<u64>,
    server_rss_before_kib: u64,
    client_rss_before_kib: u64,
    setup_secs: f64,
    steps: Vec<Step>,
    idle: Option<Idle>,
    failed: u64,
    first_failure: Option<String>,
    closed: u64,
    first_close: Option<String>,
    stopped_by: Option<String>,
    server_flags: Vec<String>,
}

/// The server under measure, SIGKILLed when dropped.
struct Server {
    _child: Child,
    _stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
    pid: u32,
}

async fn start_server(bin: &PathBuf, flags: &[String], log: &PathBuf) -> anyhow::Result<Server> {
    let mut cmd = Command::new(bin);
    cmd.arg("serve").args(flags);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HEARTH_") {
            cmd.env_remove(key);
        }
    }
    let errors =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::from(errors))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("the server exited at once")?;
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let addr = hearth_bench::listening_addr(&mut stdout, log).await?;
    Ok(Server {
        _child: child,
        _stdout: stdout,
        addr,
        pid,
    })
}

/// POSTs JSON and returns the answer's JSON, checking for 201.
async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let mut request = http
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let reply = request
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = reply.status();
    let text = reply.text().await?;
    ensure!(status.as_u16() == 201, "POST {url}: {status} {text}");
    Ok(serde_json::from_str(&text)?)
}

/// A household and its members' tokens (the owner's first).
async fn household(
    http: &reqwest::Client,
    base: &str,
    members: usize,
) -> anyhow::Result<(Uuid, Vec<String>)> {
    let created = post(
        http,
        format!("{base}/households"),
        None,
        serde_json::json!({"name": "Idle", "ownerName": "Owner"}),
    )
    .await?;
    let id: Uuid = serde_json::from_value(created["household"]["id"].clone())?;
    let owner = created["token"]
        .as_str()
        .context("no owner token")?
        .to_owned();
    let mut tokens = vec![owner.clone()];
    for _ in 1..members {
        let invite = post(
            http,
            format!("{base}/households/{id}/invites"),
            Some(&owner),
            serde_json::json!({}),
        )
        .await?;
        let joined = post(
            http,
            format!("{base}/households/{id}/join"),
            None,
            serde_json::json!({"code": invite["code"], "name": "Member"}),
        )
        .await?;
        tokens.push(
            joined["token"]
                .as_str()
                .context("no member token")?
                .to_owned(),
        );
    }
    Ok((id, tokens))
}

/// Opens one socket from `from`, waits for the welcome, then holds it: reads (and
/// drops) everything, answering pings (tungstenite queues the pong and sends it on
/// the next read). Returns only when the socket ends.
async fn hold(to: SocketAddr, from: IpAddr, url: String, opening: Arc<Semaphore>, seen: Arc<Seen>) {
    let permit = opening.acquire_owned().await;
    let open = async {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let stream = socket.connect(to).await?;
        // Lean: the welcome of an empty household and pings are all that come.
        let config = WebSocketConfig::default()
            .read_buffer_size(1024)
            .write_buffer_size(0);
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str().starts_with("{\"welcome\":") => {
                    return Ok(ws);
                }
                Some(Ok(Message::Text(t))) => bail!("expected a welcome, got {}", t.as_str()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("closed before the welcome"),
            }
        }
    };
    let mut ws = match tokio::time::timeout(Duration::from_secs(60), open).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return seen.fail(format!("{e:#}")),
        Err(_) => return seen.fail("no welcome within 60 s".into()),
    };
    drop(permit);
    seen.opened.fetch_add(1, Ordering::Relaxed);
    loop {
        match ws.next().await {
            Some(Ok(Message::Ping(_))) => {
                seen.pings.fetch_add(1, Ordering::Relaxed);
            }
            Some(Ok(Message::Close(frame))) => return seen.close(format!("closed: {frame:?}")),
            Some(Ok(_)) => {
                seen.other.fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(e)) => return seen.close(format!("socket: {e}")),
            None => return seen.close("ended".into()),
        }
    }
}

fn now_cpu(pid: u32) -> f64 {
    hearth_bench::cpu_ms(pid).unwrap_or(0.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The soft limit of open files of this process (inherited by the server).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

/// The value of a flag in `flags` (the last one given wins, as clap reads them).
fn flag_value(flags: &[String], name: &str) -> Option<u64> {
    flags
        .windows(2)
        .rev()
        .filter(|w| w[0] == name)
        .find_map(|w| w[1].parse().ok())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let households = args.households.unwrap_or(args.count.div_ceil(20));
    ensure!(args.count > 0 && households > 0 && args.members > 0);
    let bin = match args.hearth_bin.clone() {
        Some(bin) => bin,
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no directory")?
            .join("hearth"),
    };
    ensure!(bin.is_file(), "no hearth binary at {}", bin.display());
    let files = open_file_limit().unwrap_or(0);
    // The sockets, and a few descriptors of the process's own (the server needs about
    // 30 more: its listener, the SQLite files, the runtime's).
    ensure!(
        files >= args.count as u64 + 100,
        "the open-file limit is {files}, below {} sockets + 100: raise it (ulimit -n); \
         the server inherits it",
        args.count
    );
    let sources = args
        .sources
        .unwrap_or(args.count.div_ceil(20_000).max(4))
        .max(1);
    ensure!(sources <= 250, "at most 250 source addresses");
    let per_source = args.count.div_ceil(sources);
    let data = tempfile::Builder::new().prefix("hearth-idle-").tempdir()?;
    let log = args
        .log
        .clone()
        .unwrap_or_else(|| data.path().join("server.log"));
    let secret = format!(
        "idle-{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    );
    let many = "1000000000".to_owned();
    let mut flags: Vec<String> = [
        "--no-durable",
        "--listen",
        "127.0.0.1:0",
        "--web-dir",
        "/nonexistent-idle-web",
        // Tokens must outlive the run (a socket closes when its token expires unrenewed).
        "--access-token-ttl-secs",
        "86400",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    flags.extend(["--token-secret".to_owned(), secret]);
    flags.extend([
        "--data-dir".to_owned(),
        data.path().join("data").display().to_string(),
    ]);
    // The edge's limits, raised for the run (the defaults are not changed).
    for (flag, value) in [
        ("--max-connections", (args.count + 1_000).to_string()),
        (
            "--max-connections-per-address",
            (per_source + 1_000).to_string(),
        ),
        ("--address-burst", many.clone()),
        ("--address-per-second", many.clone()),
        ("--signup-burst", many.clone()),
        ("--signup-per-minute", many.clone()),
    ] {
        flags.extend([flag.to_owned(), value]);
    }
    flags.extend(args.server_args.iter().cloned());
    let per_member_cap = flag_value(&flags, "--max-sockets-per-member").unwrap_or(16);
    let per_room_cap = flag_value(&flags, "--max-sockets-per-room").unwrap_or(256);
    let per_member = args.count.div_ceil(households * args.members) as u64;
    let per_room = args.count.div_ceil(households) as u64;
    ensure!(
        per_member <= per_member_cap && per_room <= per_room_cap,
        "{per_member} sockets per member and {per_room} per household: above the caps \
         ({per_member_cap}, {per_room_cap}); add households or members, or raise the caps \
         with --server-arg"
    );

    let server = start_server(&bin, &flags, &log).await?;
    let base = format!("http://{}", server.addr);
    eprintln!(
        "hearth-idle {}: server pid {} on {}; {} sockets over {} households x {} members, \
         from {sources} source addresses",
        args.label, server.pid, server.addr, args.count, households, args.members
    );

    // Households and members, over kept-alive connections.
    let started = Instant::now();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let made: Vec<anyhow::Result<(Uuid, Vec<String>)>> = futures::stream::iter(0..households)
        .map(|_| household(&http, &base, args.members))
        .buffer_unordered(16)
        .collect()
        .await;
    let mut members = Vec::with_capacity(households * args.members);
    for made in made {
        let (id, tokens) = made?;
        members.extend(tokens.into_iter().map(|t| (id, t)));
    }
    drop(http);
    let setup_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "signed up {} households, {} members in {setup_secs:.1} s",
        households,
        members.len()
    );

    // Let the server settle (sign-up work, idle HTTP connections closing).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let own = std::process::id();
    let rss_before = hearth_bench::rss_kib(server.pid).context("server RSS")?;
    let client_before = hearth_bench::rss_kib(own).unwrap_or(0);
    eprintln!("before: server RSS {rss_before} KiB, client RSS {client_before} KiB");

    let seen = Arc::new(Seen::default());
    let opening = Arc::new(Semaphore::new(args.opening.max(1)));
    let mut steps = Vec::new();
    let mut stopped_by = None;
    let quarters: Vec<usize> = (1..=4).map(|q| args.count * q / 4).collect();
    let mut next = 0usize;
    for (q, &target) in quarters.iter().enumerate() {
        let step_started = Instant::now();
        let cpu_before = now_cpu(server.pid);
        for i in next..target {
            let (household, token) = &members[i % members.len()];
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % sources) as u8));
            let url = format!(
                "ws://{}/parties/household/{household}?_pk={}&token={token}",
                server.addr,
                Uuid::new_v4()
            );
            tokio::spawn(hold(server.addr, from, url, opening.clone(), seen.clone()));
        }
        let opened_in_step = (target - next) as u64;
        next = target;
        // Until every socket of the step is open or failed, watching the server's RSS.
        let mut last_report = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (opened, failed) = (
                seen.opened.load(Ordering::Relaxed),
                seen.failed.load(Ordering::Relaxed),
            );
            let rss = hearth_bench::rss_kib(server.pid).unwrap_or(0);
            if rss > args.max_server_rss_mib * 1024 {
                stopped_by = Some(format!(
                    "the server's RSS passed {} MiB at {opened} sockets",
                    args.max_server_rss_mib
                ));
                break;
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                eprintln!("  {opened} open, {failed} failed, server RSS {rss} KiB");
                last_report = Instant::now();
            }
            if opened + failed >= target as u64 {
                break;
            }
        }
        let open_secs = step_started.elapsed().as_secs_f64();
        let cpu_open = now_cpu(server.pid) - cpu_before;
        if stopped_by.is_some() {
            break;
        }
        let failed = seen.failed.load(Ordering::Relaxed);
        if failed > 0 {
            stopped_by = Some(format!(
                "{failed} socket(s) could not open; first: {}",
                seen.first_failure().unwrap_or_default()
            ));
        }
        let opened = seen.opened.load(Ordering::Relaxed);
        let rss = hearth_bench::rss_kib(server.pid).context("server RSS")?;
        let mut step = Step {
            sockets: opened,
            server_rss_kib: rss,
            per_socket_kib: (rss.saturating_sub(rss_before)) as f64 / opened.max(1) as f64,
            client_rss_kib: hearth_bench::rss_kib(own).unwrap_or(0),
            open_secs,
            server_cpu_ms_per_open: cpu_open / opened_in_step.max(1) as f64,
            idle_server_cores: None,
        };
        if q + 1 < quarters.len() && args.step_idle_secs > 0 && stopped_by.is_none() {
            let cpu = now_cpu(server.pid);
            let at = Instant::now();
            tokio::time::sleep(Duration::from_secs(args.step_idle_secs)).await;
            step.idle_server_cores =
                Some((now_cpu(server.pid) - cpu) / at.elapsed().as_secs_f64() / 1000.0);
        }
        eprintln!(
            "{} sockets: server RSS {} KiB ({:.2} KiB per socket), client RSS {} KiB, \
             opened in {:.1} s",
            step.sockets, step.server_rss_kib, step.per_socket_kib, step.client_rss_kib, open_secs
        );
        steps.push(step);
        if stopped_by.is_some() {
            break;
        }
    }

    // The idle window at the count reached.
    let mut idle = None;
    if stopped_by.is_none() {
        let closed_before = seen.closed.load(Ordering::Relaxed);
        let pings_before = seen.pings.load(Ordering::Relaxed);
        let (cpu, client_cpu) = (now_cpu(server.pid), now_cpu(own));
        let at = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
        let secs = at.elapsed().as_secs_f64();
        let server_cpu_ms = now_cpu(server.pid) - cpu;
        let sockets = seen.opened.load(Ordering::Relaxed) - seen.closed.load(Ordering::Relaxed);
        let pings = seen.pings.load(Ordering::Relaxed) - pings_before;
        idle = Some(Idle {
            sockets,
            secs,
            server_cpu_ms,
            server_cores: server_cpu_ms / secs / 1000.0,
            server_us_per_socket_s: server_cpu_ms * 1000.0 / secs / sockets.max(1) as f64,
            client_cpu_ms: now_cpu(own) - client_cpu,
            pings,
            pings_per_s: pings as f64 / secs,
            closed_during: seen.closed.load(Ordering::Relaxed) - closed_before,
            loadavg: loadavg(),
        });
    }

    let report = Report {
        label: args.label.clone(),
        target: args.count,
        reached: seen.opened.load(Ordering::Relaxed) - seen.closed.load(Ordering::Relaxed),
        households,
        members: args.members,
        sources,
        ping_interval_secs: flag_value(&flags, "--ping-interval-secs").or(Some(20)),
        server_rss_before_kib: rss_before,
        client_rss_before_kib: client_before,
        setup_secs,
        steps,
        idle,
        failed: seen.failed.load(Ordering::Relaxed),
        first_failure: seen.first_failure(),
        closed: seen.closed.load(Ordering::Relaxed),
        first_close: seen.first_close(),
        stopped_by,
        // The secret stays out of the report.
        server_flags: flags
            .iter()
            .scan(false, |secret, f| {
                let shown = if *secret {
                    "<secret>".to_owned()
                } else {
                    f.clone()
                };
                *secret = f == "--token-secret";
                Some(shown)
            })
            .collect(),
    };
    print_table(&report);
    println!("{}", serde_json::json!({ "idle": report }));
    drop(server);
    if report.stopped_by.is_some() || report.closed > 0 {
        if args.log.is_none() {
            let kept = data.keep();
            eprintln!("the server's log is kept in {}", kept.display());
        }
        bail!(
            "stopped at {} sockets: {}",
            report.reached,
            report
                .stopped_by
                .clone()
                .or(report.first_close.clone())
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "\nhearth-idle {}: {} households x {} members, {} source addresses, ping every {} s; \
         server RSS before the first socket {} KiB",
        r.label,
        r.households,
        r.members,
        r.sources,
        r.ping_interval_secs.unwrap_or(20),
        r.server_rss_before_kib
    );
    println!(
        "\n| sockets | server RSS (KiB) | RSS per socket (KiB) | client RSS (KiB) | opened in (s) | server CPU per open (ms) | idle server CPU (cores) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for s in &r.steps {
        println!(
            "| {} | {} | {:.2} | {} | {:.1} | {:.3} | {} |",
            s.sockets,
            s.server_rss_kib,
            s.per_socket_kib,
            s.client_rss_kib,
            s.open_secs,
            s.server_cpu_ms_per_open,
            s.idle_server_cores
                .map(|c| format!("{c:.3}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    if let Some(i) = &r.idle {
        println!(
            "\nIdle window at {} sockets: {:.1} s, server CPU {:.0} ms = {:.3} cores \
             ({:.2} us per socket per second); client CPU {:.0} ms; {} pings answered \
             ({:.0}/s); {} sockets closed during it; load average {}",
            i.sockets,
            i.secs,
            i.server_cpu_ms,
            i.server_cores,
            i.server_us_per_socket_s,
            i.client_cpu_ms,
            i.pings,
            i.pings_per_s,
            i.closed_during,
            i.loadavg
        );
    }
    if let Some(why) = &r.stopped_by {
        println!("\nStopped: {why}");
    }
    if r.closed > 0 {
        println!(
            "\n{} socket(s) closed; first: {}",
            r.closed,
            r.first_close.clone().unwrap_or_default()
        );
    }
}

//! `hearth-bench`: a load generator speaking the room protocol (docs/rooms.md) over
//! many real WebSocket connections (TCP_NODELAY): households x members, an open-loop
//! command schedule at fixed total rates (one step per rate, on the same sockets),
//! HDR histograms of command-to-ack latency at the sender and command-to-event latency
//! at the other members (matched by `metadata.commandId`), deliveries per second, and
//! loss checked by seq on every connection. Writes one JSON document and prints a
//! human summary. Modes: `hearth` (token + welcome), `bare` (the bare-broadcast
//! baseline, `/room/<id>`), `partykit` (`/parties/main/<id>`, no auth, no welcome).
//! Not a test; see bench/run.sh and BENCHMARKS.md.

use anyhow::{Context as _, bail};
use futures::{SinkExt as _, StreamExt as _};
use hearth_bench::{
    Incoming, Latency, LatencySummary, OrderLines, Schedule, SeqCheck, Spread, command_frame_with,
    cpu_ms, cpu_ms_matching, rss_kib, rss_peak_kib,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Hearth,
    Bare,
    Partykit,
}

#[derive(Debug, clap::Parser)]
#[command(name = "hearth-bench", about = "Room-protocol load generator")]
struct Args {
    /// Server address (host:port), loopback.
    #[arg(long)]
    addr: String,
    #[arg(long, value_enum, default_value = "hearth")]
    mode: Mode,
    /// Ignored: members now sign up over HTTP and get their tokens from the server
    /// (kept so older scripts still run).
    #[arg(long, env = "HEARTH_TOKEN_SECRET", default_value = "", hide = true)]
    #[allow(dead_code)]
    token_secret: String,
    #[arg(long, default_value_t = 10)]
    households: usize,
    /// Members per household that send and receive.
    #[arg(long, default_value_t = 4)]
    members: usize,
    /// Extra members per household that stop reading right after connecting.
    #[arg(long, default_value_t = 0)]
    slow_per_room: usize,
    /// SO_RCVBUF of the slow members' sockets (bytes), set before connecting so that
    /// the kernel neither autotunes it nor advertises a larger window: a reader that
    /// stops then holds little (on loopback the server's send buffer holds far more
    /// unless --slow-mss is set too). Linux doubles
    /// the value given and enforces a minimum (about 2 KiB); the effective size is in the
    /// JSON (`slow.rcvbuf_effective`). 0: the kernel's default (autotuned).
    #[arg(long, default_value_t = 4096)]
    slow_rcvbuf: u32,
    /// TCP_MAXSEG of the slow members' sockets, set before connecting: the MSS they
    /// announce, hence the server's segment size towards them. Loopback's MTU of 64 KiB
    /// gives an MSS of 65,483, and Linux sizes a new connection's send buffer from it
    /// (about 3.9 MB here: BBR's factor 3 x initial cwnd 10 x 128 KiB per segment), which
    /// would hold thousands of events before the server's own queue fills; 1460 is what
    /// an Ethernet path announces (send buffer about 130 KB). 0: not set.
    #[arg(long, default_value_t = 1460)]
    slow_mss: u32,
    /// Total commands per second over all senders, one step per value (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10")]
    rates: Vec<f64>,
    /// Seconds of each step's schedule.
    #[arg(long, default_value_t = 5.0)]
    step_secs: f64,
    /// Seconds each step keeps reading after its last due time.
    #[arg(long, default_value_t = 1.0)]
    drain_secs: f64,
    /// Stop rising after the first step whose p99 command-to-event passes this (ms).
    #[arg(long)]
    stop_p99_ms: Option<f64>,
    /// Only connect (and keep answering pings) for this many seconds: no commands.
    #[arg(long)]
    idle_secs: Option<f64>,
    /// Pid of the server, to read its RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The PostgreSQL database the server uses, to report the CPU its backends spend
    /// per step (their process titles name it).
    #[arg(long)]
    pg_database: Option<String>,
    /// Concurrent connection attempts.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// A name for this run (kept in the JSON).
    #[arg(long, default_value = "run")]
    label: String,
    /// Where to write the JSON result.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// How order lines are written: `skus` (sku, quantity, price shown; the default) or
    /// `legacy` (with a name and a unit price, for a binary from before the server's
    /// catalog, which a newer one refuses).
    #[arg(long, value_enum, default_value = "skus")]
    order_lines: OrderLines,
}

struct Pending {
    scheduled: Instant,
    /// Other members still to see the event, plus one for the ack.
    remaining: u32,
    sender: usize,
}

struct Household {
    id: Uuid,
    /// Hearth: one token per member (owner first), as the server issued them.
    tokens: Vec<String>,
    pending: Mutex<HashMap<Uuid, Pending>>,
    head: AtomicU64,
}

impl Household {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Ws = WebSocketStream<TcpStream>;
/// A connection attempt: its index in the plan, whether it is a slow consumer, and
/// the socket with its welcome seq.
type Connected = (usize, bool, anyhow::Result<(Ws, u64)>);

struct Conn {
    id: usize,
    hh: Arc<Household>,
    ws: Ws,
    seq: SeqCheck,
    sender_index: Option<usize>,
    closed: Option<String>,
}

#[derive(Default)]
struct StepStats {
    ack: Latency,
    event: Latency,
    sent: u64,
    acks: u64,
    deliveries: u64,
    deliveries_in_window: u64,
    rejected: u64,
    errors: BTreeMap<String, u64>,
    gaps: u64,
    duplicates: u64,
    closed: BTreeMap<String, u64>,
}

impl StepStats {
    fn merge(&mut self, o: StepStats) {
        self.ack.merge(&o.ack);
        self.event.merge(&o.event);
        self.sent += o.sent;
        self.acks += o.acks;
        self.deliveries += o.deliveries;
        self.deliveries_in_window += o.deliveries_in_window;
        self.rejected += o.rejected;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.gaps += o.gaps;
        self.duplicates += o.duplicates;
        for (k, v) in o.closed {
            *self.closed.entry(k).or_default() += v;
        }
    }
}

#[derive(Serialize)]
struct StepReport {
    rate: f64,
    senders: usize,
    secs: f64,
    sent: u64,
    acks: u64,
    acked_per_sec: f64,
    deliveries: u64,
    deliveries_per_sec: f64,
    ack_latency: LatencySummary,
    event_latency: LatencySummary,
    rejected: u64,
    errors: BTreeMap<String, u64>,
    gaps: u64,
    duplicates: u64,
    closed: BTreeMap<String, u64>,
    server_rss_kib: Option<u64>,
    /// CPU the server process spent over the step and its drain, in ms.
    server_cpu_ms: Option<f64>,
    /// CPU the PostgreSQL backends of `--pg-database` spent over the same span, in ms.
    pg_cpu_ms: Option<f64>,
    /// p99 command-to-event within the bound, every command acked, no error, no loss.
    within_bound: bool,
    load_avg: Option<String>,
}

#[derive(Serialize, Default)]
struct SlowReport {
    slow_connections: usize,
    /// Events the slow members read after the last step (until the server's close, the
    /// end of the stream, or 1.5 s), in total.
    events_read_at_end: u64,
    /// How each slow socket ended when read after the last step: a close code (4008:
    /// Hearth's slow-consumer kick), "eof", "error: ...", or "open" (still open).
    closed: BTreeMap<String, u64>,
    /// `--slow-rcvbuf` as asked (0: kernel default) and as the kernel set it.
    rcvbuf_requested: u32,
    rcvbuf_effective: Option<usize>,
    /// `--slow-mss` (0: not set).
    mss_requested: u32,
    /// Events each slow member that the server ended (every ending but "open") had
    /// received before that end: what its socket buffers and the server held for it.
    events_read_before_close: Spread,
    /// Over all slow members: events of their household they never received (the
    /// household's head minus the last seq they read), and gaps in what they read.
    behind_head_at_end: u64,
    gaps: u64,
    /// Mode hearth: the server's `hearth_slow_consumers_total` (`/metrics`) at the end:
    /// connections it closed because their outgoing queue overflowed (close code 4008,
    /// which a socket that does not read may never receive: the close frame waits
    /// behind the full socket, and the server drops the connection after 1 s).
    server_slow_consumers_total: Option<u64>,
}

#[derive(Serialize)]
struct Report {
    label: String,
    mode: Mode,
    households: usize,
    members: usize,
    slow_per_room: usize,
    connections: usize,
    connect_errors: u64,
    connect_secs: f64,
    server_rss_kib_before: Option<u64>,
    server_rss_kib_connected: Option<u64>,
    server_rss_kib_end: Option<u64>,
    /// The server's peak RSS (`VmHWM`) at the end, over its whole life.
    server_rss_kib_peak: Option<u64>,
    rss_per_socket_kib: Option<f64>,
    steps: Vec<StepReport>,
    bound_p99_ms: Option<f64>,
    /// The highest step rate within the bound (capacity at that bound).
    capacity: Option<Capacity>,
    /// After the last step: events each connection still lacked after the catch-up wait
    /// (should be 0), plus total gaps and duplicates over all steps.
    lost_at_end: u64,
    total_gaps: u64,
    total_duplicates: u64,
    slow: SlowReport,
}

#[derive(Serialize, Clone, Copy)]
struct Capacity {
    rate: f64,
    acked_per_sec: f64,
    deliveries_per_sec: f64,
    event_p99_ms: f64,
}

/// Hearth: a token proves identity only while the server's directory agrees, so the
/// load generator signs up as a client would: each household over HTTP (its owner is its
/// first member), the others by invite. Returns each household's id and its members'
/// tokens. (bench/run.sh lifts the server's sign-up limits for this.)
async fn sign_up(
    addr: &str,
    households: usize,
    members: usize,
) -> anyhow::Result<Vec<(Uuid, Vec<String>)>> {
    use futures::TryStreamExt as _;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    futures::stream::iter((0..households).map(|_| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let created: serde_json::Value = http
                .post(format!("{base}/households"))
                .json(&serde_json::json!({"name": "Bench", "ownerName": "Owner"}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let id: Uuid = serde_json::from_value(created["household"]["id"].clone())?;
            let owner = created["token"]
                .as_str()
                .context("no owner token")?
                .to_owned();
            let mut tokens = vec![owner.clone()];
            while tokens.len() < members.max(1) {
                let invite: serde_json::Value = http
                    .post(format!("{base}/households/{id}/invites"))
                    .bearer_auth(&owner)
                    .json(&serde_json::json!({}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let joined: serde_json::Value = http
                    .post(format!("{base}/households/{id}/join"))
                    .json(&serde_json::json!({"code": invite["code"], "name": "Member"}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                tokens.push(
                    joined["token"]
                        .as_str()
                        .context("no member token")?
                        .to_owned(),
                );
            }
            anyhow::Ok((id, tokens))
        }
    }))
    .buffered(16)
    .try_collect()
    .await
}

fn load_avg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let per_room = args.members + args.slow_per_room;
    let signed_up = match args.mode {
        Mode::Hearth => sign_up(&args.addr, args.households, per_room).await?,
        _ => (0..args.households)
            .map(|_| (Uuid::new_v4(), Vec::new()))
            .collect(),
    };
    let households: Vec<Arc<Household>> = signed_up
        .into_iter()
        .map(|(id, tokens)| {
            Arc::new(Household {
                id,
                tokens,
                pending: Mutex::new(HashMap::new()),
                head: AtomicU64::new(0),
            })
        })
        .collect();

    // Connection plan: households interleaved so that sender k and k+1 are in
    // different households.
    let mut plan = Vec::new();
    for m in 0..per_room {
        for hh in &households {
            plan.push((hh.clone(), m, m >= args.members));
        }
    }
    let rss_before = args.server_pid.and_then(rss_kib);
    let started = Instant::now();
    let addr = args.addr.clone();
    let mode = args.mode;
    let slow_opts = SlowSocket {
        rcvbuf: (args.slow_rcvbuf > 0).then_some(args.slow_rcvbuf),
        mss: (args.slow_mss > 0).then_some(args.slow_mss),
    };
    let results: Vec<Connected> =
        futures::stream::iter(plan.into_iter().enumerate().map(|(i, (hh, m, slow))| {
            let url = match mode {
                Mode::Hearth => match hh.tokens.get(m) {
                    Some(t) => Ok(format!(
                        "ws://{addr}/parties/household/{}?_pk={}&token={t}",
                        hh.id,
                        Uuid::new_v4()
                    )),
                    None => Err(anyhow::anyhow!("no token for member {m}")),
                },
                Mode::Partykit => Ok(format!(
                    "ws://{addr}/parties/main/{}?_pk={}",
                    hh.id,
                    Uuid::new_v4()
                )),
                Mode::Bare => Ok(format!("ws://{addr}/room/{}", hh.id)),
            };
            let addr = addr.clone();
            async move {
                let r = match url {
                    Ok(url) => {
                        let opts = if slow {
                            slow_opts
                        } else {
                            SlowSocket::default()
                        };
                        timeout(Duration::from_secs(60), connect(&addr, &url, mode, opts))
                            .await
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("connect timed out")))
                    }
                    Err(e) => Err(e),
                };
                (i, slow, r)
            }
        }))
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let connect_secs = started.elapsed().as_secs_f64();
    let plan_hh: Vec<Arc<Household>> = (0..per_room)
        .flat_map(|_| households.iter().cloned())
        .collect();
    let mut conns = Vec::new();
    let mut slow = Vec::new();
    let mut connect_errors = 0u64;
    let mut first_error = None;
    for (i, is_slow, r) in results {
        match r {
            Ok((ws, seq)) => {
                let c = Conn {
                    id: i,
                    hh: plan_hh[i].clone(),
                    ws,
                    seq: SeqCheck::starting_at(seq),
                    sender_index: None,
                    closed: None,
                };
                if is_slow { slow.push(c) } else { conns.push(c) }
            }
            Err(e) => {
                connect_errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    conns.sort_by_key(|c| c.id);
    for (k, c) in conns.iter_mut().enumerate() {
        c.sender_index = Some(k);
    }
    let senders = conns.len();
    let connections = conns.len() + slow.len();
    eprintln!(
        "[{}] connected {connections} sockets in {connect_secs:.1}s ({connect_errors} errors{})",
        args.label,
        first_error
            .map(|e| format!(", first: {e}"))
            .unwrap_or_default()
    );
    // Receivers per household (members that read, other than the sender).
    let mut readers: HashMap<Uuid, u32> = HashMap::new();
    for c in &conns {
        *readers.entry(c.hh.id).or_default() += 1;
    }
    let readers = Arc::new(readers);

    let mut report = Report {
        label: args.label.clone(),
        mode: args.mode,
        households: args.households,
        members: args.members,
        slow_per_room: args.slow_per_room,
        connections,
        connect_errors,
        connect_secs,
        server_rss_kib_before: rss_before,
        server_rss_kib_connected: None,
        server_rss_kib_end: None,
        server_rss_kib_peak: None,
        rss_per_socket_kib: None,
        steps: Vec::new(),
        bound_p99_ms: args.stop_p99_ms,
        capacity: None,
        lost_at_end: 0,
        total_gaps: 0,
        total_duplicates: 0,
        slow: SlowReport {
            slow_connections: slow.len(),
            rcvbuf_requested: args.slow_rcvbuf,
            mss_requested: args.slow_mss,
            rcvbuf_effective: match slow_opts.rcvbuf {
                Some(n) if args.slow_per_room > 0 => effective_rcvbuf(n),
                _ => None,
            },
            ..SlowReport::default()
        },
    };

    if let Some(idle) = args.idle_secs {
        // Keep every socket read (pings answered) while the server settles.
        let stop = Instant::now() + Duration::from_secs_f64(idle);
        let all: Vec<Conn> = conns.into_iter().chain(slow).collect();
        let mid = Instant::now() + Duration::from_secs_f64(idle / 2.0);
        let handles: Vec<_> = all
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    while let Ok(Some(Ok(_))) = timeout_at(stop, c.ws.next()).await {}
                    c
                })
            })
            .collect();
        sleep_until(mid).await;
        report.server_rss_kib_connected = args.server_pid.and_then(rss_kib);
        let mut all = Vec::new();
        for h in handles {
            all.push(h.await?);
        }
        report.server_rss_kib_end = args.server_pid.and_then(rss_kib);
        report.server_rss_kib_peak = args.server_pid.and_then(rss_peak_kib);
        if let (Some(b), Some(a)) = (rss_before, report.server_rss_kib_connected) {
            report.rss_per_socket_kib = Some((a as f64 - b as f64) / connections.max(1) as f64);
        }
        for mut c in all {
            let _ = timeout(Duration::from_millis(50), c.ws.close(None)).await;
        }
        return finish(&args, &report);
    }
    report.server_rss_kib_connected = args.server_pid.and_then(rss_kib);
    if let (Some(b), Some(a)) = (rss_before, report.server_rss_kib_connected) {
        report.rss_per_socket_kib = Some((a as f64 - b as f64) / connections.max(1) as f64);
    }

    let step = Duration::from_secs_f64(args.step_secs);
    // A backend's process title names its database between spaces.
    let pg_needle = args.pg_database.as_ref().map(|db| format!(" {db} "));
    let drain = Duration::from_secs_f64(args.drain_secs);
    for &rate in &args.rates {
        let schedule = Schedule {
            rate,
            senders,
            duration: step,
        };
        let t0 = Instant::now() + Duration::from_millis(200);
        let window_end = t0 + step;
        let deadline = window_end + drain;
        let handles: Vec<_> = conns
            .drain(..)
            .map(|c| {
                let offsets: Vec<Duration> = match (c.closed.is_none(), c.sender_index) {
                    (true, Some(i)) => schedule.offsets(i).collect(),
                    _ => Vec::new(),
                };
                let readers = readers.clone();
                tokio::spawn(run_step(
                    c,
                    offsets,
                    readers,
                    t0,
                    window_end,
                    deadline,
                    args.order_lines,
                ))
            })
            .collect();
        let cpu_before = (
            args.server_pid.and_then(cpu_ms),
            pg_needle.as_deref().map(cpu_ms_matching),
        );
        let mut stats = StepStats::default();
        for h in handles {
            let (c, s) = h.await?;
            stats.merge(s);
            conns.push(c);
        }
        let server_cpu_ms = args
            .server_pid
            .and_then(cpu_ms)
            .zip(cpu_before.0)
            .map(|(after, before)| after - before);
        let pg_cpu_ms = pg_needle
            .as_deref()
            .map(cpu_ms_matching)
            .zip(cpu_before.1)
            .map(|(after, before)| after - before);
        let secs = args.step_secs;
        let ev = stats.event.summary();
        let within_bound = args.stop_p99_ms.is_none_or(|b| ev.p99_ms <= b)
            && stats.acks >= stats.sent
            && stats.errors.is_empty()
            && stats.rejected == 0
            && stats.gaps == 0
            && stats.duplicates == 0
            && stats.closed.is_empty();
        let r = StepReport {
            rate,
            senders,
            secs,
            sent: stats.sent,
            acks: stats.acks,
            acked_per_sec: stats.acks as f64 / secs,
            deliveries: stats.deliveries,
            deliveries_per_sec: stats.deliveries_in_window as f64 / secs,
            ack_latency: stats.ack.summary(),
            event_latency: ev,
            rejected: stats.rejected,
            errors: stats.errors,
            gaps: stats.gaps,
            duplicates: stats.duplicates,
            closed: stats.closed,
            server_rss_kib: args.server_pid.and_then(rss_kib),
            server_cpu_ms,
            pg_cpu_ms,
            within_bound,
            load_avg: load_avg(),
        };
        eprintln!(
            "[{}] rate {:>8.0}/s: sent {} acked {} ({:.0}/s), deliveries {:.0}/s, ack p50 {:.2} p99 {:.2} ms, event p50 {:.2} p99 {:.2} max {:.1} ms, gaps {} dups {} errors {:?} closed {:?}, cpu ms server {} pg {}{}",
            args.label,
            rate,
            r.sent,
            r.acks,
            r.acked_per_sec,
            r.deliveries_per_sec,
            r.ack_latency.p50_ms,
            r.ack_latency.p99_ms,
            ev.p50_ms,
            ev.p99_ms,
            ev.max_ms,
            r.gaps,
            r.duplicates,
            r.errors,
            r.closed,
            r.server_cpu_ms.map_or("-".into(), |c| format!("{c:.0}")),
            r.pg_cpu_ms.map_or("-".into(), |c| format!("{c:.0}")),
            if within_bound {
                ""
            } else {
                "  (outside the bound)"
            }
        );
        if within_bound && args.stop_p99_ms.is_some() {
            report.capacity = Some(Capacity {
                rate,
                acked_per_sec: r.acked_per_sec,
                deliveries_per_sec: r.deliveries_per_sec,
                event_p99_ms: ev.p99_ms,
            });
        }
        report.steps.push(r);
        if args.stop_p99_ms.is_some() && !within_bound {
            break;
        }
    }

    // Catch-up: every reading connection must reach its room's head (no loss).
    let catch_up = Instant::now() + Duration::from_secs(15);
    let handles: Vec<_> = conns
        .drain(..)
        .map(|mut c| {
            tokio::spawn(async move {
                while c.closed.is_none() && c.seq.last < c.hh.head.load(Ordering::Relaxed) {
                    match timeout_at(catch_up, c.ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => {
                            if let Ok(Incoming::Event(e)) = hearth_bench::parse_incoming(t.as_str())
                            {
                                c.seq.observe(e.seq);
                            }
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
                c
            })
        })
        .collect();
    for h in handles {
        let c = h.await?;
        report.total_gaps += c.seq.gaps;
        report.total_duplicates += c.seq.duplicates;
        if c.closed.is_none() {
            report.lost_at_end += c.seq.missing_tail(c.hh.head.load(Ordering::Relaxed));
        }
        conns.push(c);
    }
    // Slow consumers: what the server did with them (read whatever is left, briefly,
    // all at once).
    let end = Instant::now() + Duration::from_millis(1500);
    let handles: Vec<_> = slow
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut read = 0u64;
                let how = loop {
                    match timeout_at(end, c.ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => {
                            read += 1;
                            if let Ok(Incoming::Event(e)) = hearth_bench::parse_incoming(t.as_str())
                            {
                                c.seq.observe(e.seq);
                            }
                        }
                        Ok(Some(Ok(Message::Close(f)))) => {
                            break f.map(|f| u16::from(f.code).to_string()).unwrap_or_default();
                        }
                        Ok(Some(Ok(_))) => {}
                        Ok(Some(Err(WsError::Protocol(
                            ProtocolError::ResetWithoutClosingHandshake,
                        )))) => break "eof without close frame".to_owned(),
                        Ok(Some(Err(e))) => break format!("error: {e}"),
                        Ok(None) => break "eof".to_owned(),
                        Err(_) => break "open".to_owned(),
                    }
                };
                let behind = c.seq.missing_tail(c.hh.head.load(Ordering::Relaxed));
                (read, how, behind, c.seq.gaps)
            })
        })
        .collect();
    let mut read_before_close = Vec::new();
    for h in handles {
        let (read, how, behind, gaps) = h.await?;
        report.slow.events_read_at_end += read;
        report.slow.behind_head_at_end += behind;
        report.slow.gaps += gaps;
        if how != "open" {
            read_before_close.push(read);
        }
        *report.slow.closed.entry(how).or_default() += 1;
    }
    report.slow.events_read_before_close = Spread::of(&read_before_close);
    if args.mode == Mode::Hearth {
        report.slow.server_slow_consumers_total =
            match hearth_metric(&args.addr, "hearth_slow_consumers_total").await {
                Ok(v) => Some(v),
                Err(e) => {
                    eprintln!("[{}] cannot read the server's /metrics: {e:#}", args.label);
                    None
                }
            };
    }
    report.server_rss_kib_end = args.server_pid.and_then(rss_kib);
    report.server_rss_kib_peak = args.server_pid.and_then(rss_peak_kib);
    for mut c in conns {
        let _ = timeout(Duration::from_millis(20), c.ws.close(None)).await;
    }
    finish(&args, &report)
}

fn finish(args: &Args, report: &Report) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    if let Some(out) = &args.out {
        std::fs::write(out, &json).with_context(|| format!("writing {}", out.display()))?;
    }
    eprintln!(
        "[{}] {} sockets, server RSS {:?} -> {:?} -> {:?} KiB (peak {:?}, {:?} KiB per socket), lost at end {}, gaps {}, duplicates {}, capacity {:?}, slow {:?}",
        report.label,
        report.connections,
        report.server_rss_kib_before,
        report.server_rss_kib_connected,
        report.server_rss_kib_end,
        report.server_rss_kib_peak,
        report.rss_per_socket_kib.map(|v| (v * 10.0).round() / 10.0),
        report.lost_at_end,
        report.total_gaps,
        report.total_duplicates,
        report.capacity.map(|c| (c.rate, c.deliveries_per_sec)),
        (report.slow.slow_connections, &report.slow.closed),
    );
    if report.slow.slow_connections > 0 {
        let s = &report.slow;
        eprintln!(
            "[{}] slow: rcvbuf {} (effective {:?}), mss {}, events read before the server ended them {:?}, behind head {}, gaps {}, server's slow-consumer closes {:?}",
            report.label,
            s.rcvbuf_requested,
            s.rcvbuf_effective,
            s.mss_requested,
            s.events_read_before_close,
            s.behind_head_at_end,
            s.gaps,
            s.server_slow_consumers_total
        );
    }
    Ok(())
}

async fn timeout_at<F: std::future::Future>(
    at: Instant,
    f: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout_at(at, f).await
}

/// One unlabelled counter of Hearth's `/metrics` (a plain HTTP/1.1 GET, 5 s at most).
async fn hearth_metric(addr: &str, name: &str) -> anyhow::Result<u64> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let get = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        anyhow::Ok(body)
    };
    let body = timeout(Duration::from_secs(5), get)
        .await
        .context("timed out")??;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {name} in the server's /metrics"))
}

/// SO_RCVBUF as the kernel sets it when asked for `bytes` (Linux: doubled, with a
/// floor), read back from an unconnected socket.
fn effective_rcvbuf(bytes: u32) -> Option<usize> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.set_recv_buffer_size(bytes).ok()?;
    socket.recv_buffer_size().ok().map(|n| n as usize)
}

/// Socket options of a slow member, set before connecting.
#[derive(Clone, Copy, Debug, Default)]
struct SlowSocket {
    rcvbuf: Option<u32>,
    mss: Option<u32>,
}

/// Opens one TCP connection with TCP_NODELAY. A slow member's SO_RCVBUF and TCP_MAXSEG
/// are set before connecting, so that the window and MSS announced in the handshake
/// (and the window scale) follow them.
async fn tcp(addr: &str, opts: SlowSocket) -> anyhow::Result<TcpStream> {
    let stream = if opts.rcvbuf.is_none() && opts.mss.is_none() {
        TcpStream::connect(addr).await?
    } else {
        let to = tokio::net::lookup_host(addr)
            .await?
            .next()
            .with_context(|| format!("{addr} resolves to no address"))?;
        let raw = socket2::Socket::new(
            socket2::Domain::for_address(to),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if let Some(mss) = opts.mss {
            raw.set_tcp_mss(mss)?;
        }
        raw.set_nonblocking(true)?;
        let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(raw));
        if let Some(bytes) = opts.rcvbuf {
            socket.set_recv_buffer_size(bytes)?;
        }
        socket.connect(to).await?
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens one socket (TCP_NODELAY; a slow member's options if given); in mode hearth
/// waits for the welcome and returns its seq (0 otherwise).
async fn connect(addr: &str, url: &str, mode: Mode, opts: SlowSocket) -> anyhow::Result<(Ws, u64)> {
    let stream = tcp(addr, opts).await?;
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .context("websocket handshake")?;
    if mode != Mode::Hearth {
        return Ok((ws, 0));
    }
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => match hearth_bench::parse_incoming(t.as_str()) {
                Ok(Incoming::Welcome(w)) => return Ok((ws, w.seq)),
                _ => bail!("expected a welcome, got {}", t.as_str()),
            },
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed before the welcome"),
        }
    }
}

async fn run_step(
    mut c: Conn,
    offsets: Vec<Duration>,
    readers: Arc<HashMap<Uuid, u32>>,
    t0: Instant,
    window_end: Instant,
    deadline: Instant,
    lines: OrderLines,
) -> (Conn, StepStats) {
    let mut s = StepStats::default();
    if c.closed.is_some() {
        return (c, s);
    }
    let me = c.id;
    let others = readers
        .get(&c.hh.id)
        .copied()
        .unwrap_or(1)
        .saturating_sub(1);
    let mut next = offsets.into_iter().map(|d| t0 + d).peekable();
    let (gaps_before, dups_before) = (c.seq.gaps, c.seq.duplicates);
    loop {
        if Instant::now() >= deadline {
            break;
        }
        let due = next.peek().copied();
        tokio::select! {
            biased;
            _ = sleep_until(due.unwrap_or(deadline)), if due.is_some() => {
                let scheduled = next.next().unwrap_or(deadline);
                let id = Uuid::now_v7();
                c.hh.pending().insert(id, Pending { scheduled, remaining: others + 1, sender: me });
                s.sent += 1;
                if let Err(e) = c.ws.send(Message::text(command_frame_with(id, Uuid::new_v4(), lines))).await {
                    let why = format!("send error: {e}");
                    c.closed = Some(why.clone());
                    *s.closed.entry(why).or_default() += 1;
                    break;
                }
            },
            msg = c.ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let now = Instant::now();
                    match hearth_bench::parse_incoming(t.as_str()) {
                        Ok(Incoming::Event(e)) => {
                            c.seq.observe(e.seq);
                            c.hh.head.fetch_max(e.seq, Ordering::Relaxed);
                            s.deliveries += 1;
                            if now <= window_end {
                                s.deliveries_in_window += 1;
                            }
                            if let Some(cmd) = e.metadata.command_id {
                                let mut p = c.hh.pending();
                                if let Some(entry) = p.get_mut(&cmd)
                                    && entry.sender != me
                                {
                                    s.event.record(now - entry.scheduled);
                                    entry.remaining -= 1;
                                    if entry.remaining == 0 {
                                        p.remove(&cmd);
                                    }
                                }
                            }
                        }
                        Ok(Incoming::Ack(a)) => {
                            s.acks += 1;
                            c.hh.head.fetch_max(a.seq, Ordering::Relaxed);
                            let mut p = c.hh.pending();
                            if let Some(entry) = p.get_mut(&a.id) {
                                s.ack.record(now - entry.scheduled);
                                entry.remaining -= 1;
                                if entry.remaining == 0 {
                                    p.remove(&a.id);
                                }
                            }
                        }
                        Ok(Incoming::Rejected(_)) => s.rejected += 1,
                        Ok(Incoming::Error(e)) => *s.errors.entry(e.code).or_default() += 1,
                        Ok(Incoming::Welcome(_)) => {}
                        Err(_) => *s.errors.entry("unparsed frame".into()).or_default() += 1,
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    let code = f.map(|f| u16::from(f.code).to_string()).unwrap_or_default();
                    c.closed = Some(code.clone());
                    *s.closed.entry(code).or_default() += 1;
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let why = format!("error: {e}");
                    c.closed = Some(why.clone());
                    *s.closed.entry(why).or_default() += 1;
                    break;
                }
                None => {
                    c.closed = Some("eof".into());
                    *s.closed.entry("eof".into()).or_default() += 1;
                    break;
                }
            },
            _ = sleep_until(deadline) => break,
        }
    }
    s.gaps = c.seq.gaps - gaps_before;
    s.duplicates = c.seq.duplicates - dups_before;
    (c, s)
}

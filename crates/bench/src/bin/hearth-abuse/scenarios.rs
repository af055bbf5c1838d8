//! The scenarios of issue 13's abuse suite. Each starts its own server(s), measures from
//! the outside, and returns its figures and violated bounds.

use crate::client::{self, Gauge, Probed, Stop, http, metric, socket, stop_after};
use crate::server::{PgDb, Server, StoreSpec};
use crate::{Ctx, Outcome, open_file_limit};
use anyhow::{Context as _, bail};
use futures::{SinkExt as _, StreamExt as _};
use hearth_bench::{Incoming, Latency, SeqCheck, command_frame};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

fn ms(d: f64) -> String {
    format!("{d:.1} ms")
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn p99(p: &Probed) -> f64 {
    p.latency.summary().p99_ms
}

fn describe(p: &Probed) -> String {
    let s = p.latency.summary();
    format!(
        "{}/{} answered, p50 {} p99 {} max {}",
        p.answered,
        p.sent,
        ms(s.p50_ms),
        ms(s.p99_ms),
        ms(s.max_ms)
    )
}

fn check_all_answered(o: &mut Outcome, what: &str, p: &Probed) {
    o.check(
        p.sent > 0 && p.failed == 0 && p.answered == p.sent,
        format!(
            "{what}: every request answered (sent {}, answered {}, failed {}, first failure {:?})",
            p.sent, p.answered, p.failed, p.first_failure
        ),
    );
}

async fn sqlite_server(ctx: &Ctx, name: &str, extra: &[&str]) -> anyhow::Result<Server> {
    let dir = ctx.out.join(format!("{name}-data"));
    let _ = std::fs::remove_dir_all(&dir);
    start(ctx, &StoreSpec::Sqlite(dir), name, extra).await
}

async fn start(ctx: &Ctx, store: &StoreSpec, name: &str, extra: &[&str]) -> anyhow::Result<Server> {
    let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    // The suite signs its own members up from 127.0.0.1 (invites and joins): only the
    // signup scenario, which attacks from another address, keeps the signup limit.
    if name != "signup" {
        for flag in [
            "--signup-burst",
            "1000000",
            "--signup-per-minute",
            "1000000",
        ] {
            extra.push(flag.to_owned());
        }
    }
    Server::start(
        &ctx.bin,
        store,
        &ctx.secret,
        &extra,
        ctx.out
            .join(format!("{name}-{}.log", Uuid::new_v4().simple())),
    )
    .await
}

/// The stores a scenario runs on: SQLite, and PostgreSQL unless left out.
async fn stores(ctx: &Ctx, scenario: &str) -> anyhow::Result<Vec<StoreSpec>> {
    let mut stores = vec![StoreSpec::Sqlite(ctx.out.join(format!("{scenario}-data")))];
    if let Some(url) = &ctx.pg_url {
        let name = format!("hearth_abuse_{scenario}_{}", std::process::id());
        stores.push(StoreSpec::Postgres(
            PgDb::create(url, &ctx.bin, &name).await?,
        ));
    } else {
        eprintln!("[{scenario}] PostgreSQL left out (--no-postgres)");
    }
    Ok(stores)
}

fn drop_store(store: &StoreSpec) {
    match store {
        StoreSpec::Sqlite(dir) => {
            let _ = std::fs::remove_dir_all(dir);
        }
        StoreSpec::Postgres(db) => {
            if let Err(e) = db.drop_database() {
                eprintln!("dropping {}: {e:#}", db.name);
            }
        }
    }
}

// ---------------------------------------------------------------------------- slowloris

#[derive(Default)]
struct Slowloris {
    open: Gauge,
    /// From connect to the server's close, of every connection the server closed.
    lifetimes: Mutex<Latency>,
    closed_by_server: AtomicU64,
    /// Closed connections that got bytes (an HTTP answer) before the close.
    answered: AtomicU64,
    connect_errors: AtomicU64,
    first_connect_error: Mutex<Option<String>>,
}

/// One attacker slot: a connection from `from` that sends a request line and one header,
/// then another header line every `dribble`, never ending the headers; when the server
/// closes it, the slot opens another at once (so the attack stays at full count).
async fn slowloris_slot(
    to: SocketAddr,
    from: IpAddr,
    dribble: Duration,
    stats: Arc<Slowloris>,
    mut stop: Stop,
) {
    let mut buf = [0u8; 1024];
    while !*stop.borrow_and_update() {
        let connected = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(5), client::tcp(to, Some(from))) => r,
            _ = stop.changed() => return,
        };
        let mut stream = match connected {
            Ok(Ok(stream)) => stream,
            failed => {
                stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                let why = match failed {
                    Ok(Err(e)) => format!("{e:#}"),
                    _ => "connect timed out".into(),
                };
                if let Ok(mut first) = stats.first_connect_error.lock() {
                    first.get_or_insert(why);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let opened = Instant::now();
        stats.open.up();
        let mut got = 0usize;
        let mut tick = tokio::time::interval(dribble);
        tick.tick().await;
        let mut line = 0u64;
        let closed = if stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: abuse\r\n")
            .await
            .is_err()
        {
            true
        } else {
            loop {
                tokio::select! {
                    r = stream.read(&mut buf) => match r {
                        Ok(0) | Err(_) => break true,
                        Ok(n) => got += n,
                    },
                    _ = tick.tick() => {
                        line += 1;
                        let header = format!("X-Abuse-{line}: 1\r\n");
                        if stream.write_all(header.as_bytes()).await.is_err() {
                            break true;
                        }
                    }
                    _ = stop.changed() => break false,
                }
            }
        };
        stats.open.down();
        if !closed {
            return;
        }
        stats.closed_by_server.fetch_add(1, Ordering::Relaxed);
        if got > 0 {
            stats.answered.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut l) = stats.lifetimes.lock() {
            l.record(opened.elapsed());
        }
    }
}

pub async fn slowloris(ctx: &Ctx) -> anyhow::Result<Vec<Outcome>> {
    let mut o = Outcome::new("slowloris");
    // Connections, source addresses (127.0.0.2..), header timeout, how long the attack is
    // held after its ramp, the dribble period, the unloaded baseline.
    let (conns, sources, header_secs, hold, dribble, baseline) = if ctx.full() {
        (5_000usize, 20usize, 10u64, 30u64, 1_000u64, 10u64)
    } else {
        (400, 2, 2, 6, 500, 3)
    };
    let per_source = conns / sources;
    let need = conns as u64 + 512;
    match open_file_limit() {
        Some(n) if n >= need => {}
        n => bail!(
            "open-file limit {n:?} is below the {need} this size needs for client and server: raise it (ulimit -n)"
        ),
    }
    let server = sqlite_server(
        ctx,
        "slowloris",
        &["--header-timeout-secs", &header_secs.to_string()],
    )
    .await?;
    let to = server.addr;
    o.figure(
        "attack",
        format!(
            "{conns} connections from {sources} loopback addresses (127.0.0.2-127.0.0.{}, {per_source} each; the per-address cap is the default 256), each sending a request line and a header line every {dribble} ms, never ending its headers, reopened at once when closed; held {hold} s after the ramp; header timeout {header_secs} s",
            sources + 1
        ),
    );

    // The legitimate member (from 127.0.0.1) and /healthz, unloaded first.
    let (household, token) = ctx.household(server.addr).await?;
    let probe_period = Duration::from_millis(100);
    let command_period = Duration::from_millis(200);
    let (health0, commands0) = {
        let (ws, _, _) = socket(to, household, &token, None).await?;
        let stop = stop_after(Duration::from_secs(baseline));
        tokio::join!(
            client::probe_healthz(to, probe_period, stop.clone()),
            client::probe_commands(ws, command_period, stop)
        )
    };
    o.figure("/healthz unloaded", describe(&health0));
    o.figure("member's command (ack) unloaded", describe(&commands0));
    let (ws, _, _) = socket(to, household, &token, None).await?;

    // The attack.
    let stats = Arc::new(Slowloris::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut slots = Vec::with_capacity(conns);
    for i in 0..conns {
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i / per_source) as u8));
        slots.push(tokio::spawn(slowloris_slot(
            to,
            from,
            Duration::from_millis(dribble),
            stats.clone(),
            stop_rx.clone(),
        )));
    }
    let ramp = Instant::now();
    while stats.open.now() < conns as u64 && ramp.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ramp_secs = ramp.elapsed().as_secs_f64();
    let stop = stop_after(Duration::from_secs(hold));
    let min_open = Arc::new(AtomicU64::new(u64::MAX));
    let sampler = {
        let (stats, min_open, mut stop) = (stats.clone(), min_open.clone(), stop.clone());
        tokio::spawn(async move {
            while !*stop.borrow_and_update() {
                min_open.fetch_min(stats.open.now(), Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop.changed() => {}
                }
            }
        })
    };
    let (health, commands) = tokio::join!(
        client::probe_healthz(to, probe_period, stop.clone()),
        client::probe_commands(ws, command_period, stop)
    );
    let _ = sampler.await;
    let _ = stop_tx.send(true);
    for slot in slots {
        let _ = slot.await;
    }
    let lifetimes = stats
        .lifetimes
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default()
        .summary();
    let refused = metric(
        to,
        "hearth_refused_total{reason=\"connections_per_address\"}",
    )
    .await?;
    let (rss, peak) = server.rss();
    server.stop().await?;

    o.figure(
        "half-open connections held at once",
        format!(
            "{} at most ({} after a ramp of {ramp_secs:.1} s; at least {} during the hold)",
            stats.open.max(),
            conns,
            min_open.load(Ordering::Relaxed)
        ),
    );
    o.figure("/healthz under attack", describe(&health));
    o.figure("member's command (ack) under attack", describe(&commands));
    o.figure(
        "half-open connections closed by the server",
        format!(
            "{} (connect to close: p50 {:.2} s, p99 {:.2} s, max {:.2} s; {} got bytes before the close)",
            lifetimes.count,
            lifetimes.p50_ms / 1000.0,
            lifetimes.p99_ms / 1000.0,
            lifetimes.max_ms / 1000.0,
            stats.answered.load(Ordering::Relaxed)
        ),
    );
    o.figure(
        "attacker connect errors",
        format!(
            "{} (first: {:?})",
            stats.connect_errors.load(Ordering::Relaxed),
            stats
                .first_connect_error
                .lock()
                .ok()
                .and_then(|f| f.clone())
        ),
    );
    o.figure(
        "hearth_refused_total{reason=\"connections_per_address\"}",
        refused,
    );
    o.figure(
        "server RSS at the end (peak)",
        format!(
            "{} ({})",
            rss.map(mib).unwrap_or_default(),
            peak.map(mib).unwrap_or_default()
        ),
    );

    o.check(
        stats.open.max() >= conns as u64,
        format!(
            "{conns} half-open connections held open at once (at most {} were)",
            stats.open.max()
        ),
    );
    check_all_answered(&mut o, "/healthz under attack", &health);
    check_all_answered(&mut o, "the member's commands under attack", &commands);
    // Slack over the header timeout: the server's timer starts when it first polls the
    // connection, after the accept; 1 s covers accept and scheduling on a busy host.
    let bound = (header_secs + 1) as f64;
    o.check(
        lifetimes.count >= conns as u64,
        format!(
            "every half-open connection closed by the server during the hold ({} closed, {conns} opened at first)",
            lifetimes.count
        ),
    );
    o.check(
        lifetimes.max_ms / 1000.0 <= bound,
        format!(
            "half-open connections closed within the header timeout ({header_secs} s, +1 s slack): the slowest took {:.2} s",
            lifetimes.max_ms / 1000.0
        ),
    );
    o.detail = json!({
        "healthz_unloaded": health0.latency.summary(),
        "commands_unloaded": commands0.latency.summary(),
        "healthz": health.latency.summary(),
        "commands": commands.latency.summary(),
        "lifetimes": lifetimes,
    });
    Ok(vec![o])
}

// ------------------------------------------------------------------------------- signup

pub async fn signup(ctx: &Ctx) -> anyhow::Result<Vec<Outcome>> {
    let mut o = Outcome::new("signup");
    // Under the per-address request burst (200), so the signup limit is what refuses.
    let attempts = if ctx.full() { 150 } else { 40 };
    let (burst, per_minute) = (20u64, 20.0); // hearth serve's defaults
    let server = sqlite_server(ctx, "signup", &[]).await?;
    let to = server.addr;
    let attacker = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let started = Instant::now();
    let (mut created, mut refused, mut other) = (0u64, 0u64, Vec::new());
    let mut retry_after = Vec::new();
    let mut bad_refusals = Vec::new();
    for i in 0..attempts {
        let body = json!({"name": format!("Flood {i}"), "ownerName": "Eve"}).to_string();
        let reply = http(to, Some(attacker), "POST", "/households", None, Some(&body)).await?;
        match reply.status {
            201 => created += 1,
            429 => {
                refused += 1;
                let secs = reply
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.parse::<u64>().ok());
                let code = reply.json()["error"]["code"].clone();
                match secs {
                    Some(s) if s >= 1 && code == "rate_limited" => retry_after.push(s),
                    _ => bad_refusals.push(format!("retry-after {secs:?}, body {}", reply.body)),
                }
            }
            s => other.push(format!("{s} {}", reply.body)),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let elsewhere = http(
        to,
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))),
        "POST",
        "/households",
        None,
        Some(&json!({"name": "Home", "ownerName": "Ann"}).to_string()),
    )
    .await?;
    let counted = metric(to, "hearth_refused_total{reason=\"rate_signup\"}").await?;
    server.stop().await?;

    o.figure(
        "attempts from one address",
        format!("{attempts} POST /households in {secs:.2} s, each on a new connection (limit: the default burst of {burst}, then {per_minute} per minute)"),
    );
    o.figure("created (201)", created);
    o.figure(
        "refused (429, rate_limited)",
        format!(
            "{refused}; Retry-After {}-{} s",
            retry_after.iter().min().copied().unwrap_or(0),
            retry_after.iter().max().copied().unwrap_or(0)
        ),
    );
    o.figure("another address meanwhile", elsewhere.status);
    o.figure("hearth_refused_total{reason=\"rate_signup\"}", counted);
    let allowed = burst + (secs / 60.0 * per_minute).ceil() as u64;
    o.check(
        created >= 1 && created <= allowed,
        format!(
            "at most {allowed} created from one address (the burst plus the refill), {created} were"
        ),
    );
    o.check(
        refused == attempts - created && other.is_empty(),
        format!("every attempt beyond the limit refused with 429 ({refused} of {}; other answers {other:?})", attempts - created),
    );
    o.check(
        bad_refusals.is_empty(),
        format!("every 429 has Retry-After >= 1 and the code rate_limited: {bad_refusals:?}"),
    );
    o.check(
        elsewhere.status == 201,
        format!(
            "another address still creates a household ({})",
            elsewhere.status
        ),
    );
    o.check(
        counted == refused,
        format!("hearth_refused_total{{reason=\"rate_signup\"}} counts every refusal ({counted} of {refused})"),
    );
    Ok(vec![o])
}

// -------------------------------------------------------------------------------- burst

/// What one socket of a burst saw.
#[derive(Debug, Default)]
struct Seen {
    acks: Vec<Uuid>,
    others: Vec<String>,
    seq: SeqCheck,
    closed: Option<String>,
}

pub async fn burst(ctx: &Ctx) -> anyhow::Result<Vec<Outcome>> {
    const MEMBERS: usize = 10;
    const BURST: usize = 50;
    let mut outcomes = Vec::new();
    for store in stores(ctx, "burst").await? {
        let mut o = Outcome::new(format!("burst ({})", store.name()));
        // Opening a socket counts against the member's rate too: one cell more than the
        // documented burst of 50 leaves it whole for the commands.
        let server = start(ctx, &store, "burst", &["--member-burst", "60"]).await;
        let server = match server {
            Ok(s) => s,
            Err(e) => {
                drop_store(&store);
                return Err(e);
            }
        };
        let to = server.addr;
        let (household, owner) = ctx.household(to).await?;
        let mut tokens = vec![owner.clone()];
        tokens.extend(ctx.members(to, household, &owner, MEMBERS - 1).await?);
        let mut sockets = Vec::new();
        for token in &tokens {
            // Each counts from the welcome's seq: the household's setup is in its log.
            let (ws, welcome, _) = socket(to, household, token, None).await?;
            sockets.push((ws, welcome));
        }
        let total = (MEMBERS * BURST) as u64;
        let started = Instant::now();
        let runs: Vec<_> = sockets
            .into_iter()
            .map(|(mut ws, welcome)| {
                tokio::spawn(async move {
                    let ids: Vec<Uuid> = (0..BURST).map(|_| Uuid::now_v7()).collect();
                    let mut seen = Seen {
                        seq: SeqCheck::starting_at(welcome),
                        ..Seen::default()
                    };
                    let end = welcome + total;
                    let frames: Vec<Result<Message, _>> = ids
                        .iter()
                        .map(|id| Ok(Message::text(command_frame(*id, Uuid::now_v7()))))
                        .collect();
                    if let Err(e) = ws.send_all(&mut futures::stream::iter(frames)).await {
                        seen.closed = Some(format!("send: {e}"));
                        return (ids, seen, end);
                    }
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while seen.acks.len() + seen.others.len() < BURST || seen.seq.last < end {
                        match tokio::time::timeout_at(deadline, ws.next()).await {
                            Err(_) => {
                                seen.closed = Some("still waiting after 60 s".into());
                                break;
                            }
                            Ok(Some(Ok(Message::Text(t)))) => {
                                match hearth_bench::parse_incoming(t.as_str()) {
                                    Ok(Incoming::Event(e)) => seen.seq.observe(e.seq),
                                    Ok(Incoming::Ack(a)) => seen.acks.push(a.id),
                                    _ => seen.others.push(t.to_string()),
                                }
                            }
                            Ok(Some(Ok(Message::Close(f)))) => {
                                seen.closed = Some(format!("close {f:?}"));
                                break;
                            }
                            Ok(Some(Ok(_))) => {}
                            Ok(Some(Err(e))) => {
                                seen.closed = Some(e.to_string());
                                break;
                            }
                            Ok(None) => {
                                seen.closed = Some("ended".into());
                                break;
                            }
                        }
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
                    (ids, seen, end)
                })
            })
            .collect();
        let (mut closed, mut answered, mut in_order, mut complete) = (Vec::new(), 0, 0, 0);
        let mut others = Vec::new();
        for run in runs {
            let (ids, seen, end) = run.await?;
            answered += seen.acks.len();
            if seen.acks == ids {
                in_order += 1;
            }
            if seen.seq.last == end && seen.seq.gaps == 0 && seen.seq.duplicates == 0 {
                complete += 1;
            }
            others.extend(seen.others);
            if let Some(why) = seen.closed {
                closed.push(why);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let slow = metric(to, "hearth_slow_consumers_total").await?;
        server.stop().await?;
        drop_store(&store);
        o.figure(
            "load",
            format!("{MEMBERS} members of one household, one socket each, each writing {BURST} PlaceOrder at once ({total} commands); member rate: burst 51 (50 + the socket's open), 20/s"),
        );
        o.figure(
            "answered (ack)",
            format!("{answered} of {total} in {secs:.2} s"),
        );
        o.figure(
            "sockets with every ack in order",
            format!("{in_order} of {MEMBERS}"),
        );
        o.figure(
            "sockets with every event once, in order",
            format!("{complete} of {MEMBERS} ({total} events each)"),
        );
        o.figure("sockets closed", closed.len());
        o.figure("hearth_slow_consumers_total", slow);
        o.check(
            answered == total as usize && in_order == MEMBERS && others.is_empty(),
            format!("every command answered with an ack, in order ({answered} of {total}; other answers: {:?})", others.iter().take(3).collect::<Vec<_>>()),
        );
        o.check(
            complete == MEMBERS,
            format!("every socket got every event once, in order ({complete} of {MEMBERS})"),
        );
        o.check(
            closed.is_empty() && slow == 0,
            format!("no socket closed, no slow consumer (closed: {closed:?}; hearth_slow_consumers_total {slow})"),
        );
        outcomes.push(o);
    }
    Ok(outcomes)
}

// ------------------------------------------------------------------------------ catchup

/// Places `count` orders in `household` with HTTP POSTs (kept-alive connections,
/// `concurrency` at once): the household's head at the end.
async fn seed(
    to: SocketAddr,
    household: Uuid,
    token: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<u64> {
    let http = reqwest::Client::new();
    let url = format!("http://{to}/parties/household/{household}");
    let answers: Vec<anyhow::Result<u64>> = futures::stream::iter(0..count)
        .map(|_| {
            let request = http
                .post(&url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(command_frame(Uuid::now_v7(), Uuid::now_v7()))
                .timeout(Duration::from_secs(30));
            async move {
                let reply = request.send().await?;
                let status = reply.status();
                let body: Value = reply.json().await?;
                match body["ack"]["seq"].as_u64() {
                    Some(seq) if status == 200 => Ok(seq),
                    _ => bail!("seeding: {status} {body}"),
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut head = 0;
    for seq in answers {
        head = head.max(seq?);
    }
    Ok(head)
}

/// The seq of an event frame, found without parsing the whole frame (the catch-up
/// readers take a million frames on the same cores as the server).
fn event_seq(text: &str) -> Option<u64> {
    if !text.starts_with("{\"event\":") {
        return None;
    }
    let at = text.find("\"seq\":")? + 6;
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[derive(Debug, Default)]
struct Reader {
    seq: SeqCheck,
    bytes: u64,
    welcome_bytes: u64,
    closed: Option<String>,
    secs: f64,
}

/// One catch-up reader of `household` (at `head`): with `since=0` in its URL, or with
/// `{"sync":{"since":0}}` after its welcome; reads until it has every event.
async fn catch_up(
    to: SocketAddr,
    household: Uuid,
    token: String,
    head: u64,
    sync: bool,
    deadline: Instant,
) -> Reader {
    let started = Instant::now();
    let mut r = Reader::default();
    let (mut ws, welcome, welcome_bytes) =
        match socket(to, household, &token, (!sync).then_some(0)).await {
            Ok(ok) => ok,
            Err(e) => {
                r.closed = Some(format!("connect: {e:#}"));
                return r;
            }
        };
    r.welcome_bytes = welcome_bytes as u64;
    r.bytes = welcome_bytes as u64;
    if sync && welcome < head {
        r.closed = Some(format!("welcome at {welcome}, below the head {head}"));
    }
    if sync
        && let Err(e) = ws
            .send(Message::text(r#"{"sync":{"since":0}}"#.to_owned()))
            .await
    {
        r.closed = Some(format!("sync: {e}"));
        return r;
    }
    while r.seq.last < head && r.closed.is_none() {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => r.closed = Some("not caught up by the deadline".into()),
            Ok(Some(Ok(Message::Text(t)))) => {
                r.bytes += t.len() as u64;
                match event_seq(t.as_str()) {
                    Some(seq) => r.seq.observe(seq),
                    None => r.closed = Some(format!("unexpected: {}", t.as_str())),
                }
            }
            Ok(Some(Ok(Message::Close(f)))) => r.closed = Some(format!("close {f:?}")),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => r.closed = Some(e.to_string()),
            Ok(None) => r.closed = Some("ended".into()),
        }
    }
    r.secs = started.elapsed().as_secs_f64();
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
    r
}

/// Three members of `household` each placing an order every 100 ms until `stop`.
async fn other_household(
    to: SocketAddr,
    household: Uuid,
    tokens: &[String],
    stop: Stop,
) -> anyhow::Result<Probed> {
    let mut runs = Vec::new();
    for token in tokens {
        let (ws, _, _) = socket(to, household, token, None).await?;
        runs.push(tokio::spawn(client::probe_commands(
            ws,
            Duration::from_millis(100),
            stop.clone(),
        )));
    }
    let mut all = Probed::default();
    for run in runs {
        all.merge(run.await?);
    }
    Ok(all)
}

/// The bound on the server's RSS growth while 50 sockets catch up, the same at both
/// sizes (2,500 and 25,000 events): a catch-up paged and paced by each socket's queue
/// holds what the queues hold, whatever the history's length.
const RSS_BOUND_MIB: u64 = 256;

pub async fn catchup(ctx: &Ctx) -> anyhow::Result<Vec<Outcome>> {
    let mut o = Outcome::new("catchup");
    const READERS: usize = 50;
    const SEEDERS: usize = 16;
    // Events, the unloaded window, the readers' deadline, the bound on the server's RSS
    // growth during the catch-up.
    let (events, unloaded, deadline, rss_bound_mib) = if ctx.full() {
        (25_000usize, 20u64, 600u64, RSS_BOUND_MIB)
    } else {
        (2_500, 5, 120, RSS_BOUND_MIB)
    };
    let dir = ctx.out.join("catchup-data");
    let _ = std::fs::remove_dir_all(&dir);
    let store = StoreSpec::Sqlite(dir.clone());

    // Seed through the API with the member limits lifted, then restart on the same file
    // with the defaults.
    let seeding = Instant::now();
    let server = start(
        ctx,
        &store,
        "catchup-seed",
        &[
            "--member-burst",
            "1000000",
            "--member-per-second",
            "1000000",
            "--address-burst",
            "1000000",
            "--address-per-second",
            "1000000",
        ],
    )
    .await?;
    // The household and its readers sign up here (the limits lifted); their tokens work
    // after the restart (same file, same secret).
    let (household, owner) = ctx.household(server.addr).await?;
    let readers_tokens = ctx.members(server.addr, household, &owner, READERS).await?;
    let head = seed(server.addr, household, &owner, events, SEEDERS).await?;
    server.stop().await?;
    o.figure(
        "seeded",
        format!(
            "{head} events in one household in {:.1} s (PlaceOrder by HTTP POST, {SEEDERS} at once, member and address rates lifted), then the server restarted on the file with default limits",
            seeding.elapsed().as_secs_f64()
        ),
    );

    // For comparison, on a server of its own: 50 sockets that only join (no catch-up),
    // each sent the welcome (its bounded view of the household's recent orders).
    let server = start(ctx, &store, "catchup-welcome", &[]).await?;
    let (joined_base, _) = server.rss();
    let joining = Instant::now();
    let joins: Vec<_> = (0..READERS)
        .map(|i| {
            let token = readers_tokens[i].clone();
            let to = server.addr;
            tokio::spawn(async move {
                let (mut ws, _, bytes) = socket(to, household, &token, None).await?;
                let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
                anyhow::Ok(bytes)
            })
        })
        .collect();
    let mut joined = 0;
    for join in joins {
        if join.await?.is_ok() {
            joined += 1;
        }
    }
    let join_secs = joining.elapsed().as_secs_f64();
    let (_, joined_peak) = server.rss();
    server.stop().await?;
    o.figure(
        "for comparison: 50 sockets joining without catch-up (welcome only), on a fresh server",
        format!(
            "{joined} welcomed in {join_secs:.1} s; server RSS {} before, peak {}",
            joined_base.map(mib).unwrap_or_default(),
            joined_peak.map(mib).unwrap_or_default()
        ),
    );

    let server = start(ctx, &store, "catchup", &[]).await?;
    let to = server.addr;
    // The other household, unloaded.
    let (other, other_owner) = ctx.household(to).await?;
    let mut other_tokens = vec![other_owner.clone()];
    other_tokens.extend(ctx.members(to, other, &other_owner, 2).await?);
    let before = other_household(
        to,
        other,
        &other_tokens,
        stop_after(Duration::from_secs(unloaded)),
    )
    .await?;

    // The catch-up, with the other household measured meanwhile.
    server.reset_peak_rss()?;
    let (rss_start, _) = server.rss();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = {
        let pid = server.pid;
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while !*stop.borrow_and_update() {
                max = max.max(hearth_bench::rss_kib(pid).unwrap_or(0));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = stop.changed() => {}
                }
            }
            max
        })
    };
    let during = {
        let (ctx_token, stop) = (other_tokens.clone(), stop_rx.clone());
        let mut sockets = Vec::new();
        for token in &ctx_token {
            sockets.push(socket(to, other, token, None).await?.0);
        }
        tokio::spawn(async move {
            let mut all = Probed::default();
            let runs: Vec<_> = sockets
                .into_iter()
                .map(|ws| {
                    tokio::spawn(client::probe_commands(
                        ws,
                        Duration::from_millis(100),
                        stop.clone(),
                    ))
                })
                .collect();
            for run in runs {
                if let Ok(p) = run.await {
                    all.merge(p);
                }
            }
            all
        })
    };
    let started = Instant::now();
    let deadline_at = started + Duration::from_secs(deadline);
    let mut readers = Vec::new();
    for (i, token) in readers_tokens.iter().enumerate() {
        readers.push(tokio::spawn(catch_up(
            to,
            household,
            token.clone(),
            head,
            i % 2 == 1,
            deadline_at,
        )));
    }
    let mut done = Vec::new();
    for r in readers {
        done.push(r.await?);
    }
    let catch_up_secs = started.elapsed().as_secs_f64();
    // At least 3 s of the other household under load, so its p99 has samples.
    tokio::time::sleep_until(started + Duration::from_secs(3)).await;
    let _ = stop_tx.send(true);
    let after = during.await?;
    let sampled = sampler.await.unwrap_or(0);
    let (rss_end, hwm) = server.rss();
    let slow = metric(to, "hearth_slow_consumers_total").await?;
    server.stop().await?;
    drop_store(&store);

    let caught_up = done
        .iter()
        .filter(|r| {
            r.closed.is_none() && r.seq.last == head && r.seq.gaps == 0 && r.seq.duplicates == 0
        })
        .count();
    let failures: Vec<String> = done.iter().filter_map(|r| r.closed.clone()).collect();
    let bytes: u64 = done.iter().map(|r| r.bytes).sum();
    let welcome_bytes = done.iter().map(|r| r.welcome_bytes).max().unwrap_or(0);
    let slowest = done.iter().map(|r| r.secs).fold(0.0, f64::max);
    let peak = hwm.unwrap_or(0).max(sampled);
    let base = rss_start.unwrap_or(0);
    let growth = peak.saturating_sub(base);

    o.figure(
        "catch-up",
        format!("{READERS} sockets at once ({} with since=0 in the URL, {} with {{\"sync\":{{\"since\":0}}}} after the welcome), each reading all {head} events", READERS - READERS / 2, READERS / 2),
    );
    o.figure(
        "caught up (every event once, in order)",
        format!("{caught_up} of {READERS} in {catch_up_secs:.1} s (slowest {slowest:.1} s)"),
    );
    o.figure(
        "bytes sent to the readers",
        format!(
            "{:.0} MB (welcome {:.1} MB each)",
            bytes as f64 / 1e6,
            welcome_bytes as f64 / 1e6
        ),
    );
    o.figure(
        "server RSS before the catch-up, peak during it (VmHWM after a reset, and sampled every 50 ms), at the end",
        format!(
            "{} / {} / {}",
            mib(base),
            mib(peak),
            rss_end.map(mib).unwrap_or_default()
        ),
    );
    o.figure(
        "peak RSS growth",
        format!("{} (bound {rss_bound_mib} MiB)", mib(growth)),
    );
    o.figure(
        "other household (3 members x 10 commands/s, ack) unloaded",
        describe(&before),
    );
    o.figure("other household during the catch-up", describe(&after));
    let ratio = if p99(&before) > 0.0 {
        p99(&after) / p99(&before)
    } else {
        f64::INFINITY
    };
    o.figure(
        "other household's p99 ratio (during / unloaded)",
        format!("{ratio:.2}x (bound 2x, checked at the full size)"),
    );
    o.figure("hearth_slow_consumers_total", slow);

    o.check(
        caught_up == READERS,
        format!(
            "every catch-up socket got every event once, in order ({caught_up} of {READERS}; first failures {:?})",
            failures.iter().take(3).collect::<Vec<_>>()
        ),
    );
    check_all_answered(&mut o, "the other household unloaded", &before);
    check_all_answered(&mut o, "the other household during the catch-up", &after);
    o.check(
        growth <= rss_bound_mib * 1024,
        format!(
            "the server's peak RSS grew at most {rss_bound_mib} MiB during the catch-up (it grew {})",
            mib(growth)
        ),
    );
    if ctx.full() {
        o.check(
            ratio <= 2.0,
            format!(
                "the other household's p99 during the catch-up within 2x of its unloaded p99 ({} against {}: {ratio:.2}x)",
                ms(p99(&after)),
                ms(p99(&before))
            ),
        );
    }
    o.detail = json!({
        "head": head,
        "unloaded": before.latency.summary(),
        "during": after.latency.summary(),
        "rss_kib": {"before": base, "peak": peak, "end": rss_end},
        "bytes": bytes,
    });
    Ok(vec![o])
}

// ---------------------------------------------------------------------------------- nul

/// Commands with a NUL in each text field a member can fill, the field the refusal must
/// name, and the same command without the NUL (as crates/hearth/tests/edge.rs).
fn commands_with_a_nul() -> Vec<(Value, &'static str, Value)> {
    let order = Uuid::now_v7();
    let line = |sku: &str| json!({"sku": sku, "quantity": 1});
    let place = |lines: Value, note: &str| {
        let id = Uuid::now_v7();
        let payload = |lines: Value, note: &str| json!({"orderId": Uuid::now_v7(), "lines": lines, "note": note});
        (
            json!({"id": id, "type": "PlaceOrder", "payload": payload(lines, note)}),
            json!({"id": id, "type": "PlaceOrder", "payload": payload(json!([line("bread")]), "ok")}),
        )
    };
    let internal = |kind: &str, bad: Value, good: Value| {
        let id = Uuid::now_v7();
        (
            json!({"id": id, "type": kind, "payload": bad}),
            json!({"id": id, "type": kind, "payload": good}),
        )
    };
    [
        (
            place(json!([line("bread"), line("milk\u{0}")]), "ok"),
            "command.payload.lines[1].sku",
        ),
        (
            place(json!([line("bread\u{0}")]), "ok"),
            "command.payload.lines[0].sku",
        ),
        (
            place(json!([line("bread")]), "ring\u{0}"),
            "command.payload.note",
        ),
        (
            internal(
                "CancelOrder",
                json!({"orderId": order, "reason": "\u{0}"}),
                json!({"orderId": order, "reason": "changed my mind"}),
            ),
            "command.payload.reason",
        ),
        (
            internal(
                "RecordStockReserved",
                json!({"orderId": order, "reservationId": "r\u{0}"}),
                json!({"orderId": order, "reservationId": "r"}),
            ),
            "command.payload.reservationId",
        ),
    ]
    .into_iter()
    .map(|((bad, good), field)| (bad, field, good))
    .collect()
}

/// Whether `reply` is the refusal of text a store cannot hold, naming `field`, and
/// carries no database text.
fn names_field(reply: &Value, field: &str) -> bool {
    reply["error"]["code"] == "unstorable_text"
        && reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("{field}: ")))
}

fn leaks(text: &str) -> bool {
    text.contains("SQLSTATE") || text.contains("db error") || text.contains("sqlite")
}

/// A member in each of three other households places an order every 100 ms until
/// `stop` (under the member rate of 20/s).
async fn steady(
    ctx: &Ctx,
    to: SocketAddr,
    stop: Stop,
) -> anyhow::Result<tokio::task::JoinHandle<Probed>> {
    let mut runs = Vec::new();
    for _ in 0..3 {
        let (household, token) = ctx.household(to).await?;
        let (ws, _, _) = socket(to, household, &token, None).await?;
        runs.push(tokio::spawn(client::probe_commands(
            ws,
            Duration::from_millis(100),
            stop.clone(),
        )));
    }
    Ok(tokio::spawn(async move {
        let mut all = Probed::default();
        for run in runs {
            if let Ok(p) = run.await {
                all.merge(p);
            }
        }
        all
    }))
}

fn rollbacks(db: &PgDb) -> anyhow::Result<u64> {
    db.query(&format!(
        "SELECT pg_stat_clear_snapshot(); SELECT xact_rollback FROM pg_stat_database WHERE datname = '{}'",
        db.name
    ))?
    .lines()
    .rfind(|l| !l.trim().is_empty())
    .and_then(|l| l.trim().parse().ok())
    .context("reading xact_rollback")
}

pub async fn nul(ctx: &Ctx) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for store in stores(ctx, "nul").await? {
        let result = nul_on(ctx, &store).await;
        drop_store(&store);
        outcomes.push(result?);
    }
    Ok(outcomes)
}

/// The household's head as its room's HTTP API says it (`None` when it does not answer).
async fn household_head(to: SocketAddr, room: &str, token: &str) -> anyhow::Result<Option<u64>> {
    let page = http(
        to,
        None,
        "GET",
        &format!("{room}?since=0"),
        Some(token),
        None,
    )
    .await?;
    Ok(page.json()["head"].as_u64())
}

async fn nul_on(ctx: &Ctx, store: &StoreSpec) -> anyhow::Result<Outcome> {
    let mut o = Outcome::new(format!("nul ({})", store.name()));
    let server = start(ctx, store, "nul", &[]).await?;
    let to = server.addr;
    let created = http(
        to,
        None,
        "POST",
        "/households",
        None,
        Some(&json!({"name": "Home", "ownerName": "Ann"}).to_string()),
    )
    .await?;
    if created.status != 201 {
        bail!("creating a household: {} {}", created.status, created.body);
    }
    let body = created.json();
    let household: Uuid = serde_json::from_value(body["household"]["id"].clone())?;
    let token = body["token"].as_str().context("no token")?.to_owned();
    let room = format!("/parties/household/{household}");
    let pg = match store {
        StoreSpec::Postgres(db) => Some(db.clone()),
        StoreSpec::Sqlite(_) => None,
    };
    // What the household's setup stored: the attack must leave it as it is.
    let head_before = household_head(to, &room, &token).await?;
    let stored_rows = |db: &PgDb| -> anyhow::Result<u64> {
        let n = db.query(&format!(
            "SELECT (SELECT count(*) FROM events WHERE tenant_id = '{household}') + (SELECT count(*) FROM commands WHERE tenant_id = '{household}')"
        ))?;
        Ok(n.trim().parse::<u64>().unwrap_or(u64::MAX))
    };
    let stored_before = pg.as_ref().map(stored_rows).transpose()?;
    // PostgreSQL keeps its statistics per backend for up to a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rollbacks_before = pg.as_ref().map(rollbacks).transpose()?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load = steady(ctx, to, stop_rx).await?;
    let attack = Instant::now();
    let (mut refused, mut cases, mut wrong) = (0, 0, Vec::new());
    let mut expect = |what: String, ok: bool, text: &str| {
        cases += 1;
        if ok && !leaks(text) {
            refused += 1;
        } else {
            wrong.push(format!("{what}: {text}"));
        }
    };
    let (mut ws, _, _) = socket(to, household, &token, None).await?;
    for (bad, field, _) in commands_with_a_nul() {
        ws.send(Message::text(json!({"command": bad}).to_string()))
            .await?;
        let reply = loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => break t.to_string(),
                Ok(Some(Ok(_))) => continue,
                other => bail!("the socket gave no answer: {other:?}"),
            }
        };
        let v: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
        expect(
            format!("socket {field}"),
            names_field(&v, field) && v["error"]["id"] == bad["id"],
            &reply,
        );
        let r = http(
            to,
            None,
            "POST",
            &room,
            Some(&token),
            Some(&bad.to_string()),
        )
        .await?;
        expect(
            format!("POST {field}"),
            r.status == 400 && names_field(&r.json(), field),
            &r.body,
        );
    }
    for (body, field) in [
        (json!({"name": "H\u{0}", "ownerName": "Ann"}), "name"),
        (json!({"name": "H", "ownerName": "A\u{0}"}), "ownerName"),
    ] {
        let r = http(
            to,
            None,
            "POST",
            "/households",
            None,
            Some(&body.to_string()),
        )
        .await?;
        expect(
            format!("POST /households {field}"),
            r.status == 400 && names_field(&r.json(), field),
            &r.body,
        );
    }
    for (body, field) in [
        (json!({"code": "abc\u{0}", "name": "Bob"}), "code"),
        (json!({"code": "abc", "name": "B\u{0}"}), "name"),
    ] {
        let path = format!("/households/{household}/join");
        let r = http(to, None, "POST", &path, None, Some(&body.to_string())).await?;
        expect(
            format!("POST join {field}"),
            r.status == 400 && names_field(&r.json(), field),
            &r.body,
        );
    }
    for (query, field) in [
        ("_pk=%00", "query parameter _pk"),
        ("token=%00", "query parameter token"),
    ] {
        let r = http(
            to,
            None,
            "GET",
            &format!("{room}?{query}"),
            Some(&token),
            None,
        )
        .await?;
        expect(
            format!("GET ?{query}"),
            r.status == 400 && names_field(&r.json(), field),
            &r.body,
        );
    }
    // The other households' load runs 2 s at least, across the whole attack.
    tokio::time::sleep_until(attack + Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let load = load.await?;
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;

    // Nothing appended: the household's log is as its setup left it, and the ids of the
    // refused commands are still free.
    let head = household_head(to, &room, &token).await?;
    let stored = match &pg {
        Some(db) => {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Some(stored_rows(db)?)
        }
        None => None,
    };
    let rollbacks_after = pg.as_ref().map(rollbacks).transpose()?;
    let mut reused = Vec::new();
    for (_, _, good) in commands_with_a_nul() {
        let r = http(
            to,
            None,
            "POST",
            &room,
            Some(&token),
            Some(&good.to_string()),
        )
        .await?;
        let v = r.json();
        let outcome = match good["type"].as_str() {
            Some("PlaceOrder") => v["ack"]["status"].clone(),
            _ => v["rejected"]["code"].clone(),
        };
        reused.push(outcome.as_str().unwrap_or("?").to_owned());
    }
    server.stop().await?;

    o.figure(
        "cases",
        format!("{cases}: 5 commands (line name, sku, note, cancel reason, reservation id) over the socket and over HTTP POST, household and owner names, invite code and member name on /join (unauthenticated), _pk and token in the query"),
    );
    o.figure(
        "refused naming the field (400 / unstorable_text)",
        format!("{refused} of {cases}"),
    );
    o.figure(
        "the attacked household's head after the attack",
        format!("{head:?}"),
    );
    o.figure(
        "the refused commands' ids sent again without the NUL",
        reused.join(", "),
    );
    o.figure(
        "other households' commands meanwhile (3 members x 10/s, ack)",
        describe(&load),
    );
    if let (Some(stored), Some(before), Some(after)) = (stored, rollbacks_before, rollbacks_after) {
        o.figure(
            "rows of the attacked household in events + commands (superuser count) before and after the attack",
            format!("{stored_before:?}, {stored}"),
        );
        o.figure(
            "rolled-back transactions in the database during the attack (pg_stat_database.xact_rollback)",
            after.saturating_sub(before),
        );
        o.check(
            Some(stored) == stored_before,
            format!(
                "nothing of the refused commands stored ({stored} rows, {stored_before:?} before)"
            ),
        );
        o.check(
            after == before,
            format!(
                "no batch rolled back, so none ran again ({} rollbacks)",
                after.saturating_sub(before)
            ),
        );
    }
    o.check(
        refused == cases,
        format!("every NUL refused with 400 / unstorable_text naming its field, no database text: {wrong:?}"),
    );
    o.check(
        head.is_some() && head == head_before,
        format!(
            "nothing appended to the attacked household (head {head:?}, {head_before:?} before)"
        ),
    );
    o.check(
        reused
            == [
                "accepted",
                "accepted",
                "accepted",
                "order_not_found",
                "internal_command",
            ],
        format!("the refused commands' ids were never recorded: {reused:?}"),
    );
    check_all_answered(&mut o, "the other households' commands", &load);
    Ok(o)
}

//! The clients: one writer per household (the owner: `PlaceOrder`, and for a share of
//! the accepted orders a `CancelOrder` at a random point of the order's process, each
//! with a unique command id, every unanswered one resent after a reconnect), and one
//! tail per household (another member, reading every event from `since`).

use anyhow::{Context as _, Result, bail};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Clone)]
pub struct Household {
    pub id: String,
    pub owner_token: String,
    pub member_token: String,
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> Result<Value> {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

fn text(v: &Value, pointer: &str) -> Result<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no {pointer} in {v}"))
}

/// A household with its owner (the writer) and a second member (the tail).
pub async fn create_household(http: &reqwest::Client, base: &str, n: usize) -> Result<Household> {
    let created = post(
        http,
        &format!("http://{base}/households"),
        None,
        json!({"name": format!("faults {n}"), "ownerName": "Writer"}),
    )
    .await?;
    let id = text(&created, "/household/id")?;
    let owner_token = text(&created, "/token")?;
    let invite = post(
        http,
        &format!("http://{base}/households/{id}/invites"),
        Some(&owner_token),
        json!({"ttlSeconds": 3600}),
    )
    .await?;
    let code = text(&invite, "/code")?;
    let joined = post(
        http,
        &format!("http://{base}/households/{id}/join"),
        None,
        json!({"code": code, "name": "Tail"}),
    )
    .await?;
    Ok(Household {
        id,
        owner_token,
        member_token: text(&joined, "/token")?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Place,
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Accepted,
    Duplicate,
    Rejected(String),
    /// An error that is not "retry": the suite sent something wrong.
    Invalid(String),
}

#[derive(Debug)]
pub struct Cmd {
    pub id: Uuid,
    pub kind: Kind,
    pub order: Uuid,
    frame: String,
    last_sent: Option<Instant>,
    pub sends: u32,
    pub outcome: Outcome,
}

/// What one household's writer sent and heard.
#[derive(Debug, Default)]
pub struct Sent {
    pub cmds: Vec<Cmd>,
    index: HashMap<Uuid, usize>,
}

impl Sent {
    /// For the checker's self-test: an acknowledged command that was never sent.
    pub fn forge_acked(&mut self) {
        let id = Uuid::now_v7();
        self.index.insert(id, self.cmds.len());
        self.cmds.push(Cmd {
            id,
            kind: Kind::Place,
            order: Uuid::now_v7(),
            frame: String::new(),
            last_sent: None,
            sends: 0,
            outcome: Outcome::Accepted,
        });
    }

    /// An order the household placed and had accepted.
    pub fn an_accepted_order(&self) -> Option<Uuid> {
        self.cmds
            .iter()
            .find(|c| c.kind == Kind::Place && c.outcome == Outcome::Accepted)
            .map(|c| c.order)
    }

    pub fn pending(&self) -> usize {
        self.cmds
            .iter()
            .filter(|c| c.outcome == Outcome::Pending)
            .count()
    }
}

/// The instants something moved, for recovery times: answers to commands, and events
/// of the fulfilment process seen by the tails.
#[derive(Debug, Default)]
pub struct Progress {
    pub answers: Vec<Instant>,
    pub process_events: Vec<Instant>,
}

#[derive(Debug, Clone)]
pub struct Load {
    pub place_every: Duration,
    pub cancel_ratio: f64,
    /// A cancel is sent this long at most after its order's ack (uniformly), for half
    /// of the cancels; the other half within `race_window`, while the provider calls run.
    pub cancel_window: Duration,
    pub race_window: Duration,
    /// ready-at, after the order is placed.
    pub ready_after: Duration,
    /// How long a writer may take to get every command answered after the load stops.
    pub drain: Duration,
}

/// (sku, unit price, weight: the sandbox's stock of it). The price is the one a member
/// was shown; the server names and prices the line from its catalog.
const CATALOG: &[(&str, u64, u32)] = &[
    ("bread", 450, 100),
    ("milk", 129, 200),
    ("eggs", 399, 100),
    ("coffee", 899, 50),
    ("apples", 299, 100),
    ("pizza", 1150, 40),
];

fn random_item() -> (&'static str, u64) {
    let total: u32 = CATALOG.iter().map(|c| c.2).sum();
    let mut pick = fastrand::u32(..total);
    for &(sku, price, weight) in CATALOG {
        if pick < weight {
            return (sku, price);
        }
        pick -= weight;
    }
    ("milk", 129)
}

fn new_command(sent: &mut Sent, kind: Kind, order: Uuid, load: &Load) -> String {
    let id = Uuid::now_v7();
    let command = match kind {
        Kind::Place => {
            let (sku, price) = random_item();
            let ready_at = chrono::Utc::now()
                + chrono::TimeDelta::from_std(load.ready_after).unwrap_or_default();
            json!({"command": {"id": id, "type": "PlaceOrder", "payload": {
                "orderId": order,
                "lines": [{"sku": sku, "quantity": 1, "unitPriceCents": price}],
                "readyAt": ready_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}}})
        }
        Kind::Cancel => json!({"command": {"id": id, "type": "CancelOrder", "payload": {
                "orderId": order, "reason": "fault suite"}}}),
    };
    let frame = command.to_string();
    sent.index.insert(id, sent.cmds.len());
    sent.cmds.push(Cmd {
        id,
        kind,
        order,
        frame: frame.clone(),
        last_sent: Some(Instant::now()),
        sends: 1,
        outcome: Outcome::Pending,
    });
    frame
}

fn ws_url(base: &str, household: &str, token: &str, since: Option<u64>) -> String {
    let mut url = format!(
        "ws://{base}/parties/household/{household}?_pk={}&token={token}",
        Uuid::new_v4()
    );
    if let Some(since) = since {
        url.push_str(&format!("&since={since}"));
    }
    url
}

/// A send bounded in time: a node that stops reading (it does, on purpose, while 64
/// commands wait) must not hang the writer; the socket is then treated as broken.
async fn send<S>(tx: &mut S, frame: String) -> bool
where
    S: futures::Sink<Message> + Unpin,
{
    matches!(
        tokio::time::timeout(Duration::from_secs(5), tx.send(Message::text(frame))).await,
        Ok(Ok(()))
    )
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to the first node that answers, starting from `*at` (rotating on failure).
async fn connect(nodes: &[String], at: &mut usize, url: impl Fn(&str) -> String) -> Socket {
    loop {
        let node = &nodes[*at % nodes.len()];
        match tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(url(node)),
        )
        .await
        {
            Ok(Ok((socket, _))) => return socket,
            _ => {
                *at += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The household's writer. Ends Ok when the load stopped and every command it sent
/// was answered (accepted, duplicate, rejected); an error if that takes longer than
/// `load.drain`.
#[allow(clippy::too_many_arguments)]
pub async fn writer(
    household: Household,
    nodes: Arc<Vec<String>>,
    first_node: usize,
    load: Load,
    sent: Arc<Mutex<Sent>>,
    progress: Arc<Mutex<Progress>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut at = first_node;
    let mut cancels: Vec<(Instant, Uuid)> = Vec::new();
    let mut stopped_at: Option<Instant> = None;
    let far = Duration::from_secs(3600);
    loop {
        let socket = tokio::select! {
            socket = connect(&nodes, &mut at, |n| ws_url(n, &household.id, &household.owner_token, None)) => socket,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if let Some(t) = stopped_at && t.elapsed() > load.drain {
                    bail!("writer of {}: {} command(s) unanswered {:?} after the load stopped (no node answers)",
                        household.id, lock(&sent).pending(), load.drain);
                }
                continue;
            }
        };
        let (mut tx, mut rx) = socket.split();
        // Resend every unanswered command, in the order they were first sent.
        let resend: Vec<String> = {
            let mut s = lock(&sent);
            s.cmds
                .iter_mut()
                .filter(|c| c.outcome == Outcome::Pending)
                .map(|c| {
                    c.sends += 1;
                    c.last_sent = Some(Instant::now());
                    c.frame.clone()
                })
                .collect()
        };
        let mut broken = false;
        for frame in resend {
            if !send(&mut tx, frame).await {
                broken = true;
                break;
            }
        }
        if broken {
            continue;
        }
        let mut place = tokio::time::interval(load.place_every);
        place.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval(Duration::from_millis(500));
        loop {
            let next_cancel = cancels.iter().map(|c| c.0).min();
            let frame: Option<String> = tokio::select! {
                message = rx.next() => match message {
                    Some(Ok(Message::Text(t))) => {
                        answer(&t, &sent, &progress, &load, &mut cancels);
                        None
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => None,
                },
                _ = place.tick(), if stopped_at.is_none() => {
                    Some(new_command(&mut lock(&sent), Kind::Place, Uuid::now_v7(), &load))
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(
                        next_cancel.unwrap_or_else(|| Instant::now() + far))), if next_cancel.is_some() => {
                    let now = Instant::now();
                    let due = cancels.iter().position(|c| c.0 <= now);
                    due.map(|i| {
                        let (_, order) = cancels.swap_remove(i);
                        new_command(&mut lock(&sent), Kind::Cancel, order, &load)
                    })
                }
                changed = stop.changed(), if stopped_at.is_none() => {
                    if changed.is_err() || *stop.borrow() {
                        stopped_at = Some(Instant::now());
                    }
                    None
                }
                _ = check.tick() => {
                    if let Some(t) = stopped_at {
                        let pending = lock(&sent).pending();
                        if pending == 0 && cancels.is_empty() {
                            let _ = tokio::time::timeout(Duration::from_secs(1), tx.send(Message::Close(None))).await;
                            return Ok(());
                        }
                        if t.elapsed() > load.drain {
                            bail!("writer of {}: {pending} command(s) unanswered {:?} after the load stopped",
                                household.id, load.drain);
                        }
                    }
                    // A command answered "retry" (unavailable, contention) or never
                    // answered on a live socket: resent, same id, after 2 s.
                    let stale: Vec<String> = {
                        let mut s = lock(&sent);
                        s.cmds.iter_mut()
                            .filter(|c| c.outcome == Outcome::Pending
                                && c.last_sent.is_none_or(|t| t.elapsed() > Duration::from_secs(2)))
                            .map(|c| { c.sends += 1; c.last_sent = Some(Instant::now()); c.frame.clone() })
                            .collect()
                    };
                    let mut failed = false;
                    for frame in stale {
                        if !send(&mut tx, frame).await {
                            failed = true;
                            break;
                        }
                    }
                    if failed { break; }
                    None
                }
            };
            if let Some(frame) = frame
                && !send(&mut tx, frame).await
            {
                break;
            }
        }
    }
}

fn answer(
    text: &str,
    sent: &Mutex<Sent>,
    progress: &Mutex<Progress>,
    load: &Load,
    cancels: &mut Vec<(Instant, Uuid)>,
) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let (id, outcome) = if let Some(ack) = v.get("ack") {
        let status = ack.get("status").and_then(Value::as_str).unwrap_or("");
        let outcome = if status == "duplicate" {
            Outcome::Duplicate
        } else {
            Outcome::Accepted
        };
        (ack.get("id"), Some(outcome))
    } else if let Some(rejected) = v.get("rejected") {
        let code = rejected.get("code").and_then(Value::as_str).unwrap_or("?");
        (rejected.get("id"), Some(Outcome::Rejected(code.to_owned())))
    } else if let Some(error) = v.get("error") {
        let code = error.get("code").and_then(Value::as_str).unwrap_or("?");
        let retry = matches!(code, "unavailable" | "contention" | "rate_limited");
        let outcome = (!retry).then(|| Outcome::Invalid(error.to_string()));
        (error.get("id"), outcome)
    } else {
        return;
    };
    let Some(id) = id
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
    else {
        return;
    };
    let mut s = lock(sent);
    let Some(&i) = s.index.get(&id) else { return };
    let cmd = &mut s.cmds[i];
    match outcome {
        None => {
            // Retry later, with the same id.
            cmd.last_sent = Some(Instant::now());
        }
        Some(outcome) => {
            lock(progress).answers.push(Instant::now());
            if cmd.outcome != Outcome::Pending {
                return;
            }
            let first_accept = cmd.kind == Kind::Place
                && matches!(outcome, Outcome::Accepted | Outcome::Duplicate);
            cmd.outcome = outcome;
            if first_accept && fastrand::f64() < load.cancel_ratio {
                let window = if fastrand::bool() {
                    load.race_window
                } else {
                    load.cancel_window
                };
                let window = window.as_millis() as u64;
                let at = Instant::now() + Duration::from_millis(fastrand::u64(0..=window));
                cancels.push((at, cmd.order));
            }
        }
    }
}

/// What one tail saw: (seq, event id) in the order it came.
#[derive(Debug, Default)]
pub struct Seen {
    pub events: Vec<(u64, String)>,
    pub last: u64,
}

const PROCESS_EVENTS: &[&str] = &[
    "StockReserved",
    "PaymentCaptured",
    "OrderConfirmed",
    "OrderRejected",
    "OrderReady",
    "RefundIssued",
    "StockReleased",
    "StockReservedAfterClose",
    "PaymentCapturedAfterClose",
];

/// The household's tail: every event, reconnecting with `since` = the last seq seen.
pub async fn tail(
    household: Household,
    nodes: Arc<Vec<String>>,
    first_node: usize,
    seen: Arc<Mutex<Seen>>,
    progress: Arc<Mutex<Progress>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut at = first_node;
    loop {
        if *stop.borrow() {
            return;
        }
        let since = lock(&seen).last;
        let socket = tokio::select! {
            socket = connect(&nodes, &mut at, |n| ws_url(n, &household.id, &household.member_token, Some(since))) => socket,
            _ = stop.changed() => return,
        };
        let (_tx, mut rx) = socket.split();
        loop {
            let message = tokio::select! {
                m = rx.next() => m,
                _ = stop.changed() => return,
            };
            match message {
                Some(Ok(Message::Text(t))) => {
                    let Ok(v) = serde_json::from_str::<Value>(&t) else {
                        continue;
                    };
                    let Some(event) = v.get("event") else {
                        continue;
                    };
                    let seq = event.get("seq").and_then(Value::as_u64).unwrap_or(0);
                    let id = event
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
                    if PROCESS_EVENTS.contains(&kind) {
                        lock(&progress).process_events.push(Instant::now());
                    }
                    let mut s = lock(&seen);
                    s.events.push((seq, id));
                    s.last = s.last.max(seq);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    }
}

//! The legitimate clients: plain HTTP/1.1 requests (a fresh connection each, optionally
//! from a given loopback address), member sockets, and open-loop probers that measure
//! how long the server takes to answer while it is under attack.

use anyhow::{Context as _, bail};
use futures::{SinkExt as _, StreamExt as _};
use hearth_bench::{Incoming, Latency, command_frame};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

pub type Ws = WebSocketStream<TcpStream>;

/// Opens a TCP connection to `to`, from `from` (a loopback address) when given.
pub async fn tcp(to: SocketAddr, from: Option<IpAddr>) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(to).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`), 10 s at most.
pub async fn http(
    to: SocketAddr,
    from: Option<IpAddr>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> anyhow::Result<Reply> {
    let run = async {
        let mut stream = tcp(to, from).await?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n");
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(body.unwrap_or(""));
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_reply(&raw)
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .with_context(|| format!("{method} {path}: no answer within 10 s"))?
}

fn parse_reply(raw: &[u8]) -> anyhow::Result<Reply> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("an HTTP answer without the end of its headers")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("an HTTP answer without a status")?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// One counter of the server's `/metrics`, with its labels as written there
/// (`hearth_refused_total{reason="rate_signup"}`).
pub async fn metric(to: SocketAddr, name: &str) -> anyhow::Result<u64> {
    let reply = http(to, None, "GET", "/metrics", None, None).await?;
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {name} in the server's /metrics"))
}

/// Opens a member's socket and waits for the welcome (30 s): the socket and the
/// welcome's seq, and the welcome's size in bytes.
pub async fn socket(
    to: SocketAddr,
    household: Uuid,
    token: &str,
    since: Option<u64>,
) -> anyhow::Result<(Ws, u64, usize)> {
    let run = async {
        let stream = tcp(to, None).await?;
        let since = since.map(|s| format!("&since={s}")).unwrap_or_default();
        let url = format!(
            "ws://{to}/parties/household/{household}?_pk={}&token={token}{since}",
            Uuid::new_v4()
        );
        // No size limit on the client: it measures what the server sends.
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .context("websocket handshake")?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match welcome_seq(t.as_str()) {
                    Some(seq) => return Ok((ws, seq, t.len())),
                    None => bail!("expected a welcome, got {}", t.as_str()),
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("closed before the welcome"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .context("no welcome within 30 s")?
}

/// The seq of a welcome frame, read from its head: the welcome carries the household's
/// recent orders (up to 128 KiB by default), which the suite does not need to parse
/// on the cores the server uses.
fn welcome_seq(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("{\"welcome\":")?;
    let state = rest.find("\"state\":").unwrap_or(rest.len());
    let at = rest[..state].find("\"seq\":")? + 6;
    let digits: String = rest[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// What a prober measured.
#[derive(Debug, Default)]
pub struct Probed {
    pub latency: Latency,
    /// Sent or started.
    pub sent: u64,
    /// Answered as expected.
    pub answered: u64,
    /// Failed or not answered within 5 s, with the first reason.
    pub failed: u64,
    pub first_failure: Option<String>,
}

impl Probed {
    fn fail(&mut self, why: String) {
        self.failed += 1;
        self.first_failure.get_or_insert(why);
    }

    pub fn merge(&mut self, other: Probed) {
        self.latency.merge(&other.latency);
        self.sent += other.sent;
        self.answered += other.answered;
        self.failed += other.failed;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

/// `GET /healthz` on a fresh connection every `period` until `stop`, open loop: each
/// request's latency counts from its due time, so a stalled server cannot slow the
/// probe down. A request without a 200 within 5 s is a failure.
pub async fn probe_healthz(to: SocketAddr, period: Duration, mut stop: Stop) -> Probed {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    while !*stop.borrow_and_update() {
        let due = tokio::select! {
            due = tick.tick() => due,
            _ = stop.changed() => break,
        };
        tasks.push(tokio::spawn(async move {
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                http(to, None, "GET", "/healthz", None, None),
            )
            .await;
            (due.elapsed(), r)
        }));
    }
    let mut p = Probed::default();
    for task in tasks {
        p.sent += 1;
        match task.await {
            Ok((took, Ok(Ok(reply)))) if reply.status == 200 => {
                p.answered += 1;
                p.latency.record(took);
            }
            Ok((_, Ok(Ok(reply)))) => p.fail(format!("status {}", reply.status)),
            Ok((_, Ok(Err(e)))) => p.fail(format!("{e:#}")),
            Ok((_, Err(_))) => p.fail("no answer within 5 s".into()),
            Err(e) => p.fail(e.to_string()),
        }
    }
    p
}

/// A member's socket places an order every `period` until `stop`, open loop: the
/// latency of each command is from its due time to its ack. Events are read and
/// dropped. A command without an ack within 5 s after the stop is a failure.
pub async fn probe_commands(mut ws: Ws, period: Duration, mut stop: Stop) -> Probed {
    let mut p = Probed::default();
    let mut pending: HashMap<Uuid, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut stopped: Option<Instant> = None;
    loop {
        if stopped.is_none() && *stop.borrow_and_update() {
            stopped = Some(Instant::now());
        }
        if let Some(at) = stopped
            && (pending.is_empty() || at.elapsed() >= Duration::from_secs(5))
        {
            break;
        }
        tokio::select! {
            due = tick.tick(), if stopped.is_none() => {
                let id = Uuid::now_v7();
                pending.insert(id, due);
                p.sent += 1;
                if let Err(e) = ws.send(Message::text(command_frame(id, Uuid::now_v7()))).await {
                    p.fail(format!("send: {e}"));
                    break;
                }
            }
            // A change, or the sender gone: either way, stop sending.
            _ = stop.changed(), if stopped.is_none() => stopped = Some(Instant::now()),
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => match hearth_bench::parse_incoming(t.as_str()) {
                    Ok(Incoming::Ack(a)) => {
                        if let Some(due) = pending.remove(&a.id) {
                            p.answered += 1;
                            p.latency.record(due.elapsed());
                        }
                    }
                    Ok(Incoming::Event(_)) | Ok(Incoming::Welcome(_)) => {}
                    Ok(Incoming::Rejected(_)) => p.fail("rejected".into()),
                    Ok(Incoming::Error(e)) => p.fail(format!("error {}", e.code)),
                    Err(_) => p.fail(format!("unparsed: {}", t.as_str())),
                },
                Some(Ok(Message::Close(f))) => {
                    p.fail(format!("closed: {f:?}"));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    p.fail(format!("socket: {e}"));
                    break;
                }
                None => {
                    p.fail("socket ended".into());
                    break;
                }
            },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    for _ in pending.drain() {
        p.fail("no ack within 5 s".into());
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
    p
}

/// A counter shared by tasks, with its high and low marks.
#[derive(Debug, Default)]
pub struct Gauge {
    now: AtomicU64,
    max: AtomicU64,
}

impl Gauge {
    pub fn up(&self) {
        let n = self.now.fetch_add(1, Ordering::AcqRel) + 1;
        self.max.fetch_max(n, Ordering::AcqRel);
    }

    pub fn down(&self) {
        self.now.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn now(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Acquire)
    }
}

/// Tells probers and attackers to stop (`true`, or the sender dropped).
pub type Stop = tokio::sync::watch::Receiver<bool>;

/// A [`Stop`] that fires after `after`.
pub fn stop_after(after: Duration) -> Stop {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let _ = tx.send(true);
    });
    rx
}

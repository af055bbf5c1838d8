//! The edge on real stores (SQLite and PostgreSQL), in process: the rooms' server on
//! port 0, driven over loopback by real HTTP and WebSocket clients.
//! - text no store can hold is refused at the wire on every store, before the service:
//!   nothing is appended, and the other households' appends run without a rerun.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

#[path = "../../postgres/tests/common/mod.rs"]
mod pg;

use futures::{SinkExt, StreamExt};
use hearth_axum::{Application, Ports, Settings, TokenSecret};
use hearth_core::HouseholdId;
use hearth_core::Service;
use hearth_core::ports::EventStore;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The store under test, with what its batchers counted.
enum Store {
    Postgres(Arc<hearth_postgres::PgEventStore>),
    /// The directory holding the file lives as long as the store.
    Sqlite(
        Arc<hearth_sqlite::SqliteEventStore>,
        #[allow(dead_code)] tempfile::TempDir,
    ),
}

impl Store {
    fn port(&self) -> Arc<dyn EventStore> {
        match self {
            Store::Postgres(s) => s.clone(),
            Store::Sqlite(s, _) => s.clone(),
        }
    }

    /// Appends the store was asked to write.
    fn appends(&self) -> u64 {
        match self {
            Store::Postgres(s) => s.batch_stats().appends,
            Store::Sqlite(s, _) => s.batch_stats().appends,
        }
    }

    /// Batches run again one append at a time because one append raised (PostgreSQL).
    fn reruns(&self) -> u64 {
        match self {
            Store::Postgres(s) => s.batch_stats().reruns,
            Store::Sqlite(..) => 0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Postgres,
    Sqlite,
}

struct Server {
    addr: std::net::SocketAddr,
    store: Store,
    http: reqwest::Client,
}

async fn serve(kind: Kind, tune: impl FnOnce(&mut Settings)) -> Server {
    let (store, ports) = match kind {
        Kind::Postgres => {
            let db = pg::db().await;
            let store = db.store();
            let ports = Ports {
                service: Service::new(store.clone(), Arc::new(hearth_memory::SystemClock))
                    .with_catalog(Arc::new(hearth_memory::MemoryInventory::default())),
                feed: Arc::new(db.feed(hearth_postgres::FeedOptions::default())),
                directory: db.directory(),
            };
            (Store::Postgres(store), ports)
        }
        Kind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let (store, feed) =
                hearth_sqlite::SqliteEventStore::open(dir.path().join("hearth.sqlite")).unwrap();
            let ports = Ports {
                service: Service::new(store.clone(), Arc::new(hearth_memory::SystemClock))
                    .with_catalog(Arc::new(hearth_memory::MemoryInventory::default())),
                feed: Arc::new(feed),
                directory: Arc::new(store.directory()),
            };
            (Store::Sqlite(store, dir), ports)
        }
    };
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        token_secret: TokenSecret::new("edge-test-secret-0123456789abcdef").unwrap(),
        ..Settings::default()
    };
    tune(&mut settings);
    let app = Application::build(settings, ports).await.unwrap();
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped());
    Server {
        addr,
        store,
        http: reqwest::Client::new(),
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new household: its id and its owner's token.
    async fn household(&self) -> (HouseholdId, String) {
        let res = self
            .http
            .post(self.url("/households"))
            .json(&json!({"name": "Home", "ownerName": "Ann"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        (
            serde_json::from_value(body["household"]["id"].clone()).unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Another member of `household`, invited by its owner: their token.
    async fn member(&self, household: HouseholdId, owner: &str) -> String {
        let invite: Value = self
            .http
            .post(self.url(&format!("/households/{household}/invites")))
            .bearer_auth(owner)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let res = self
            .http
            .post(self.url(&format!("/households/{household}/join")))
            .json(&json!({"code": invite["code"], "name": "Bob"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    async fn socket(&self, household: HouseholdId, token: &str) -> Ws {
        let url = format!(
            "ws://{}/parties/household/{household}?_pk={}&token={token}",
            self.addr,
            Uuid::new_v4()
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let welcome = recv(&mut ws).await.expect("a welcome");
        assert!(welcome.get("welcome").is_some(), "{welcome}");
        ws
    }

    async fn post(&self, household: HouseholdId, token: &str, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(self.url(&format!("/parties/household/{household}")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }
}

/// The next text message as JSON; `None` when the socket closes (pings skipped).
async fn recv(ws: &mut Ws) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a message in time")?;
        match msg.ok()? {
            Message::Text(text) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

fn place_order(id: Uuid) -> Value {
    json!({"id": id, "type": "PlaceOrder", "payload": {
        "orderId": Uuid::now_v7(),
        "lines": [{"sku": "bread", "quantity": 1, "unitPriceCents": 450}],
    }})
}

/// Commands with a NUL in each text field a member can fill, the field the refusal
/// must name, and the same command without the NUL.
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
    let cases = [
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
    ];
    cases
        .into_iter()
        .map(|((bad, good), field)| (bad, field, good))
        .collect()
}

fn assert_unstorable(reply: &Value, field: &str) {
    assert_eq!(reply["error"]["code"], "unstorable_text", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{field}: ")),
        "{field}: {message}"
    );
}

/// Sockets of other households' members, for [`steady_load`] (set up before what a
/// test counts: a household's setup appends to the store too).
async fn steady_sockets(server: &Server) -> Vec<Ws> {
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let (household, token) = server.household().await;
        sockets.push(server.socket(household, &token).await);
    }
    sockets
}

/// Other households' members place orders over their sockets until `stop`; returns
/// how many were acknowledged. Every command gets an ack; `acks` counts them as they
/// come, so a caller can wait until the load is running.
async fn steady_load(
    sockets: Vec<Ws>,
    stop: tokio::sync::watch::Receiver<bool>,
    acks: tokio::sync::watch::Sender<u64>,
) -> u64 {
    let acks = std::sync::Arc::new(acks);
    let mut load = Vec::new();
    for mut ws in sockets {
        let mut stop = stop.clone();
        let acks = acks.clone();
        load.push(tokio::spawn(async move {
            let mut acked = 0;
            while !*stop.borrow_and_update() {
                let id = Uuid::now_v7();
                let frame = json!({"command": place_order(id)}).to_string();
                ws.send(Message::text(frame)).await.unwrap();
                loop {
                    let reply = recv(&mut ws).await.expect("the socket stays open");
                    if reply.get("event").is_some() {
                        continue;
                    }
                    assert_eq!(reply["ack"]["id"], json!(id), "{reply}");
                    acked += 1;
                    acks.send_modify(|n| *n += 1);
                    break;
                }
            }
            acked
        }));
    }
    let mut acked = 0;
    for task in load {
        acked += task.await.unwrap();
    }
    acked
}

async fn nul_text_is_refused_at_the_wire(kind: Kind) {
    let server = serve(kind, |_| {}).await;
    let (household, token) = server.household().await;
    // The household's position after its setup: what happens from here is counted from it.
    let base = server.store.port().head(household).await.unwrap();
    let others = steady_sockets(&server).await;
    let appends_before = server.store.appends();
    let reruns_before = server.store.reruns();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (acks, mut acked_so_far) = tokio::sync::watch::channel(0u64);
    let (acked, ()) = tokio::join!(steady_load(others, stopped, acks), async {
        // The attacks start once the other households' load runs (three acks).
        acked_so_far.wait_for(|n| *n >= 3).await.unwrap();
        let mut ws = server.socket(household, &token).await;
        for (bad, field, _) in commands_with_a_nul() {
            ws.send(Message::text(json!({"command": bad}).to_string()))
                .await
                .unwrap();
            let reply = recv(&mut ws).await.unwrap();
            assert_unstorable(&reply, field);
            assert_eq!(reply["error"]["id"], bad["id"], "{reply}");
            let (status, reply) = server.post(household, &token, &bad).await;
            assert_eq!(status, 400, "{reply}");
            assert_unstorable(&reply, field);
        }
        // Membership: household and member names, the invite code (unauthenticated).
        for (body, field) in [
            (json!({"name": "H\u{0}", "ownerName": "Ann"}), "name"),
            (json!({"name": "H", "ownerName": "A\u{0}"}), "ownerName"),
        ] {
            let res = server
                .http
                .post(server.url("/households"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 400);
            assert_unstorable(&res.json().await.unwrap(), field);
        }
        for (body, field) in [
            (json!({"code": "abc\u{0}", "name": "Bob"}), "code"),
            (json!({"code": "abc", "name": "B\u{0}"}), "name"),
        ] {
            let res = server
                .http
                .post(server.url(&format!("/households/{household}/join")))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 400);
            let text = res.text().await.unwrap();
            assert!(
                !text.contains("SQLSTATE") && !text.contains("db error"),
                "{text}"
            );
            assert_unstorable(&serde_json::from_str(&text).unwrap(), field);
        }
        // Query parameters.
        for query in ["_pk=%00", "token=%00"] {
            let res = server
                .http
                .get(server.url(&format!("/parties/household/{household}?{query}")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 400, "{query}");
        }
        stop.send(true).unwrap();
    });
    assert!(acked > 0, "the other households' load ran");
    assert_eq!(
        server.store.port().head(household).await.unwrap(),
        base,
        "nothing of the household's was appended"
    );
    assert_eq!(
        server.store.appends() - appends_before,
        acked,
        "{kind:?}: only the other households' commands reached the store"
    );
    assert_eq!(
        server.store.reruns() - reruns_before,
        0,
        "{kind:?}: no batch ran again"
    );
    // Nothing of the refused commands was recorded: their ids are still free.
    for (_, _, good) in commands_with_a_nul() {
        let (status, reply) = server.post(household, &token, &good).await;
        let outcome = match good["type"].as_str().unwrap() {
            "PlaceOrder" => &reply["ack"]["status"],
            _ => &reply["rejected"]["code"],
        };
        let expected = match good["type"].as_str().unwrap() {
            "PlaceOrder" => "accepted",
            "CancelOrder" => "order_not_found",
            _ => "internal_command",
        };
        assert_eq!(outcome, expected, "{status} {reply}");
    }
}

#[tokio::test]
async fn nul_text_is_refused_at_the_wire_on_postgres() {
    nul_text_is_refused_at_the_wire(Kind::Postgres).await;
}

#[tokio::test]
async fn nul_text_is_refused_at_the_wire_on_sqlite() {
    nul_text_is_refused_at_the_wire(Kind::Sqlite).await;
}

// --- The slow-consumer rule closes only sockets that do not read ------------------------

/// What one socket saw: answers to its commands (in the order they came) and the seqs of
/// the events, until it had them all or it was closed (with this code).
#[derive(Debug, Default)]
struct Seen {
    answers: Vec<Value>,
    seqs: Vec<u64>,
    closed: Option<String>,
}

/// A member's rate with room for a 50-command burst after the calls that set it up.
fn member_room(settings: &mut Settings) {
    settings.limits.member_rate = hearth_axum::Rate::new(100, 20.0);
}

async fn burst(server: &Server, kind: Kind) {
    const SOCKETS: usize = 10;
    // The documented burst of the per-socket rate limit (the servers below give each
    // member room for it on top of the owner's invites and the socket opens).
    const BURST: usize = 50;
    // Ten members of one household, one socket each.
    let (household, owner) = server.household().await;
    let mut tokens = vec![owner.clone()];
    for _ in 1..SOCKETS {
        tokens.push(server.member(household, &owner).await);
    }
    // The household's position after its setup: its events are counted from it.
    let base = server.store.port().head(household).await.unwrap();
    let mut sockets = Vec::new();
    for token in &tokens {
        sockets.push(server.socket(household, token).await);
    }
    let total = (SOCKETS * BURST) as u64;
    let mut runs = Vec::new();
    for mut ws in sockets {
        runs.push(tokio::spawn(async move {
            let ids: Vec<Uuid> = (0..BURST).map(|_| Uuid::now_v7()).collect();
            // All at once: one write of the whole burst.
            let frames: Vec<Result<Message, _>> = ids
                .iter()
                .map(|id| {
                    Ok(Message::text(
                        json!({"command": place_order(*id)}).to_string(),
                    ))
                })
                .collect();
            ws.send_all(&mut futures::stream::iter(frames))
                .await
                .unwrap();
            let mut seen = Seen::default();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while seen.answers.len() < BURST || (seen.seqs.len() as u64) < total {
                let Ok(next) = tokio::time::timeout_at(deadline, ws.next()).await else {
                    seen.closed = Some("still waiting after 60 s".into());
                    break;
                };
                let Some(msg) = next else {
                    seen.closed = Some("ended".into());
                    break;
                };
                match msg {
                    Ok(Message::Text(text)) => {
                        let value: Value = serde_json::from_str(text.as_str()).unwrap();
                        if let Some(event) = value.get("event") {
                            seen.seqs.push(event["seq"].as_u64().unwrap());
                        } else {
                            seen.answers.push(value);
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        seen.closed = Some(format!("{frame:?}"));
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        seen.closed = Some(e.to_string());
                        break;
                    }
                }
            }
            (ids, seen)
        }));
    }
    let mut closed = 0;
    for run in runs {
        let (ids, seen) = run.await.unwrap();
        if let Some(why) = &seen.closed {
            closed += 1;
            eprintln!(
                "{kind:?}: a socket closed ({why}) after {} answers and {} events",
                seen.answers.len(),
                seen.seqs.len()
            );
            continue;
        }
        // Every command answered, in the order sent, each with an ack.
        let acked: Vec<Value> = seen
            .answers
            .iter()
            .map(|a| a["ack"]["id"].clone())
            .collect();
        assert_eq!(
            acked,
            ids.iter().map(|id| json!(id)).collect::<Vec<_>>(),
            "{kind:?}"
        );
        assert_eq!(
            seen.seqs,
            (base + 1..=base + total).collect::<Vec<_>>(),
            "{kind:?}: every event once, in order"
        );
    }
    assert_eq!(closed, 0, "{kind:?}: sockets closed");
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "hearth_slow_consumers_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bursts_of_ten_sockets_are_all_answered_without_slow_consumers_on_postgres() {
    let server = serve(Kind::Postgres, member_room).await;
    burst(&server, Kind::Postgres).await;
}

#[tokio::test]
async fn bursts_of_ten_sockets_are_all_answered_without_slow_consumers_on_sqlite() {
    let server = serve(Kind::Sqlite, member_room).await;
    burst(&server, Kind::Sqlite).await;
}

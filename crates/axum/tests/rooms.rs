//! The rooms from the outside: a server on port 0, real WebSocket and HTTP clients.
#![allow(clippy::unwrap_used)]

use futures::{SinkExt, StreamExt};
use hearth_axum::{Application, Ports, Settings, TokenSecret, Tokens};
use hearth_core::Service;
use hearth_core::ports::{
    Append, Appended, Directory, DirectoryError, Enrolled, EventFeed, EventStore, FeedStream,
    Household as DirHousehold, Invite, Loaded, Member, Role, Snapshot, StoreError,
};
use hearth_core::{
    CommandId, CommandOutcome, EventEnvelope, HouseholdId, MemberId, OrderId, Timestamp,
};
use hearth_memory::{ManualClock, MemoryDirectory, MemoryEventStore, MemoryInventory, SystemClock};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// See [`TestApp::ann_and_bob_watching_reads`].
struct Watching {
    base: u64,
    ann_ws: Ws,
    bob_ws: Ws,
    reads_before: f64,
}

struct TestApp {
    addr: std::net::SocketAddr,
    store: Arc<MemoryEventStore>,
    /// The server's clock: it starts at the wall clock's time and moves only when a
    /// test advances it.
    clock: Arc<ManualClock>,
    /// The server's catalog.
    catalog: Arc<MemoryInventory>,
    tokens: Tokens,
    http: reqwest::Client,
}

struct Household {
    id: HouseholdId,
    owner: String,
}

async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

async fn spawn_app_with(tune: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_feed(tune, None).await
}

/// `feed`: instead of the memory store's own feed.
async fn spawn_app_with_feed(
    tune: impl FnOnce(&mut Settings),
    feed: Option<Arc<dyn EventFeed>>,
) -> TestApp {
    spawn_app_on(tune, feed, |store| store).await
}

/// `wrap`: the store the server runs on, around the memory store.
async fn spawn_app_on(
    tune: impl FnOnce(&mut Settings),
    feed: Option<Arc<dyn EventFeed>>,
    wrap: impl FnOnce(Arc<MemoryEventStore>) -> Arc<dyn EventStore>,
) -> TestApp {
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        token_secret: TokenSecret::new("test-secret-of-at-least-32-bytes!").unwrap(),
        ..Settings::default()
    };
    tune(&mut settings);
    let store = Arc::new(MemoryEventStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let catalog = Arc::new(test_catalog());
    let ports = Ports {
        feed: feed.unwrap_or_else(|| Arc::new(store.feed())),
        service: Service::new(wrap(store.clone()), clock.clone()).with_catalog(catalog.clone()),
        directory: Arc::new(MemoryDirectory::new()),
    };
    let app = Application::build(settings, ports).await.unwrap();
    let addr = app.local_addr();
    let tokens = app.tokens();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        store,
        clock,
        catalog,
        tokens,
        http: reqwest::Client::new(),
    }
}

impl TestApp {
    fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn room_url(&self, hh: HouseholdId, query: &str) -> String {
        format!("ws://{}/parties/household/{hh}?{query}", self.addr)
    }

    async fn household(&self) -> Household {
        let res = self
            .http
            .post(self.http_url("/households"))
            .json(&json!({"name": "Home", "ownerName": "Ann"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        Household {
            id: serde_json::from_value(body["household"]["id"].clone()).unwrap(),
            owner: body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Invites and admits a second member; returns its token.
    async fn member(&self, hh: &Household) -> String {
        let res = self
            .http
            .post(self.http_url(&format!("/households/{}/invites", hh.id)))
            .bearer_auth(&hh.owner)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let invite: Value = res.json().await.unwrap();
        let res = self
            .http
            .post(self.http_url(&format!("/households/{}/join", hh.id)))
            .json(&json!({"code": invite["code"], "name": "Bob"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    async fn connect(&self, hh: HouseholdId, token: &str, extra: &str) -> (Ws, Value) {
        let url = self.room_url(hh, &format!("_pk={}&token={token}{extra}", Uuid::new_v4()));
        self.connect_url(&url).await
    }

    async fn connect_url(&self, url: &str) -> (Ws, Value) {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let welcome = recv(&mut ws).await;
        assert!(welcome.get("welcome").is_some(), "{welcome}");
        (ws, welcome)
    }

    async fn head(&self, hh: HouseholdId) -> u64 {
        self.store.head(hh).await.unwrap()
    }

    /// A new household's owner (Ann) and a member (Bob) connected to its room, with the
    /// household's head and the rooms' log reads so far: where the tests of the room's
    /// reads start.
    async fn ann_and_bob_watching_reads(&self) -> Watching {
        let hh = self.household().await;
        let bob = self.member(&hh).await;
        let base = self.head(hh.id).await;
        let (ann_ws, _) = self.connect(hh.id, &hh.owner, "").await;
        let (bob_ws, _) = self.connect(hh.id, &bob, "").await;
        let reads_before = self.metric("hearth_room_reads_total").await;
        Watching {
            base,
            ann_ws,
            bob_ws,
            reads_before,
        }
    }

    async fn post(&self, hh: &Household, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(self.http_url(&format!("/parties/household/{}", hh.id)))
            .bearer_auth(&hh.owner)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }

    /// Waits (at most 10 s) until the server's `/metrics` shows `name` at `want`: the
    /// server's own count is the event (a bounded poll of it, every 10 ms).
    async fn until_metric(&self, name: &str, want: f64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.metric(name).await;
            if now == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} is {now}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(self.http_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

/// The catalog of these tests: the default one, and 50 skus `sku-0`... whose names
/// are as long as a name may be (orders that make large events).
fn test_catalog() -> MemoryInventory {
    let mut items = hearth_memory::default_catalog();
    items.extend((0..50).map(|i| hearth_core::CatalogItem {
        sku: format!("sku-{i}"),
        name: "n".repeat(200),
        unit_price_cents: 1,
        available: 99,
    }));
    MemoryInventory::with_catalog(items)
}

fn place_order(command_id: Uuid) -> Value {
    json!({
        "id": command_id,
        "type": "PlaceOrder",
        "payload": {
            "orderId": Uuid::now_v7(),
            "lines": [{"sku": "milk", "quantity": 2, "unitPriceCents": 129}]
        }
    })
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

/// The next text message as JSON (pings are skipped).
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("timed out waiting for a message")
            .expect("socket ended")
            .expect("socket failed");
        match msg {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// Nothing arrives within a short while.
async fn quiet(ws: &mut Ws) {
    if let Ok(Some(Ok(Message::Text(t)))) =
        tokio::time::timeout(Duration::from_millis(300), ws.next()).await
    {
        panic!("unexpected message {t}");
    }
}

/// Reads until the socket closes; returns the close code.
async fn closed(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("socket did not close")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

fn seq_of(event: &Value) -> u64 {
    event["event"]["seq"].as_u64().unwrap()
}

#[tokio::test]
async fn welcome_command_ack_and_broadcast_to_a_second_member() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let bob = app.member(&hh).await;
    // The household's position after its setup: what happens from here is counted from it.
    let base = app.head(hh.id).await;
    let (mut ann_ws, welcome) = app.connect(hh.id, &hh.owner, "").await;
    assert_eq!(welcome["welcome"]["room"], json!(hh.id));
    assert_eq!(welcome["welcome"]["seq"], base);
    assert_eq!(welcome["welcome"]["state"]["orders"], json!([]));
    assert_eq!(welcome["welcome"]["olderOrders"], 0);
    assert!(welcome["welcome"]["connection"].is_string());
    let (mut bob_ws, _) = app.connect(hh.id, &bob, "").await;

    let id = Uuid::now_v7();
    send(&mut ann_ws, json!({"command": place_order(id)})).await;
    let mut got_ack = false;
    let mut got_event = false;
    while !(got_ack && got_event) {
        let msg = recv(&mut ann_ws).await;
        if let Some(ack) = msg.get("ack") {
            assert_eq!(ack["id"], json!(id));
            assert_eq!(ack["status"], "accepted");
            assert_eq!(ack["seq"], base + 1);
            got_ack = true;
        } else {
            assert_eq!(seq_of(&msg), base + 1);
            got_event = true;
        }
    }
    let event = recv(&mut bob_ws).await;
    assert_eq!(seq_of(&event), base + 1);
    assert_eq!(event["event"]["type"], "OrderPlaced");
    assert_eq!(event["event"]["tenant"], json!(hh.id));
    // The actor comes from the token, never from the client.
    let claims = app.tokens.verify(&hh.owner, hh.id).unwrap();
    assert_eq!(
        event["event"]["metadata"]["actor"],
        json!({"kind": "member", "id": claims.sub})
    );

    // A resend of the same id is acknowledged as a duplicate and writes nothing.
    send(&mut bob_ws, json!({"command": place_order(id)})).await;
    let ack = recv(&mut bob_ws).await;
    assert_eq!(ack["ack"]["status"], "duplicate");
    assert_eq!(ack["ack"]["seq"], base + 1);
    assert_eq!(app.head(hh.id).await, base + 1);

    // A new connection is welcomed with the state at the current seq.
    let (_ws, welcome) = app.connect(hh.id, &bob, "").await;
    assert_eq!(welcome["welcome"]["seq"], base + 1);
    assert_eq!(welcome["welcome"]["state"]["orders"][0]["status"], "placed");
}

/// A doorbell that never rings (a feed that is alive but silent).
#[derive(Debug)]
struct SilentFeed;

impl EventFeed for SilentFeed {
    fn subscribe(&self) -> FeedStream {
        Box::pin(futures::stream::pending())
    }
}

#[tokio::test]
async fn events_committed_by_this_node_reach_its_members_without_a_store_read() {
    // Given a node whose doorbell never rings and whose fallback poll is an hour
    // away: only the command path's own hand-off can deliver an event in time.
    let app = spawn_app_with_feed(
        |s| s.feed_poll = Duration::from_secs(3600),
        Some(Arc::new(SilentFeed)),
    )
    .await;
    let mut w = app.ann_and_bob_watching_reads().await;
    // When Ann places three orders.
    for _ in 0..3 {
        send(
            &mut w.ann_ws,
            json!({"command": place_order(Uuid::now_v7())}),
        )
        .await;
    }
    // Then Bob sees the three events in order, and the room read nothing for them.
    for expected in w.base + 1..=w.base + 3 {
        let event = recv(&mut w.bob_ws).await;
        assert_eq!(seq_of(&event), expected, "{event}");
    }
    assert_eq!(app.metric("hearth_room_reads_total").await, w.reads_before);
    // Ann gets her acks and the same events.
    let mut events = Vec::new();
    let mut acks = 0;
    while acks < 3 || events.len() < 3 {
        let msg = recv(&mut w.ann_ws).await;
        if msg.get("ack").is_some() {
            acks += 1;
        } else {
            events.push(seq_of(&msg));
        }
    }
    assert_eq!(events, vec![w.base + 1, w.base + 2, w.base + 3]);
}

#[tokio::test]
async fn a_doorbell_rung_for_this_nodes_own_commit_is_not_read_for() {
    // Given a node whose doorbell rings inside the append (the memory feed), whose
    // fallback poll is an hour away, and whose store holds Ann's command after its
    // commit: the doorbell has rung, the answer (and so the hand-off) has not come.
    let id = Uuid::now_v7();
    let (mut gate, wrap) = gated_at(CommandId(id), true);
    let app = spawn_app_on(|s| s.feed_poll = Duration::from_secs(3600), None, wrap).await;
    let mut w = app.ann_and_bob_watching_reads().await;
    // When Ann's order is committed and its doorbell rung.
    send(&mut w.ann_ws, json!({"command": place_order(id)})).await;
    gate.arrived.wait_for(|arrived| *arrived).await.unwrap();
    // Then the room does not read the log for it (without the wait for the offer it
    // reads at once; a read is an event here, its absence is bounded by the timeout) ...
    let read = tokio::time::timeout(
        Duration::from_millis(300),
        gate.read_while_held.wait_for(|read| *read),
    )
    .await;
    assert!(
        read.is_err(),
        "the room read the log for its own node's commit"
    );
    // ... and Bob gets the event from the hand-off once the answer comes.
    gate.open.send_replace(true);
    let event = recv(&mut w.bob_ws).await;
    assert_eq!(seq_of(&event), w.base + 1, "{event}");
    assert_eq!(app.metric("hearth_room_reads_total").await, w.reads_before);
}

#[tokio::test]
async fn another_writers_commit_is_read_for_while_this_node_has_none_in_flight() {
    // Given a node with a ringing doorbell and no fallback poll to speak of.
    let app = spawn_app_with_feed(|s| s.feed_poll = Duration::from_secs(3600), None).await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let (mut ws, _) = app.connect(hh.id, &hh.owner, "").await;
    // When a command reaches the log without going through this node's edge (as the
    // fulfilment executor's or another node's do).
    seed_orders(&app, hh.id, 1, "").await;
    // Then the room reads it at the doorbell.
    let event = recv(&mut ws).await;
    assert_eq!(seq_of(&event), base + 1, "{event}");
}

#[tokio::test]
async fn broken_rules_are_rejected_with_the_core_code() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let (mut ws, _) = app.connect(hh.id, &hh.owner, "").await;
    let id = Uuid::now_v7();
    send(
        &mut ws,
        json!({"command": {"id": id, "type": "CompleteOrder", "payload": {"orderId": Uuid::now_v7()}}}),
    )
    .await;
    let msg = recv(&mut ws).await;
    assert_eq!(msg["rejected"]["id"], json!(id));
    assert_eq!(msg["rejected"]["code"], "order_not_found");
    assert!(
        msg["rejected"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    assert_eq!(app.head(hh.id).await, base);
}

// --- The server's catalog (guarantee 8) ------------------------------------------

/// The order of issue 16: a "Free pizza" at 1 cent.
fn free_pizza(id: Uuid) -> Value {
    json!({"id": id, "type": "PlaceOrder", "payload": {
        "orderId": Uuid::now_v7(),
        "lines": [{"sku": "pizza", "quantity": 1, "unitPriceCents": 1}]
    }})
}

/// The same with the name the client made up: not even a command.
fn named_free_pizza(id: Uuid) -> Value {
    json!({"id": id, "type": "PlaceOrder", "payload": {
        "orderId": Uuid::now_v7(),
        "lines": [{"sku": "pizza", "name": "Free pizza", "quantity": 1, "unitPriceCents": 1}]
    }})
}

#[tokio::test]
async fn a_price_the_catalog_does_not_have_is_refused_over_http_and_nothing_is_appended() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;

    let (status, body) = app.post(&hh, &free_pizza(Uuid::now_v7())).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["rejected"]["code"], "price_changed");
    let message = body["rejected"]["message"].as_str().unwrap();
    assert!(
        message.contains("pizza") && message.contains("1150"),
        "{message}"
    );
    assert_eq!(app.head(hh.id).await, base, "nothing appended");

    let (status, body) = app.post(&hh, &named_free_pizza(Uuid::now_v7())).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_payload");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("name"),
        "{body}"
    );
    assert_eq!(app.head(hh.id).await, base, "nothing appended");

    // More than is available: refused, naming the sku and what there is.
    let greedy = json!({"id": Uuid::now_v7(), "type": "PlaceOrder", "payload": {
        "orderId": Uuid::now_v7(), "lines": [{"sku": "coffee", "quantity": 60}]
    }});
    let (status, body) = app.post(&hh, &greedy).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["rejected"]["code"], "not_enough_stock");
    assert!(
        body["rejected"]["message"]
            .as_str()
            .unwrap()
            .contains("50 available")
    );
    assert_eq!(app.head(hh.id).await, base, "nothing appended");

    // Skus and quantities only: the order carries the catalog's names and prices.
    let order = Uuid::now_v7();
    let skus_only = json!({"id": Uuid::now_v7(), "type": "PlaceOrder", "payload": {
        "orderId": order,
        "lines": [{"sku": "pizza", "quantity": 2}, {"sku": "milk", "quantity": 1}]
    }});
    let (status, body) = app.post(&hh, &skus_only).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.head(hh.id).await, base + 1);
    let res = app
        .http
        .get(app.http_url(&format!("/parties/household/{}", hh.id)))
        .bearer_auth(&hh.owner)
        .send()
        .await
        .unwrap();
    let room: Value = res.json().await.unwrap();
    let placed = &room["state"]["orders"][0];
    assert_eq!(placed["id"], json!(order));
    assert_eq!(
        placed["lines"],
        json!([
            {"sku": "pizza", "name": "Margherita pizza", "quantity": 2, "unitPriceCents": 1150},
            {"sku": "milk", "name": "Milk 1 L", "quantity": 1, "unitPriceCents": 129}
        ])
    );
    assert_eq!(placed["totalCents"], 2 * 1150 + 129);
}

#[tokio::test]
async fn a_price_the_catalog_does_not_have_is_refused_over_websocket_and_nothing_is_appended() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let (mut ws, _) = app.connect(hh.id, &hh.owner, "").await;

    let id = Uuid::now_v7();
    send(&mut ws, json!({"command": free_pizza(id)})).await;
    let msg = recv(&mut ws).await;
    assert_eq!(msg["rejected"]["id"], json!(id), "{msg}");
    assert_eq!(msg["rejected"]["code"], "price_changed");
    assert!(
        msg["rejected"]["message"]
            .as_str()
            .unwrap()
            .contains("1150")
    );

    let id = Uuid::now_v7();
    send(&mut ws, json!({"command": named_free_pizza(id)})).await;
    let msg = recv(&mut ws).await;
    assert_eq!(msg["error"]["id"], json!(id), "{msg}");
    assert_eq!(msg["error"]["code"], "invalid_payload");
    quiet(&mut ws).await;
    assert_eq!(app.head(hh.id).await, base, "nothing appended");

    // The catalog's price changes: an order shown at the old price is refused; the
    // order placed before keeps the price it was placed at.
    send(
        &mut ws,
        json!({"command": {"id": Uuid::now_v7(), "type": "PlaceOrder", "payload": {
            "orderId": Uuid::now_v7(), "lines": [{"sku": "pizza", "quantity": 1, "unitPriceCents": 1150}]
        }}}),
    )
    .await;
    let (mut placed, mut acked) = (None, false);
    while placed.is_none() || !acked {
        let msg = recv(&mut ws).await;
        if msg.get("event").is_some() {
            placed = Some(msg);
        } else {
            assert_eq!(msg["ack"]["status"], "accepted", "{msg}");
            acked = true;
        }
    }
    let placed = placed.unwrap();
    assert_eq!(
        placed["event"]["payload"]["lines"][0]["name"],
        "Margherita pizza"
    );
    assert_eq!(placed["event"]["payload"]["totalCents"], 1150);
    app.catalog.set_price("pizza", 1250);
    let id = Uuid::now_v7();
    send(
        &mut ws,
        json!({"command": {"id": id, "type": "PlaceOrder", "payload": {
            "orderId": Uuid::now_v7(), "lines": [{"sku": "pizza", "quantity": 1, "unitPriceCents": 1150}]
        }}}),
    )
    .await;
    let msg = recv(&mut ws).await;
    assert_eq!(msg["rejected"]["code"], "price_changed", "{msg}");
    assert!(
        msg["rejected"]["message"]
            .as_str()
            .unwrap()
            .contains("1250")
    );
    assert_eq!(app.head(hh.id).await, base + 1);
    let (_ws, welcome) = app.connect(hh.id, &hh.owner, "").await;
    let orders = &welcome["welcome"]["state"]["orders"];
    assert_eq!(orders.as_array().unwrap().len(), 1);
    assert_eq!(
        orders[0]["totalCents"], 1150,
        "recorded orders keep their prices"
    );
}

#[tokio::test]
async fn an_unreachable_catalog_is_a_transient_error_and_nothing_is_appended() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    app.catalog.catalog_down(true);
    let (status, body) = app.post(&hh, &place_order(Uuid::now_v7())).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("catalog")
    );
    assert_eq!(app.head(hh.id).await, base);
    app.catalog.catalog_down(false);
    let (status, _) = app.post(&hh, &place_order(Uuid::now_v7())).await;
    assert_eq!(status, 200);
}

/// Each bad input gets a clear error and changes nothing; the socket stays usable.
#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let other = app.household().await;
    let (mut ws, _) = app.connect(hh.id, &hh.owner, "").await;
    let id = Uuid::now_v7();
    let order = Uuid::now_v7();

    let cases: Vec<(Message, &str, &str)> = vec![
        (
            Message::Text("{not json".into()),
            "invalid_json",
            "not valid JSON",
        ),
        (
            Message::Text(json!({"hello": {}}).to_string().into()),
            "unknown_message_type",
            "\"hello\"",
        ),
        (
            Message::Text(json!({"command": {}, "sync": {}}).to_string().into()),
            "invalid_message",
            "exactly one key",
        ),
        (
            Message::Text(
                json!({"command": {"id": "not-a-uuid", "type": "PlaceOrder", "payload": {}}})
                    .to_string()
                    .into(),
            ),
            "invalid_message",
            "command.id",
        ),
        (
            Message::Text(
                json!({"command": {"id": id, "payload": {}}})
                    .to_string()
                    .into(),
            ),
            "invalid_message",
            "type",
        ),
        (
            Message::Text(
                json!({"command": {"id": id, "type": "PlaceOrder", "payload": {}, "actor": "me"}})
                    .to_string()
                    .into(),
            ),
            "invalid_message",
            "actor",
        ),
        (
            Message::Text(
                json!({"command": {"id": id, "type": "LaunchRocket", "payload": {}}})
                    .to_string()
                    .into(),
            ),
            "unknown_command_type",
            "LaunchRocket",
        ),
        (
            Message::Text(
                json!({"command": {"id": id, "type": "PlaceOrder", "payload": {
                    "orderId": order,
                    "lines": [{"sku": "milk", "quantity": "two"}]
                }}})
                .to_string()
                .into(),
            ),
            "invalid_payload",
            "command.payload.lines[0].quantity",
        ),
        (
            Message::Text(
                json!({"command": {"id": id, "type": "PlaceOrder", "payload": {"lines": []}}})
                    .to_string()
                    .into(),
            ),
            "invalid_payload",
            "orderId",
        ),
        (
            Message::Text(
                json!({"command": {"tenant": other.id, "id": id, "type": "PlaceOrder", "payload": {
                    "orderId": order,
                    "lines": [{"sku": "milk", "quantity": 1}]
                }}})
                .to_string()
                .into(),
            ),
            "tenant_mismatch",
            "command.tenant",
        ),
        (
            Message::Text(json!({"sync": {"since": -1}}).to_string().into()),
            "invalid_message",
            "sync.since",
        ),
        (
            Message::Text(
                format!(
                    r#"{{"sync":{{"since":0}},"pad":"{}"}}"#,
                    "x".repeat(70 * 1024)
                )
                .into(),
            ),
            "frame_too_large",
            "65536",
        ),
        (
            Message::Binary(vec![1, 2, 3].into()),
            "binary_not_supported",
            "binary",
        ),
    ];
    for (message, code, needle) in cases {
        ws.send(message).await.unwrap();
        let reply = recv(&mut ws).await;
        let error = &reply["error"];
        assert_eq!(error["code"], code, "{reply}");
        let text = error["message"].as_str().unwrap();
        assert!(text.contains(needle), "{code}: {text:?} lacks {needle:?}");
        assert_eq!(app.head(hh.id).await, base, "{code} changed the store");
    }

    // The command id is echoed when it could be read.
    send(
        &mut ws,
        json!({"command": {"id": id, "type": "Nope", "payload": {}}}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["error"]["id"], json!(id));

    // Internal commands from members are refused by the core; nothing is appended.
    send(
        &mut ws,
        json!({"command": {"id": Uuid::now_v7(), "type": "MarkReady", "payload": {"orderId": order}}}),
    )
    .await;
    let reply = recv(&mut ws).await;
    assert_eq!(reply["rejected"]["code"], "internal_command", "{reply}");
    assert_eq!(app.head(hh.id).await, base);

    // The same socket still works, and the tenant may be given when it matches.
    let mut good = place_order(Uuid::now_v7());
    good["tenant"] = json!(hh.id);
    send(&mut ws, json!({"command": good})).await;
    let mut acked = false;
    while !acked {
        acked = recv(&mut ws).await.get("ack").is_some();
    }
    assert_eq!(app.head(hh.id).await, base + 1);
}

/// A socket's read buffer is 1 KiB (and each read takes at most that): a command of a
/// few KiB, the first frame of its socket (which also starts the socket's command
/// task), is read whole, run and acked, and its event carries all of it.
#[tokio::test]
async fn a_command_larger_than_the_read_buffer_is_read_whole() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let (mut ws, _) = app.connect(hh.id, &hh.owner, "").await;
    // Every sku of the catalog, and the longest note: 500 characters of 4 bytes each.
    let skus = ["bread", "milk", "eggs", "coffee", "apples", "pizza"];
    let lines: Vec<Value> = skus
        .iter()
        .map(|sku| json!({"sku": sku, "quantity": 1}))
        .collect();
    let note = "\u{1F35E}".repeat(500);
    let id = Uuid::now_v7();
    let frame = json!({"command": {"id": id, "type": "PlaceOrder", "payload": {
        "orderId": Uuid::now_v7(),
        "lines": lines,
        "note": note,
    }}});
    assert!(
        frame.to_string().len() > 2 * 1024,
        "the frame spans several reads"
    );
    send(&mut ws, frame).await;
    let (mut ack, mut event) = (None, None);
    while ack.is_none() || event.is_none() {
        let msg = recv(&mut ws).await;
        if msg.get("ack").is_some() {
            ack = Some(msg);
        } else if msg.get("event").is_some() {
            event = Some(msg);
        } else {
            panic!("unexpected {msg}");
        }
    }
    let ack = ack.unwrap();
    assert_eq!(ack["ack"]["id"], json!(id));
    assert_eq!(ack["ack"]["status"], "accepted", "{ack}");
    assert_eq!(app.head(hh.id).await, base + 1);
    let event = event.unwrap();
    let payload = &event["event"]["payload"];
    assert_eq!(
        payload["lines"].as_array().unwrap().len(),
        skus.len(),
        "{event}"
    );
    assert_eq!(payload["note"], json!(note));
}

#[tokio::test]
async fn oversized_frames_beyond_the_hard_limit_close_the_socket() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let (mut ws, _) = app.connect(hh.id, &hh.owner, "").await;
    let _ = ws
        .send(Message::Text("x".repeat(2 * 1024 * 1024).into()))
        .await;
    assert_eq!(closed(&mut ws).await, Some(1009));
    assert_eq!(app.head(hh.id).await, base);
}

#[tokio::test]
async fn a_close_from_the_client_is_answered() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let (mut ws, _) = app.connect(hh.id, &hh.owner, "").await;
    ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 4321.into(),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    // RFC 6455 5.5.1: the server answers with a Close frame, echoing the code.
    assert_eq!(closed(&mut ws).await, Some(4321));
}

#[tokio::test]
async fn every_error_status_has_a_json_body() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let room = app.http_url(&format!("/parties/household/{}", hh.id));
    let big = json!({"name": "x".repeat(70 * 1024), "ownerName": "Ann"});
    let cases = [
        (app.http.get(app.http_url("/nope")), 404, "not_found"),
        (
            app.http.get(app.http_url("/households")),
            405,
            "method_not_allowed",
        ),
        (
            app.http.delete(app.http_url("/healthz")),
            405,
            "method_not_allowed",
        ),
        (
            app.http.post(app.http_url("/households")).json(&big),
            413,
            "body_too_large",
        ),
        (
            app.http.post(&room).bearer_auth(&hh.owner).json(&big),
            413,
            "body_too_large",
        ),
        // One byte over the URI limit (8 KiB) is ours to answer, in JSON.
        (
            app.http.get(format!("{room}?pad={}", "x".repeat(8 * 1024))),
            414,
            "uri_too_long",
        ),
        // A path that is not UTF-8: axum's own 400.
        (
            app.http.get(app.http_url("/parties/household/%FF")),
            400,
            "invalid_message",
        ),
    ];
    for (request, status, code) in cases {
        let res = request.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{code}");
        let content_type = res.headers()[reqwest::header::CONTENT_TYPE].clone();
        assert_eq!(content_type, "application/json", "{code}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    // A 405 keeps its Allow header.
    let res = app
        .http
        .get(app.http_url("/households"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[reqwest::header::ALLOW], "POST");
    // Just under the URI limit is served.
    let path = format!("/parties/household/{}?token={}&pad=", hh.id, hh.owner);
    let pad = "x".repeat(8 * 1024 - path.len());
    let res = app
        .http
        .get(app.http_url(&format!("{path}{pad}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_authorization_scheme_is_matched_without_regard_to_case() {
    let app = spawn_app().await;
    let hh = app.household().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {}", hh.owner);
        let room = app.http_url(&format!("/parties/household/{}", hh.id));
        let members = app.http_url(&format!("/households/{}/members", hh.id));
        for url in [room, members] {
            let res = app
                .http
                .get(&url)
                .header(reqwest::header::AUTHORIZATION, &auth)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{scheme} on {url}");
        }
        let mut request = app.room_url(hh.id, "_pk=a").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", auth.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert!(recv(&mut ws).await.get("welcome").is_some(), "{scheme}");
    }
}

#[tokio::test]
async fn floods_are_rate_limited() {
    let app = spawn_app_with(|s| {
        s.rate_burst = 3;
        s.rate_per_second = 0.5;
    })
    .await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let (mut ws, _) = app.connect(hh.id, &hh.owner, "").await;
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
    for id in &ids {
        send(&mut ws, json!({"command": place_order(*id)})).await;
    }
    let mut acked = Vec::new();
    let mut limited = Vec::new();
    while acked.len() + limited.len() < 6 {
        let msg = recv(&mut ws).await;
        if msg.get("ack").is_some() {
            acked.push(msg["ack"]["id"].clone());
        } else if msg["error"]["code"] == "rate_limited" {
            // The refusal names the command it dropped.
            limited.push(msg["error"]["id"].clone());
        }
    }
    assert_eq!(
        acked,
        ids[..3].iter().map(|id| json!(id)).collect::<Vec<_>>()
    );
    assert_eq!(
        limited,
        ids[3..].iter().map(|id| json!(id)).collect::<Vec<_>>()
    );
    assert_eq!(app.head(hh.id).await, base + 3);
}

#[tokio::test]
async fn refused_before_the_upgrade_with_401() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let other = app.household().await;
    let member = app.tokens.verify(&hh.owner, hh.id).unwrap().sub;
    let now = chrono::Utc::now();
    let expired = app
        .tokens
        .issue(
            hh.id,
            member,
            Role::Owner,
            now,
            chrono::Duration::seconds(-10),
        )
        .unwrap();
    let forged =
        Tokens::new(&TokenSecret::new("not-the-secret-not-the-secret-not-the-secret").unwrap())
            .issue(hh.id, member, Role::Owner, now, chrono::Duration::hours(1))
            .unwrap();
    let cases = [
        ("missing", app.room_url(hh.id, "_pk=a")),
        (
            "other household",
            app.room_url(hh.id, &format!("_pk=a&token={}", other.owner)),
        ),
        (
            "expired",
            app.room_url(hh.id, &format!("_pk=a&token={expired}")),
        ),
        (
            "forged",
            app.room_url(hh.id, &format!("_pk=a&token={forged}")),
        ),
        ("garbage", app.room_url(hh.id, "_pk=a&token=abc.def.ghi")),
    ];
    for (what, url) in cases {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(WsError::Http(res)) => assert_eq!(res.status(), 401, "{what}"),
            Err(e) => panic!("{what}: unexpected error {e}"),
            Ok(_) => panic!("{what}: a socket was opened"),
        }
    }
    // The HTTP side refuses the same way, with Bearer too.
    let url = app.http_url(&format!("/parties/household/{}", hh.id));
    let res = app
        .http
        .get(&url)
        .bearer_auth(&other.owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(app.metric("hearth_unauthorized_total").await >= 7.0);
}

#[tokio::test]
async fn subprotocol_is_echoed_and_aliases_reach_the_same_room() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let mut request = app
        .room_url(hh.id, &format!("_pk=p&token={}", hh.owner))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "hearth.v1".parse().unwrap());
    let (mut ws, res) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        res.headers().get("sec-websocket-protocol").unwrap(),
        "hearth.v1"
    );
    recv(&mut ws).await;
    let main = format!(
        "ws://{}/parties/main/{}?token={}",
        app.addr, hh.id, hh.owner
    );
    let short = format!(
        "ws://{}/party/{}/some/path?token={}",
        app.addr, hh.id, hh.owner
    );
    let (mut a, _) = app.connect_url(&main).await;
    let (mut b, _) = app.connect_url(&short).await;
    app.post(&hh, &place_order(Uuid::now_v7())).await;
    for ws in [&mut ws, &mut a, &mut b] {
        assert_eq!(seq_of(&recv(ws).await), base + 1);
    }
    // Another party name is not a room.
    let url = format!(
        "ws://{}/parties/chat/{}?token={}",
        app.addr, hh.id, hh.owner
    );
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(WsError::Http(res)) => assert_eq!(res.status(), 404),
        other => panic!("expected 404, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn since_replays_exactly_what_was_missed_then_live_events() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    for _ in 0..5 {
        app.post(&hh, &place_order(Uuid::now_v7())).await;
    }
    let since = |n: u64| format!("&since={}", base + n);
    let (mut ws, welcome) = app.connect(hh.id, &hh.owner, &since(2)).await;
    assert_eq!(welcome["welcome"]["seq"], base + 5);
    for want in 3..=5 {
        assert_eq!(seq_of(&recv(&mut ws).await), base + want);
    }
    quiet(&mut ws).await;
    app.post(&hh, &place_order(Uuid::now_v7())).await;
    assert_eq!(seq_of(&recv(&mut ws).await), base + 6);
    quiet(&mut ws).await;

    // `sync` replays from a cursor on an open socket.
    send(&mut ws, json!({"sync": {"since": base + 4}})).await;
    assert_eq!(seq_of(&recv(&mut ws).await), base + 5);
    assert_eq!(seq_of(&recv(&mut ws).await), base + 6);
    quiet(&mut ws).await;

    // since at the head: nothing but live events.
    let (mut at_head, _) = app.connect(hh.id, &hh.owner, &since(6)).await;
    quiet(&mut at_head).await;
    app.post(&hh, &place_order(Uuid::now_v7())).await;
    assert_eq!(seq_of(&recv(&mut at_head).await), base + 7);
}

/// Commits race with the connect: whatever the interleaving, the client sees
/// 1..=N exactly once each, in order.
#[tokio::test]
async fn catch_up_under_concurrent_commits_has_no_gap_and_no_duplicate() {
    // 120 commands as fast as they go, from one member: above the member's default
    // rate, which tests/limits.rs drives past on its own.
    let app =
        spawn_app_with(|s| s.limits.member_rate = hearth_axum::Rate::new(1_000, 1_000.0)).await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let total = 120u64;
    let writer = {
        let http = app.http.clone();
        let url = app.http_url(&format!("/parties/household/{}", hh.id));
        let token = hh.owner.clone();
        tokio::spawn(async move {
            for _ in 0..total {
                let res = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&place_order(Uuid::now_v7()))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
            }
        })
    };
    let mut clients = Vec::new();
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(20 * i)).await;
        let since = format!("&since={base}");
        clients.push(app.connect(hh.id, &hh.owner, &since).await.0);
    }
    writer.await.unwrap();
    for ws in &mut clients {
        for want in base + 1..=base + total {
            assert_eq!(seq_of(&recv(ws).await), want);
        }
        quiet(ws).await;
    }
}

#[tokio::test]
async fn a_new_socket_with_the_same_pk_takes_over() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let url = app.room_url(hh.id, &format!("_pk=tab-1&token={}", hh.owner));
    let (mut old, _) = app.connect_url(&url).await;
    let (mut new, _) = app.connect_url(&url).await;
    assert_eq!(closed(&mut old).await, Some(4009));
    drop(old);
    // The old socket's departure must not silence the new one (PartyKit issue 45):
    // once the server counts only the new one, the old one has left.
    app.until_metric("hearth_connections", 1.0).await;
    app.post(&hh, &place_order(Uuid::now_v7())).await;
    assert_eq!(seq_of(&recv(&mut new).await), base + 1);
    app.post(&hh, &place_order(Uuid::now_v7())).await;
    assert_eq!(seq_of(&recv(&mut new).await), base + 2);
    assert_eq!(app.metric("hearth_takeovers_total").await, 1.0);
    assert_eq!(app.metric("hearth_connections").await, 1.0);
}

fn big_order() -> Value {
    let lines: Vec<Value> = (0..50)
        .map(|i| json!({"sku": format!("sku-{i}"), "quantity": 1}))
        .collect();
    json!({"id": Uuid::now_v7(), "type": "PlaceOrder", "payload": {"orderId": Uuid::now_v7(), "lines": lines, "note": "x".repeat(500)}})
}

#[tokio::test]
async fn a_slow_consumer_is_dropped_without_stalling_its_room() {
    let app = spawn_app_with(|s| {
        s.outgoing_queue = 2;
        s.ping_timeout = Duration::from_secs(60);
        // Commands as fast as they go (the member's rate is tested in tests/limits.rs).
        s.limits.member_rate = hearth_axum::Rate::new(1_000, 1_000.0);
    })
    .await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    // A client that never reads, with a tiny receive buffer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let url = app.room_url(hh.id, &format!("_pk=slow&token={}", hh.owner));
    let (mut slow, _) =
        tokio_tungstenite::client_async(url.as_str(), MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    let (mut healthy, _) = app.connect(hh.id, &hh.owner, "").await;

    let mut sent = 0u64;
    // The healthy reader asserts order as it goes, until it has read the head it is
    // told at the end.
    let (last, mut told) = tokio::sync::watch::channel(u64::MAX);
    let reader = tokio::spawn(async move {
        let mut seen = base;
        while seen < *told.borrow_and_update() {
            tokio::select! {
                msg = recv(&mut healthy) => {
                    seen += 1;
                    assert_eq!(seq_of(&msg), seen);
                }
                // Told the head meanwhile: check it again before reading on.
                _ = told.changed() => {}
            }
        }
    });
    while app.metric("hearth_slow_consumers_total").await < 1.0 {
        for _ in 0..20 {
            let (status, _) = app.post(&hh, &big_order()).await;
            assert_eq!(status, 200);
            sent += 1;
        }
        assert!(sent < 3000, "the slow consumer was never dropped");
    }
    // The room kept going: more commits still reach the healthy member in order.
    for _ in 0..5 {
        app.post(&hh, &big_order()).await;
        sent += 1;
    }
    let head = app.head(hh.id).await;
    assert_eq!(head, base + sent);
    // The healthy reader gets every event, in order, up to the head.
    last.send_replace(head);
    tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("the healthy reader reads up to the head")
        .expect("the healthy reader saw every event in order");
    // The slow socket ends (close frame 4008 once its buffers drain, or a reset).
    let code = closed(&mut slow).await;
    assert!(matches!(code, Some(4008) | None), "{code:?}");
    // It recovers by reconnecting with its cursor.
    let (mut again, _) = app
        .connect(hh.id, &hh.owner, &format!("&since={}", head - 2))
        .await;
    assert_eq!(seq_of(&recv(&mut again).await), head - 1);
    assert_eq!(seq_of(&recv(&mut again).await), head);
}

#[tokio::test]
async fn a_dead_socket_is_dropped_after_missed_pings() {
    let app = spawn_app_with(|s| {
        s.ping_interval = Duration::from_millis(100);
        s.ping_timeout = Duration::from_millis(300);
    })
    .await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    // Never polled after the welcome: it answers no ping.
    let (_silent, _) = app.connect(hh.id, &hh.owner, "").await;
    app.until_metric("hearth_dead_sockets_total", 1.0).await;
    assert_eq!(app.metric("hearth_connections").await, 0.0);

    // A socket that is read (so answers pings) stays.
    let (mut alive, _) = app.connect(hh.id, &hh.owner, "").await;
    quiet(&mut alive).await;
    quiet(&mut alive).await;
    app.post(&hh, &place_order(Uuid::now_v7())).await;
    assert_eq!(seq_of(&recv(&mut alive).await), base + 1);
}

#[tokio::test]
async fn the_room_http_api() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let room = app.http_url(&format!("/parties/household/{}", hh.id));
    let ann = app.tokens.verify(&hh.owner, hh.id).unwrap().sub;

    let state: Value = app
        .http
        .get(&room)
        .bearer_auth(&hh.owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        state,
        json!({"seq": base, "state": {"seq": base, "orders": [], "chores": [],
               "members": [{"id": ann, "name": "Ann", "role": "owner"}]},
               "olderOrders": 0, "olderChores": 0})
    );

    let cmd = place_order(Uuid::now_v7());
    let (status, body) = app.post(&hh, &cmd).await;
    assert_eq!((status, body["ack"]["seq"].clone()), (200, json!(base + 1)));
    let (status, body) = app.post(&hh, &cmd).await;
    assert_eq!(
        (status, body["ack"]["status"].clone()),
        (200, json!("duplicate"))
    );
    // Wrapped as on the socket works too.
    let (status, _) = app
        .post(&hh, &json!({"command": place_order(Uuid::now_v7())}))
        .await;
    assert_eq!(status, 200);

    let order = cmd["payload"]["orderId"].clone();
    let (status, body) = app
        .post(
            &hh,
            &json!({"id": Uuid::now_v7(), "type": "PlaceOrder", "payload": cmd["payload"]}),
        )
        .await;
    assert_eq!(
        (status, body["rejected"]["code"].clone()),
        (409, json!("order_already_exists"))
    );
    let (status, body) = app
        .post(&hh, &json!({"id": Uuid::now_v7(), "type": "PlaceOrder", "payload": {"orderId": Uuid::now_v7(), "lines": []}}))
        .await;
    assert_eq!(
        (status, body["rejected"]["code"].clone()),
        (422, json!("no_lines"))
    );
    let (status, body) = app
        .post(
            &hh,
            &json!({"id": Uuid::now_v7(), "type": "MarkReady", "payload": {"orderId": order}}),
        )
        .await;
    assert_eq!(
        (status, body["rejected"]["code"].clone()),
        (422, json!("internal_command"))
    );
    let (status, body) = app
        .post(
            &hh,
            &json!({"id": Uuid::now_v7(), "type": "CancelOrder", "payload": {"orderId": 7}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_payload");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("command.payload.orderId")
    );
    let res = app
        .http
        .post(&room)
        .bearer_auth(&hh.owner)
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    let res = app
        .http
        .post(&room)
        .bearer_auth(&hh.owner)
        .body(vec![b' '; 70 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(app.head(hh.id).await, base + 2);

    let state: Value = app
        .http
        .get(&room)
        .bearer_auth(&hh.owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["seq"], base + 2);
    assert_eq!(state["state"]["orders"].as_array().unwrap().len(), 2);
    let events: Value = app
        .http
        .get(format!("{room}?since={}&token={}", base + 1, hh.owner))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(events["head"], base + 2);
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
    assert_eq!(events["events"][0]["seq"], base + 2);
    let res = app
        .http
        .get(format!("{room}?since=x"))
        .bearer_auth(&hh.owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    let health = app.http.get(app.http_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = app
        .http
        .get(app.http_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hearth_commands_total{outcome=\"accepted\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_commands_total{outcome=\"rejected\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_fanout_latency_seconds_count"),
        "{metrics}"
    );
}

#[tokio::test]
async fn households_invites_and_membership() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let other = app.household().await;
    let claims = app.tokens.verify(&hh.owner, hh.id).unwrap();
    assert_eq!(claims.role, Role::Owner);

    // Bad bodies name the field.
    let res = app
        .http
        .post(app.http_url("/households"))
        .json(&json!({"name": "X"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ownerName"),
        "{body}"
    );

    // Only members of the household may invite.
    let invites = app.http_url(&format!("/households/{}/invites", hh.id));
    let res = app
        .http
        .post(&invites)
        .bearer_auth(&other.owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .post(&invites)
        .bearer_auth(&hh.owner)
        .json(&json!({"ttlSeconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let invite: Value = res.json().await.unwrap();
    let code = invite["code"].as_str().unwrap().to_owned();
    assert!(code.len() >= 32);

    let join = app.http_url(&format!("/households/{}/join", hh.id));
    let res = app
        .http
        .post(&join)
        .json(&json!({"code": code, "name": "Bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let bob: MemberId = serde_json::from_value(body["member"]["id"].clone()).unwrap();
    let token = body["token"].as_str().unwrap();
    let claims = app.tokens.verify(token, hh.id).unwrap();
    assert_eq!((claims.sub, claims.role), (bob, Role::Member));
    // Single use.
    let res = app
        .http
        .post(&join)
        .json(&json!({"code": code, "name": "Eve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    // Another household's code does not open this one.
    let other_join = app.http_url(&format!("/households/{}/join", other.id));
    let res = app
        .http
        .post(&other_join)
        .json(&json!({"code": code, "name": "Eve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Expired.
    let res = app
        .http
        .post(&invites)
        .bearer_auth(&hh.owner)
        .json(&json!({"ttlSeconds": 1}))
        .send()
        .await
        .unwrap();
    let invite: Value = res.json().await.unwrap();
    app.clock.advance(chrono::TimeDelta::milliseconds(1100));
    let res = app
        .http
        .post(&join)
        .json(&json!({"code": invite["code"], "name": "Eve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
}

// --- Text no store can hold ------------------------------------------------------

/// Every text field of every command a member can send, each with a NUL, and the field
/// the refusal must name.
fn commands_with_a_nul() -> Vec<(Value, &'static str)> {
    let order = Uuid::now_v7();
    let line = |sku: &str| json!({"sku": sku, "quantity": 1});
    let place = |lines: Value, note: Option<&str>| {
        let mut payload = json!({"orderId": order, "lines": lines});
        if let Some(note) = note {
            payload["note"] = json!(note);
        }
        json!({"id": Uuid::now_v7(), "type": "PlaceOrder", "payload": payload})
    };
    let command = |kind: &str, payload: Value| json!({"id": Uuid::now_v7(), "type": kind, "payload": payload});
    vec![
        (
            place(json!([line("milk"), line("b\u{0}")]), None),
            "command.payload.lines[1].sku",
        ),
        (
            place(json!([line("a\u{0}")]), None),
            "command.payload.lines[0].sku",
        ),
        (
            place(json!([line("milk")]), Some("ring\u{0}")),
            "command.payload.note",
        ),
        (
            command("CancelOrder", json!({"orderId": order, "reason": "\u{0}"})),
            "command.payload.reason",
        ),
        (
            command(
                "RecordStockReserved",
                json!({"orderId": order, "reservationId": "r\u{0}"}),
            ),
            "command.payload.reservationId",
        ),
        (
            command(
                "RejectOrder",
                json!({"orderId": order, "reason": {"code": "paymentDeclined", "message": "\u{0}"}}),
            ),
            "command.payload.reason.message",
        ),
        (command("PlaceOrder\u{0}", json!({})), "command.type"),
        (
            json!({"id": "\u{0}", "type": "PlaceOrder", "payload": {}}),
            "command.id",
        ),
        (
            json!({"id": Uuid::now_v7(), "tenant": "\u{0}", "type": "PlaceOrder", "payload": {}}),
            "command.tenant",
        ),
        (
            json!({"id": Uuid::now_v7(), "type": "PlaceOrder", "payload": {}, "metadata": {"correlationId": "\u{0}"}}),
            "command.metadata.correlationId",
        ),
    ]
}

fn assert_unstorable(reply: &Value, field: &str) {
    let error = &reply["error"];
    assert_eq!(error["code"], "unstorable_text", "{reply}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{field}: ")),
        "{field}: {message}"
    );
}

#[tokio::test]
async fn text_no_store_can_hold_is_refused_at_the_wire() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let (mut ws, _) = app.connect(hh.id, &hh.owner, "").await;
    for (command, field) in commands_with_a_nul() {
        send(&mut ws, json!({"command": command})).await;
        let reply = recv(&mut ws).await;
        assert_unstorable(&reply, field);
        if let Ok(id) = serde_json::from_value::<Uuid>(command["id"].clone()) {
            assert_eq!(reply["error"]["id"], json!(id), "{reply}");
        }
        let (status, reply) = app.post(&hh, &command).await;
        assert_eq!(status, 400, "{reply}");
        assert_unstorable(&reply, field);
        let (status, reply) = app.post(&hh, &json!({"command": command})).await;
        assert_eq!(status, 400, "{reply}");
        assert_unstorable(&reply, field);
    }
    send(&mut ws, json!({"sync\u{0}": {"since": 0}})).await;
    assert_unstorable(&recv(&mut ws).await, "sync\\0");
    assert_eq!(app.head(hh.id).await, base, "nothing was appended");

    // Bodies of the membership API.
    let invite: Value = app
        .http
        .post(app.http_url(&format!("/households/{}/invites", hh.id)))
        .bearer_auth(&hh.owner)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = invite["code"].as_str().unwrap();
    let join = format!("/households/{}/join", hh.id);
    let cases = [
        (
            "/households",
            json!({"name": "H\u{0}", "ownerName": "Ann"}),
            "name",
        ),
        (
            "/households",
            json!({"name": "H", "ownerName": "\u{0}"}),
            "ownerName",
        ),
        (
            join.as_str(),
            json!({"code": format!("{code}\u{0}"), "name": "Bob"}),
            "code",
        ),
        (
            join.as_str(),
            json!({"code": code, "name": "B\u{0}b"}),
            "name",
        ),
    ];
    for (path, body, field) in cases {
        let res = app
            .http
            .post(app.http_url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{path} {field}");
        assert_unstorable(&res.json().await.unwrap(), field);
    }
    // The invite was not spent by the refused joins.
    let res = app
        .http
        .post(app.http_url(&join))
        .json(&json!({"code": code, "name": "Bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    // Query parameters, on the socket's upgrade and on the room's HTTP API.
    for query in ["_pk=a%00", "token=%00", "since=%00", "x%00=1"] {
        let url = app.http_url(&format!("/parties/household/{}?{query}", hh.id));
        let res = app
            .http
            .get(&url)
            .bearer_auth(&hh.owner)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{query}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unstorable_text", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("query parameter ")
        );
        let ws_url = app.room_url(hh.id, &format!("token={}&{query}", hh.owner));
        match tokio_tungstenite::connect_async(ws_url).await {
            Err(WsError::Http(res)) => assert_eq!(res.status(), 400, "{query}"),
            other => panic!("{query}: upgraded: {other:?}"),
        }
    }
}

// --- No store error text reaches a client ---------------------------------------------

/// What a failing database says; no client may ever see it.
const DB_TEXT: &str = "db error: ERROR: invalid byte sequence (SQLSTATE 22021)";

/// A store and a directory that fail every call with a database's words.
#[derive(Debug)]
struct Broken;

fn broken() -> StoreError {
    StoreError::Unavailable(DB_TEXT.into())
}

#[async_trait::async_trait]
impl EventStore for Broken {
    async fn append(&self, _: Append) -> Result<Appended, StoreError> {
        Err(broken())
    }
    async fn load(
        &self,
        _: HouseholdId,
        _: hearth_core::AggregateId,
        _: u32,
    ) -> Result<Loaded, StoreError> {
        Err(broken())
    }
    async fn read_feed(
        &self,
        _: HouseholdId,
        _: u64,
        _: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        Err(broken())
    }
    async fn head(&self, _: HouseholdId) -> Result<u64, StoreError> {
        Err(broken())
    }
    async fn outcome(
        &self,
        _: HouseholdId,
        _: CommandId,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        Err(broken())
    }
    async fn save_snapshot(&self, _: Snapshot) -> Result<(), StoreError> {
        Err(broken())
    }
}

#[async_trait::async_trait]
impl Directory for Broken {
    async fn create_household(&self, _: DirHousehold, _: Member) -> Result<(), DirectoryError> {
        Err(broken().into())
    }
    async fn household(&self, _: HouseholdId) -> Result<Option<DirHousehold>, DirectoryError> {
        Err(broken().into())
    }
    async fn set_time_zone(&self, _: HouseholdId, _: &str) -> Result<DirHousehold, DirectoryError> {
        Err(broken().into())
    }
    async fn member(&self, _: HouseholdId, _: MemberId) -> Result<Option<Member>, DirectoryError> {
        Err(broken().into())
    }
    async fn members(&self, _: HouseholdId) -> Result<Vec<Member>, DirectoryError> {
        Err(broken().into())
    }
    async fn roster(&self, _: HouseholdId) -> Result<Vec<Enrolled>, DirectoryError> {
        Err(broken().into())
    }
    async fn create_invite(&self, _: Invite) -> Result<(), DirectoryError> {
        Err(broken().into())
    }
    async fn accept_invite(
        &self,
        _: HouseholdId,
        _: &str,
        _: Member,
        _: Timestamp,
    ) -> Result<Member, DirectoryError> {
        Err(broken().into())
    }
    async fn invite(
        &self,
        _: HouseholdId,
        _: &str,
        _: Timestamp,
    ) -> Result<Invite, DirectoryError> {
        Err(broken().into())
    }
    async fn remove_member(
        &self,
        _: HouseholdId,
        _: MemberId,
        _: Timestamp,
    ) -> Result<Member, DirectoryError> {
        Err(broken().into())
    }
    async fn set_role(
        &self,
        _: HouseholdId,
        _: MemberId,
        _: hearth_core::ports::Role,
    ) -> Result<Member, DirectoryError> {
        Err(broken().into())
    }
    async fn create_session(
        &self,
        _: hearth_core::ports::Session,
        _: &hearth_core::ports::CredentialHash,
    ) -> Result<(), DirectoryError> {
        Err(broken().into())
    }
    async fn refresh_session(
        &self,
        _: HouseholdId,
        _: &hearth_core::ports::CredentialHash,
        _: &hearth_core::ports::CredentialHash,
        _: Timestamp,
    ) -> Result<hearth_core::ports::Session, DirectoryError> {
        Err(broken().into())
    }
    async fn session(
        &self,
        _: HouseholdId,
        _: hearth_core::SessionId,
    ) -> Result<Option<hearth_core::ports::Session>, DirectoryError> {
        Err(broken().into())
    }
    async fn sessions(
        &self,
        _: HouseholdId,
        _: MemberId,
    ) -> Result<Vec<hearth_core::ports::Session>, DirectoryError> {
        Err(broken().into())
    }
    async fn end_session(
        &self,
        _: HouseholdId,
        _: MemberId,
        _: hearth_core::SessionId,
        _: Timestamp,
    ) -> Result<(), DirectoryError> {
        Err(broken().into())
    }
}

#[tokio::test]
async fn no_database_error_text_reaches_a_client() {
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        token_secret: TokenSecret::new("test-secret-of-at-least-32-bytes!").unwrap(),
        ..Settings::default()
    };
    let memory = Arc::new(MemoryEventStore::new());
    let ports = Ports {
        feed: Arc::new(memory.feed()),
        service: Service::new(Arc::new(Broken), Arc::new(SystemClock))
            .with_catalog(Arc::new(test_catalog())),
        directory: Arc::new(Broken),
    };
    let app = Application::build(settings, ports).await.unwrap();
    let addr = app.local_addr();
    let hh = HouseholdId(Uuid::now_v7());
    let token = app
        .tokens()
        .issue(
            hh,
            MemberId(Uuid::now_v7()),
            Role::Owner,
            chrono::Utc::now(),
            chrono::Duration::hours(1),
        )
        .unwrap();
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let room = url(&format!("/parties/household/{hh}"));
    let requests = [
        http.post(url("/households"))
            .json(&json!({"name": "Home", "ownerName": "Ann"})),
        http.post(url(&format!("/households/{hh}/join")))
            .json(&json!({"code": "abc", "name": "Bob"})),
        http.post(url(&format!("/households/{hh}/invites")))
            .bearer_auth(&token)
            .json(&json!({})),
        http.get(url(&format!("/households/{hh}/members")))
            .bearer_auth(&token),
        http.get(&room).bearer_auth(&token),
        http.get(format!("{room}?since=0")).bearer_auth(&token),
        http.post(&room)
            .bearer_auth(&token)
            .json(&place_order(Uuid::now_v7())),
    ];
    for request in requests {
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
        let text = body.to_string();
        assert!(
            !text.contains("SQLSTATE") && !text.contains("db error"),
            "{text}"
        );
    }
    // A socket whose membership cannot be checked is refused before the upgrade, with
    // our sentence.
    let ws_url = format!("ws://{addr}/parties/household/{hh}?token={token}");
    match tokio_tungstenite::connect_async(ws_url).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(
                body.contains("unavailable") && !body.contains("SQLSTATE"),
                "{body}"
            );
        }
        other => panic!("expected a 503 before the upgrade, got {other:?}"),
    }

    // A member's socket whose room cannot load is closed with a reason of ours.
    let directory = Arc::new(MemoryDirectory::new());
    let now = chrono::Utc::now();
    let owner = hearth_core::ports::Member {
        household: hh,
        id: MemberId(Uuid::now_v7()),
        name: "Ann".into(),
        role: Role::Owner,
        joined_at: now,
    };
    directory
        .create_household(
            hearth_core::ports::Household {
                id: hh,
                name: "Home".into(),
                time_zone: "UTC".into(),
                created_at: now,
            },
            owner.clone(),
        )
        .await
        .unwrap();
    let app = Application::build(
        Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            token_secret: TokenSecret::new("test-secret-of-at-least-32-bytes!").unwrap(),
            ..Settings::default()
        },
        Ports {
            feed: Arc::new(memory.feed()),
            service: Service::new(Arc::new(Broken), Arc::new(SystemClock))
                .with_catalog(Arc::new(test_catalog())),
            directory,
        },
    )
    .await
    .unwrap();
    let addr = app.local_addr();
    let token = app
        .tokens()
        .issue(hh, owner.id, Role::Owner, now, chrono::Duration::hours(1))
        .unwrap();
    tokio::spawn(app.run_until_stopped());
    let ws_url = format!("ws://{addr}/parties/household/{hh}?token={token}");
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
    {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1011);
            assert!(!frame.reason.as_str().contains("SQLSTATE"), "{frame:?}");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

// --- A socket keeps reading while its own commands run -------------------------------

/// The memory store, except that the append of one chosen command waits until the
/// test opens the gate; `arrived` says when it is waiting.
#[derive(Debug)]
struct Gated {
    inner: Arc<MemoryEventStore>,
    held: CommandId,
    /// Hold the command after its commit (its doorbell rung, its answer not yet
    /// returned) rather than before it.
    after_commit: bool,
    arrived: tokio::sync::watch::Sender<bool>,
    open: tokio::sync::watch::Receiver<bool>,
    /// Whether the log was read while the held command waited at the gate.
    read_while_held: tokio::sync::watch::Sender<bool>,
}

struct Gate {
    arrived: tokio::sync::watch::Receiver<bool>,
    open: tokio::sync::watch::Sender<bool>,
    read_while_held: tokio::sync::watch::Receiver<bool>,
}

fn gated(
    held: CommandId,
) -> (
    Gate,
    impl FnOnce(Arc<MemoryEventStore>) -> Arc<dyn EventStore>,
) {
    gated_at(held, false)
}

fn gated_at(
    held: CommandId,
    after_commit: bool,
) -> (
    Gate,
    impl FnOnce(Arc<MemoryEventStore>) -> Arc<dyn EventStore>,
) {
    let (arrived_tx, arrived) = tokio::sync::watch::channel(false);
    let (open, open_rx) = tokio::sync::watch::channel(false);
    let (read_tx, read_while_held) = tokio::sync::watch::channel(false);
    let wrap = move |inner| -> Arc<dyn EventStore> {
        Arc::new(Gated {
            inner,
            held,
            after_commit,
            arrived: arrived_tx,
            open: open_rx,
            read_while_held: read_tx,
        })
    };
    (
        Gate {
            arrived,
            open,
            read_while_held,
        },
        wrap,
    )
}

#[async_trait::async_trait]
impl EventStore for Gated {
    async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        let held = append.command.id == self.held;
        let committed = if held && self.after_commit {
            Some(self.inner.append(append.clone()).await)
        } else {
            None
        };
        if held {
            self.arrived.send_replace(true);
            let mut open = self.open.clone();
            let _ = open.wait_for(|open| *open).await;
        }
        match committed {
            Some(appended) => appended,
            None => self.inner.append(append).await,
        }
    }
    async fn load(
        &self,
        t: HouseholdId,
        o: hearth_core::AggregateId,
        s: u32,
    ) -> Result<Loaded, StoreError> {
        self.inner.load(t, o, s).await
    }
    async fn read_feed(
        &self,
        t: HouseholdId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        if *self.arrived.borrow() && !*self.open.borrow() {
            self.read_while_held.send_replace(true);
        }
        self.inner.read_feed(t, after, limit).await
    }
    async fn head(&self, t: HouseholdId) -> Result<u64, StoreError> {
        self.inner.head(t).await
    }
    async fn outcome(
        &self,
        t: HouseholdId,
        c: CommandId,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        self.inner.outcome(t, c).await
    }
    async fn save_snapshot(&self, s: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(s).await
    }
}

/// Bob places `n` orders, each answered before the next.
async fn bob_places(bob: &mut Ws, n: usize) {
    for _ in 0..n {
        let id = Uuid::now_v7();
        send(bob, json!({"command": place_order(id)})).await;
        loop {
            let msg = recv(bob).await;
            if msg.get("ack").is_some() {
                assert_eq!(msg["ack"]["id"], json!(id), "{msg}");
                break;
            }
        }
    }
}

/// The events of a socket after `from` up to `seq`, in order (anything else that
/// comes meanwhile is returned).
async fn events_up_to(ws: &mut Ws, from: u64, seq: u64) -> Vec<Value> {
    let mut others = Vec::new();
    let mut at = from;
    while at < seq {
        let msg = recv(ws).await;
        if msg.get("event").is_some() {
            assert_eq!(seq_of(&msg), at + 1, "{msg}");
            at += 1;
        } else {
            others.push(msg);
        }
    }
    others
}

#[tokio::test]
async fn a_socket_keeps_reading_its_queue_while_its_own_command_runs() {
    let held = Uuid::now_v7();
    let (mut gate, wrap) = gated(CommandId(held));
    // A queue of 2 batches: a loop that waited for its command would overflow it.
    let app = spawn_app_on(|s| s.outgoing_queue = 2, None, wrap).await;
    let hh = app.household().await;
    let bob_token = app.member(&hh).await;
    let base = app.head(hh.id).await;
    let (mut ann, _) = app.connect(hh.id, &hh.owner, "").await;
    let (mut bob, _) = app.connect(hh.id, &bob_token, "").await;

    send(&mut ann, json!({"command": place_order(held)})).await;
    gate.arrived.wait_for(|arrived| *arrived).await.unwrap();
    // While Ann's command waits in the store, Bob's ten orders reach her socket.
    bob_places(&mut bob, 10).await;
    let others = events_up_to(&mut ann, base, base + 10).await;
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(app.metric("hearth_slow_consumers_total").await, 0.0);

    gate.open.send_replace(true);
    // The ack and the command's own event come in either order (a client orders by seq).
    let others = events_up_to(&mut ann, base + 10, base + 11).await;
    let ack = match others.as_slice() {
        [ack] => ack.clone(),
        [] => recv(&mut ann).await,
        more => panic!("{more:?}"),
    };
    assert_eq!(ack["ack"]["id"], json!(held), "{ack}");
    assert_eq!(ack["ack"]["seq"], base + 11, "{ack}");
}

#[tokio::test]
async fn commands_beyond_the_in_flight_limit_wait_unread_and_are_answered_in_order() {
    let held = Uuid::now_v7();
    let (mut gate, wrap) = gated(CommandId(held));
    let app = spawn_app_on(|s| s.commands_in_flight = 1, None, wrap).await;
    let hh = app.household().await;
    let bob_token = app.member(&hh).await;
    let base = app.head(hh.id).await;
    let (mut ann, _) = app.connect(hh.id, &hh.owner, "").await;
    let (mut bob, _) = app.connect(hh.id, &bob_token, "").await;

    // One command runs (held), one waits in the queue, the rest are not read yet;
    // bad input among them is answered in its turn.
    let mut ids = vec![held];
    send(&mut ann, json!({"command": place_order(held)})).await;
    for _ in 0..3 {
        let id = Uuid::now_v7();
        ids.push(id);
        send(&mut ann, json!({"command": place_order(id)})).await;
    }
    ann.send(Message::Text("{".into())).await.unwrap();
    gate.arrived.wait_for(|arrived| *arrived).await.unwrap();
    // Meanwhile the room's events still reach Ann.
    bob_places(&mut bob, 1).await;
    let others = events_up_to(&mut ann, base, base + 1).await;
    assert!(others.is_empty(), "{others:?}");

    gate.open.send_replace(true);
    let others = events_up_to(&mut ann, base + 1, base + 5).await;
    let mut answers: Vec<Value> = others;
    while answers.len() < 5 {
        let msg = recv(&mut ann).await;
        if msg.get("event").is_none() {
            answers.push(msg);
        }
    }
    let acked: Vec<Value> = answers[..4]
        .iter()
        .map(|a| a["ack"]["id"].clone())
        .collect();
    assert_eq!(acked, ids.iter().map(|id| json!(id)).collect::<Vec<_>>());
    assert_eq!(
        answers[4]["error"]["code"], "invalid_json",
        "{}",
        answers[4]
    );
}

// ---------------------------------------------------------------------------------
// The welcome's bounded view and the paged read of older orders
// ---------------------------------------------------------------------------------

/// Commits `n` orders in `hh` straight into the store (as a command of this node would):
/// returns their ids in the order placed. Every order but the first is cancelled at once.
async fn seed_orders(app: &TestApp, hh: HouseholdId, n: usize, note: &str) -> Vec<OrderId> {
    use hearth_core::order::{CancelOrder, Command, PlaceOrder, RequestedLine};
    use hearth_core::{Actor, CommandEnvelope, Dispatched, Service};
    let service =
        Service::new(app.store.clone(), Arc::new(SystemClock)).with_catalog(app.catalog.clone());
    let actor = Actor::Member {
        id: MemberId(Uuid::now_v7()),
    };
    let mut ids = Vec::new();
    for i in 0..n {
        let order_id = OrderId(Uuid::now_v7());
        let place = Command::PlaceOrder(PlaceOrder {
            order_id,
            lines: vec![RequestedLine::new("milk", 1)],
            ready_at: None,
            note: (!note.is_empty()).then(|| note.to_owned()),
        });
        let mut commands = vec![place];
        if i > 0 {
            commands.push(Command::CancelOrder(CancelOrder {
                order_id,
                reason: None,
            }));
        }
        for command in commands {
            let envelope =
                CommandEnvelope::new(CommandId(Uuid::now_v7()), hh, actor.clone(), command);
            let outcome = service.dispatch(envelope).await.unwrap();
            assert!(
                matches!(outcome, Dispatched::Accepted { .. }),
                "{outcome:?}"
            );
        }
        ids.push(order_id);
    }
    ids
}

/// The household's whole projection, folded from its log: what every bounded read must
/// agree with.
async fn full_view(app: &TestApp, hh: HouseholdId) -> hearth_core::HouseholdView {
    let mut view = hearth_core::HouseholdView::new();
    loop {
        let events = app.store.read_feed(hh, view.seq, 500).await.unwrap();
        if events.is_empty() {
            return view;
        }
        for event in &events {
            view.apply(event).unwrap();
        }
    }
}

impl TestApp {
    async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        let res = self
            .http
            .get(self.http_url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }
}

#[tokio::test]
async fn the_welcome_carries_the_most_recent_orders_and_older_ones_are_paged_over_http() {
    // Given a household with 105 orders (104 of them cancelled: closed), more than the
    // default bound of 100.
    let app = spawn_app().await;
    let hh = app.household().await;
    let base = app.head(hh.id).await;
    let ids = seed_orders(&app, hh.id, 105, "").await;
    let head = app.head(hh.id).await;
    assert_eq!(head, base + 209);
    let full = full_view(&app, hh.id).await;
    let orders_json = |range: std::ops::Range<usize>| json!(full.orders[range]);

    // When a member connects, the welcome holds exactly the 100 most recent orders, each
    // as the projection at the welcome's seq has it, and says 5 are older.
    let (mut ws, welcome) = app.connect(hh.id, &hh.owner, "").await;
    let welcome = &welcome["welcome"];
    assert_eq!(welcome["seq"], head);
    assert_eq!(welcome["state"]["seq"], head);
    assert_eq!(welcome["olderOrders"], 5);
    assert_eq!(welcome["state"]["orders"], orders_json(5..105));
    assert_eq!(welcome["state"]["orders"][0]["id"], json!(ids[5]));
    assert_eq!(welcome["state"]["orders"][99]["status"], "cancelled");

    // GET of the room's state is the same bounded view.
    let room = format!("/parties/household/{}", hh.id);
    let (status, state) = app.get_json(&room, &hh.owner).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            &state["seq"],
            &state["olderOrders"],
            &state["state"]["orders"]
        ),
        (&json!(head), &json!(5), &orders_json(5..105))
    );

    // The older ones are reachable by the paged read, at the same seq.
    let orders = format!("/households/{}/orders", hh.id);
    let (status, page) = app.get_json(&format!("{orders}?before=5"), &hh.owner).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["seq"], head);
    assert_eq!(page["olderOrders"], 0);
    assert_eq!(page["orders"], orders_json(0..5));
    assert_eq!(page["orders"][0]["id"], json!(ids[0]));
    assert_eq!(page["orders"][0]["status"], "placed");
    // A smaller page, and the newest page (no `before`) is the welcome's.
    let (_, page) = app
        .get_json(&format!("{orders}?before=5&limit=2"), &hh.owner)
        .await;
    assert_eq!(
        (&page["olderOrders"], &page["orders"]),
        (&json!(3), &orders_json(3..5))
    );
    let (_, page) = app.get_json(&orders, &hh.owner).await;
    assert_eq!(
        (&page["olderOrders"], &page["orders"]),
        (&json!(5), &orders_json(5..105))
    );
    let (_, page) = app.get_json(&format!("{orders}?before=0"), &hh.owner).await;
    assert_eq!(
        (&page["olderOrders"], &page["orders"]),
        (&json!(0), &json!([]))
    );

    // An event on an order older than the welcome's still reaches the socket (the client
    // skips it: it does not hold that order), and the paged read shows its effect.
    let cancel = json!({"command": {"id": Uuid::now_v7(), "type": "CancelOrder", "payload": {"orderId": ids[0]}}});
    send(&mut ws, cancel).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(recv(&mut ws).await);
    }
    let event = seen.iter().find(|m| m.get("event").is_some()).unwrap();
    assert_eq!(event["event"]["aggregateId"], json!(ids[0]));
    assert_eq!(seq_of(event), head + 1);
    let (_, page) = app.get_json(&format!("{orders}?before=1"), &hh.owner).await;
    assert_eq!(page["seq"], head + 1);
    assert_eq!(page["orders"][0]["status"], "cancelled");

    // Bad paging input is refused, naming the parameter; the token is needed.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("before=x", "before"),
        ("before=-1", "before"),
    ] {
        let (status, body) = app.get_json(&format!("{orders}?{query}"), &hh.owner).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_message");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}"
        );
    }
    let (status, body) = app
        .get_json(&format!("{orders}?before=%00"), &hh.owner)
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("unstorable_text"))
    );
    let res = app.http.get(app.http_url(&orders)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let other = app.household().await;
    let (status, _) = app.get_json(&orders, &other.owner).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_welcome_keeps_its_byte_bound_and_paging_back_yields_every_order_once() {
    // Given a bound of 3,000 bytes of orders and 12 orders of about 600 bytes each.
    let bound = hearth_core::window::Bound {
        items: 100,
        bytes: 3_000,
    };
    let app = spawn_app_with(|s| s.view_bound = bound).await;
    let hh = app.household().await;
    seed_orders(&app, hh.id, 12, &"n".repeat(200)).await;
    let full = full_view(&app, hh.id).await;

    // The welcome holds the most recent orders that fit.
    let (_, welcome) = app.connect(hh.id, &hh.owner, "").await;
    let welcome = &welcome["welcome"];
    let held = welcome["state"]["orders"].as_array().unwrap().len();
    let older = welcome["olderOrders"].as_u64().unwrap() as usize;
    assert!((1..12).contains(&held), "{held} orders in the welcome");
    assert_eq!(older + held, 12);
    assert!(welcome["state"]["orders"].to_string().len() <= bound.bytes);
    assert_eq!(welcome["state"]["orders"], json!(full.orders[older..]));

    // Paging back from olderOrders to 0 yields every older order once, in order.
    let mut before = older;
    let mut pages = Vec::new();
    while before > 0 {
        let path = format!("/households/{}/orders?before={before}", hh.id);
        let (status, page) = app.get_json(&path, &hh.owner).await;
        assert_eq!(status, 200, "{page}");
        assert!(page["orders"].to_string().len() <= bound.bytes);
        let next = page["olderOrders"].as_u64().unwrap() as usize;
        assert!(next < before, "no progress from {before}");
        pages.insert(0, page["orders"].clone());
        before = next;
    }
    let paged: Vec<Value> = pages
        .iter()
        .flat_map(|p| p.as_array().unwrap().clone())
        .collect();
    assert_eq!(json!(paged), json!(full.orders[..older]));

    // A catch-up from 0 still gives exactly every event after 0, in order.
    let (mut ws, welcome) = app.connect(hh.id, &hh.owner, "&since=0").await;
    let head = welcome["welcome"]["seq"].as_u64().unwrap();
    let others = events_up_to(&mut ws, 0, head).await;
    assert!(others.is_empty(), "{others:?}");
    quiet(&mut ws).await;
}

/// Issue 15: chores are bounded and paged like orders, by the same generic read (the
/// core's `window`): the welcome and `GET` of the room say how many are older, and
/// `GET /households/{id}/chores?before=N` pages them back, with the same checks.
#[tokio::test]
async fn older_chores_are_counted_in_the_welcome_and_paged_over_http() {
    // Given a bound of 3 items per list and 5 chores scheduled over HTTP.
    let bound = hearth_core::window::Bound {
        items: 3,
        bytes: 128 * 1024,
    };
    let app = spawn_app_with(|s| s.view_bound = bound).await;
    let hh = app.household().await;
    let owner = app.tokens.verify(&hh.owner, hh.id).unwrap().sub;
    let mut chores = Vec::new();
    for due in 1..=5 {
        let chore = Uuid::now_v7();
        let (status, body) = app
            .post(&hh, &schedule_chore(Uuid::now_v7(), chore, owner, due))
            .await;
        assert_eq!(status, 200, "{body}");
        chores.push(chore);
    }
    let full = full_view(&app, hh.id).await;
    assert_eq!(full.chores.len(), 5);

    // The welcome holds the 3 most recent and says 2 are older; so does GET of the room.
    let (_, welcome) = app.connect(hh.id, &hh.owner, "").await;
    let welcome = &welcome["welcome"];
    assert_eq!(welcome["olderChores"], 2);
    assert_eq!(welcome["olderOrders"], 0);
    assert_eq!(welcome["state"]["chores"], json!(full.chores[2..]));
    let room = format!("/parties/household/{}", hh.id);
    let (status, state) = app.get_json(&room, &hh.owner).await;
    assert_eq!(status, 200);
    assert_eq!(state["olderChores"], 2);
    assert_eq!(state["state"]["chores"], json!(full.chores[2..]));

    // Paging back yields the older ones, oldest first, and the count before them.
    let path = format!("/households/{}/chores", hh.id);
    let (status, page) = app.get_json(&format!("{path}?before=2"), &hh.owner).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["seq"], json!(full.seq));
    assert_eq!(page["olderChores"], 0);
    assert_eq!(page["chores"], json!(full.chores[..2]));
    assert_eq!(page["chores"][0]["id"], json!(chores[0]));
    assert!(page.get("orders").is_none(), "{page}");
    let (_, page) = app
        .get_json(&format!("{path}?before=4&limit=1"), &hh.owner)
        .await;
    assert_eq!(
        (&page["olderChores"], &page["chores"]),
        (&json!(3), &json!(full.chores[3..4]))
    );

    // Bad input is refused naming the parameter (and what it counts); a token is needed,
    // and it must be this household's.
    for (query, start) in [("limit=4", "limit"), ("before=x", "before")] {
        let (status, body) = app.get_json(&format!("{path}?{query}"), &hh.owner).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(start), "{body}");
        if start == "before" {
            assert!(message.contains("chores"), "{body}");
        }
    }
    let res = app.http.get(app.http_url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let other = app.household().await;
    let (status, _) = app.get_json(&path, &other.owner).await;
    assert_eq!(status, 401);
}

fn schedule_chore(command_id: Uuid, chore: Uuid, assignee: MemberId, due_in: i64) -> Value {
    json!({
        "id": command_id,
        "type": "ScheduleChore",
        "payload": {
            "choreId": chore,
            "title": "Take the bins out",
            "assignee": assignee,
            "dueAt": chrono::Utc::now() + chrono::Duration::hours(due_in),
            "everyDays": 7
        }
    })
}

/// Issue 15: the room protocol holds for the second domain with no change to the rooms:
/// welcome (chores and `olderChores`), ack, ordered fan-out, idempotent resends, `since`
/// replay, the domain's refusals with their codes, bad input, and 401s.
#[tokio::test]
async fn the_chore_domain_gets_the_whole_room_protocol() {
    let app = spawn_app().await;
    let hh = app.household().await;
    let bob = app.member(&hh).await;
    let base = app.head(hh.id).await;
    let ann_id = app.tokens.verify(&hh.owner, hh.id).unwrap().sub;
    let bob_id = app.tokens.verify(&bob, hh.id).unwrap().sub;
    let (mut ann_ws, welcome) = app.connect(hh.id, &hh.owner, "").await;
    assert_eq!(welcome["welcome"]["state"]["chores"], json!([]));
    assert_eq!(welcome["welcome"]["olderChores"], 0);
    let (mut bob_ws, _) = app.connect(hh.id, &bob, "").await;

    // Ack to the sender, the event to every member, in order.
    let (id, chore) = (Uuid::now_v7(), Uuid::now_v7());
    send(
        &mut ann_ws,
        json!({"command": schedule_chore(id, chore, bob_id, 2)}),
    )
    .await;
    let mut acked = false;
    while !acked {
        let msg = recv(&mut ann_ws).await;
        acked = msg["ack"]["id"] == json!(id);
    }
    let event = recv(&mut bob_ws).await;
    assert_eq!(seq_of(&event), base + 1);
    assert_eq!(event["event"]["type"], "ChoreScheduled");
    assert_eq!(event["event"]["aggregateId"], json!(chore));
    assert_eq!(event["event"]["payload"]["createdBy"], json!(ann_id));
    assert_eq!(
        event["event"]["metadata"]["actor"],
        json!({"kind": "member", "id": ann_id})
    );

    // A resend of the id is a duplicate and writes nothing.
    send(
        &mut bob_ws,
        json!({"command": schedule_chore(id, chore, bob_id, 2)}),
    )
    .await;
    assert_eq!(recv(&mut bob_ws).await["ack"]["status"], "duplicate");
    assert_eq!(app.head(hh.id).await, base + 1);

    // The domain's rules answer with their codes: over the socket, and over HTTP with
    // 409 for a conflict with the state and 422 for a command that is never valid.
    let done_by_nobody = json!({"command": {"id": Uuid::now_v7(), "type": "AcceptSwap",
        "payload": {"choreId": chore}}});
    send(&mut ann_ws, done_by_nobody).await;
    // (Ann's socket may still hold the schedule's event, which came after its ack.)
    let mut answer = recv(&mut ann_ws).await;
    while answer.get("event").is_some() {
        answer = recv(&mut ann_ws).await;
    }
    assert_eq!(answer["rejected"]["code"], "no_swap_pending", "{answer}");
    let internal = json!({"id": Uuid::now_v7(), "type": "SendChoreReminder",
        "payload": {"choreId": chore}});
    let (status, body) = app.post(&hh, &internal).await;
    assert_eq!(
        (status, body["rejected"]["code"].as_str()),
        (422, Some("chore_internal_command")),
        "{body}"
    );
    let (status, body) = app
        .post(&hh, &schedule_chore(Uuid::now_v7(), chore, bob_id, 2))
        .await;
    assert_eq!(
        (status, body["rejected"]["code"].as_str()),
        (409, Some("chore_already_exists")),
        "{body}"
    );
    // Bad input: the field at fault is named, nothing is written.
    let bad = json!({"command": {"id": Uuid::now_v7(), "type": "ScheduleChore",
        "payload": {"choreId": Uuid::now_v7(), "title": "x", "assignee": bob_id,
                    "dueAt": "tomorrow"}}});
    send(&mut ann_ws, bad).await;
    let error = recv(&mut ann_ws).await;
    assert_eq!(error["error"]["code"], "invalid_payload", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("payload.dueAt"),
        "{error}"
    );
    assert_eq!(app.head(hh.id).await, base + 1);

    // Bob completes it (his): both see it, in order, after the first event.
    let complete = json!({"command": {"id": Uuid::now_v7(), "type": "CompleteChore",
        "payload": {"choreId": chore}}});
    send(&mut bob_ws, complete).await;
    let mut bob_saw = Vec::new();
    while bob_saw.is_empty() {
        let msg = recv(&mut bob_ws).await;
        if msg.get("event").is_some() {
            bob_saw.push(msg);
        }
    }
    assert_eq!(seq_of(&bob_saw[0]), base + 2);
    assert_eq!(bob_saw[0]["event"]["type"], "ChoreCompleted");

    // `since` replays the chore's events; the welcome and the HTTP state carry it.
    let (mut late, welcome) = app.connect(hh.id, &bob, &format!("&since={base}")).await;
    assert_eq!(welcome["welcome"]["state"]["chores"][0]["status"], "done");
    assert_eq!(
        welcome["welcome"]["state"]["chores"][0]["closedBy"],
        json!(bob_id)
    );
    assert_eq!(seq_of(&recv(&mut late).await), base + 1);
    assert_eq!(seq_of(&recv(&mut late).await), base + 2);
    let state: Value = app
        .http
        .get(app.http_url(&format!("/parties/household/{}", hh.id)))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["state"]["chores"][0]["title"], "Take the bins out");
    assert_eq!(state["olderChores"], 0);

    // 401 before anything is parsed, whatever the domain.
    let res = app
        .http
        .post(app.http_url(&format!("/parties/household/{}", hh.id)))
        .json(&schedule_chore(Uuid::now_v7(), Uuid::now_v7(), bob_id, 2))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(app.head(hh.id).await, base + 2);
}

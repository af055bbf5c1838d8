//! The edge's limits from the outside (issue 13, items 1 and 2): a server on port 0,
//! real TCP, HTTP and WebSocket clients on loopback, each limit driven past.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestApp;
use futures::{SinkExt, StreamExt};
use hearth_axum::{LimitSettings, Rate};
use hearth_core::HouseholdId;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use uuid::Uuid;

/// A guard against a test hanging: far above any timeout a test drives past.
const GUARD: Duration = Duration::from_secs(20);

async fn spawn(limits: LimitSettings) -> TestApp {
    common::spawn(|s| s.limits = limits).await
}

/// `household()` as (id, owner token); `member()` as the member's token.
async fn household(app: &TestApp) -> (HouseholdId, String) {
    let owned = app.household().await;
    (owned.id, owned.token)
}

async fn member(app: &TestApp, hh: HouseholdId, owner: &str) -> String {
    app.member(hh, owner).await.1
}

/// Generous limits, for tests that drive one limit only.
fn generous() -> LimitSettings {
    LimitSettings {
        max_connections: 10_000,
        max_connections_per_address: 10_000,
        header_timeout: Duration::from_secs(30),
        max_sockets_per_member: 1_000,
        max_sockets_per_room: 1_000,
        address_rate: Rate::new(10_000, 10_000.0),
        signup_rate: Rate::new(10_000, 10_000.0),
        member_rate: Rate::new(10_000, 10_000.0),
        catchup_rate: Rate::new(1_000_000, 1_000_000.0),
        kept_views: 16,
        welcome_bytes_in_flight: 64 * 1024 * 1024,
    }
}

/// Reads what the server sends until it closes the connection.
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(GUARD, tcp.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server did not close the connection");
    String::from_utf8_lossy(&out).into_owned()
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

/// The JSON body of a raw HTTP/1.1 response.
fn json_body(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_closed_after_the_header_timeout() {
    let app = spawn(LimitSettings {
        header_timeout: Duration::from_millis(300),
        ..generous()
    })
    .await;
    // Slowloris: a request line and one header, never the blank line that ends them.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Meanwhile the server answers others.
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    let answer = read_to_close(&mut slow).await;
    assert!(
        !answer.contains("200 OK"),
        "the half-sent request was never served: {answer}"
    );
    eprintln!("closed {:?} after the check", started.elapsed());

    // A kept-alive connection that sits idle after its request is closed the same way.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_get_429_json_until_one_closes() {
    let app = spawn(LimitSettings {
        max_connections_per_address: 3,
        ..generous()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // Let the server count them: each must have been accepted before the next test.
    let mut over = TcpStream::connect(app.addr).await.unwrap();
    over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut over).await;
    assert!(status_line(&answer).contains(" 429 "), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    let body = json_body(&answer);
    assert_eq!(body["error"]["code"], "too_many_connections", "{body}");

    // One closes: there is room again (once the server has seen it go).
    held.pop();
    let deadline = Instant::now() + GUARD;
    loop {
        let mut tcp = TcpStream::connect(app.addr).await.unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_to_close(&mut tcp).await;
        if answer.starts_with("HTTP/1.1 200") {
            assert!(
                answer.contains("hearth_refused_total{reason=\"connections_per_address\"}"),
                "{answer}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no room after a close: {answer}");
        // A bounded poll: the server sees the close when its connection task reads the
        // EOF; nothing a client can wait on says when.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_beyond_the_total_cap_get_503_json() {
    let app = spawn(LimitSettings {
        max_connections: 2,
        ..generous()
    })
    .await;
    let _a = TcpStream::connect(app.addr).await.unwrap();
    let _b = TcpStream::connect(app.addr).await.unwrap();
    let mut over = TcpStream::connect(app.addr).await.unwrap();
    over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut over).await;
    assert!(status_line(&answer).contains(" 503 "), "{answer}");
    assert_eq!(json_body(&answer)["error"]["code"], "too_many_connections");
}

async fn ws_refusal(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, the socket opened"),
    }
}

#[tokio::test]
async fn sockets_beyond_the_member_and_room_caps_are_refused_before_the_upgrade() {
    let app = spawn(LimitSettings {
        max_sockets_per_member: 2,
        max_sockets_per_room: 3,
        ..generous()
    })
    .await;
    let (hh, ann) = household(&app).await;
    let bob = member(&app, hh, &ann).await;
    let (a1, _) = tokio_tungstenite::connect_async(app.room_url(hh, &ann))
        .await
        .unwrap();
    let (_a2, _) = tokio_tungstenite::connect_async(app.room_url(hh, &ann))
        .await
        .unwrap();
    assert_eq!(ws_refusal(&app.room_url(hh, &ann)).await, 429, "member cap");
    let (_b1, _) = tokio_tungstenite::connect_async(app.room_url(hh, &bob))
        .await
        .unwrap();
    assert_eq!(ws_refusal(&app.room_url(hh, &bob)).await, 429, "room cap");
    assert_eq!(
        app.metric("hearth_refused_total{reason=\"sockets_per_member\"}")
            .await,
        1
    );
    assert_eq!(
        app.metric("hearth_refused_total{reason=\"sockets_per_room\"}")
            .await,
        1
    );

    // Ann closes one: Bob's next socket fits once the server has seen it go.
    drop(a1);
    let deadline = Instant::now() + GUARD;
    while tokio_tungstenite::connect_async(app.room_url(hh, &bob))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the closed socket was not counted out"
        );
        // A bounded poll: the server counts the socket out when it reads the close;
        // nothing a client can wait on says when.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn household_creation_and_joining_beyond_the_address_rate_get_429_with_retry_after() {
    let app = spawn(LimitSettings {
        signup_rate: Rate::new(3, 1.0 / 60.0),
        ..generous()
    })
    .await;
    let (hh, owner) = household(&app).await;
    let _bob = member(&app, hh, &owner).await;
    assert_eq!(app.create_household().await.status(), 201);
    let refused = app.create_household().await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Joining shares the allowance: guessing invite codes is held to it too.
    let res = app
        .http
        .post(app.url(&format!("/households/{hh}/join")))
        .json(&json!({"code": "guess", "name": "Eve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(
        app.metric("hearth_refused_total{reason=\"rate_signup\"}")
            .await,
        2
    );
}

fn cancel(id: Uuid) -> Value {
    json!({"id": id, "type": "CancelOrder", "payload": {"orderId": Uuid::new_v4()}})
}

async fn answer(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> Value {
    loop {
        let message = tokio::time::timeout(GUARD, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value.get("welcome").is_none() && value.get("event").is_none() {
                return value;
            }
        }
    }
}

#[tokio::test]
async fn a_members_commands_share_one_rate_across_sockets_and_http() {
    let app = spawn(LimitSettings {
        member_rate: Rate::new(7, 0.001),
        ..generous()
    })
    .await;
    let (hh, ann) = household(&app).await;
    let bob = member(&app, hh, &ann).await;
    // Ann's invite for Bob and opening each socket count as calls of Ann's: 3 of 7.
    let (mut s1, _) = tokio_tungstenite::connect_async(app.room_url(hh, &ann))
        .await
        .unwrap();
    let (mut s2, _) = tokio_tungstenite::connect_async(app.room_url(hh, &ann))
        .await
        .unwrap();
    for ws in [&mut s1, &mut s2] {
        for _ in 0..2 {
            let id = Uuid::new_v4();
            let command = json!({"command": cancel(id)}).to_string();
            ws.send(Message::Text(command.into())).await.unwrap();
            let reply = answer(ws).await;
            assert_eq!(reply["rejected"]["id"], json!(id), "answered: {reply}");
        }
    }
    // 7 of 7 used: the next command is refused wherever it comes from, and named.
    let id = Uuid::new_v4();
    let res = app
        .http
        .post(app.url(&format!("/parties/household/{hh}")))
        .bearer_auth(&ann)
        .json(&cancel(id))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(body["error"]["id"], json!(id), "names the command: {body}");
    let id = Uuid::new_v4();
    s1.send(Message::Text(
        json!({"command": cancel(id)}).to_string().into(),
    ))
    .await
    .unwrap();
    let reply = answer(&mut s1).await;
    assert_eq!(reply["error"]["code"], "rate_limited", "{reply}");
    assert_eq!(reply["error"]["id"], json!(id), "{reply}");
    // Bob has his own allowance.
    let res = app
        .http
        .post(app.url(&format!("/parties/household/{hh}")))
        .bearer_auth(&bob)
        .json(&cancel(Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        409,
        "Bob's command is decided (and refused by the rules: no such order)"
    );
}

#[tokio::test]
async fn every_request_counts_against_its_address() {
    let app = spawn(LimitSettings {
        address_rate: Rate::new(5, 0.001),
        ..generous()
    })
    .await;
    for _ in 0..5 {
        let res = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let res = app
        .http
        .get(app.url("/no-such-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "unknown routes count too");
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

fn place_order() -> Value {
    json!({"id": Uuid::now_v7(), "type": "PlaceOrder", "payload": {
        "orderId": Uuid::now_v7(),
        "lines": [{"sku": "bread", "quantity": 1}]
    }})
}

impl TestApp {
    /// `n` accepted commands (one event each) in household `hh`.
    async fn orders(&self, hh: HouseholdId, token: &str, n: usize) {
        for _ in 0..n {
            let res = self
                .http
                .post(self.url(&format!("/parties/household/{hh}")))
                .bearer_auth(token)
                .json(&place_order())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    }

    async fn state_seq(&self, hh: HouseholdId, token: &str) -> u64 {
        let body: Value = self
            .http
            .get(self.url(&format!("/parties/household/{hh}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["seq"].as_u64().unwrap()
    }
}

#[tokio::test]
async fn a_rooms_state_is_served_from_a_kept_view_that_reads_only_what_it_lacks() {
    let app = spawn(generous()).await;
    let (hh, token) = household(&app).await;
    // The household's position after its setup: what happens from here is counted from it.
    let base = app.head(hh).await;
    app.orders(hh, &token, 30).await;
    assert_eq!(app.metric("hearth_view_events_total").await, 0);
    assert_eq!(app.state_seq(hh, &token).await, base + 30);
    assert_eq!(
        app.metric("hearth_view_events_total").await,
        base + 30,
        "first: the log"
    );
    assert_eq!(app.state_seq(hh, &token).await, base + 30);
    assert_eq!(app.state_seq(hh, &token).await, base + 30);
    assert_eq!(
        app.metric("hearth_view_events_total").await,
        base + 30,
        "again: nothing read, however long the history"
    );
    app.orders(hh, &token, 1).await;
    assert_eq!(app.state_seq(hh, &token).await, base + 31);
    assert_eq!(
        app.metric("hearth_view_events_total").await,
        base + 31,
        "then: what is new"
    );
    // A room that opens starts from the kept view too.
    let (mut ws, _) = tokio_tungstenite::connect_async(app.room_url(hh, &token))
        .await
        .unwrap();
    let welcome = answer_or_welcome(&mut ws).await;
    assert_eq!(welcome["welcome"]["seq"], base + 31);
    assert_eq!(app.metric("hearth_view_events_total").await, base + 31);
}

async fn answer_or_welcome(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> Value {
    loop {
        let message = tokio::time::timeout(GUARD, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn catch_ups_are_paged_and_paced_by_the_nodes_catch_up_rate() {
    let app = spawn(LimitSettings {
        catchup_rate: Rate::new(100, 1_000.0),
        ..generous()
    })
    .await;
    let (hh, token) = household(&app).await;
    let base = app.head(hh).await;
    app.orders(hh, &token, 250).await;
    // Two sockets catch up on everything at once: 500 events at 1,000 a second after a
    // burst of 100. Each gets every event once, in order.
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let url = format!("{}&since={base}", app.room_url(hh, &token));
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        sockets.push(ws);
    }
    for ws in &mut sockets {
        let welcome = answer_or_welcome(ws).await;
        assert_eq!(welcome["welcome"]["seq"], base + 250);
        for seq in base + 1..=base + 250 {
            let event = answer_or_welcome(ws).await;
            assert_eq!(event["event"]["seq"], seq, "{event}");
        }
    }
    assert!(
        app.metric("hearth_catchup_waits_total").await > 0,
        "the catch-ups waited for the node's rate"
    );
}

#[tokio::test]
async fn joins_share_one_budget_of_welcome_bytes_and_each_gets_its_welcome() {
    // A budget far below one welcome: the joins take turns, none waits forever.
    let app = spawn(LimitSettings {
        welcome_bytes_in_flight: 1024,
        ..generous()
    })
    .await;
    let (hh, token) = household(&app).await;
    let base = app.head(hh).await;
    app.orders(hh, &token, 30).await;
    let joins = (0..5).map(|_| {
        let url = app.room_url(hh, &token);
        tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            answer_or_welcome(&mut ws).await
        })
    });
    for join in joins.collect::<Vec<_>>() {
        let welcome = join.await.unwrap();
        assert_eq!(welcome["welcome"]["seq"], base + 30, "{welcome}");
        assert_eq!(
            welcome["welcome"]["state"]["orders"]
                .as_array()
                .unwrap()
                .len(),
            30
        );
    }
}

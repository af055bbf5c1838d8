//! A clean shutdown: sockets get 1001 (going away) after the commands they already
//! sent are answered; a command is acked or not applied, never applied unanswered; the
//! server stops accepting and its run ends.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::Gated;
use futures::{SinkExt, StreamExt};
use hearth_core::CommandId;
use hearth_core::ports::EventStore;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const GUARD: Duration = Duration::from_secs(20);

fn place_order(id: Uuid) -> Value {
    json!({"command": {"id": id, "type": "PlaceOrder", "payload": {
        "orderId": Uuid::now_v7(),
        "lines": [{"sku": "bread", "quantity": 1}]
    }}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_answers_what_sockets_sent_then_closes_them_with_1001() {
    let gated = Gated::closed();
    let app = common::spawn_wrapped(|store| gated.wrap(store), |_| {}).await;
    let hh = app.household().await;
    let room = || app.room_url(hh.id, &hh.token);
    let (mut a, _) = tokio_tungstenite::connect_async(room()).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(room()).await.unwrap();
    for ws in [&mut a, &mut b] {
        let welcome = ws.next().await.unwrap().unwrap();
        assert!(welcome.to_text().unwrap().contains("welcome"));
    }
    let ids: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
    for id in &ids {
        a.send(Message::text(place_order(*id).to_string()))
            .await
            .unwrap();
    }
    // A command is in flight (its append held), then the shutdown comes; once the
    // server refuses new connections, the sockets have been told to go away.
    tokio::time::timeout(GUARD, gated.append_held.notified())
        .await
        .unwrap();
    app.stop.notify_one();
    let deadline = Instant::now() + GUARD;
    while tokio_tungstenite::connect_async(room()).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting after the shutdown"
        );
        tokio::task::yield_now().await;
    }
    gated.appends.add_permits(1);

    let mut acked = HashSet::new();
    let mut closes = Vec::new();
    for ws in [&mut a, &mut b] {
        let code = loop {
            match tokio::time::timeout(GUARD, ws.next()).await.unwrap() {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if let Some(ack) = message.get("ack") {
                        acked.insert(ack["id"].as_str().unwrap().parse::<Uuid>().unwrap());
                    }
                }
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                other => panic!("the socket ended without a close frame: {other:?}"),
            }
        };
        closes.push(code);
    }
    assert_eq!(
        closes,
        [Some(1001), Some(1001)],
        "going away, on both sockets"
    );
    assert!(!acked.is_empty(), "the command in flight was answered");
    // The run ends once every socket has closed.
    tokio::time::timeout(GUARD, app.served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Acked or not applied: nothing applied without its answer having been sent.
    for id in &ids {
        let applied = app
            .store
            .outcome(hh.id, CommandId(*id))
            .await
            .unwrap()
            .is_some();
        assert_eq!(applied, acked.contains(id), "command {id}");
    }
}

//! A clean shutdown: sockets get 1001 (going away) after the commands they already
//! sent are answered; a command is acked or not applied, never applied unanswered; the
//! server stops accepting and its run ends.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use hearth_core::ports::{Append, Appended, EventStore, Loaded, Snapshot, StoreError};
use hearth_core::{CommandId, CommandOutcome, EventEnvelope, HouseholdId, OrderId};
use hearth_memory::MemoryEventStore;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const GUARD: Duration = Duration::from_secs(20);

/// The memory store, with appends held at a gate the test opens: so a command is
/// surely in flight when the shutdown comes.
#[derive(Debug)]
struct Gated {
    inner: OnceLock<Arc<MemoryEventStore>>,
    gate: Semaphore,
    held: Notify,
}

impl Gated {
    fn inner(&self) -> &MemoryEventStore {
        self.inner.get().unwrap()
    }
}

#[async_trait]
impl EventStore for Gated {
    async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        self.held.notify_one();
        let _pass = self.gate.acquire().await.unwrap();
        self.inner().append(append).await
    }
    async fn load(&self, t: HouseholdId, a: OrderId, s: u32) -> Result<Loaded, StoreError> {
        self.inner().load(t, a, s).await
    }
    async fn read_feed(
        &self,
        t: HouseholdId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner().read_feed(t, after, limit).await
    }
    async fn head(&self, t: HouseholdId) -> Result<u64, StoreError> {
        self.inner().head(t).await
    }
    async fn outcome(
        &self,
        t: HouseholdId,
        c: CommandId,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        self.inner().outcome(t, c).await
    }
    async fn save_snapshot(&self, s: Snapshot) -> Result<(), StoreError> {
        self.inner().save_snapshot(s).await
    }
}

fn place_order(id: Uuid) -> Value {
    json!({"command": {"id": id, "type": "PlaceOrder", "payload": {
        "orderId": Uuid::now_v7(),
        "lines": [{"sku": "bread", "name": "Bread", "quantity": 1, "unitPriceCents": 100}]
    }}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_answers_what_sockets_sent_then_closes_them_with_1001() {
    let gated = Arc::new(Gated {
        inner: OnceLock::new(),
        gate: Semaphore::new(0),
        held: Notify::new(),
    });
    let app = common::spawn_wrapped(
        |store| {
            gated.inner.set(store).unwrap();
            gated.clone()
        },
        |_| {},
    )
    .await;
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
    tokio::time::timeout(GUARD, gated.held.notified())
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
    gated.gate.add_permits(1);

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

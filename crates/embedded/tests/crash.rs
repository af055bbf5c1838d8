//! Guarantee 4 for the embedded executor: SIGKILL the server node (the executor on a
//! SQLite file, talking to the HTTP sandbox) and restart it; the order still ends
//! right, and the sandbox saw no side effect twice.
//!
//! The sandbox runs in this test's process, so it outlives the node and keeps count.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::TimeDelta;
use hearth_core::order::{Command, OrderState, OrderStatus, PlaceOrder, RequestedLine};
use hearth_core::ports::Outbox;
use hearth_core::ports::{Clock, EventStore};
use hearth_core::{
    Actor, CommandEnvelope, CommandId, Dispatched, HouseholdId, MemberId, OrderId, Service,
    Timestamp,
};
use hearth_memory::SystemClock;
use hearth_sandbox::{Faults, RunningSandbox, Sandbox};
use hearth_sqlite::SqliteEventStore;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use uuid::Uuid;

struct Node {
    child: Child,
    /// The node's log lines, read off its stderr by a thread.
    log: mpsc::Receiver<String>,
}

impl Node {
    fn start(db: &Path, url: &str) -> Node {
        let mut child = Process::new(env!("CARGO_BIN_EXE_hearth-embedded-node"))
            .arg(db)
            .arg(url)
            .args(["--poll-ms", "100"])
            // The executor's debug lines say when an order starts waiting for ready-at.
            .env("RUST_LOG", "warn,hearth_embedded=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "started");
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("node: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Node { child, log }
    }

    /// Waits for the node to log a line containing `text` (it says so itself: the
    /// event, not a guess at how long it takes).
    fn logged(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(_) => {}
                Err(e) => panic!("the node did not log {text:?} within {within:?}: {e}"),
            }
        }
    }

    /// SIGKILL: no clean-up of any kind.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct World {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    store: Arc<SqliteEventStore>,
    service: Service,
    household: HouseholdId,
    sandbox: RunningSandbox,
}

async fn world(faults: Faults) -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hearth.db");
    let (store, _feed) = SqliteEventStore::open(&db).unwrap();
    let sandbox = RunningSandbox::start(([127, 0, 0, 1], 0).into(), Sandbox::new(faults))
        .await
        .unwrap();
    World {
        _dir: dir,
        db,
        // Orders are placed from the sandbox's catalog, as `hearth serve` places them.
        service: Service::new(store.clone(), Arc::new(SystemClock)).with_catalog(Arc::new(
            hearth_sandbox::HttpProvider::new(&sandbox.url(), Duration::from_secs(5))
                .unwrap()
                .catalog(Duration::ZERO),
        )),
        store,
        household: HouseholdId(Uuid::now_v7()),
        sandbox,
    }
}

impl World {
    fn node(&self) -> Node {
        Node::start(&self.db, &self.sandbox.url())
    }

    async fn place(&self, ready_at: Timestamp) -> OrderId {
        let order = OrderId(Uuid::now_v7());
        let command = Command::PlaceOrder(PlaceOrder {
            order_id: order,
            lines: vec![RequestedLine::shown("bread", 2, 450)],
            ready_at: Some(ready_at),
            note: None,
        });
        let result = self
            .service
            .dispatch(CommandEnvelope::new(
                CommandId(Uuid::now_v7()),
                self.household,
                Actor::Member {
                    id: MemberId(Uuid::now_v7()),
                },
                command,
            ))
            .await
            .unwrap();
        assert!(matches!(result, Dispatched::Accepted { .. }));
        order
    }

    async fn state(&self, order: OrderId) -> OrderState {
        self.service
            .load::<hearth_core::Orders>(self.household, order)
            .await
            .unwrap()
    }

    async fn reach(&self, order: OrderId, status: OrderStatus, within: Duration) {
        let started = Instant::now();
        // A bounded poll: the node is another process, and its commits ring no feed here.
        loop {
            let state = self.state(order).await;
            if state.order.as_ref().is_some_and(|o| o.status == status) {
                return;
            }
            assert!(
                started.elapsed() < within,
                "order not {status:?} within {within:?}: {:?}",
                state.order
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn count(&self, event: &str) -> usize {
        self.store
            .read_feed(self.household, 0, 1000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.event.type_name() == event)
            .count()
    }

    async fn assert_ready_once(&self, ready_at: Timestamp) {
        let events = self.store.read_feed(self.household, 0, 1000).await.unwrap();
        let last = events.last().unwrap();
        assert_eq!(last.event.type_name(), "OrderReady");
        assert!(last.created_at >= ready_at, "not ready before ready-at");
        for event in [
            "StockReserved",
            "PaymentCaptured",
            "OrderConfirmed",
            "OrderReady",
        ] {
            assert_eq!(self.count(event).await, 1, "{event} once");
        }
        // The node marks the job when the process has ended, just after the last event:
        // wait for it (the node is another process; the store is what it shows).
        let started = Instant::now();
        while !self.store.pending_jobs(100).await.unwrap().is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the job is taken care of"
            );
            // Bounded poll of the node's marking (another process; no feed for it).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_timer_then_restart_still_makes_the_order_ready_without_repeats() {
    let w = world(Faults::default()).await;
    let node = w.node();
    let ready_at = SystemClock.now() + TimeDelta::seconds(3);
    let order = w.place(ready_at).await;
    w.reach(order, OrderStatus::Confirmed, Duration::from_secs(3))
        .await;
    // The node is on the timer once it says it waits for ready-at: kill it there.
    node.logged("process waiting", Duration::from_secs(3));
    node.kill();
    assert_eq!(
        w.state(order).await.order.unwrap().status,
        OrderStatus::Confirmed
    );
    assert_eq!(w.store.pending_jobs(100).await.unwrap().len(), 1);

    let _node = w.node();
    w.reach(order, OrderStatus::Ready, Duration::from_secs(8))
        .await;
    w.assert_ready_once(ready_at).await;
    let stats = w.sandbox.sandbox().stats();
    assert_eq!(stats.reservations, 1, "one reservation at the provider");
    assert_eq!(stats.captures, 1, "one capture at the provider");
    assert_eq!(stats.replays, 0, "no provider call even repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_capture_then_restart_captures_once() {
    // The capture takes effect, then the reply is slow: the node dies before it is
    // recorded. The restarted node repeats the step with the same key and gets the
    // first payment back.
    let w = world(Faults {
        latency_ms: 1_500,
        ..Faults::default()
    })
    .await;
    let node = w.node();
    let ready_at = SystemClock.now() + TimeDelta::seconds(1);
    let order = w.place(ready_at).await;
    w.reach(order, OrderStatus::StockReserved, Duration::from_secs(5))
        .await;
    // Now the capture is in flight (or about to be): wait for its effect at the
    // provider (in this process, which says when it happens), then kill.
    w.sandbox
        .sandbox()
        .wait_for(Duration::from_secs(5), |s| s.captures > 0)
        .await
        .expect("no capture at the provider within 5 s");
    node.kill();
    assert_eq!(
        w.count("PaymentCaptured").await,
        0,
        "killed before recording"
    );
    w.sandbox.sandbox().set_faults(Faults::default());

    let _node = w.node();
    w.reach(order, OrderStatus::Ready, Duration::from_secs(8))
        .await;
    w.assert_ready_once(ready_at).await;
    let stats = w.sandbox.sandbox().stats();
    assert_eq!(stats.captures, 1, "one capture at the provider");
    assert_eq!(stats.reservations, 1);
    assert!(stats.replays >= 1, "the capture was repeated and replayed");
}

//! `hearth worker` as its own process against a real Temporal dev server, sharing a
//! SQLite store with the test: SIGKILLed while its workflow sleeps on the ready-at
//! timer, then restarted, the order still becomes ready and no provider call repeats.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::TimeDelta;
use hearth_core::order::{Command, OrderLine, PlaceOrder};
use hearth_core::ports::{Clock, EventStore};
use hearth_core::{
    Actor, CommandEnvelope, CommandId, Dispatched, HouseholdId, MemberId, OrderId, OrderService,
    OrderStatus,
};
use hearth_memory::SystemClock;
use hearth_temporal::dev_server::DevServer;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command as Process};
use uuid::Uuid;

fn spawn_worker(server: &DevServer, db: &Path, task_queue: &str, log: &Path) -> Child {
    Process::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("worker")
        .arg("--sqlite")
        .arg(db)
        .args(["--temporal-address", &server.url()])
        .args(["--task-queue", task_queue])
        .args(["--relay-idle-ms", "100"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn status(service: &OrderService, household: HouseholdId, order: OrderId) -> OrderStatus {
    service
        .load(household, order)
        .await
        .unwrap()
        .order
        .unwrap()
        .status
}

async fn wait_status(
    service: &OrderService,
    household: HouseholdId,
    order: OrderId,
    want: OrderStatus,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = status(service, household, order).await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "order still {now:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The steps a worker's log says it carried out (one line per step done).
fn steps_done(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("fulfilment step done"))
        .filter_map(|l| {
            [
                "reserve-stock",
                "capture-payment",
                "confirm",
                "mark-ready",
                "release-stock",
                "refund",
            ]
            .into_iter()
            .find(|s| l.contains(&format!("step={s}")))
            .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_timer_and_restarted_makes_the_order_ready_without_repeating_a_step() {
    let server = DevServer::start(Duration::from_secs(60)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hearth.db");
    let (store, _feed) = hearth_sqlite::SqliteEventStore::open(&db).unwrap();
    let service = OrderService::new(store.clone(), Arc::new(SystemClock));
    let task_queue = format!("hearth-test-{}", Uuid::now_v7());
    let (household, order) = (HouseholdId(Uuid::now_v7()), OrderId(Uuid::now_v7()));

    // Committed with its Fulfil job; the worker's relay starts it.
    let ready_at = SystemClock.now() + TimeDelta::seconds(10);
    let place = Command::PlaceOrder(PlaceOrder {
        order_id: order,
        lines: vec![OrderLine {
            sku: "bread".into(),
            name: "bread".into(),
            quantity: 2,
            unit_price_cents: 450,
        }],
        ready_at: Some(ready_at),
        note: None,
    });
    let actor = Actor::Member {
        id: MemberId(Uuid::now_v7()),
    };
    let placed = service
        .dispatch(CommandEnvelope::new(
            CommandId(Uuid::now_v7()),
            household,
            actor,
            place,
        ))
        .await
        .unwrap();
    assert!(matches!(placed, Dispatched::Accepted { .. }));

    let (log1, log2) = (
        dir.path().join("worker1.log"),
        dir.path().join("worker2.log"),
    );
    let mut first = spawn_worker(&server, &db, &task_queue, &log1);
    wait_status(
        &service,
        household,
        order,
        OrderStatus::Confirmed,
        Duration::from_secs(60),
    )
    .await;
    // Let the workflow task that starts the ready-at timer complete, then kill hard.
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    assert!(SystemClock.now() < ready_at, "killed before ready-at");
    assert_eq!(
        status(&service, household, order).await,
        OrderStatus::Confirmed
    );

    let mut second = spawn_worker(&server, &db, &task_queue, &log2);
    // The timer fires at ready-at; after a hard kill the task may first wait out the
    // dead worker's sticky queue (10 s).
    wait_status(
        &service,
        household,
        order,
        OrderStatus::Ready,
        Duration::from_secs(60),
    )
    .await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    let events = store.read_feed(household, 0, 100).await.unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event.type_name()).collect();
    assert_eq!(
        types,
        vec![
            "OrderPlaced",
            "StockReserved",
            "PaymentCaptured",
            "OrderConfirmed",
            "OrderReady"
        ]
    );
    assert!(
        events[4].created_at >= ready_at,
        "ready at its ready-at, not before"
    );
    // Every provider step ran once, in the first worker; the second only marked ready.
    let logs = || {
        format!(
            "first worker:\n{}\nsecond worker:\n{}",
            std::fs::read_to_string(&log1).unwrap(),
            std::fs::read_to_string(&log2).unwrap()
        )
    };
    assert_eq!(
        steps_done(&log1),
        vec!["reserve-stock", "capture-payment", "confirm"],
        "{}",
        logs()
    );
    assert_eq!(steps_done(&log2), vec!["mark-ready"], "{}", logs());
}

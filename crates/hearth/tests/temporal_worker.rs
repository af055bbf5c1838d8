//! `hearth worker` as its own process against a real Temporal dev server, sharing a
//! SQLite store with the test: SIGKILLed while its workflow sleeps on the ready-at
//! timer, then restarted, the order still becomes ready and no provider call repeats;
//! killed while a chore waits for its due time, the reminder still comes once, on time.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::{DurationRound as _, TimeDelta};
use hearth_core::chore::{ChoreCommand, ChoreId, ChoreStatus, Chores, ScheduleChore, limits};
use hearth_core::order::{Command, PlaceOrder, RequestedLine};
use hearth_core::ports::{Clock, EventStore};
use hearth_core::{
    Actor, AggregateId, CommandEnvelope, CommandId, Dispatched, HouseholdId, MemberId, OrderId,
    OrderStatus, Service,
};
use hearth_memory::SystemClock;
use hearth_temporal::dev_server::DevServer;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use temporalio_common::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use tokio::process::{Child, Command as Process};
use uuid::Uuid;

fn spawn_worker(server: &DevServer, db: &Path, task_queue: &str, log: &Path) -> Child {
    spawn_worker_with(server, db, task_queue, log, None)
}

fn spawn_worker_with(
    server: &DevServer,
    db: &Path,
    task_queue: &str,
    log: &Path,
    providers_url: Option<&str>,
) -> Child {
    let mut command = Process::new(env!("CARGO_BIN_EXE_hearth"));
    command.arg("worker");
    if let Some(url) = providers_url {
        command.args(["--providers-url", url]);
    }
    command
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

async fn status(service: &Service, household: HouseholdId, order: OrderId) -> OrderStatus {
    service
        .load::<hearth_core::Orders>(household, order)
        .await
        .unwrap()
        .order
        .unwrap()
        .status
}

async fn wait_status(
    service: &Service,
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
        // A bounded poll: the worker is another process; its commits ring no feed here.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The history of the workflow of `aggregate` (empty while there is no workflow).
async fn history(
    server: &DevServer,
    household: HouseholdId,
    aggregate: AggregateId,
) -> Vec<HistoryEvent> {
    let config = hearth_temporal::TemporalConfig::new(server.url(), "default");
    let client = hearth_temporal::connect(&config).await.unwrap();
    let handle = client.get_workflow_handle::<hearth_temporal::ProcessWorkflow>(
        hearth_temporal::workflow_id(household, aggregate),
    );
    match handle.fetch_history(Default::default()).into_events().await {
        Err(temporalio_client::errors::WorkflowInteractionError::NotFound(_)) => Vec::new(),
        other => other.unwrap(),
    }
}

/// Waits until the workflow's history holds a started timer. A bounded poll: the
/// history lives in the Temporal server, another process, with nothing to subscribe to.
/// (A chore's first step is its wait: its workflow may not even exist yet.)
async fn timer_started(server: &DevServer, household: HouseholdId, aggregate: AggregateId) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = history(server, household, aggregate).await;
        if events.iter().any(|e| {
            matches!(
                e.attributes,
                Some(Attributes::TimerStartedEventAttributes(_))
            )
        }) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the workflow started no timer within 30 s: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The steps a worker's log says it carried out for `aggregate` (one line per step
/// done: `process step done ... aggregate=order/<id> step=confirm`).
fn steps_done(log: &Path, aggregate: AggregateId) -> Vec<String> {
    let aggregate = format!("aggregate={aggregate} ");
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("process step done") && l.contains(&aggregate))
        .filter_map(|l| {
            let (_, rest) = l.split_once(" step=")?;
            rest.split_whitespace().next().map(str::to_owned)
        })
        .collect()
}

/// Waits until a worker's log says it finished `step` for `aggregate`: the worker logs a
/// step after its command commits, so the store can show the step's effect a moment
/// before the line is written. A bounded poll of another process's log file.
async fn step_logged(log: &Path, aggregate: AggregateId, step: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !steps_done(log, aggregate).iter().any(|s| s == step) {
        assert!(
            Instant::now() < deadline,
            "{step} not logged within 10 s of its commit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_timer_and_restarted_makes_the_order_ready_without_repeating_a_step() {
    let server = DevServer::start(Duration::from_secs(60)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hearth.db");
    let (store, _feed) = hearth_sqlite::SqliteEventStore::open(&db).unwrap();
    // Orders are placed from the default catalog (the one the sandbox serves too).
    let service = Service::new(store.clone(), Arc::new(SystemClock))
        .with_catalog(Arc::new(hearth_memory::MemoryInventory::default()));
    let task_queue = format!("hearth-test-{}", Uuid::now_v7());
    let (household, order) = (HouseholdId(Uuid::now_v7()), OrderId(Uuid::now_v7()));

    // Committed with its Fulfil job; the worker's relay starts it.
    let ready_at = SystemClock.now() + TimeDelta::seconds(10);
    let place = Command::PlaceOrder(PlaceOrder {
        order_id: order,
        lines: vec![RequestedLine::new("bread", 2)],
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
    // The workflow task that starts the ready-at timer has completed (the server's
    // history shows the timer): kill hard.
    timer_started(&server, household, order.into()).await;
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
    step_logged(&log2, order.into(), "mark-ready").await;
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
        steps_done(&log1, order.into()),
        vec!["reserve-stock", "capture-payment", "confirm"],
        "{}",
        logs()
    );
    assert_eq!(
        steps_done(&log2, order.into()),
        vec!["mark-ready"],
        "{}",
        logs()
    );
}

async fn chore_status(service: &Service, household: HouseholdId, chore: ChoreId) -> ChoreStatus {
    service
        .load::<Chores>(household, chore)
        .await
        .unwrap()
        .chore
        .unwrap()
        .status
}

/// Issue 15: a chore's workflow sleeping on its due-time timer when its worker is
/// SIGKILLed; another worker takes over, and the reminder is recorded once, at the due
/// time, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_a_chore_waits_and_restarted_reminds_once_at_the_due_time() {
    let server = DevServer::start(Duration::from_secs(60)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hearth.db");
    let (store, _feed) = hearth_sqlite::SqliteEventStore::open(&db).unwrap();
    // Orders are placed from the default catalog (the one the sandbox serves too).
    let service = Service::new(store.clone(), Arc::new(SystemClock))
        .with_catalog(Arc::new(hearth_memory::MemoryInventory::default()));
    let task_queue = format!("hearth-test-{}", Uuid::now_v7());
    let (household, chore) = (HouseholdId(Uuid::now_v7()), ChoreId(Uuid::now_v7()));
    let member = MemberId(Uuid::now_v7());

    // Committed with its Start job; the worker's relay starts its workflow.
    // Whole milliseconds, as the workflow's timer counts (so "fired at or after the
    // due time" compares like with like).
    let due_at = (SystemClock.now() + TimeDelta::seconds(10))
        .duration_trunc(TimeDelta::milliseconds(1))
        .unwrap();
    let schedule = ChoreCommand::ScheduleChore(ScheduleChore {
        chore_id: chore,
        title: "Take the bins out".into(),
        assignee: member,
        due_at,
        every_days: None,
        escalate_after_minutes: Some(limits::MIN_ESCALATE_AFTER_MINUTES),
    });
    let scheduled = service
        .dispatch(CommandEnvelope::new(
            CommandId(Uuid::now_v7()),
            household,
            Actor::Member { id: member },
            schedule,
        ))
        .await
        .unwrap();
    assert!(matches!(scheduled, Dispatched::Accepted { .. }));

    let (log1, log2) = (
        dir.path().join("worker1.log"),
        dir.path().join("worker2.log"),
    );
    let mut first = spawn_worker(&server, &db, &task_queue, &log1);
    // The workflow task that starts the due-time timer has completed (the server's
    // history shows the timer): kill hard.
    timer_started(&server, household, chore.into()).await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    assert!(SystemClock.now() < due_at, "killed before the due time");
    assert_eq!(
        chore_status(&service, household, chore).await,
        ChoreStatus::Scheduled
    );

    let mut second = spawn_worker(&server, &db, &task_queue, &log2);
    // The timer fires at the due time; after a hard kill the task may first wait out
    // the dead worker's sticky queue (10 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = chore_status(&service, household, chore).await;
        if now == ChoreStatus::Due {
            break;
        }
        assert!(Instant::now() < deadline, "chore still {now:?}, not due");
        // A bounded poll: the worker is another process; its commits ring no feed here.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    step_logged(&log2, chore.into(), "remind").await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    let events = store.read_feed(household, 0, 100).await.unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event.type_name()).collect();
    assert_eq!(types, vec!["ChoreScheduled", "ChoreReminderSent"]);
    assert!(
        events[1].created_at >= due_at,
        "reminded at its due time, not before: {} < {due_at}",
        events[1].created_at
    );
    // On time, give or take the dead worker's sticky queue (10 s) and a slow machine.
    let late = events[1].created_at - due_at;
    eprintln!("reminded {late} after the due time");
    assert!(late < TimeDelta::seconds(20), "reminded {late} late");
    // The durable timer fired at the due time, not before (the reminder itself may come
    // later: the dead worker's sticky queue).
    let fired: Vec<_> = history(&server, household, chore.into())
        .await
        .into_iter()
        .filter(|e| matches!(e.attributes, Some(Attributes::TimerFiredEventAttributes(_))))
        .map(|e| {
            let t = e.event_time.unwrap();
            chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap()).unwrap()
        })
        .collect();
    assert_eq!(fired.len(), 1, "one timer fired: {fired:?}");
    assert!(
        fired[0] >= due_at,
        "the timer fired at the due time, not before: {} < {due_at}",
        fired[0]
    );
    // The first worker only set the timer; the second reminded, once.
    let logs = || {
        format!(
            "first worker:\n{}\nsecond worker:\n{}",
            std::fs::read_to_string(&log1).unwrap(),
            std::fs::read_to_string(&log2).unwrap()
        )
    };
    assert_eq!(
        steps_done(&log1, chore.into()),
        Vec::<String>::new(),
        "{}",
        logs()
    );
    assert_eq!(
        steps_done(&log2, chore.into()),
        vec!["remind"],
        "{}",
        logs()
    );
}

/// Issue 19, item 4: a worker killed while a step is in flight (here: the reserve call,
/// which the provider holds for a minute) has that step retried once the heartbeat
/// timeout passes, not after the 30 s start-to-close timeout. The workflow's history
/// says why the step ran again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_step_has_the_step_retried_after_the_heartbeat_timeout() {
    use hearth_sandbox::{Faults, RunningSandbox, Sandbox};
    use temporalio_common::protos::temporal::api::enums::v1::TimeoutType;
    use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;

    let server = DevServer::start(Duration::from_secs(60)).unwrap();
    let slow = Faults {
        latency_ms: 60_000,
        ..Faults::default()
    };
    let sandbox = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), Sandbox::new(slow))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hearth.db");
    let (store, _feed) = hearth_sqlite::SqliteEventStore::open(&db).unwrap();
    // Orders are placed from the default catalog (the one the sandbox serves too).
    let service = Service::new(store.clone(), Arc::new(SystemClock))
        .with_catalog(Arc::new(hearth_memory::MemoryInventory::default()));
    let task_queue = format!("hearth-test-{}", Uuid::now_v7());
    let (household, order) = (HouseholdId(Uuid::now_v7()), OrderId(Uuid::now_v7()));
    let place = Command::PlaceOrder(PlaceOrder {
        order_id: order,
        lines: vec![RequestedLine::new("bread", 1)],
        ready_at: None,
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

    let url = sandbox.url();
    let (log1, log2) = (
        dir.path().join("worker1.log"),
        dir.path().join("worker2.log"),
    );
    let mut first = spawn_worker_with(&server, &db, &task_queue, &log1, Some(&url));
    // The reserve call has reached the provider (which holds its reply, and says when
    // a request arrives): kill hard.
    sandbox
        .sandbox()
        .wait_for(Duration::from_secs(60), |s| s.requests > 0)
        .await
        .expect("the reserve call never came");
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let killed = Instant::now();
    sandbox.sandbox().set_faults(Faults::default());

    let mut second = spawn_worker_with(&server, &db, &task_queue, &log2, Some(&url));
    wait_status(
        &service,
        household,
        order,
        OrderStatus::Ready,
        Duration::from_secs(90),
    )
    .await;
    eprintln!("ready {:?} after the kill", killed.elapsed());
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    let config = hearth_temporal::TemporalConfig::new(server.url(), "default");
    let client = hearth_temporal::connect(&config).await.unwrap();
    let events = client
        .get_workflow_handle::<hearth_temporal::ProcessWorkflow>(hearth_temporal::workflow_id(
            household,
            order.into(),
        ))
        .fetch_history(Default::default())
        .into_events()
        .await
        .unwrap();
    let retried: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::ActivityTaskStartedEventAttributes(a)) if a.attempt > 1 => {
                Some(a.last_failure.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(retried.len(), 1, "one step ran again: {retried:?}");
    let timeout = retried[0]
        .as_ref()
        .and_then(|f| f.failure_info.clone())
        .and_then(|info| match info {
            FailureInfo::TimeoutFailureInfo(t) => Some(t.timeout_type()),
            _ => None,
        });
    assert_eq!(
        timeout,
        Some(TimeoutType::Heartbeat),
        "the dead worker's step was retried because it stopped heartbeating: {retried:?}"
    );
    assert_eq!(sandbox.sandbox().stats().reservations, 1, "reserved once");
}

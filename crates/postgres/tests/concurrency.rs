//! Concurrency and idempotency through the application service, on PostgreSQL:
//! every version used once, `seq` gap-free and in commit order, no lost update,
//! one set of events per command id.

#![allow(clippy::unwrap_used)]

mod common;

use hearth_contract::fixtures::{household, member, order_id, place};
use hearth_core::order::{Command, OrderRef, RecordPaymentCaptured, RecordStockReserved};
use hearth_core::ports::{EventStore, Outbox};
use hearth_core::service::ServiceConfig;
use hearth_core::{
    Actor, CommandEnvelope, CommandId, Dispatched, EventEnvelope, HouseholdId, OrderId, Service,
};
use hearth_memory::SystemClock;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

fn service(store: Arc<dyn EventStore>) -> Service {
    Service::with_config(
        store,
        Arc::new(SystemClock),
        ServiceConfig {
            max_attempts: 200,
            snapshot_every: 3,
            ..ServiceConfig::default()
        },
    )
    // Orders are placed from the default catalog.
    .with_catalog(Arc::new(hearth_memory::MemoryInventory::default()))
}

fn envelope(tenant: HouseholdId, actor: Actor, command: Command) -> CommandEnvelope {
    CommandEnvelope::new(CommandId(Uuid::now_v7()), tenant, actor, command)
}

/// The fulfilment steps after PlaceOrder, then the member's CompleteOrder.
fn steps(tenant: HouseholdId, order: OrderId) -> Vec<CommandEnvelope> {
    let r = OrderRef { order_id: order };
    vec![
        envelope(
            tenant,
            Actor::Process,
            Command::RecordStockReserved(RecordStockReserved {
                order_id: order,
                reservation_id: format!("res-{}", Uuid::now_v7()),
            }),
        ),
        envelope(
            tenant,
            Actor::Process,
            Command::RecordPaymentCaptured(RecordPaymentCaptured {
                order_id: order,
                payment_id: format!("pay-{}", Uuid::now_v7()),
                amount_cents: 2 * 450 + 129,
            }),
        ),
        envelope(tenant, Actor::Process, Command::ConfirmOrder(r.clone())),
        envelope(tenant, Actor::Process, Command::MarkReady(r.clone())),
        envelope(
            tenant,
            Actor::Member { id: member() },
            Command::CompleteOrder(r),
        ),
    ]
}

/// Reads the household feed from a cursor while writers run: every page must start
/// right after the cursor and be contiguous. If `seq` were assigned at insert rather
/// than in commit order, a reader would sooner or later see a later seq before an
/// earlier one committed, and this fails.
fn watch_feed(
    store: Arc<dyn EventStore>,
    tenant: HouseholdId,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<EventEnvelope>> {
    tokio::spawn(async move {
        let mut seen: Vec<EventEnvelope> = Vec::new();
        loop {
            let finished = done.load(Ordering::SeqCst);
            let cursor = seen.last().map_or(0, |e| e.seq);
            let page = store.read_feed(tenant, cursor, 500).await.unwrap();
            for (i, e) in page.iter().enumerate() {
                assert_eq!(e.seq, cursor + 1 + i as u64, "gap or disorder in the feed");
            }
            let empty = page.is_empty();
            seen.extend(page);
            if finished && empty {
                return seen;
            }
            if empty {
                // A reader's pace between pages, not synchronisation (it reads until `done`).
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_on_one_order_use_every_version_once() {
    let db = common::db().await;
    let store: Arc<dyn EventStore> = db.store();
    let svc = service(store.clone());
    let tenant = household();
    let order = order_id();
    let placed = svc
        .dispatch(envelope(
            tenant,
            Actor::Member { id: member() },
            place(order),
        ))
        .await
        .unwrap();
    assert!(matches!(placed, Dispatched::Accepted { .. }));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = watch_feed(store.clone(), tenant, done.clone());
    // 12 tasks each drive the whole process of the same order, racing each other.
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for command in steps(tenant, order) {
                let kind = command.command.type_name();
                match svc.dispatch(command).await.unwrap() {
                    Dispatched::Accepted { events, .. } => accepted.push((kind, events)),
                    Dispatched::Rejected(_) => {}
                    Dispatched::Duplicate(o) => panic!("fresh ids cannot repeat: {o:?}"),
                }
            }
            accepted
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.extend(t.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let feed = watcher.await.unwrap();

    let stream = store.load(tenant, order.into(), 999).await.unwrap().events;
    let versions: Vec<u32> = stream.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (1..=6).collect::<Vec<u32>>(),
        "every version once"
    );
    // Each step was accepted exactly once, by whichever task won it.
    let mut kinds: Vec<&str> = accepted.iter().map(|(k, _)| *k).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "CompleteOrder",
            "ConfirmOrder",
            "MarkReady",
            "RecordPaymentCaptured",
            "RecordStockReserved"
        ]
    );
    // No lost update: every accepted event is in the log, and nothing else is.
    let logged: HashSet<_> = stream.iter().skip(1).map(|e| e.id).collect();
    let reported: HashSet<_> = accepted
        .iter()
        .flat_map(|(_, events)| events.iter().map(|e| e.id))
        .collect();
    assert_eq!(logged, reported);
    assert_eq!(
        feed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<u64>>()
    );
    let state = svc
        .load::<hearth_core::Orders>(tenant, order)
        .await
        .unwrap();
    assert_eq!(state.version, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_orders_of_one_household_keep_seq_gap_free_and_commit_ordered() {
    let db = common::db().await;
    let store: Arc<dyn EventStore> = db.store();
    let svc = service(store.clone());
    let tenant = household();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = watch_feed(store.clone(), tenant, done.clone());
    let orders = 24;
    let mut tasks = Vec::new();
    for _ in 0..orders {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let order = order_id();
            let mut commands = vec![envelope(
                tenant,
                Actor::Member { id: member() },
                place(order),
            )];
            commands.extend(steps(tenant, order));
            let mut events = Vec::new();
            for command in commands {
                match svc.dispatch(command).await.unwrap() {
                    Dispatched::Accepted { events: e, .. } => events.extend(e),
                    other => panic!("each step of its own order is accepted: {other:?}"),
                }
            }
            (order, events)
        }));
    }
    let mut written: HashMap<OrderId, Vec<EventEnvelope>> = HashMap::new();
    for t in tasks {
        let (order, events) = t.await.unwrap();
        written.insert(order, events);
    }
    done.store(true, Ordering::SeqCst);
    let feed = watcher.await.unwrap();
    let total = orders * 6;
    assert_eq!(store.head(tenant).await.unwrap(), total as u64);
    assert_eq!(
        feed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=total as u64).collect::<Vec<_>>(),
        "the feed, read live from a cursor, is gap-free"
    );
    assert_eq!(feed, store.read_feed(tenant, 0, 10_000).await.unwrap());
    for (order, events) in &written {
        let stream = store
            .load(tenant, (*order).into(), 999)
            .await
            .unwrap()
            .events;
        assert_eq!(&stream, events, "the stream is what was reported committed");
        assert_eq!(
            stream.iter().map(|e| e.version).collect::<Vec<_>>(),
            (1..=6).collect::<Vec<u32>>()
        );
        // Within an order, seq grows with the version.
        assert!(stream.windows(2).all(|w| w[0].seq < w[1].seq));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_command_twice_or_concurrently_yields_one_set_of_events() {
    let db = common::db().await;
    let store: Arc<dyn EventStore> = db.store();
    let svc = service(store.clone());
    let tenant = household();

    // Twice, one after the other.
    let order = order_id();
    let command = envelope(tenant, Actor::Member { id: member() }, place(order));
    let first = svc.dispatch(command.clone()).await.unwrap();
    let again = svc.dispatch(command.clone()).await.unwrap();
    assert!(matches!(first, Dispatched::Accepted { .. }));
    assert_eq!(again, Dispatched::Duplicate(first.outcome()));

    // Concurrently: 16 copies of one command on a new order.
    let order = order_id();
    let command = envelope(tenant, Actor::Member { id: member() }, place(order));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let svc = svc.clone();
        let command = command.clone();
        tasks.push(tokio::spawn(async move { svc.dispatch(command).await }));
    }
    let mut accepted = 0;
    let mut outcomes = HashSet::new();
    for t in tasks {
        let result = t.await.unwrap().unwrap();
        if matches!(result, Dispatched::Accepted { .. }) {
            accepted += 1;
        }
        outcomes.insert(format!("{:?}", result.outcome()));
    }
    assert_eq!(accepted, 1, "one copy applied");
    assert_eq!(outcomes.len(), 1, "every copy answers the one outcome");
    let stream = store.load(tenant, order.into(), 999).await.unwrap().events;
    assert_eq!(stream.len(), 1, "one set of events");
    assert_eq!(store.head(tenant).await.unwrap(), 2);
    let jobs = db
        .outbox()
        .pending_jobs(100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.tenant == tenant)
        .count();
    assert_eq!(jobs, 2, "one job per placed order");
}
